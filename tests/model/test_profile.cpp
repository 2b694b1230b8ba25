#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "model/profile.hpp"

using namespace vtx::model;

namespace {
std::string profile_path(const std::string& name) {
    return std::string(VTX_SOURCE_DIR) + "/profiles/" + name + ".json";
}
nlohmann::json load_json(const std::string& name) {
    std::ifstream in(profile_path(name));
    return nlohmann::json::parse(in);
}
std::string error_of(const nlohmann::json& j) {
    try {
        CpuProfile::parse(j.dump(), "bad.json");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("shipped profiles load and define every cost", "[profile]") {
    for (const char* name : {"spr", "icx"}) {
        const CpuProfile p = CpuProfile::load(profile_path(name));
        CHECK(p.name == name);
        CHECK(p.core_ghz > 0);
        CHECK(p.costs[Cost::GuestPause] > 0);
    }
    CHECK(CpuProfile::load(profile_path("spr")).features.ipi_virtualization);
    CHECK_FALSE(CpuProfile::load(profile_path("icx")).features.tertiary_controls);
}

TEST_CASE("fitted costs are few", "[profile]") {
    const CpuProfile p = CpuProfile::load(profile_path("spr"));
    int fitted = 0;
    for (std::size_t i = 0; i < kCostCount; ++i)
        if (p.costs.entry(static_cast<Cost>(i)).provenance == Provenance::Fitted) ++fitted;
    CHECK(fitted >= 1);
    CHECK(fitted <= 6);
}

TEST_CASE("broken profiles name file and entry", "[profile]") {
    nlohmann::json j = load_json("spr");
    SECTION("missing entry") {
        j["costs"].erase(j["costs"].begin());
        CHECK(error_of(j) == "profile bad.json: missing cost \"mem.l1_hit\"");
    }
    SECTION("unknown entry") {
        j["costs"].push_back({{"name", "mem.bogus"}, {"cycles", 1}, {"provenance", "assumed"},
                              {"source", "x"}});
        CHECK(error_of(j) == "profile bad.json: unknown cost \"mem.bogus\"");
    }
    SECTION("duplicate entry") {
        j["costs"].push_back(j["costs"][0]);
        CHECK(error_of(j) == "profile bad.json: duplicate cost \"mem.l1_hit\"");
    }
    SECTION("negative entry") {
        j["costs"][0]["cycles"] = -3;
        CHECK(error_of(j) == "profile bad.json: cost \"mem.l1_hit\": cycles must not be negative");
    }
    SECTION("non-numeric entry") {
        j["costs"][0]["cycles"] = "five";
        CHECK(error_of(j) == "profile bad.json: cost \"mem.l1_hit\": \"cycles\" is not a number");
    }
    SECTION("bad provenance") {
        j["costs"][0]["provenance"] = "guessed";
        CHECK(error_of(j).find("provenance \"guessed\"") != std::string::npos);
    }
    SECTION("not JSON") {
        CHECK_THROWS_AS(CpuProfile::parse("{ nope", "bad.json"), ConfigError);
    }
    SECTION("missing file") {
        CHECK_THROWS_WITH(CpuProfile::load("/nonexistent/x.json"),
                          "profile /nonexistent/x.json: cannot open file");
    }
}

TEST_CASE("a cost can be overridden by name as with --set cost.NAME=VALUE", "[profile]") {
    CpuProfile p = CpuProfile::load(profile_path("spr"));
    p.override_cost("guest.pause", "77", "--set");
    CHECK(p.costs[Cost::GuestPause] == 77.0);
    CHECK_THROWS_WITH(p.override_cost("guest.nope", "1", "--set"),
                      "--set: unknown cost \"guest.nope\"");
    CHECK_THROWS_WITH(p.override_cost("guest.pause", "1x", "--set"),
                      "--set: cost \"guest.pause\" must be a finite number of cycles from 0 to 1000000000, not \"1x\"");
    CHECK_THROWS_AS(p.override_cost("guest.pause", "-1", "--set"), ConfigError);
}

TEST_CASE("a cost's history: earlier values with date and reason, oldest first, checked") {
    auto profile_with = [](const std::string& history) {
        auto j = load_json("spr");
        for (auto& e : j["costs"])
            if (e["name"] == "apic.bus_latency") e["history"] = nlohmann::json::parse(history);
        return j.dump();
    };
    const CpuProfile ok = CpuProfile::parse(
        profile_with(R"([{"cycles": 1500, "date": "2026-11-01", "reason": "first guess"},
                         {"cycles": 1971.8, "date": "2026-11-23", "reason": "fit"}])"), "p.json");
    const auto& h = ok.costs.entry(vtx::model::Cost::ApicBusLatency).history;
    REQUIRE(h.size() == 2);
    CHECK(h[0].cycles == 1500);
    CHECK(h[1].date == "2026-11-23");
    CHECK_THROWS_WITH(CpuProfile::parse(profile_with(R"([{"cycles": 1, "date": "23.11.2026", "reason": "x"}])"), "p.json"),
                      Catch::Contains("p.json") && Catch::Contains("is not YYYY-MM-DD"));
    CHECK_THROWS_WITH(CpuProfile::parse(profile_with(R"([{"cycles": 1, "date": "2026-11-23", "reason": "a"},
                                                         {"cycles": 2, "date": "2026-11-01", "reason": "b"}])"), "p.json"),
                      Catch::Contains("oldest first"));
    CHECK_THROWS_WITH(CpuProfile::parse(profile_with(R"([{"cycles": 1, "date": "2026-11-23"}])"), "p.json"),
                      Catch::Contains("missing \"reason\""));
    CHECK_THROWS_WITH(CpuProfile::parse(profile_with(R"([{"cycles": 1, "date": "2026-11-23", "reason": "a", "by": "me"}])"), "p.json"),
                      Catch::Contains("unknown key \"by\""));
}

TEST_CASE("the shipped spr profile records the history of its fitted and changed costs") {
    const auto p = vtx::model::CpuProfile::load(profile_path("spr"));
    for (auto c : {vtx::model::Cost::ApicBusLatency, vtx::model::Cost::VmxIpivMicrocode, vtx::model::Cost::VmxExitSaveGuest,
                   vtx::model::Cost::KvmApicSendIpi}) {
        INFO(vtx::model::cost_name(c));
        CHECK(!p.costs.entry(c).history.empty());
    }
}
