#include "sim/bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>

#include <systemc>

#include "model/rng.hpp"
#include "sim/child_process.hpp"

namespace vtx::sim {

namespace {

// ../shared/bench/floor.cpp: a sender notifies a target after a delay, the target
// notifies back after a delay.
struct PingPong : sc_core::sc_module {
    sc_core::sc_event to_target, to_sender;
    long n;
    long done = 0;
    SC_HAS_PROCESS(PingPong);
    PingPong(sc_core::sc_module_name name, long round_trips) : sc_module(name), n(round_trips) {
        SC_THREAD(sender);
        SC_THREAD(target);
    }
    void sender() {
        for (long i = 0; i < n; ++i) {
            to_target.notify(sc_core::sc_time(1000, sc_core::SC_NS));
            sc_core::wait(to_sender);
            ++done;
        }
        sc_core::sc_stop();
    }
    void target() {
        for (;;) {
            sc_core::wait(to_target);
            to_sender.notify(sc_core::sc_time(1000, sc_core::SC_NS));
        }
    }
};

// The floor at scale: `threads` SystemC threads, each calling random other threads in turn
// (a timed notification to the callee, a timed notification back), serving the calls made
// to it while it waits for its own: random_ipi's shape with nothing simulated. Same stack
// size as the simulation's threads (SystemC's default, 256 KiB).
struct RandomCalls : sc_core::sc_module {
    struct Node {
        sc_core::sc_event call, reply;
        std::vector<unsigned> callers;
        bool replied = false;
    };
    std::vector<Node> nodes;
    long calls_each;
    long done = 0;
    SC_HAS_PROCESS(RandomCalls);
    RandomCalls(sc_core::sc_module_name name, unsigned threads, long calls)
        : sc_module(name), nodes(threads), calls_each(calls) {
        for (unsigned i = 0; i < threads; ++i)
            sc_core::sc_spawn([this, i] { body(i); }, sc_core::sc_gen_unique_name("caller"));
    }
    void body(unsigned self) {
        model::SplitMix64 rng(self);
        Node& me = nodes[self];
        const auto n = static_cast<std::uint64_t>(nodes.size());
        for (long c = 0; c < calls_each; ++c) {
            const auto callee = static_cast<unsigned>((self + 1 + rng.below(n - 1)) % n);
            nodes[callee].callers.push_back(self);
            nodes[callee].call.notify(sc_core::sc_time(1000, sc_core::SC_NS));
            me.replied = false;
            while (!me.replied) {
                sc_core::wait(me.call | me.reply);
                serve(me);
            }
            ++done;
        }
        for (;;) {
            sc_core::wait(me.call);
            serve(me);
        }
    }
    void serve(Node& me) {
        for (unsigned caller : me.callers) {
            nodes[caller].replied = true;
            nodes[caller].reply.notify(sc_core::sc_time(1000, sc_core::SC_NS));
        }
        me.callers.clear();
    }
};

double random_calls_in_process(unsigned threads, long calls) {
    sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
    RandomCalls r("floor", threads, std::max<long>(1, calls / threads));
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_NS));  // the threads' creation and first calls
    const long started = r.done;
    const auto t0 = std::chrono::steady_clock::now();
    sc_core::sc_start();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r.done > started ? s * 1e9 / static_cast<double>(r.done - started) : 0.0;
}

double floor_in_process(long round_trips) {
    sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
    PingPong p("floor", round_trips);
    const auto t0 = std::chrono::steady_clock::now();
    sc_core::sc_start();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return p.done ? s * 1e9 / static_cast<double>(p.done) : 0.0;
}


std::string mode_name(double quantum) {
    if (quantum == 0) return "exact";
    std::ostringstream os;
    os << "quantum " << quantum;
    return os.str();
}

}  // namespace

