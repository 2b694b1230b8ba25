// The calibration ensemble (sim/ensemble.hpp): `calibrate --ensemble`, the shipped file and
// `--uncertainty` on run and compare.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "cli_support.hpp"
#include "model/error.hpp"
#include "model/profile.hpp"
#include "sim/ensemble.hpp"

using vtx::test::read_json;
using vtx::test::temp_path;
using vtx::test::vtxsim;

namespace {
const std::string kShipped = std::string(VTX_SOURCE_DIR) + "/profiles/ensembles/spr.json";
vtx::model::CpuProfile spr() {
    return vtx::model::CpuProfile::load(std::string(VTX_SOURCE_DIR) + "/profiles/spr.json");
}
}  // namespace

TEST_CASE("calibrate --ensemble: assumed costs drawn within their ranges, fitted costs refit, seeded",
          "[cli][ensemble]") {
    const std::string a = temp_path("ens_a.json"), b = temp_path("ens_b.json"), one = temp_path("ens_1.json");
    const std::vector<std::string> args = {"calibrate", "--ensemble", "2", "--runs", "2", "--iterations", "2", "--seed", "7"};
    auto with_out = [&](std::vector<std::string> v, const std::string& out) {
        v.push_back("--out");
        v.push_back(out);
        return v;
    };
    REQUIRE(vtxsim(with_out(args, a)).status == 0);
    REQUIRE(vtxsim(with_out(args, b)).status == 0);
    CHECK(vtx::test::slurp(a) == vtx::test::slurp(b));  // same seed, same ensemble
    const auto j = read_json(a);
    CHECK(j["profile"] == "spr");
    CHECK(j["profile_digest"] == vtx::sim::profile_digest(spr()));
    REQUIRE(j["members"].size() == 2);
    CHECK(j["tolerance_percent"].size() == 4);
    const auto profile = spr();
    for (const auto& m : j["members"]) {
        const auto& costs = m["costs"];
        for (const char* fitted : {"apic.bus_latency", "vmx.apic_access_virt", "vmx.ipiv_microcode", "kvm.exit_common_path"})
            CHECK(costs.contains(fitted));
        // Every assumed cost is drawn, within its range (rounded to 0.1 cycle in the file).
        for (std::size_t i = 0; i < vtx::model::kCostCount; ++i) {
            const auto c = static_cast<vtx::model::Cost>(i);
            if (profile.costs.entry(c).provenance != vtx::model::Provenance::Assumed) continue;
            const auto [lo, hi] = profile.plausible_range(c);
            const std::string name(vtx::model::cost_name(c));
            INFO(name);
            if (hi <= lo) continue;
            REQUIRE(costs.contains(name));
            CHECK(costs[name].get<double>() >= lo - 0.05);
            CHECK(costs[name].get<double>() <= hi + 0.05);
        }
        // A member is accepted exactly when every residual is within the tolerance.
        bool within = true;
        for (std::size_t k = 0; k < 4; ++k)
            within = within && std::fabs(m["residual_percent"][k].get<double>()) <= j["tolerance_percent"][k].get<double>() + 1e-3;
        CHECK(m["accepted"].get<bool>() == within);
    }
    CHECK(j["members"][0]["costs"]["mem.line_transfer"] != j["members"][1]["costs"]["mem.line_transfer"]);
    // Member k does not depend on how many members the ensemble has.
    REQUIRE(vtxsim({"calibrate", "--ensemble", "1", "--runs", "2", "--iterations", "2", "--seed", "7", "--out", one}).status == 0);
    CHECK(read_json(one)["members"][0] == j["members"][0]);
    for (const auto& f : {a, b, one}) ::unlink(f.c_str());
    CHECK(vtxsim({"calibrate", "--ensemble", "0"}).status == 2);
    CHECK(vtxsim({"calibrate", "--ensemble", "2", "--report"}).status == 2);
    CHECK(vtxsim({"calibrate", "--ensemble", "2", "--set", "cost.guest.pause=10"}).status == 2);
}

TEST_CASE("the shipped spr ensemble loads, matches the profile and has accepted members", "[ensemble]") {
    const vtx::sim::Ensemble en = vtx::sim::Ensemble::load(kShipped, spr());
    CHECK(en.profile == "spr");
    CHECK(en.accepted() >= 16);
    CHECK(en.members.size() >= en.accepted());
    for (const auto& m : en.members) {
        if (!m.accepted) continue;
        REQUIRE(m.residual_percent.size() == 4);
        for (std::size_t k = 0; k < 4; ++k) CHECK(std::fabs(m.residual_percent[k]) <= en.tolerance_percent[k] + 1e-3);
    }
}

