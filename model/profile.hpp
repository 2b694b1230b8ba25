#pragma once
// A CPU profile: clock, VMX feature set and the cost table, loaded from profiles/*.json.
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "model/costs.hpp"
#include "model/features.hpp"

namespace vtx::model {

// The largest value a cost may take (cycles): above it, a step would take longer than the
// simulated time a run is allowed (seconds at GHz), so such a value is an input error.
inline constexpr double kMaxCostCycles = 1e9;
// The core and TSC clocks a profile may give (GHz).
inline constexpr double kMinClockGhz = 0.001, kMaxClockGhz = 100.0;

struct CpuProfile {
    std::string name;
    std::string description;
    std::string file;             // where it was loaded from ("" if built in code)
    double core_ghz = 2.0;        // core clock (the profile's base frequency)
    double tsc_ghz = 2.0;         // TSC rate; equal to the core clock unless the profile says
    CpuFeatures features;
    CostTable costs;
    // How far an `assumed` cost may plausibly be off, relative, unless the cost states its
    // own `range` (`calibrate --ensemble` draws within these; 0: not stated).
    double assumed_range = 0.0;
    // An assumed cost's plausible [low, high] in cycles (its own range, else assumed_range).
    std::pair<double, double> plausible_range(Cost c) const;

    // Loads and validates a profile; throws ConfigError naming the file and entry.
    static CpuProfile load(const std::string& path);
    // Parses profile text (the file name is used in messages only).
    static CpuProfile parse(const std::string& text, const std::string& file_for_messages);

private:
    static CpuProfile from_json_object(const nlohmann::json& j, const std::string& file);

public:

    // `--set cost.NAME=VALUE`: throws ConfigError naming the entry if unknown or invalid.
    void override_cost(const std::string& name, const std::string& value,
                       const std::string& where);
};

}  // namespace vtx::model
