// `vtxsim validate` and its points (profiles/validation/*.json), and the stock vmexit ipi
// test they use (`ipi --set workload.target=hlt`).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>

#include "cli_support.hpp"
#include "model/error.hpp"
#include "sim/validate.hpp"

using vtx::test::read_json;
using vtx::test::temp_path;
using vtx::test::vtxsim;

TEST_CASE("the shipped validation points load, cite their source and say how their setup differs", "[validate]") {
    const auto files = vtx::sim::validation_files();
    REQUIRE(files.size() >= 5);
    for (const auto& f : files) {
        INFO(f);
        const auto p = vtx::sim::ValidationPoint::load(f);
        CHECK(!p.citation.empty());
        CHECK(!p.cpu.empty());
        CHECK_FALSE(p.used_for_fitting);
        CHECK(p.value > 0);
        CHECK((p.unit == "cycles" || p.unit == "ns"));
    }
}

TEST_CASE("validate prints published vs model, the error and the setup, for every point", "[cli][validate]") {
    const std::string json = temp_path("validate.json");
    REQUIRE(vtxsim({"validate", "--runs", "1", "--json", json}).status == 0);
    const auto j = read_json(json);
    REQUIRE(j["points"].size() == vtx::sim::validation_files().size());
    for (const auto& p : j["points"]) {
        INFO(p["point"]);
        const double published = p["published"], model = p["model"], error = p["error_percent"];
        CHECK(model > 0);
        CHECK(std::fabs(error - 100.0 * (model - published) / published) < 1e-9);
        CHECK(p["setup_matches"].get<bool>() == p["differences"].empty());
        CHECK(p["model_run"].get<std::string>().rfind("vtxsim run ", 0) == 0);
    }
    ::unlink(json.c_str());
}

TEST_CASE("a bad validation point is one clear message naming the file, exit 2", "[cli][validate]") {
    const std::string f = temp_path("point.json");
    auto write = [&](const std::string& text) { std::ofstream(f) << text; };
    const std::string good = R"({"quantity": "q", "value": 100, "unit": "cycles", "cpu": "c", "setup": "s",
        "citation": "x", "model": {"workload": "vmcall", "profile": "icx"}, "differences": []})";
    write(good);
    CHECK(vtxsim({"validate", "--runs", "1", f}).status == 0);
    auto expect_error = [&](const std::string& text, const std::string& message) {
        write(text);
        const auto r = vtxsim({"validate", "--runs", "1", f});
        INFO(text);
        CHECK(r.status == 2);
        CHECK(r.err.find(message) != std::string::npos);
        CHECK(r.err.find("point.json") != std::string::npos);
    };
    auto with = [&](const std::string& from, const std::string& to) {
        std::string t = good;
        t.replace(t.find(from), from.size(), to);
        return t;
    };
    expect_error(with(R"("value": 100)", R"("value": -1)"), "\"value\" must be a positive number");
    expect_error(with(R"("unit": "cycles")", R"("unit": "furlongs")"), "\"unit\" must be cycles or ns");
    expect_error(with(R"("citation": "x",)", ""), "missing \"citation\"");
    expect_error(with(R"("differences": [])", R"("differences": [], "used_for_fitting": true)"),
                 "a measurement used for fitting is training data");
    expect_error(with(R"("workload": "vmcall")", R"("workload": "nope")"), "model: unknown workload \"nope\"");
    expect_error(with(R"("profile": "icx")", R"("profile": "icx", "set": ["kvm.bogus=1"])"), "model: ");
    expect_error(with(R"("profile": "icx")", R"("profile": "icx", "ipiv": true)"), "has no IPI virtualization");
    expect_error(with(R"("profile": "icx")", R"("profile": "icx", "metric": "nothing")"), "reports no \"nothing\"");
    expect_error(with(R"(, "differences": [])", ""), "missing array \"differences\"");
    expect_error(with(R"("setup": "s")", R"("setup": "s", "extra": 1)"), "unknown key \"extra\"");
    expect_error("{ nope", "not valid JSON");
    CHECK(vtxsim({"validate", "/nonexistent/p.json"}).status == 2);
    CHECK(vtxsim({"validate", "--set", "cost.guest.pause=1"}).status == 2);  // a point states its own run
    ::unlink(f.c_str());
}

TEST_CASE("ipi with workload.target=hlt is the stock test: the target halts after each IPI", "[workload][validate]") {
    const std::string json = temp_path("ipi_hlt.json");
    REQUIRE(vtxsim({"run", "ipi", "--ipiv", "off", "--set", "workload.target=hlt", "--json", json}).status == 0);
    auto j = read_json(json);
    CHECK(j["checks_ok"] == true);
    REQUIRE(j["exits"].contains("12"));  // HLT
    REQUIRE(j["exits"].contains("32"));  // WRMSR (the sender's ICR write without IPIv)
    // A HLT exit per IPI, and the AP's last halt after the last one.
    CHECK(j["exits"]["12"].get<long>() == j["exits"]["32"].get<long>() + 1);
    REQUIRE(vtxsim({"run", "ipi", "--ipiv", "off", "--set", "workload.target=idle_loop", "--json", json}).status == 0);
    j = read_json(json);
    CHECK_FALSE(j["exits"].contains("12"));  // the IPIv series' busy AP never halts
    const auto r = vtxsim({"run", "ipi", "--set", "workload.target=sleep"});
    CHECK(r.status == 2);
    CHECK(r.err.find("workload.target must be idle_loop or hlt") != std::string::npos);
    CHECK(vtxsim({"run", "ipi_halt", "--set", "workload.target=hlt"}).status == 2);
    ::unlink(json.c_str());
}
