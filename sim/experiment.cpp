#include "sim/experiment.hpp"

#include <sys/resource.h>

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>

#include <systemc>

#include "apic/registers.hpp"
#include "cpu/platform.hpp"
#include "sim/protocol_check.hpp"
#include "model/error.hpp"
#include "model/output.hpp"
#include "model/rng.hpp"
#include "workloads/explainer.hpp"
#include "sim/child_process.hpp"
#include "vmcs/exit_info.hpp"

namespace vtx::sim {

nlohmann::json RunOutcome::to_json() const {
    return {{"ok", ok},
            {"error", error},
            {"bad_input", bad_input},
            {"cycles_per_iteration", cycles_per_iteration},
            {"iterations", iterations},
            {"total_iterations", total_iterations},
            {"exits", exits},
            {"notifications", notifications},
            {"kvm_notifications", kvm_notifications},
            {"host_seconds", host_seconds},
            {"setup_host_seconds", setup_host_seconds},
            {"peak_rss_kib", peak_rss_kib},
            {"simulated_cycles", simulated_cycles},
            {"check_ok", check_ok},
            {"check", check},
            {"explanation", explanation},
            {"step_cycles", step_cycles},
            {"values", values},
            {"stats", stats},
            {"stats_text", stats_text},
            {"protocol_checked", protocol_checked},
            {"protocol_findings", protocol_findings},
            {"protocol_ipis", protocol_ipis},
            {"protocol_deliveries", protocol_deliveries},
            {"protocol_coalesced", protocol_coalesced}};
}

RunOutcome RunOutcome::from_json(const nlohmann::json& j) {
    RunOutcome o;
    o.ok = j.at("ok");
    o.error = j.at("error");
    o.bad_input = j.at("bad_input");
    o.cycles_per_iteration = j.at("cycles_per_iteration");
    o.iterations = j.at("iterations");
    o.total_iterations = j.at("total_iterations");
    o.exits = j.at("exits").get<std::map<std::string, std::uint64_t>>();
    o.notifications = j.at("notifications");
    o.kvm_notifications = j.at("kvm_notifications");
    o.host_seconds = j.at("host_seconds");
    o.setup_host_seconds = j.at("setup_host_seconds");
    o.peak_rss_kib = j.at("peak_rss_kib");
    o.simulated_cycles = j.at("simulated_cycles");
    o.check_ok = j.at("check_ok");
    o.check = j.at("check");
    o.explanation = j.at("explanation");
    o.step_cycles = j.at("step_cycles").get<std::map<std::string, double>>();
    o.values = j.at("values").get<std::map<std::string, double>>();
    o.stats = j.at("stats");
    o.stats_text = j.at("stats_text");
    o.protocol_checked = j.at("protocol_checked");
    o.protocol_findings = j.at("protocol_findings").get<std::vector<std::string>>();
    o.protocol_ipis = j.at("protocol_ipis");
    o.protocol_deliveries = j.at("protocol_deliveries");
    o.protocol_coalesced = j.at("protocol_coalesced");
    return o;
}

void apply_run_variation(model::CpuProfile& profile, std::uint64_t seed, const std::string& stream,
                         unsigned run_index) {
    // FNV-1a: the same number on every standard library (std::hash is not).
    std::uint64_t stream_id = 0xcbf29ce484222325ull;
    for (unsigned char ch : stream) stream_id = (stream_id ^ ch) * 0x100000001b3ull;
    model::Rng rng(seed ^ (stream_id * 0x9E3779B97F4A7C15ull) ^ (std::uint64_t{run_index} << 32));
    for (std::size_t i = 0; i < model::kCostCount; ++i) {
        const auto c = static_cast<model::Cost>(i);
        const double sigma = profile.costs.entry(c).run_variation;
        const double z = rng.normal();  // drawn for every cost, so streams stay aligned
        profile.costs.set_run_factor(c, sigma > 0 ? 1.0 + sigma * z : 1.0);
    }
}

std::vector<RunSpec> ipi_comparison_specs(const RunSpec& base, unsigned runs) {
    RunSpec ipi = base;
    ipi.workload = "ipi";
    return comparison_specs(ipi, runs);
}

std::vector<RunSpec> comparison_specs(const RunSpec& base, unsigned runs) {
    std::vector<RunSpec> specs;
    for (const auto& cc : kIpiConfigs) {
        for (unsigned r = 0; r < runs; ++r) {
            RunSpec s = base;
            s.config.x2apic = cc.x2apic;
            s.kvm.enable_ipiv = cc.ipiv;
            s.stream = base.workload + "/" + (cc.x2apic ? "x2apic" : "xapic") + (cc.ipiv ? "/ipiv" : "/noipiv");
            s.run_index = r;
            specs.push_back(s);
        }
    }
    return specs;
}

RunOutcome run_in_process(const RunSpec& spec) {
    RunOutcome out;
    const auto setup_start = std::chrono::steady_clock::now();
    const auto* info = spec.scenario ? nullptr : workloads::find_workload(spec.workload);
    if (!info && !spec.scenario) {
        out.error = "unknown workload \"" + spec.workload + "\"";
        return out;
    }
    // sc_stop() is how a finished workload ends the simulation: not worth a message.
    sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
    model::CpuProfile profile = spec.profile;
    apply_run_variation(profile, spec.seed, spec.stream, spec.run_index);
    auto platform = std::make_unique<cpu::Platform>("platform", profile, spec.config.pcpus);
    platform->set_quantum(spec.quantum_cycles);
    if (spec.trace) platform->tracer().enable_all();
    for (const auto& f : spec.debug_flags) platform->tracer().enable(f);
    if (!spec.timeline_path.empty()) platform->timeline().enable();
    // The APICs' delivery logs feed the timeline only: without one they are not kept.
    for (unsigned c = 0; c < platform->cpu_count(); ++c)
        platform->cpu(c).apic().set_delivery_log(!spec.timeline_path.empty());
    platform->bring_up_host_apics(spec.kvm.host_x2apic);
    auto kvm_owner = std::make_unique<vmm::Kvm>(*platform, spec.kvm);
    vmm::Kvm& kvm = *kvm_owner;
    kvm.set_vmcs_overrides(spec.vmcs_overrides);
    vmm::Vm& vm = kvm.create_vm(spec.config.x2apic);
    std::unique_ptr<workloads::Workload> workload =
        spec.scenario ? workloads::scenario::make_scenario_workload(spec.scenario) : info->make();
    // A simulation stopped in the middle (an error, or the simulated-time budget) still has
    // its threads suspended inside the model: it is abandoned, not destroyed (the process
    // ends right after).
    const auto abandon = [&] {
        (void)workload.release();
        (void)kvm_owner.release();
        (void)platform.release();
    };
    workloads::WorkloadConfig config = spec.config;
    config.seed = spec.seed * 1000003u + spec.run_index;
    workload->setup(kvm, vm, config);
    std::unique_ptr<ProtocolChecker> checker;
    if (spec.protocol_check) {
        checker = std::make_unique<ProtocolChecker>(kvm);
        platform->set_interrupt_observer(checker.get());
    }
    // The checker's verdict, also for a run that did not finish (a lost IPI often hangs it).
    const auto record_check = [&] {
        if (!checker) return;
        out.protocol_checked = true;
        out.protocol_findings = checker->findings(platform->clock().to_cycles(sc_core::sc_time_stamp()));
        out.protocol_ipis = checker->ipis_sent();
        out.protocol_deliveries = checker->deliveries();
        out.protocol_coalesced = checker->coalesced();
    };
    std::unique_ptr<workloads::Explainer> explainer;
    if (spec.explain && !spec.scenario) explainer = std::make_unique<workloads::Explainer>(kvm, vm);
    bool finished = false;
    kvm.on_guest_finished = [&](vmm::Vcpu& v) {
        if (v.id() == 0 && workload->stop_when_bsp_finishes()) {
            finished = true;
            sc_core::sc_stop();
        }
    };
    kvm.start();
    const auto t0 = std::chrono::steady_clock::now();
    out.setup_host_seconds = std::chrono::duration<double>(t0 - setup_start).count();
    try {
        sc_core::sc_start(sc_core::sc_time(spec.max_simulated_seconds, sc_core::SC_SEC));
    } catch (const std::exception& e) {
        // SystemC wraps an exception that left a process in a report: keep its message.
        std::string what = e.what();
        const std::string tag = "uncaught exception: ";
        if (const auto at = what.find(tag); at != std::string::npos) what = what.substr(at + tag.size());
        if (const auto at = what.find("\nIn file:"); at != std::string::npos) what = what.substr(0, at);
        out.error = what;
        // A ConfigError from inside the simulation keeps its kind (model::keep_input_error_kind).
        if (const auto input = model::noted_input_error()) {
            out.error = *input;
            out.bad_input = true;
        }
        record_check();
        (void)checker.release();
        abandon();
        return out;
    }
    out.host_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    struct rusage usage {};
    if (::getrusage(RUSAGE_SELF, &usage) == 0) out.peak_rss_kib = static_cast<double>(usage.ru_maxrss);  // KiB on Linux
    out.simulated_cycles = platform->clock().to_cycles(sc_core::sc_time_stamp());
    if (!finished) {
        out.error = "workload \"" + spec.workload + "\" did not finish within " +
                    std::to_string(spec.max_simulated_seconds) + " simulated seconds (--max-sim-time)";
        record_check();
        (void)checker.release();
        abandon();
        return out;
    }
    if (!spec.timeline_path.empty()) {
        // Guests still running when the simulation stopped: close their slices.
        for (unsigned c = 0; c < platform->cpu_count(); ++c)
            if (platform->cpu(c).in_non_root()) platform->timeline().end(out.simulated_cycles, static_cast<int>(c));
        // Interrupt messages each local APIC accepted, from its delivery log.
        for (unsigned c = 0; c < platform->cpu_count(); ++c)
            for (const auto& d : platform->cpu(c).apic().delivery_log())
                platform->timeline().instant(d.cycle, static_cast<int>(c), "APIC accepts vector " + std::to_string(d.vector),
                                             "apic", {{"source", d.source_id}, {"vector", d.vector}});
        model::write_file_atomically(spec.timeline_path,
                                     platform->timeline().to_json(platform->clock().ghz()).dump() + "\n");
        model::write_file_atomically(spec.timeline_path + ".vcd",
                                     platform->timeline().to_vcd(static_cast<int>(platform->cpu_count())));
    }
    record_check();
    platform->set_interrupt_observer(nullptr);
    const workloads::WorkloadResult r = workload->result(kvm, vm);
    out.ok = true;
    out.cycles_per_iteration = r.cycles_per_iteration;
    out.iterations = r.iterations;
    out.total_iterations = r.total_iterations;
    out.check_ok = r.ok;
    out.check = r.check;
    out.explanation = explainer ? explainer->text() : r.explanation;
    out.step_cycles = explainer ? explainer->step_cycles() : r.step_cycles;
    out.values = r.values;
    for (std::uint16_t reason = 0; reason <= 64; ++reason)
        if (auto n = kvm.exits(reason)) out.exits[std::to_string(reason)] = n;
    for (unsigned c = 0; c < platform->cpu_count(); ++c) out.notifications += platform->cpu(c).notifications_sent();
    out.kvm_notifications = platform->stats().value("kvm.notifications_sent");
    platform->bus().export_stats(platform->stats());
    for (unsigned c = 0; c < platform->cpu_count(); ++c) {
        auto& st = platform->stats();
        st.counter("cpu" + std::to_string(c) + ".host.switches", "count", "host context switches") +=
            kvm.scheduler(c).switches();
        st.counter("cpu" + std::to_string(c) + ".host.preemptions", "count", "vCPU preemptions at slice end") +=
            kvm.scheduler(c).preemptions();
    }
    platform->stats().counter("sim.cycles", "cycles", "simulated core cycles") +=
        static_cast<std::uint64_t>(out.simulated_cycles);
    out.stats = platform->stats().to_json();
    out.stats_text = platform->stats().dump_text();
    return out;
}

namespace {
RunOutcome run_child(const RunSpec& spec, int fd) {
    RunOutcome o;
    try {
        o = run_in_process(spec);
    } catch (const model::ConfigError& e) {
        o.ok = false;
        o.error = e.what();
        o.bad_input = true;
    } catch (const std::exception& e) {
        o.ok = false;
        o.error = e.what();
    }
    write_all(fd, o.to_json().dump());
    return o;
}
}  // namespace

Interrupted::Interrupted(int signal, std::size_t finished, std::size_t total)
    : std::runtime_error(std::string("interrupted by ") + (signal == SIGINT ? "SIGINT" : "SIGTERM") + ": " +
                         std::to_string(finished) + " of " + std::to_string(total) +
                         " runs had finished; the others were stopped and nothing was written"),
      m_signal(signal) {}

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signo) { g_stop_signal = signo; }

