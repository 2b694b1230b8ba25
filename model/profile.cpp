#include "model/profile.hpp"

#include <algorithm>

#include "model/parse.hpp"

#include <cmath>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/error.hpp"

namespace vtx::model {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
    throw ConfigError("profile " + file + ": " + what);
}

double number_field(const json& j, const char* key, const std::string& file,
                    const std::string& where) {
    if (!j.contains(key)) fail(file, where + ": missing \"" + key + "\"");
    const json& v = j.at(key);
    if (!v.is_number()) fail(file, where + ": \"" + key + "\" is not a number");
    return v.get<double>();
}

void load_features(const json& j, CpuFeatures& f, const std::string& file) {
    if (!j.is_object()) fail(file, "\"features\" must be an object");
    const std::map<std::string, bool CpuFeatures::*> flags = {
        {"secondary_controls", &CpuFeatures::secondary_controls},
        {"tertiary_controls", &CpuFeatures::tertiary_controls},
        {"ipi_virtualization", &CpuFeatures::ipi_virtualization},
        {"tpr_shadow", &CpuFeatures::tpr_shadow},
        {"msr_bitmaps", &CpuFeatures::msr_bitmaps},
        {"virtualize_apic_accesses", &CpuFeatures::virtualize_apic_accesses},
        {"virtualize_x2apic_mode", &CpuFeatures::virtualize_x2apic_mode},
        {"apic_register_virtualization", &CpuFeatures::apic_register_virtualization},
        {"virtual_interrupt_delivery", &CpuFeatures::virtual_interrupt_delivery},
        {"posted_interrupts", &CpuFeatures::posted_interrupts},
        {"activity_hlt", &CpuFeatures::activity_hlt},
        {"activity_shutdown", &CpuFeatures::activity_shutdown},
        {"activity_wait_for_sipi", &CpuFeatures::activity_wait_for_sipi},
        {"pbrsb_affected", &CpuFeatures::pbrsb_affected},
        {"bhi_ctrl", &CpuFeatures::bhi_ctrl},
        {"uintr", &CpuFeatures::uintr},
    };
    for (const auto& [key, value] : j.items()) {
        if (key == "physical_address_width") {
            if (!value.is_number_unsigned() || value.get<unsigned>() < 32 ||
                value.get<unsigned>() > 52)
                fail(file, "features.physical_address_width must be an integer 32..52");
            f.physical_address_width = value.get<unsigned>();
            continue;
        }
        auto it = flags.find(key);
        if (it == flags.end()) fail(file, "features: unknown feature \"" + key + "\"");
        if (!value.is_boolean()) fail(file, "features." + key + " must be true or false");
        f.*(it->second) = value.get<bool>();
    }
    if (f.ipi_virtualization && !f.tertiary_controls)
        fail(file, "features: ipi_virtualization needs tertiary_controls");
}

}  // namespace

std::pair<double, double> CpuProfile::plausible_range(Cost c) const {
    const CostEntry& e = costs.entry(c);
    if (e.range_low >= 0) return {e.range_low, e.range_high};
    return {e.cycles * (1.0 - assumed_range), e.cycles * (1.0 + assumed_range)};
}

CpuProfile CpuProfile::load(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ConfigError("profile " + path + ": cannot open file");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), path);
}

CpuProfile CpuProfile::parse(const std::string& text, const std::string& file) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {  // a syntax error, or a number out of range (406)
        fail(file, std::string("not valid JSON: ") + e.what());
    }
    // Every field is checked for its type before it is read; should one slip through, the
    // JSON library's type error still becomes one message naming the file.
    try {
        return from_json_object(j, file);
    } catch (const json::exception& e) {
        fail(file, std::string("a value of the wrong type: ") + e.what());
    }
}

