#include "sim/bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include <systemc>

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

double measure_floor_ns(long round_trips) {
    const Child child =
        spawn_child([round_trips](int fd) { write_all(fd, std::to_string(floor_in_process(round_trips))); });
    std::string data;
    char buf[256];
    for (ssize_t n; (n = ::read(child.fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR);)
        if (n > 0) data.append(buf, static_cast<std::size_t>(n));
    reap(child);
    if (data.empty()) throw std::runtime_error("the floor measurement ended without a result");
    return std::stod(data);
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
            row.floor_ns = measure_floor_ns(kFloorRoundTrips);
            floors.push_back(row.floor_ns);
            RunSpec spec = base;
            spec.workload = "ipi";
            spec.config.x2apic = cc.x2apic;
            spec.kvm.enable_ipiv = cc.ipiv;
            spec.quantum_cycles = q;
            spec.stream = "bench";
            for (unsigned r = 0; r < std::max(1u, repetitions); ++r) {
                const RunOutcome o = run_many({spec}, 1).front();
                if (!o.ok) throw std::runtime_error("bench run failed: " + o.error);
                const double rt = static_cast<double>(o.total_iterations);
                const double ns = 1e9 * o.host_seconds / rt;
                row.round_trips = rt;
                if (r == 0 || ns < row.ns_per_round_trip) row.ns_per_round_trip = ns;
            }
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
                  "trip, measured before each row; each row is the best of its repetitions\n",
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

}  // namespace vtx::sim