// SIGINT and SIGTERM handlers for the duration of run_many (no SA_RESTART: a blocking read
// returns EINTR), the previous ones restored after.
class StopSignals {
public:
    StopSignals() {
        g_stop_signal = 0;
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &m_old_int);
        sigaction(SIGTERM, &sa, &m_old_term);
    }
    ~StopSignals() {
        sigaction(SIGINT, &m_old_int, nullptr);
        sigaction(SIGTERM, &m_old_term, nullptr);
    }
    int caught() const { return g_stop_signal; }

private:
    struct sigaction m_old_int {}, m_old_term {};
};
}  // namespace

std::vector<RunOutcome> run_many(const std::vector<RunSpec>& specs, unsigned jobs,
                                 const std::function<void(std::size_t, const RunOutcome&)>& on_done) {
    const StopSignals stop;
    std::size_t finished = 0;
    std::vector<RunOutcome> outcomes(specs.size());
    struct Running {
        Child child;
        std::size_t index;
        std::string data;
    };
    std::vector<Running> running;
    std::size_t next = 0;
    if (jobs == 0) jobs = 1;
    while (next < specs.size() || !running.empty()) {
        while (next < specs.size() && running.size() < jobs) {
            const RunSpec& spec = specs[next];
            running.push_back(Running{spawn_child([&spec](int fd) { run_child(spec, fd); }), next, {}});
            ++next;
        }
        // Drain the first child (children write once, at their end).
        Running c = running.front();
        running.erase(running.begin());
        char buf[65536];
        const double budget = specs[c.index].max_host_seconds;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(budget);
        bool over_budget = false;
        for (;;) {
            if (budget > 0) {
                // --max-host-time: wait for output only until the run's deadline.
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now());
                pollfd p{c.child.fd, POLLIN, 0};
                const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
                if (ready < 0 && errno == EINTR && !stop.caught()) continue;
                if (ready == 0) {
                    over_budget = true;
                    break;
                }
            }
            const ssize_t n = ::read(c.child.fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR && !stop.caught()) continue;
            if (n <= 0) break;
            c.data.append(buf, static_cast<std::size_t>(n));
        }
        if (stop.caught()) {
            // Stop every child still running, reap them, and say what was done.
            running.push_back(c);
            for (const Running& k : running) ::kill(k.child.pid, SIGTERM);
            for (const Running& k : running) reap(k.child);
            throw Interrupted(stop.caught(), finished, specs.size());
        }
        if (over_budget) {
            ::kill(c.child.pid, SIGKILL);
            reap(c.child);
            RunOutcome o;
            o.error = "run " + std::to_string(specs[c.index].run_index + 1) + " exceeded --max-host-time " +
                      std::to_string(budget) + " s and was stopped";
            outcomes[c.index] = std::move(o);
            ++finished;
            if (on_done) on_done(c.index, outcomes[c.index]);
            continue;
        }
        ++finished;
        const int status = reap(c.child);
        RunOutcome o;
        if (c.data.empty()) {
            o.error = "the simulation process of run " + std::to_string(specs[c.index].run_index + 1) +
                      " ended without a result (status " + std::to_string(status) + ")";
        } else {
            o = RunOutcome::from_json(nlohmann::json::parse(c.data));
        }
        outcomes[c.index] = std::move(o);
        if (on_done) on_done(c.index, outcomes[c.index]);
    }
    return outcomes;
}

}  // namespace vtx::sim
