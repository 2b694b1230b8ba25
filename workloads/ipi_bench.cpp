// `ipi_bench`: the guest-kernel IPI benchmark module posted to LKML and the kvm list in
// December 2017 ("[PATCH v2] IPI performance benchmark", Yury Norov, Cavium;
// kernel/ipi_benchmark.c of that patch), on the model of Linux 4.14's cross-CPU calls in
// workloads/linux_smp.hpp. Its module_init runs on one CPU (vCPU 0 here), and for NTIMES
// iterations calls send_ipi(mode), summing the time each call returns, and measures the
// whole loop:
//   normal          (POKE_ANY)  time = ktime_get(); smp_call_function_single(cpu, handle_ipi,
//                   &time, 1) to cpumask_any_but(online, self), the first other CPU
//                   (vCPU 1); handle_ipi on the target stores ktime_get() - time into the
//                   caller's on-stack variable: the one-way latency;
//   self            (POKE_SELF) the same call to the calling CPU: Linux runs it locally with
//                   interrupts off, no IPI;
//   broadcast       (POKE_ALL)  smp_call_function_many(cpu_online_mask, handle_ipi, NULL, 1):
//                   every other CPU, waiting for all (time 0);
//   broadcast_lock  (POKE_ALL_LOCK) the same, the handler taking and releasing a spinlock
//                   on the caller's stack (all targets contend on it);
//   dry_run         (DRY_RUN) everything but the IPI.
// The other vCPUs run the idle=poll loop (interrupts on, PAUSE until there is work). The
// result, in TSC ticks (the module prints ns): cycles per iteration = the whole loop /
// NTIMES (the module's "total"), and ipi_cycles = the summed times / NTIMES (its "ipi").
// ktime_get() is modelled as RDTSC (the TSC clocksource reads the TSC; the conversion to
// ns is not modelled). `workload.mode` selects the test, `workload.times` NTIMES (100000 in
// the module).
#include <memory>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "workloads/linux_smp.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint64_t kNtimes = 100000;  // NTIMES
constexpr std::uint64_t kLine = 64;

enum class Mode { Normal, Self, Broadcast, BroadcastLock, DryRun };

Mode parse_mode(const std::string& v) {
    if (v == "normal") return Mode::Normal;
    if (v == "self") return Mode::Self;
    if (v == "broadcast") return Mode::Broadcast;
    if (v == "broadcast_lock") return Mode::BroadcastLock;
    if (v == "dry_run") return Mode::DryRun;
    throw model::ConfigError("ipi_bench: workload.mode = \"" + v +
                             "\": expected normal, self, broadcast, broadcast_lock or dry_run");
}

const char* mode_name(Mode m) {
    switch (m) {
        case Mode::Normal: return "normal";
        case Mode::Self: return "self";
        case Mode::Broadcast: return "broadcast";
        case Mode::BroadcastLock: return "broadcast_lock";
        case Mode::DryRun: return "dry_run";
    }
    return "?";
}

