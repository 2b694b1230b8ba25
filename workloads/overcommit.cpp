// `overcommit`: more vCPUs than physical CPUs (vCPU i on CPU i mod pcpus). Every vCPU sends
// IPIs to randomly chosen others (vector 0x40 + its own ID) and waits until the target's
// handler has counted it, computing a random while between sends. The host scheduler
// preempts vCPUs at the end of their slices (SN := 1), so IPIs reach preempted targets:
// the check is that every IPI sent was received exactly once.
#include <memory>
#include <vector>

#include "model/error.hpp"
#include "model/rng.hpp"
#include "workloads/kut.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint8_t kFirstVector = 0x40;
constexpr std::uint64_t kDefaultIpisPerVcpu = 20;
constexpr std::uint64_t kMaxComputeCycles = 20000;

class OvercommitWorkload : public Workload {
public:
    void setup(vmm::Kvm& kvm, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        m_n = cfg.vcpus;
        if (m_n < 2 || m_n > 64) throw model::ConfigError("overcommit: --vcpus must be 2..64");
        check_params("overcommit", cfg, {"ipis"});
        auto it = cfg.params.find("ipis");
        m_ipis = it == cfg.params.end() ? kDefaultIpisPerVcpu : parse_param("overcommit", "ipis", it->second, 1, 1u << 16);
        m_x2apic = cfg.x2apic;
        m_counts = vm.alloc_guest(64 * m_n * m_n, 64);  // recv[dst][src], one line per counter
        m_done = vm.alloc_guest(64, 64);
        model::Rng rng(cfg.seed);
        m_plan.assign(m_n, {});
        for (unsigned s = 0; s < m_n; ++s)
            for (std::uint64_t k = 0; k < m_ipis; ++k) {
                unsigned t = static_cast<unsigned>(rng.below(m_n - 1));
                if (t >= s) ++t;
                m_plan[s].push_back({t, rng.below(kMaxComputeCycles)});
            }
        for (unsigned i = 0; i < m_n; ++i) {
            vmm::Vcpu& v = vm.create_vcpu(i, i % cfg.pcpus);
            v.set_entry_point(kBspEntry + 0x1000 * i);
            vm.add_code(kBspEntry + 0x1000 * i, [this, i](cpu::GuestCpu& g) { vcpu_main(g, i); });
        }
        m_kvm = &kvm;
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        std::uint64_t sent = 0, received = 0, mismatched = 0;
        auto& mem = kvm.platform().memory();
        for (unsigned d = 0; d < m_n; ++d)
            for (unsigned s = 0; s < m_n; ++s) {
                std::uint64_t expected = 0;
                for (const auto& step : m_plan[s]) expected += step.target == d;
                const std::uint64_t got = mem.peek64(vm.gpa_to_hpa(counter(d, s)));
                sent += expected;
                received += got;
                if (got != expected) ++mismatched;
            }
        std::uint64_t preemptions = 0;
        for (unsigned c = 0; c < kvm.platform().cpu_count(); ++c) preemptions += kvm.scheduler(c).preemptions();
        r.ok = mismatched == 0 && sent > 0;
        r.check = std::to_string(received) + " of " + std::to_string(sent) + " IPIs received exactly once per send (" +
                  std::to_string(mismatched) + " sender/target pairs off), " + std::to_string(preemptions) +
                  " preemptions";
        r.iterations = sent;
        r.total_iterations = sent;
        r.cycles_per_iteration = m_iterations_cycles;
        r.values["preemptions"] = static_cast<double>(preemptions);
        r.values["coalesced"] = static_cast<double>(kvm.coalesced_interrupts());
        return r;
    }

private:
    struct Step {
        unsigned target;
        std::uint64_t compute;
    };
    std::uint64_t counter(unsigned dst, unsigned src) const { return m_counts + 64 * (dst * m_n + src); }

    void vcpu_main(cpu::GuestCpu& g, unsigned self) {
        kut::Lib lib(g, m_x2apic);
        g.set_handler(static_cast<std::uint8_t>(kFirstVector), [](cpu::GuestCpu&, std::uint8_t) {});
        for (unsigned s = 0; s < m_n; ++s)
            g.set_handler(static_cast<std::uint8_t>(kFirstVector + s), [this, self, x2 = m_x2apic](cpu::GuestCpu& c, std::uint8_t v) {
                c.lock_add(counter(self, v - kFirstVector), 1);
                kut::Lib(c, x2).eoi();
            });
        g.sti();
        const std::uint64_t t1 = g.rdtsc();
        std::vector<std::uint64_t> sent(m_n, 0);
        for (const auto& step : m_plan[self]) {
            ++sent[step.target];
            lib.apic_icr_write(kut::kApicIntAssert | (kFirstVector + self), step.target);
            const std::uint64_t want = sent[step.target];
            const std::uint64_t where = counter(step.target, self);
            g.spin_until([&] { return g.load64(where) >= want; }, where);
            g.compute(step.compute);
        }
        if (self == 0) m_iterations_cycles = static_cast<double>(g.rdtsc() - t1) / static_cast<double>(m_ipis);
        g.lock_add(m_done, 1);
        if (self == 0) {
            g.spin_until([&] { return g.load64(m_done) == m_n; }, m_done);
            return;  // vCPU 0 returning ends the simulation
        }
        g.idle_loop();
    }

    vmm::Kvm* m_kvm = nullptr;
    unsigned m_n = 4;
    std::uint64_t m_ipis = kDefaultIpisPerVcpu;
    bool m_x2apic = true;
    std::uint64_t m_counts = 0, m_done = 0;
    std::vector<std::vector<Step>> m_plan;
    double m_iterations_cycles = 0;
};

}  // namespace

std::unique_ptr<Workload> make_overcommit() { return std::make_unique<OvercommitWorkload>(); }

}  // namespace vtx::workloads
