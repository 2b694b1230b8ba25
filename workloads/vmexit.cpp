// Single-vCPU tests of kvm-unit-tests x86/vmexit.c, each measured with do_test():
//
//   cpuid, vmcall                   one exiting instruction per iteration;
//   self_ipi_*                      a self IPI, vector 0xB0, through apic_icr_write() with
//                                   the self shorthand (xAPIC: MMIO ICR, x2APIC: ICR MSR);
//   x2apic_self_ipi_*               the same through WRMSR 0x83F (x2APIC SELF IPI).
//
// The self-IPI variants bracket the send with RDTSC (tsc_ipi) and their ISR brackets its
// EOI (tsc_eoi), as vmexit.c does; the ISR counts deliveries in x. The `self_ipi_*` ones
// reset x before the send and check x == 1 after (vmexit.c prints x otherwise); every
// variant's result checks that each self IPI was delivered exactly once. The TPR variants
// raise the TPR to 0xF0 (masking 0xB0) around the send and lower it to 0 before the
// delivery point; `_sti_nop` ends with STI; NOP, `_sti_hlt` with STI; HLT (safe_halt), and
// the plain `_tpr` ones with a NOP with interrupts enabled.
#include <memory>
#include <string>

#include "model/error.hpp"
#include "vmcs/exit_info.hpp"
#include "workloads/kut.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint8_t kIpiTestVector = 0xB0;  // IPI_TEST_VECTOR
constexpr std::uint8_t kTprMaskAll = 0x0F;     // apic_set_tpr(0x0f): TPR 0xF0 masks 0xB0
constexpr std::uint64_t kNopCycles = 1;        // NOP: one straight-line instruction

void reject_params(const char* workload, const WorkloadConfig& cfg) {
    if (!cfg.params.empty())
        throw model::ConfigError(std::string(workload) + ": unknown parameter workload." +
                                 cfg.params.begin()->first + " (this workload has none besides workload.goal)");
}

void require_one_vcpu(const char* workload, const WorkloadConfig& cfg) {
    if (cfg.vcpus != 1)
        throw model::ConfigError(std::string(workload) +
                                 ": runs on one vCPU (--vcpus 1); vmexit.c's parallel form is not modelled");
}

// ---- cpuid, vmcall -------------------------------------------------------------------
class ExitingInstruction : public Workload {
public:
    enum class Kind { Cpuid, Vmcall };
    explicit ExitingInstruction(Kind k) : m_kind(k) {}

    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        require_one_vcpu(name(), cfg);
        reject_params(name(), cfg);
        m_goal = cfg.goal;
        vm.create_vcpu(0, 0).set_entry_point(kBspEntry);
        vm.add_code(kBspEntry, [this](cpu::GuestCpu& g) { main(g); });
    }

    WorkloadResult result(vmm::Kvm&, vmm::Vm& vm) override {
        WorkloadResult r;
        r.cycles_per_iteration = m_pass.per_iteration();
        r.iterations = m_pass.iterations;
        r.total_iterations = m_pass.total;
        const auto reason = m_kind == Kind::Cpuid ? vmcs::ExitReason::Cpuid : vmcs::ExitReason::Vmcall;
        const std::uint64_t exits = vm.vcpus()[0]->exits(static_cast<std::uint16_t>(reason));
        r.ok = exits == m_pass.total && m_bad_returns == 0;
        r.check = std::to_string(exits) + " " + name() + " VM exits for " + std::to_string(m_pass.total) +
                  " executed";
        if (m_kind == Kind::Vmcall)
            r.check += ", " + std::to_string(m_bad_returns) + " returned a value other than 0";
        return r;
    }

private:
    const char* name() const { return m_kind == Kind::Cpuid ? "cpuid" : "vmcall"; }
    void main(cpu::GuestCpu& g) {
        g.sti();
        if (m_kind == Kind::Cpuid) {
            m_pass = kut::do_test(g, m_goal, {}, [&] { g.cpuid(0); });
        } else {
            m_pass = kut::do_test(g, m_goal, {}, [&] {
                if (g.vmcall(0) != 0) ++m_bad_returns;
            });
        }
    }

    Kind m_kind;
    std::uint64_t m_goal = 0;
    kut::PassResult m_pass;
    std::uint64_t m_bad_returns = 0;
};

// ---- self-IPI variants -----------------------------------------------------------------
struct SelfIpiVariant {
    const char* name;
    bool x2apic_msr;  // WRMSR 0x83F instead of apic_icr_write(self shorthand)
    bool cli;         // interrupts disabled around the send
    bool tpr;         // TPR raised to mask the vector around the send
    bool hlt;         // ends with STI; HLT (else NOP, after STI if `cli`)
    bool check_each;  // x = 0 before, x == 1 after (the self_ipi_* tests)
};