TEST_CASE("compare ipi --uncertainty: the means and reductions over the ensemble's members", "[cli][ensemble]") {
    const std::string json = temp_path("unc.json");
    REQUIRE(vtxsim({"compare", "ipi", "--runs", "2", "--uncertainty", "--json", json}).status == 0);
    const auto j = read_json(json);
    REQUIRE(j.contains("uncertainty"));
    const auto& u = j["uncertainty"];
    const vtx::sim::Ensemble en = vtx::sim::Ensemble::load(kShipped, spr());
    CHECK(u["members"] == en.accepted());
    for (std::size_t k = 0; k < 4; ++k) {
        CHECK(u["mean_low"][k].get<double>() <= u["mean_high"][k].get<double>());
        CHECK(u["mean_low"][k].get<double>() > 0);
    }
    for (std::size_t a = 0; a < 2; ++a) {
        CHECK(u["reduction_percent_low"][a].get<double>() <= u["reduction_percent_high"][a].get<double>());
        CHECK(u["reduction_percent_low"][a].get<double>() > 0);  // IPIv saves in every member
    }
    // A what-if holds in every member: without IPIv's microcode cost the IPIv columns drop.
    const std::string what_if = temp_path("unc_whatif.json");
    REQUIRE(vtxsim({"compare", "ipi", "--runs", "2", "--uncertainty", "--set", "cost.vmx.ipiv_microcode=0", "--json", what_if})
                .status == 0);
    const auto w = read_json(what_if)["uncertainty"];
    CHECK(w["mean_high"][3].get<double>() <= u["mean_high"][3].get<double>());
    CHECK(w["mean_low"][0].get<double>() == u["mean_low"][0].get<double>());  // no IPIv: unchanged
    ::unlink(json.c_str());
    ::unlink(what_if.c_str());
}

TEST_CASE("run and compare WORKLOAD take --uncertainty too", "[cli][ensemble]") {
    const std::string json = temp_path("unc_run.json");
    REQUIRE(vtxsim({"run", "ipi_halt", "--uncertainty", kShipped, "--json", json}).status == 0);
    auto u = read_json(json)["uncertainty"];
    CHECK(u["mean_low"].get<double>() <= u["mean_high"].get<double>());
    CHECK(u["mean_high"].get<double>() > u["mean_low"].get<double>());  // ipi_halt is not what the fit pins
    REQUIRE(vtxsim({"compare", "ipi_halt", "--runs", "1", "--uncertainty", "--json", json}).status == 0);
    u = read_json(json)["uncertainty"];
    CHECK(u["mean_low"].size() == 4);
    CHECK(u["reduction_percent_low"].size() == 2);
    ::unlink(json.c_str());
}

TEST_CASE("a bad ensemble file is one clear message and exit 2", "[cli][ensemble]") {
    auto r = vtxsim({"compare", "ipi", "--runs", "1", "--uncertainty", "/nonexistent/e.json"});
    CHECK(r.status == 2);
    CHECK(r.err.find("ensemble /nonexistent/e.json: cannot open file") != std::string::npos);
    r = vtxsim({"compare", "ipi", "--runs", "1", "--profile", "icx", "--uncertainty", kShipped});
    CHECK(r.status == 2);  // icx has no IPIv, or the ensemble is spr's: either way refused
    r = vtxsim({"run", "ipi", "--profile", "icx", "--ipiv", "off", "--uncertainty", kShipped});
    CHECK(r.status == 2);
    CHECK(r.err.find("made for profile \"spr\", not \"icx\"") != std::string::npos);
    r = vtxsim({"run", "ipi", "--profile", "icx", "--ipiv", "off", "--uncertainty"});
    CHECK(r.status == 2);
    CHECK(r.err.find("icx.json: cannot open file") != std::string::npos);  // none shipped for icx

    auto j = read_json(kShipped);
    const std::string bad = temp_path("bad_ens.json");
    auto write = [&](const nlohmann::json& v) { std::ofstream(bad) << v.dump(); };
    j["profile_digest"] = "0000000000000000";
    write(j);
    r = vtxsim({"run", "ipi", "--uncertainty", bad});
    CHECK(r.status == 2);
    CHECK(r.err.find("made from another version of profile \"spr\"") != std::string::npos);
    j = read_json(kShipped);
    j["members"][0]["costs"]["mem.bogus"] = 1;
    write(j);
    r = vtxsim({"run", "ipi", "--uncertainty", bad});
    CHECK(r.status == 2);
    CHECK(r.err.find("member 1: unknown cost \"mem.bogus\"") != std::string::npos);
    j = read_json(kShipped);
    j["members"][0]["costs"]["mem.line_transfer"] = -1;
    write(j);
    CHECK(vtxsim({"run", "ipi", "--uncertainty", bad}).status == 2);
    j = read_json(kShipped);
    for (auto& m : j["members"]) m["accepted"] = false;
    write(j);
    r = vtxsim({"run", "ipi", "--uncertainty", bad});
    CHECK(r.status == 2);
    CHECK(r.err.find("no accepted member") != std::string::npos);
    std::ofstream(bad) << "{ not json";
    CHECK(vtxsim({"run", "ipi", "--uncertainty", bad}).status == 2);
    ::unlink(bad.c_str());
}
