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

// The floor at scale: `threads` SystemC threads that call random other threads (a timed
// notification there, one back), each serving the calls made to it while it waits for its
// own, `calls` calls in all: random_ipi's traffic with nothing simulated, what any model
// with a thread per vCPU pays at that size. Host ns per call (the threads' creation and
// first calls not counted), measured in a child process.
double measure_scale_floor_ns(unsigned threads, long calls);

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

// `vtxsim bench --scale`: random unicast traffic (`random_ipi`: waiting cross-CPU calls
// to random other vCPUs, no idling, one CPU per vCPU) at several VM sizes; host time per
// simulated IPI and peak host memory per vCPU, each run in its own process. Starting 4096
// vCPUs (their threads, VMCS set-up, first entries) takes host time of its own: a second
// run with one call per vCPU measures it, and the time per IPI is the difference over the
// difference in IPIs (the marginal cost, what a long run pays). Beside each size, the floor
// at that size (measure_scale_floor_ns): how much of the growth SystemC itself pays.
struct ScaleRow {
    unsigned vcpus = 0;
    double calls = 0, ipis = 0;
    double host_seconds = 0, setup_host_seconds = 0;
    double start_calls = 0, start_ipis = 0, start_host_seconds = 0;  // the one-call-per-vCPU run
    double peak_rss_kib = 0;
    double floor_ns_per_call = 0;  // measure_scale_floor_ns at this size
    double ns_per_ipi() const {
        return ipis > start_ipis ? 1e9 * (host_seconds - start_host_seconds) / (ipis - start_ipis) : 0;
    }
    double ns_per_call() const {
        return calls > start_calls ? 1e9 * (host_seconds - start_host_seconds) / (calls - start_calls) : 0;
    }
    double kib_per_vcpu() const { return vcpus ? peak_rss_kib / vcpus : 0; }
    double call_floor_ratio() const { return floor_ns_per_call > 0 ? ns_per_call() / floor_ns_per_call : 0; }
};

struct ScaleReport {
    std::vector<ScaleRow> rows;
    double floor_ns = 0;
    std::string text() const;
    nlohmann::json to_json() const;
};

// `calls` cross-CPU calls in all (calls / vcpus per vCPU) at each size.
ScaleReport run_scale_bench(const RunSpec& base, const std::vector<unsigned>& sizes, std::uint64_t calls);

}  // namespace vtx::sim
