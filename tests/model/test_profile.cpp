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

TEST_CASE("every assumed cost of a shipped profile has a plausible range holding its value and its earlier values",
          "[profile][ensemble]") {
    for (const char* name : {"spr", "icx"}) {
        const CpuProfile p = CpuProfile::load(profile_path(name));
        CHECK(p.assumed_range > 0);
        for (std::size_t i = 0; i < kCostCount; ++i) {
            const auto c = static_cast<Cost>(i);
            const CostEntry& e = p.costs.entry(c);
            if (e.provenance != Provenance::Assumed) continue;
            INFO(name << " " << cost_name(c));
            const auto [lo, hi] = p.plausible_range(c);
            CHECK(lo <= e.cycles);
            CHECK(e.cycles <= hi);
            if (e.cycles > 0) CHECK(lo < hi);
            for (const CostChange& h : e.history) {
                CHECK(lo <= h.cycles);
                CHECK(h.cycles <= hi);
            }
        }
    }
    // A cost's own range wins over the profile's relative one.
    const CpuProfile spr = CpuProfile::load(profile_path("spr"));
    CHECK(spr.plausible_range(Cost::VmxExitSaveGuest) == std::pair<double, double>{75.0, 250.0});
    const double pause = spr.costs.entry(Cost::GuestPause).cycles;
    if (spr.costs.entry(Cost::GuestPause).provenance == Provenance::Assumed)
        CHECK(spr.plausible_range(Cost::GuestPause) ==
              std::pair<double, double>{pause * (1 - spr.assumed_range), pause * (1 + spr.assumed_range)});
}

TEST_CASE("plausible ranges are checked: [low, high] holding the value, assumed costs only, assumed_range 0..1",
          "[profile][ensemble]") {
    nlohmann::json j = load_json("spr");
    auto set_range = [&](const std::string& cost, const nlohmann::json& range) {
        for (auto& e : j["costs"])
            if (e["name"] == cost) e["range"] = range;
    };
    SECTION("not a pair") {
        set_range("vmx.exit_save_guest", nlohmann::json::array({75}));
        CHECK(error_of(j) == "profile bad.json: cost \"vmx.exit_save_guest\": range must be [low, high] in cycles");
    }
    SECTION("not holding the value") {
        set_range("vmx.exit_save_guest", nlohmann::json::array({200, 300}));
        CHECK(error_of(j) == "profile bad.json: cost \"vmx.exit_save_guest\": range must hold the value and not be negative");
    }
    SECTION("on a fitted cost") {
        set_range("apic.bus_latency", nlohmann::json::array({1000, 3000}));
        CHECK(error_of(j).find("only an assumed cost has a plausible range") != std::string::npos);
    }
    SECTION("assumed_range out of 0..1") {
        j["assumed_range"] = 1.5;
        CHECK(error_of(j) == "profile bad.json: assumed_range must be within 0..1 (relative)");
    }
}
