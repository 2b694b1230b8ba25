// kvm-unit-tests x86/vmexit.c `ipi` and `ipi_halt`, as measured by the IPI
// virtualization series: vCPU 0 sends a fixed, physical IPI to vCPU 1 with
// on_cpu(1, nop, 0) and waits for ipi_done; the target either busy-idles (`ipi`, the
// series' modified AP loop) or halts (`ipi_halt`, the stock AP loop).
#include <memory>
#include <string>
#include <vector>

#include "model/error.hpp"

#include "workloads/kut.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint64_t kFirstIterations = 32;  // do_test(): iterations = 32, doubled before each pass
constexpr std::uint64_t kIpiHaltWaitTicks = 2000;  // ipi_halt: let the AP go back to HLT

class IpiWorkload : public Workload {
public:
    explicit IpiWorkload(bool halt_target) : m_halt(halt_target) {}

    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        const char* name = m_halt ? "ipi_halt" : "ipi";
        check_params(name, cfg, m_halt ? std::vector<std::string>{} : std::vector<std::string>{"target"});
        if (auto it = cfg.params.find("target"); it != cfg.params.end()) {
            // workload.target: how the AP idles between IPIs. idle_loop: the IPIv series'
            // change ("AP runs without halt"); hlt: the stock test (x86/cstart64.S's APs
            // loop on HLT), which every other published vmexit ipi figure measures.
            if (it->second != "idle_loop" && it->second != "hlt")
                throw model::ConfigError("ipi: workload.target must be idle_loop or hlt, not \"" + it->second + "\"");
            m_target_hlt = it->second == "hlt";
        }
        if (cfg.vcpus != 2)
            throw model::ConfigError(std::string(name) + ": runs on exactly 2 vCPUs (vmexit.c: CPU 0 sends to CPU 1), not --vcpus " +
                                     std::to_string(cfg.vcpus));
        m_x2apic = cfg.x2apic;
        m_goal = cfg.goal;
        m_smp.base = vm.alloc_guest(64, 64);
        vmm::Vcpu& bsp = vm.create_vcpu(0, 0);
        vm.create_vcpu(1, cfg.pcpus > 1 ? 1 : 0);
        bsp.set_entry_point(kBspEntry);
        vm.vcpus()[1]->set_entry_point(kBspEntry + 0x1000);
        vm.add_code(kBspEntry, [this](cpu::GuestCpu& g) { bsp_main(g); });
        vm.add_code(kBspEntry + 0x1000, [this](cpu::GuestCpu& g) { ap_main(g); });
    }

    WorkloadResult result(vmm::Kvm&, vmm::Vm& vm) override {
        WorkloadResult r;
        r.cycles_per_iteration = m_cycles;
        r.iterations = m_iterations;
        r.total_iterations = m_total;
        const auto received = vm.vcpus()[1]->context().delivered_interrupts;
        r.ok = received == m_total;
        r.check = "target received " + std::to_string(received) + " IPIs for " +
                  std::to_string(m_total) + " sent";
        r.values["ipi_cycles"] = m_iterations ? static_cast<double>(m_tsc_ipi) / m_iterations : 0;
        return r;
    }

private:
    void bsp_main(cpu::GuestCpu& g) {
        kut::Lib lib(g, m_x2apic);
        g.sti();
        // Wait until the AP is up and has interrupts enabled (smp_init's handshake).
        g.spin_until([&] { return g.load64(m_smp.active_cpus()) == 1; }, m_smp.active_cpus());
        g.lock_add(m_smp.active_cpus(), ~std::uint64_t{0});
        std::uint64_t iterations = kFirstIterations;
        std::uint64_t t1 = 0, t2 = 0;
        do {
            iterations *= 2;
            m_tsc_ipi = 0;
            t1 = g.rdtsc();
            for (std::uint64_t i = 0; i < iterations; ++i) {
                g.mark("iteration");  // vtxsim explain shows the last complete one
                if (m_halt) {
                    kut::on_cpu_wait(lib, m_smp, 1);
                    const std::uint64_t start = g.rdtsc();
                    g.spin_until([&] { return g.rdtsc() - start >= kIpiHaltWaitTicks; });
                } else {
                    const std::uint64_t start = g.rdtsc();
                    kut::on_cpu_wait(lib, m_smp, 1);
                    m_tsc_ipi += g.rdtsc() - start;
                }
            }
            t2 = g.rdtsc();
            m_total += iterations;
        } while (t2 - t1 < m_goal);
        m_iterations = iterations;
        m_cycles = static_cast<double>(t2 - t1) / static_cast<double>(iterations);
    }

    void ap_main(cpu::GuestCpu& g) {
        kut::install_ipi_handler(g, m_x2apic, m_smp);
        g.sti();
        g.lock_add(m_smp.active_cpus(), 1);
        if (m_halt || m_target_hlt) {
            for (;;) g.hlt();  // ap_online(): for (;;) hlt;
        }
        g.idle_loop();  // the series' AP: idle loop instead of HLT
    }

    bool m_halt;
    bool m_target_hlt = false;  // ipi with workload.target=hlt
    bool m_x2apic = true;
    std::uint64_t m_goal = 0;
    kut::SmpData m_smp;
    double m_cycles = 0;
    std::uint64_t m_iterations = 0, m_total = 0, m_tsc_ipi = 0;
};

}  // namespace

std::unique_ptr<Workload> make_ipi() { return std::make_unique<IpiWorkload>(false); }
std::unique_ptr<Workload> make_ipi_halt() { return std::make_unique<IpiWorkload>(true); }

}  // namespace vtx::workloads