namespace {
double measure_in_child(std::function<double()> measure) {
    const Child child = spawn_child([&measure](int fd) { write_all(fd, std::to_string(measure())); });
    std::string data;
    char buf[256];
    for (ssize_t n; (n = ::read(child.fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR);)
        if (n > 0) data.append(buf, static_cast<std::size_t>(n));
    reap(child);
    if (data.empty()) throw std::runtime_error("the floor measurement ended without a result");
    return std::stod(data);
}
}  // namespace

double measure_floor_ns(long round_trips) {
    return measure_in_child([round_trips] { return floor_in_process(round_trips); });
}

double measure_scale_floor_ns(unsigned threads, long calls) {
    return measure_in_child([threads, calls] { return random_calls_in_process(threads, calls); });
}

BenchReport run_bench(const RunSpec& base, const std::vector<IpiConfig>& configs,
                      const std::vector<double>& quanta, unsigned repetitions) {
    constexpr long kFloorRoundTrips = 300000;
    BenchReport report;
    std::vector<double> floors;
    for (const IpiConfig& cc : configs) {
        for (double q : quanta) {
            BenchRow row;
            row.label = cc.label;
            row.x2apic = cc.x2apic;
            row.ipiv = cc.ipiv;
            row.quantum = q;
            RunSpec spec = base;
            spec.workload = "ipi";
            spec.config.x2apic = cc.x2apic;
            spec.kvm.enable_ipiv = cc.ipiv;
            spec.quantum_cycles = q;
            spec.stream = "bench";
            // Each repetition measures the floor just before its run, and the row keeps the
            // best of each: both figures are taken the same way, under the same noise.
            for (unsigned r = 0; r < std::max(1u, repetitions); ++r) {
                const double floor_ns = measure_floor_ns(kFloorRoundTrips);
                if (r == 0 || floor_ns < row.floor_ns) row.floor_ns = floor_ns;
                const RunOutcome o = run_many({spec}, 1).front();
                if (!o.ok) throw std::runtime_error("bench run failed: " + o.error);
                const double rt = static_cast<double>(o.total_iterations);
                const double ns = 1e9 * o.host_seconds / rt;
                row.round_trips = rt;
                if (r == 0 || ns < row.ns_per_round_trip) row.ns_per_round_trip = ns;
            }
            floors.push_back(row.floor_ns);
            report.rows.push_back(row);
        }
    }
    std::sort(floors.begin(), floors.end());
    if (!floors.empty()) report.floor_ns = floors[floors.size() / 2];
    return report;
}

std::string BenchReport::text() const {
    std::ostringstream os;
    char line[256];
    // First, the headline figure: x2APIC with IPIv in the decoupled (default) mode.
    for (const BenchRow& r : rows) {
        if (!(r.x2apic && r.ipiv && r.quantum > 0)) continue;
        std::snprintf(line, sizeof line,
                      "bench ipi (x2apic, ipiv on, %s): %.0f ns per round trip, %.0f round trips per host "
                      "second, %.1fx the SystemC floor\n",
                      mode_name(r.quantum).c_str(), r.ns_per_round_trip, 1e9 / r.ns_per_round_trip, r.ratio());
        os << line;
        break;
    }
    std::snprintf(line, sizeof line, "%-17s %-15s %14s %16s %10s %7s\n", "configuration", "time mode",
                  "ns/round trip", "round trips/s", "floor ns", "ratio");
    os << line;
    for (const BenchRow& r : rows) {
        std::snprintf(line, sizeof line, "%-17s %-15s %14.0f %16.0f %10.1f %6.1fx\n", r.label,
                      mode_name(r.quantum).c_str(), r.ns_per_round_trip, 1e9 / r.ns_per_round_trip, r.floor_ns,
                      r.ratio());
        os << line;
    }
    std::snprintf(line, sizeof line,
                  "floor: SystemC two-thread timed ping-pong (../shared/bench/floor.cpp), median %.1f ns per round "
                  "trip, measured just before each repetition of each row; each row has the best floor and the best run of its repetitions\n",
                  floor_ns);
    os << line;
    return os.str();
}

nlohmann::json BenchReport::to_json() const {
    nlohmann::json rows_j = nlohmann::json::array();
    for (const BenchRow& r : rows)
        rows_j.push_back({{"apic", r.x2apic ? "x2apic" : "xapic"},
                          {"ipiv", r.ipiv},
                          {"quantum", r.quantum},
                          {"round_trips", r.round_trips},
                          {"ns_per_round_trip", r.ns_per_round_trip},
                          {"round_trips_per_second", 1e9 / r.ns_per_round_trip},
                          {"floor_ns", r.floor_ns},
                          {"floor_ratio", r.ratio()}});
    return {{"floor_ns", floor_ns}, {"configurations", rows_j}};
}

ScaleReport run_scale_bench(const RunSpec& base, const std::vector<unsigned>& sizes, std::uint64_t calls) {
    ScaleReport report;
    report.floor_ns = measure_floor_ns(300000);
    auto value = [](const RunOutcome& o, const char* key) { return o.values.count(key) ? o.values.at(key) : 0.0; };
    for (unsigned n : sizes) {
        RunSpec spec = base;
        spec.workload = "random_ipi";
        spec.config.vcpus = n;
        spec.config.pcpus = n;
        spec.config.params["halt_percent"] = "0";
        spec.stream = "bench";
        RunSpec start = spec;
        spec.config.params["ipis"] = std::to_string(std::max<std::uint64_t>(2, calls / n));
        start.config.params["ipis"] = "1";
        const auto outs = run_many({start, spec}, 1);
        for (const RunOutcome& o : outs)
            if (!o.ok) throw std::runtime_error("bench --scale run at " + std::to_string(n) + " vCPUs failed: " + o.error);
        const RunOutcome& o = outs[1];
        ScaleRow row;
        row.vcpus = n;
        row.calls = value(o, "calls");
        row.ipis = value(o, "ipis") + value(o, "reschedule_ipis");
        row.host_seconds = o.host_seconds;
        row.setup_host_seconds = o.setup_host_seconds;
        row.start_calls = value(outs[0], "calls");
        row.start_ipis = value(outs[0], "ipis") + value(outs[0], "reschedule_ipis");
        row.start_host_seconds = outs[0].host_seconds;
        row.peak_rss_kib = o.peak_rss_kib;
        row.floor_ns_per_call = measure_scale_floor_ns(n, static_cast<long>(calls));
        report.rows.push_back(row);
    }
    return report;
}

std::string ScaleReport::text() const {
    std::ostringstream os;
    char line[256];
    const double base = rows.empty() ? 0 : rows.front().ns_per_ipi();
    const double floor_base = rows.empty() ? 0 : rows.front().floor_ns_per_call;
    std::snprintf(line, sizeof line, "%7s %10s %10s %9s %9s %10s %10s %9s %10s %10s %10s %10s\n", "vCPUs", "calls",
                  "IPIs", "ns/IPI", "vs first", "ns/call", "floor ns", "vs first", "call/floor", "start s",
                  "peak MiB", "KiB/vCPU");
    os << line;
    for (const ScaleRow& r : rows) {
        std::snprintf(line, sizeof line, "%7u %10.0f %10.0f %9.0f %8.2fx %10.0f %10.0f %8.2fx %9.1fx %10.2f %10.1f %10.1f\n",
                      r.vcpus, r.calls, r.ipis, r.ns_per_ipi(), base > 0 ? r.ns_per_ipi() / base : 0, r.ns_per_call(),
                      r.floor_ns_per_call, floor_base > 0 ? r.floor_ns_per_call / floor_base : 0, r.call_floor_ratio(),
                      r.setup_host_seconds + r.start_host_seconds, r.peak_rss_kib / 1024, r.kib_per_vcpu());
        os << line;
    }
    os << "random_ipi, x2APIC: waiting calls (smp_call_function_single) to random other vCPUs, no idling, a CPU "
          "per vCPU. ns/IPI and ns/call: marginal host time (the run minus a one-call-per-vCPU run) per IPI sent and "
          "per call (concurrent callers share a target's IPI); start: set-up and the one-call run; peak: the run's "
          "peak RSS (with the process's ~10 MiB base). floor ns: the SystemC floor at the same size, as many threads "
          "calling random others with nothing simulated (host ns per call); call/floor: ns/call over it.\n";
    std::snprintf(line, sizeof line, "SystemC floor %.1f ns per round trip\n", floor_ns);
    os << line;
    return os.str();
}

nlohmann::json ScaleReport::to_json() const {
    nlohmann::json rows_j = nlohmann::json::array();
    for (const ScaleRow& r : rows)
        rows_j.push_back({{"vcpus", r.vcpus},
                          {"calls", r.calls},
                          {"ipis", r.ipis},
                          {"host_seconds", r.host_seconds},
                          {"setup_host_seconds", r.setup_host_seconds},
                          {"ns_per_ipi", r.ns_per_ipi()},
                          {"ns_per_call", r.ns_per_call()},
                          {"start_host_seconds", r.setup_host_seconds + r.start_host_seconds},
                          {"peak_rss_kib", r.peak_rss_kib},
                          {"kib_per_vcpu", r.kib_per_vcpu()},
                          {"floor_ns_per_call", r.floor_ns_per_call},
                          {"call_floor_ratio", r.call_floor_ratio()}});
    return {{"floor_ns", floor_ns}, {"scale", rows_j}};
}

}  // namespace vtx::sim
