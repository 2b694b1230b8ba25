// Simulator speed: host time per simulated IPI round trip of the `ipi` workload, for each
// of the four configurations of the IPIv comparison. Each benchmark iteration simulates
// one run in a child process (SystemC allows one elaboration per process).
#include <benchmark/benchmark.h>

#include <systemc>

#include "model/systemc_env.hpp"
#include "sim/experiment.hpp"
#include "sim/options.hpp"

namespace {

void bm_ipi(benchmark::State& state) {
    vtx::sim::RunSpec spec;
    spec.profile = vtx::sim::load_profile("spr");
    spec.workload = "ipi";
    spec.config.x2apic = state.range(0) != 0;
    spec.kvm.enable_ipiv = state.range(1) != 0;
    spec.config.goal = std::uint64_t{1} << 23;
    spec.stream = "bench";
    double round_trips = 0, host_seconds = 0;
    for (auto _ : state) {
        const auto outs = vtx::sim::run_many({spec}, 1);
        if (!outs[0].ok) {
            state.SkipWithError(outs[0].error.c_str());
            return;
        }
        round_trips += static_cast<double>(outs[0].total_iterations);
        host_seconds += outs[0].host_seconds;
    }
    state.counters["round_trips"] = benchmark::Counter(round_trips);
    state.counters["ns_per_round_trip"] = benchmark::Counter(1e9 * host_seconds / round_trips);
}
BENCHMARK(bm_ipi)->ArgsProduct({{0, 1}, {0, 1}})->ArgNames({"x2apic", "ipiv"})->Unit(benchmark::kMillisecond);

}  // namespace

int sc_main(int argc, char* argv[]) {
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    return 0;
}