class IpiBench : public Workload {
public:
    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        check_vcpus("ipi_bench", cfg);
        check_params("ipi_bench", cfg, {"mode", "times"});
        m_n = cfg.vcpus;
        if (auto it = cfg.params.find("mode"); it != cfg.params.end()) m_mode = parse_mode(it->second);
        if (auto it = cfg.params.find("times"); it != cfg.params.end())
            m_times = parse_param("ipi_bench", "times", it->second, 1, std::uint64_t{1} << 32);
        m_kernel = std::make_unique<linux_smp::Kernel>(vm, m_n, cfg.x2apic, /*callers_many=*/1);
        m_ran.assign(m_n, 0);
        // handle_ipi(void *t): if (t) *t = ktime_get() - *t.
        m_handle_ipi = m_kernel->add_function([this](cpu::GuestCpu& g, unsigned cpu, std::uint64_t time) {
            ++m_ran[cpu];
            if (time) g.store64(time, g.rdtsc() - g.load64(time));
        });
        // handle_ipi_spinlock(void *t): spin_lock(t); spin_unlock(t).
        m_handle_ipi_spinlock = m_kernel->add_function([this](cpu::GuestCpu& g, unsigned cpu, std::uint64_t lock) {
            ++m_ran[cpu];
            g.spin_lock(lock);
            g.spin_unlock(lock);
        });
        m_stack = vm.alloc_guest(kLine, kLine);  // module_init's stack: time, lock
        m_online = vm.alloc_guest(kLine, kLine);
        create_vcpus(vm, cfg, [this](cpu::GuestCpu& g, unsigned i) { vcpu_main(g, i); });
    }

    WorkloadResult result(vmm::Kvm&, vmm::Vm&) override {
        WorkloadResult r;
        // Who must have run the function how often.
        std::uint64_t wrong = 0;
        for (unsigned c = 0; c < m_n; ++c) {
            std::uint64_t want = 0;
            if (m_mode == Mode::Normal) want = c == 1 ? m_times : 0;
            if (m_mode == Mode::Self) want = c == 0 ? m_times : 0;
            if (m_mode == Mode::Broadcast || m_mode == Mode::BroadcastLock) want = c == 0 ? 0 : m_times;
            if (m_ran[c] != want) ++wrong;
        }
        std::uint64_t ipis = 0;
        for (unsigned c = 0; c < m_n; ++c) ipis += m_kernel->call_ipis_sent_to(c);
        r.ok = wrong == 0 && m_finished;
        r.check = std::string(mode_name(m_mode)) + ": " + std::to_string(m_times) + " iterations, " +
                  std::to_string(ipis) + " call IPIs; " +
                  (wrong ? std::to_string(wrong) + " CPUs ran the function a wrong number of times"
                         : "every CPU ran the function as often as the mode calls it");
        r.iterations = r.total_iterations = m_times;
        r.cycles_per_iteration = static_cast<double>(m_total) / static_cast<double>(m_times);
        r.values["ipi_cycles"] = static_cast<double>(m_ipi) / static_cast<double>(m_times);
        r.values["ipis"] = static_cast<double>(ipis);
        return r;
    }

private:
    // send_ipi(flags): returns the time the call measured (0 but for normal and self).
    std::uint64_t send_ipi(cpu::GuestCpu& g) {
        const std::uint64_t time = m_stack;  // the on-stack ktime_t
        const std::uint64_t lock = m_stack + 8;  // DEFINE_SPINLOCK(lock)
        switch (m_mode) {
            case Mode::DryRun: return 0;
            case Mode::Broadcast: m_kernel->call_many(g, 0, m_handle_ipi, 0, true); return 0;
            case Mode::BroadcastLock:
                g.store64(lock, 0);
                m_kernel->call_many(g, 0, m_handle_ipi_spinlock, lock, true);
                return 0;
            case Mode::Normal:
            case Mode::Self:
                g.store64(time, g.rdtsc());
                m_kernel->call_single(g, 0, m_mode == Mode::Normal ? 1 : 0, m_handle_ipi, time, true);
                return g.load64(time);
        }
        return 0;
    }

    void vcpu_main(cpu::GuestCpu& g, unsigned self) {
        m_kernel->install(g, self);
        g.sti();
        g.lock_add(m_online, 1);
        if (self != 0) g.idle_loop();  // idle=poll
        g.spin_until([&] { return g.load64(m_online) == m_n; }, m_online);
        // bench_ipi(): total = ktime_get(); __bench_ipi(); total = ktime_get() - total.
        const std::uint64_t t1 = g.rdtsc();
        for (std::uint64_t i = 0; i < m_times; ++i) m_ipi += send_ipi(g);
        m_total = g.rdtsc() - t1;
        m_finished = true;
    }

    unsigned m_n = 4;
    Mode m_mode = Mode::Normal;
    std::uint64_t m_times = kNtimes;
    std::unique_ptr<linux_smp::Kernel> m_kernel;
    std::uint64_t m_handle_ipi = 0, m_handle_ipi_spinlock = 0;
    std::uint64_t m_stack = 0, m_online = 0;
    std::vector<std::uint64_t> m_ran;
    std::uint64_t m_ipi = 0, m_total = 0;
    bool m_finished = false;
};

}  // namespace

std::unique_ptr<Workload> make_ipi_bench() { return std::make_unique<IpiBench>(); }

}  // namespace vtx::workloads
