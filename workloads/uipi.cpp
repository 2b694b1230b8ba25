// `uipi`: a user-interrupt round trip between two threads of a guest, modelled on the
// Linux user-interrupts RFC's sample (tools/uintr/sample/uipi_sample.c, Sohil Mehta,
// "x86: User Interrupts support", v1 2021-09-13): the receiver registers a handler
// (uintr_register_handler: the kernel sets UIHANDLER, UINV, a UPID whose NV is
// UINTR_NOTIFICATION_VECTOR 0xEC and NDST the receiver's APIC ID, and CR4.UINTR), the
// sender registers for its file descriptor (uintr_register_sender: a UITT entry with the
// receiver's user vector and UPID), then sends with SENDUIPI while the receiver spins in
// user mode with UIF = 1 (STUI). Here the two threads run on two vCPUs, so every SENDUIPI
// is the third kind of IPI that IPI virtualization handles: with IPIv, the notification is
// posted to the receiving vCPU without a VM exit; without, it is an APIC-write exit that
// KVM's ICR emulation sends. The receiver's handler acknowledges through memory; the
// sender measures SENDUIPI to acknowledgment, as kvm-unit-tests' ipi does for an IPI.
// Needs a profile with user interrupts (spr).
#include <memory>
#include <string>

#include "model/error.hpp"
#include "model/x86.hpp"
#include "pid/user_interrupts.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint8_t kUintrNotificationVector = 0xEC;  // arch/x86/include/asm/irq_vectors.h (RFC)
constexpr std::uint8_t kUserVector = 0;                 // uintr_create_fd(vector 0)
constexpr std::uint64_t kUserHandlerAddress = 0x200000; // the receiver's uintr_handler
constexpr std::uint64_t kFirstIterations = 32;          // doubled before each pass, as vmexit.c

class UipiWorkload : public Workload {
public:
    void setup(vmm::Kvm& kvm, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        check_params("uipi", cfg, {});
        if (cfg.vcpus != 2)
            throw model::ConfigError("uipi: runs on exactly 2 vCPUs (a sender and a receiver thread), not --vcpus " +
                                     std::to_string(cfg.vcpus));
        if (!kvm.platform().profile().features.uintr)
            throw model::ConfigError("uipi: profile \"" + kvm.platform().profile().name +
                                     "\" has no user interrupts (features.uintr)");
        if (!kvm.params().enable_apicv)
            throw model::ConfigError("uipi: needs APICv (kvm.enable_apicv=on): the notification reaches the receiver as a "
                                     "virtual interrupt, whose delivery of UINV is user-interrupt notification processing "
                                     "(an injected one would go through the IDT: docs/cpu-choices.md)");
        m_x2apic = cfg.x2apic;
        m_goal = cfg.goal;
        m_upid = vm.alloc_guest(pid::kUpidBytes, pid::kUpidAlignment);
        m_uitt = vm.alloc_guest(pid::kUittEntryBytes, 64);
        m_shared = vm.alloc_guest(64, 64);  // [0] receiver ready, [8] handled count
        vm.create_vcpu(0, 0);
        vm.create_vcpu(1, cfg.pcpus > 1 ? 1 : 0);
        vm.vcpus()[0]->set_entry_point(kBspEntry);
        vm.vcpus()[1]->set_entry_point(kBspEntry + 0x1000);
        vm.add_code(kBspEntry, [this](cpu::GuestCpu& g) { sender(g); });
        vm.add_code(kBspEntry + 0x1000, [this](cpu::GuestCpu& g) { receiver(g); });
    }

    WorkloadResult result(vmm::Kvm&, vmm::Vm&) override {
        WorkloadResult r;
        r.cycles_per_iteration = m_cycles;
        r.iterations = m_iterations;
        r.total_iterations = m_total;
        r.ok = m_handled == m_total && m_wrong_vector == 0;
        r.check = "receiver handled " + std::to_string(m_handled) + " user interrupts for " + std::to_string(m_total) +
                  " SENDUIPIs" + (m_wrong_vector ? ", " + std::to_string(m_wrong_vector) + " with a wrong user vector" : "");
        return r;
    }

private:
    // uintr_register_handler + uintr_create_fd, then the sample's receiver loop.
    void receiver(cpu::GuestCpu& g) {
        // The guest kernel: CR4.UINTR, the handler, UINV and the UPID (NV, NDST = this
        // vCPU's APIC ID in the guest's APIC mode).
        g.set_cr4_uintr(true);
        g.set_user_handler(kUserHandlerAddress, [this](cpu::GuestCpu& c, std::uint8_t uv) {
            if (uv != kUserVector) ++m_wrong_vector;
            ++m_handled;
            c.store64(m_shared + 8, m_handled);  // the sample's uintr_received = 1
        });
        g.store64(m_upid, pid::UpidControl::make(kUintrNotificationVector, pid::upid_ndst(1, m_x2apic)).raw);
        g.wrmsr(x86::kMsrUintrHandler, kUserHandlerAddress);
        g.wrmsr(x86::kMsrUintrPd, m_upid);
        g.wrmsr(x86::kMsrUintrMisc, std::uint64_t{kUintrNotificationVector} << 32);
        g.sti();
        // Return to user space; STUI; wait (the sample: while (!uintr_received) ;).
        g.set_user_mode(true);
        g.stui();
        g.store64(m_shared, 1);
        g.idle_loop();
    }

    // uintr_register_sender, then SENDUIPI and wait for the handler, timed by RDTSC.
    void sender(cpu::GuestCpu& g) {
        g.set_cr4_uintr(true);
        const pid::UittEntry e = pid::UittEntry::make(kUserVector, m_upid);
        g.store64(m_uitt, e.lo);
        g.store64(m_uitt + 8, e.hi);
        g.wrmsr(x86::kMsrUintrTt, m_uitt | 1);  // valid
        g.wrmsr(x86::kMsrUintrMisc, 0);         // UITTSZ 0: one entry
        g.set_user_mode(true);
        g.spin_until([&] { return g.load64(m_shared) == 1; }, m_shared);
        std::uint64_t iterations = kFirstIterations, t1 = 0, t2 = 0;
        do {
            iterations *= 2;
            t1 = g.rdtsc();
            for (std::uint64_t i = 0; i < iterations; ++i) {
                g.mark("iteration");
                const std::uint64_t want = m_total + i + 1;
                g.senduipi(0);
                g.spin_until([&] { return g.load64(m_shared + 8) >= want; }, m_shared + 8, /*pause=*/false);
            }
            t2 = g.rdtsc();
            m_total += iterations;
        } while (t2 - t1 < m_goal);
        m_iterations = iterations;
        m_cycles = static_cast<double>(t2 - t1) / static_cast<double>(iterations);
    }

    bool m_x2apic = true;
    std::uint64_t m_goal = 0;
    std::uint64_t m_upid = 0, m_uitt = 0, m_shared = 0;
    double m_cycles = 0;
    std::uint64_t m_iterations = 0, m_total = 0, m_handled = 0, m_wrong_vector = 0;
};

}  // namespace

std::unique_ptr<Workload> make_uipi() { return std::make_unique<UipiWorkload>(); }

}  // namespace vtx::workloads