class SelfIpi : public Workload {
public:
    explicit SelfIpi(SelfIpiVariant v) : m_v(v) {}

    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        require_one_vcpu(m_v.name, cfg);
        reject_params(m_v.name, cfg);
        if (m_v.x2apic_msr && !cfg.x2apic)
            throw model::ConfigError(std::string(m_v.name) + ": needs the guest in x2APIC mode (--apic x2apic)");
        m_goal = cfg.goal;
        m_x2apic = cfg.x2apic;
        m_x = vm.alloc_guest(64, 64);
        vm.create_vcpu(0, 0).set_entry_point(kBspEntry);
        vm.add_code(kBspEntry, [this](cpu::GuestCpu& g) { main(g); });
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        r.cycles_per_iteration = m_pass.per_iteration();
        r.iterations = m_pass.iterations;
        r.total_iterations = m_pass.total;
        const std::uint64_t x = kvm.platform().memory().peek64(vm.gpa_to_hpa(m_x));
        const std::uint64_t delivered = m_v.check_each ? m_delivered_checked : x;
        r.ok = m_not_one == 0 && delivered == m_pass.total;
        r.check = std::to_string(delivered) + " self IPIs delivered for " + std::to_string(m_pass.total) + " sent";
        if (m_v.check_each) r.check += ", " + std::to_string(m_not_one) + " iterations with x != 1";
        const double n = m_pass.iterations ? static_cast<double>(m_pass.iterations) : 1.0;
        r.values["ipi_cycles"] = static_cast<double>(m_tsc_ipi) / n;
        r.values["eoi_cycles"] = static_cast<double>(m_tsc_eoi) / n;
        return r;
    }

private:
    void main(cpu::GuestCpu& g) {
        kut::Lib lib(g, m_x2apic);
        // handle_irq(IPI_TEST_VECTOR, self_ipi_isr): x++, then EOI bracketed by RDTSC.
        g.set_handler(kIpiTestVector, [this](cpu::GuestCpu& c, std::uint8_t) {
            c.store64(m_x, c.load64(m_x) + 1);
            const std::uint64_t start = c.rdtsc();
            kut::Lib(c, m_x2apic).eoi();
            m_tsc_eoi += c.rdtsc() - start;
        });
        g.sti();
        m_pass = kut::do_test(
            g, m_goal,
            [&] {
                m_tsc_ipi = m_tsc_eoi = 0;
            },
            [&] { iteration(g, lib); });
    }

    void iteration(cpu::GuestCpu& g, kut::Lib& lib) {
        if (m_v.check_each) g.store64(m_x, 0);
        if (m_v.cli) g.cli();
        if (m_v.tpr) lib.set_tpr(kTprMaskAll);
        const std::uint64_t start = g.rdtsc();
        if (m_v.x2apic_msr) {
            g.wrmsr(kut::kX2apicSelfIpiMsr, kIpiTestVector);
        } else {
            // apic_self_ipi(): vmexit.c passes the vector as the (ignored) destination.
            lib.apic_icr_write(kut::kApicIntAssert | kut::kApicDestSelf | kut::kApicDestPhysical |
                                   kut::kApicDmFixed | kIpiTestVector,
                               kIpiTestVector);
        }
        m_tsc_ipi += g.rdtsc() - start;
        if (m_v.tpr) lib.set_tpr(0);
        if (m_v.hlt) {
            g.sti_hlt();  // safe_halt()
        } else {
            if (m_v.cli) g.sti();
            g.compute(kNopCycles);  // nop
        }
        if (m_v.check_each) {
            // if (x != 1) printf("%d", x);
            const std::uint64_t x = g.load64(m_x);
            if (x != 1) ++m_not_one;
            m_delivered_checked += x;
        }
    }

    SelfIpiVariant m_v;
    std::uint64_t m_goal = 0;
    bool m_x2apic = true;
    std::uint64_t m_x = 0;  // guest-physical address of x
    kut::PassResult m_pass;
    std::uint64_t m_tsc_ipi = 0, m_tsc_eoi = 0;
    std::uint64_t m_not_one = 0, m_delivered_checked = 0;
};

}  // namespace

std::unique_ptr<Workload> make_cpuid() {
    return std::make_unique<ExitingInstruction>(ExitingInstruction::Kind::Cpuid);
}
std::unique_ptr<Workload> make_vmcall() {
    return std::make_unique<ExitingInstruction>(ExitingInstruction::Kind::Vmcall);
}

// name, x2apic_msr, cli, tpr, hlt, check_each (x86/vmexit.c)
std::unique_ptr<Workload> make_self_ipi_sti_nop() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"self_ipi_sti_nop", false, true, false, false, true});
}
std::unique_ptr<Workload> make_self_ipi_sti_hlt() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"self_ipi_sti_hlt", false, true, false, true, true});
}
std::unique_ptr<Workload> make_self_ipi_tpr() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"self_ipi_tpr", false, false, true, false, true});
}
std::unique_ptr<Workload> make_self_ipi_tpr_sti_nop() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"self_ipi_tpr_sti_nop", false, true, true, false, true});
}
std::unique_ptr<Workload> make_self_ipi_tpr_sti_hlt() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"self_ipi_tpr_sti_hlt", false, true, true, true, true});
}
std::unique_ptr<Workload> make_x2apic_self_ipi_sti_nop() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"x2apic_self_ipi_sti_nop", true, true, false, false, false});
}
std::unique_ptr<Workload> make_x2apic_self_ipi_sti_hlt() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"x2apic_self_ipi_sti_hlt", true, true, false, true, false});
}
std::unique_ptr<Workload> make_x2apic_self_ipi_tpr() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"x2apic_self_ipi_tpr", true, false, true, false, false});
}
std::unique_ptr<Workload> make_x2apic_self_ipi_tpr_sti_nop() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"x2apic_self_ipi_tpr_sti_nop", true, true, true, false, false});
}
std::unique_ptr<Workload> make_x2apic_self_ipi_tpr_sti_hlt() {
    return std::make_unique<SelfIpi>(SelfIpiVariant{"x2apic_self_ipi_tpr_sti_hlt", true, true, true, true, false});
}

}  // namespace vtx::workloads
