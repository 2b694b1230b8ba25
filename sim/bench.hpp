#pragma once
// `vtxsim bench`: simulator speed as host time per simulated IPI round trip, against the
// SystemC floor measured in the same run (the machines are noisy: the ratio is what counts).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/experiment.hpp"

namespace vtx::sim {

// The floor: two SystemC threads that notify each other after a timed delay, the least a
// simulated round trip can cost (two timed notifications, two thread switches). The same
// module as ../shared/bench/floor.cpp. Runs in a child process (one elaboration per
// process); returns host ns per round trip.
double measure_floor_ns(long round_trips);

struct BenchRow {
    const char* label = "";  // the configuration's name (IpiConfig::label)
    bool x2apic = true;
    bool ipiv = true;
    double quantum = 0;
    double round_trips = 0;
    double ns_per_round_trip = 0;  // best (lowest) of the repetitions
    double floor_ns = 0;           // the floor measured right before this row
    double ratio() const { return floor_ns > 0 ? ns_per_round_trip / floor_ns : 0; }
};

struct BenchReport {
    std::vector<BenchRow> rows;
    double floor_ns = 0;  // median of the floor measurements
    std::string text() const;
    nlohmann::json to_json() const;
};

// Runs `ipi` for each configuration (x2APIC/xAPIC x IPIv on/off, filtered) and each
// quantum, `repetitions` times each (the best counts), with a floor measurement before
// each row.
BenchReport run_bench(const RunSpec& base, const std::vector<IpiConfig>& configs,
                      const std::vector<double>& quanta, unsigned repetitions);

}  // namespace vtx::sim