CpuProfile CpuProfile::from_json_object(const json& j, const std::string& file) {
    if (!j.is_object()) fail(file, "top level must be an object");
    static const std::set<std::string> kKeys = {"name",     "description", "core_ghz",
                                                "tsc_ghz",  "features",    "costs",
                                                "comment",  "assumed_range"};
    for (const auto& [key, value] : j.items())
        if (!kKeys.count(key)) fail(file, "unknown key \"" + key + "\"");

    CpuProfile p;
    p.file = file;
    if (!j.contains("name") || !j["name"].is_string()) fail(file, "missing string \"name\"");
    p.name = j["name"].get<std::string>();
    if (j.contains("description")) {
        if (!j["description"].is_string()) fail(file, "\"description\" must be a string");
        p.description = j["description"].get<std::string>();
    }
    p.core_ghz = number_field(j, "core_ghz", file, "top level");
    // A clock between 1 MHz and 100 GHz: outside it cycles and simulated time lose meaning
    // (a 1e300 GHz clock makes every step take no time at all).
    auto clock_in_range = [](double ghz) { return ghz >= kMinClockGhz && ghz <= kMaxClockGhz; };
    if (!clock_in_range(p.core_ghz)) fail(file, "core_ghz must be between 0.001 and 100 (GHz)");
    p.tsc_ghz = j.contains("tsc_ghz") ? number_field(j, "tsc_ghz", file, "top level") : p.core_ghz;
    if (!clock_in_range(p.tsc_ghz)) fail(file, "tsc_ghz must be between 0.001 and 100 (GHz)");
    if (j.contains("features")) load_features(j["features"], p.features, file);
    if (j.contains("assumed_range")) {
        p.assumed_range = number_field(j, "assumed_range", file, "top level");
        if (!(p.assumed_range >= 0 && p.assumed_range <= 1)) fail(file, "assumed_range must be within 0..1 (relative)");
    }

    if (!j.contains("costs") || !j["costs"].is_array()) fail(file, "missing array \"costs\"");
    std::set<std::string> seen;
    std::size_t index = 0;
    for (const json& e : j["costs"]) {
        const std::string where = "costs[" + std::to_string(index++) + "]";
        if (!e.is_object()) fail(file, where + " is not an object");
        if (!e.contains("name") || !e["name"].is_string())
            fail(file, where + ": missing string \"name\"");
        const std::string name = e["name"].get<std::string>();
        const std::string entry = "cost \"" + name + "\"";
        for (const auto& [key, value] : e.items())
            if (key != "name" && key != "cycles" && key != "provenance" && key != "source" &&
                key != "run_variation" && key != "history" && key != "range")
                fail(file, entry + ": unknown key \"" + key + "\"");
        const auto cost = find_cost(name);
        if (!cost) fail(file, "unknown cost \"" + name + "\"");
        if (!seen.insert(name).second) fail(file, "duplicate cost \"" + name + "\"");
        CostEntry& ce = p.costs.entry(*cost);
        ce.cycles = number_field(e, "cycles", file, entry);
        if (ce.cycles < 0) fail(file, entry + ": cycles must not be negative");
        if (!(ce.cycles <= kMaxCostCycles))
            fail(file, entry + ": cycles must be at most " + std::to_string(static_cast<long long>(kMaxCostCycles)));
        if (!e.contains("provenance") || !e["provenance"].is_string())
            fail(file, entry + ": missing \"provenance\" (published, measured, fitted, assumed)");
        const auto prov = parse_provenance(e["provenance"].get<std::string>());
        if (!prov)
            fail(file, entry + ": provenance \"" + e["provenance"].get<std::string>() +
                           "\" is not one of published, measured, fitted, assumed");
        ce.provenance = *prov;
        if (!e.contains("source") || !e["source"].is_string() ||
            e["source"].get<std::string>().empty())
            fail(file, entry + ": missing \"source\" note");
        ce.source = e["source"].get<std::string>();
        if (e.contains("range")) {
            const json& r = e["range"];
            if (ce.provenance != Provenance::Assumed)
                fail(file, entry + ": only an assumed cost has a plausible range (a fitted one is refit, a "
                                   "published or measured one is what its source says)");
            if (!r.is_array() || r.size() != 2 || !r[0].is_number() || !r[1].is_number())
                fail(file, entry + ": range must be [low, high] in cycles");
            ce.range_low = r[0].get<double>(), ce.range_high = r[1].get<double>();
            if (!(ce.range_low >= 0 && ce.range_low <= ce.cycles && ce.cycles <= ce.range_high &&
                  ce.range_high <= kMaxCostCycles))
                fail(file, entry + ": range must hold the value and not be negative");
        }
        if (e.contains("history")) {
            // Earlier values, oldest first: {"cycles": N, "date": "YYYY-MM-DD", "reason": "..."}.
            if (!e["history"].is_array()) fail(file, entry + ": history must be an array");
            std::string last_date;
            for (const json& h : e["history"]) {
                const std::string at = entry + ": history";
                if (!h.is_object()) fail(file, at + ": each change is an object");
                for (const auto& [key, value] : h.items())
                    if (key != "cycles" && key != "date" && key != "reason") fail(file, at + ": unknown key \"" + key + "\"");
                CostChange c;
                c.cycles = number_field(h, "cycles", file, at);
                if (!h.contains("date") || !h["date"].is_string()) fail(file, at + ": missing \"date\" (YYYY-MM-DD)");
                c.date = h["date"].get<std::string>();
                const bool date_ok = c.date.size() == 10 && c.date[4] == '-' && c.date[7] == '-' &&
                                     std::all_of(c.date.begin(), c.date.end(),
                                                 [](char ch) { return ch == '-' || (ch >= '0' && ch <= '9'); });
                if (!date_ok) fail(file, at + ": date \"" + c.date + "\" is not YYYY-MM-DD");
                if (c.date < last_date) fail(file, at + ": changes must be oldest first");
                last_date = c.date;
                if (!h.contains("reason") || !h["reason"].is_string() || h["reason"].get<std::string>().empty())
                    fail(file, at + ": missing \"reason\"");
                c.reason = h["reason"].get<std::string>();
                ce.history.push_back(c);
            }
        }
        if (e.contains("run_variation")) {
            ce.run_variation = number_field(e, "run_variation", file, entry);
            if (ce.run_variation < 0 || ce.run_variation > 0.5)
                fail(file, entry + ": run_variation must be within 0..0.5");
        }
    }
    for (std::size_t i = 0; i < kCostCount; ++i)
        if (!seen.count(std::string(cost_name(static_cast<Cost>(i)))))
            fail(file, "missing cost \"" + std::string(cost_name(static_cast<Cost>(i))) + "\"");
    p.costs.reset_run_factors();
    return p;
}

void CpuProfile::override_cost(const std::string& name, const std::string& value,
                               const std::string& where) {
    const auto cost = find_cost(name);
    if (!cost) throw ConfigError(where + ": unknown cost \"" + name + "\"");
    const auto parsed = parse_finite_double(value);
    const double v = parsed.value_or(-1.0);
    if (!parsed || v < 0 || v > kMaxCostCycles)
        throw ConfigError(where + ": cost \"" + name + "\" must be a finite number of cycles from 0 to " +
                          std::to_string(static_cast<long long>(kMaxCostCycles)) + ", not \"" + value + "\"");
    costs.set_cycles(*cost, v);
    costs.entry(*cost).provenance = Provenance::Assumed;
    costs.entry(*cost).source = "set on the command line (" + where + ")";
}

}  // namespace vtx::model
