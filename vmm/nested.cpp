// Nested VMX in L0 (KVM's arch/x86/kvm/vmx/nested.c), the part an L1 hypervisor that does
// not monitor the local APIC needs to bring up its L2 guest's APs: emulation of L1's VMX
// instructions on a vmcs12, running L2 on a vmcs02, reflecting L2's exits to L1, and the
// INIT/SIPI VM exits of commit bf0cd88ce363 (kvm-reference.md 5, vtx-semantics.md 8.4-8.6).
#include "vmm/nested.hpp"

#include <memory>
#include <string>
#include <vector>

#include "cpu/virtual_apic.hpp"
#include "model/x86.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/msr_bitmap.hpp"
#include "vmcs/exit_info.hpp"
#include "vmm/kvm.hpp"

namespace vtx::vmm {

using cpu::LogicalProcessor;
using model::Cost;
using vmcs::ActivityState;
using vmcs::ExitReason;
using vmcs::Field;

namespace {
constexpr std::uint64_t kRflagsFixed = x86::kRflagsReserved1;  // RFLAGS after a VM exit (SDM 27.5.3)
// VMsucceed clears CF, PF, AF, ZF, SF and OF; VMfailInvalid sets CF; VMfailValid sets ZF
// (SDM 30.2 "Conventions").
constexpr std::uint64_t kRflagsArithmetic = x86::kRflagsCf | x86::kRflagsPf | x86::kRflagsAf | x86::kRflagsZf |
                                            x86::kRflagsSf | x86::kRflagsOf;
constexpr std::uint32_t kMsrX2apicFirst = 0x800, kMsrX2apicLast = 0x8FF, kMsrX2apicIcr = 0x830;

bool page_aligned(std::uint64_t address) { return address % model::kPageSize == 0; }

const char* vmx_handler_name(ExitReason r) {
    switch (r) {
        case ExitReason::Vmclear: return "handle_vmclear";
        case ExitReason::Vmlaunch: return "handle_vmlaunch -> nested_vmx_run";
        case ExitReason::Vmptrld: return "handle_vmptrld";
        case ExitReason::Vmptrst: return "handle_vmptrst";
        case ExitReason::Vmread: return "handle_vmread";
        case ExitReason::Vmresume: return "handle_vmresume -> nested_vmx_run";
        case ExitReason::Vmwrite: return "handle_vmwrite";
        case ExitReason::Vmxoff: return "handle_vmxoff";
        case ExitReason::Vmxon: return "handle_vmxon";
        default: return "nested VMX instruction";
    }
}

// L1's RFLAGS after an emulated VMX instruction: the arithmetic flags cleared, `set` set.
void set_vmx_result(LogicalProcessor& p, std::uint64_t set) {
    const std::uint64_t rflags = p.vmread(Field::GuestRflags).value;
    p.vmwrite(Field::GuestRflags, (rflags & ~kRflagsArithmetic) | set);
}
void nested_vmx_succeed(LogicalProcessor& p) { set_vmx_result(p, 0); }
void nested_vmx_fail_invalid(LogicalProcessor& p) { set_vmx_result(p, x86::kRflagsCf); }
// nested_vmx_fail: VMfailValid with the error in vmcs12 if L1 has a current VMCS,
// VMfailInvalid otherwise.
void nested_vmx_fail(LogicalProcessor& p, NestedVmx& n, vmcs::VmInstructionError error) {
    if (n.current_vmptr == kInvalidVmptr) return nested_vmx_fail_invalid(p);
    n.vmcs12.hw_write(Field::VmInstructionError, vmcs::error_number(error));
    set_vmx_result(p, x86::kRflagsZf);
}
}  // namespace

// ====================================================================================
// vmx_check_nested_events: INIT and SIPI (the part before exceptions, MTF, timer, SMI,
// NMI and interrupts), final form after the 2022 fall-through fix.
// ====================================================================================
NestedEventDecision vmx_check_nested_events(const NestedEventInput& in) {
    NestedEventDecision d;
    if (in.init_pending) {
        d.falls_through = false;
        if (in.block_nested_events) {
            d.action = NestedEventAction::Busy;
            return d;
        }
        d.clear_init = true;
        // In wait-for-SIPI (mp_state INIT_RECEIVED) INIT is blocked: consumed, no exit.
        d.action = in.init_received ? NestedEventAction::InitInWaitForSipi : NestedEventAction::InitVmExit;
        return d;
    }
    if (in.sipi_pending) {
        if (in.block_nested_events) {
            d.action = NestedEventAction::Busy;
            d.falls_through = false;
            return d;
        }
        d.clear_sipi = true;
        if (in.init_received) {
            d.action = NestedEventAction::SipiVmExit;
            d.exit_qualification = in.sipi_vector & vmcs::kSipiVectorMask;
            d.falls_through = false;
            return d;
        }
        d.action = NestedEventAction::SipiIgnored;  // the SIPI is completely ignored
        return d;
    }
    return d;
}

NestedVmx::NestedVmx(std::string l2_name, const model::CpuFeatures& features)
    : vmcs12(features), vmcs02(std::move(l2_name), features) {}

bool Kvm::nested_init_blocked(const Vcpu& v) const {
    return v.m_nested && vmx_apic_init_signal_blocked(v.m_nested->vmxon, v.m_nested->guest_mode);
}

// ====================================================================================
// L1's VMX instructions (handle_vmon, handle_vmclear, handle_vmptrld, handle_vmread,
// handle_vmwrite, handle_vmlaunch/handle_vmresume). vmcs01 is current.
// ====================================================================================
void Kvm::handle_vmx_instruction(Vcpu& v, const cpu::VmExit& e) {
    LogicalProcessor& p = lp(v);
    cpu::GuestContext& g = v.m_ctx;
    const auto reason = static_cast<ExitReason>(e.basic());
    p.step(Cost::KvmNestedEmulation, vmx_handler_name(reason), "vmx/nested.c", "kvm");
    ++m_platform.stats().counter("kvm.nested.emulated_instructions", "count",
                                 "VMX instructions of an L1 hypervisor emulated by L0");
    if (reason == ExitReason::Vmxon && !v.m_nested)
        v.m_nested = std::make_unique<NestedVmx>(g.name + ".l2", m_platform.profile().features);
    if (reason != ExitReason::Vmxon && (!v.m_nested || !v.m_nested->vmxon))
        throw cpu::SimulationError(g.name + ": VMX instruction (exit reason " + std::to_string(e.basic()) +
                                   ") outside VMX operation: #UD is not modelled");
    NestedVmx& n = *v.m_nested;
    ++n.emulated_instructions;
    const std::uint64_t operand = g.regs.rax;  // VMXON/VMCLEAR/VMPTRLD: the physical address
    switch (reason) {
        case ExitReason::Vmxon:
            if (n.vmxon) {
                nested_vmx_fail(p, n, vmcs::VmInstructionError::VmxonInVmxRoot);
            } else if (!page_aligned(operand)) {
                nested_vmx_fail_invalid(p);
            } else {
                n.vmxon = true;
                n.vmxon_ptr = operand;
                n.current_vmptr = kInvalidVmptr;
                nested_vmx_succeed(p);
            }
            break;
        case ExitReason::Vmxoff:
            n.vmxon = false;
            n.current_vmptr = kInvalidVmptr;
            v.m_req_event = true;  // an INIT latched in VMX operation is processed now
            nested_vmx_succeed(p);
            break;
        case ExitReason::Vmclear:
            if (!page_aligned(operand)) {
                nested_vmx_fail(p, n, vmcs::VmInstructionError::VmclearInvalidAddress);
            } else if (operand == n.vmxon_ptr) {
                nested_vmx_fail(p, n, vmcs::VmInstructionError::VmclearVmxonPointer);
            } else {
                if (operand == n.vmcs12_ptr) n.vmcs12.vmclear();
                if (operand == n.current_vmptr) n.current_vmptr = kInvalidVmptr;
                nested_vmx_succeed(p);
            }
            break;
        case ExitReason::Vmptrld:
            if (!page_aligned(operand)) {
                nested_vmx_fail(p, n, vmcs::VmInstructionError::VmptrldInvalidAddress);
            } else if (operand == n.vmxon_ptr) {
                nested_vmx_fail(p, n, vmcs::VmInstructionError::VmptrldVmxonPointer);
            } else {
                if (n.vmcs12_ptr == kInvalidVmptr) {
                    n.vmcs12_ptr = operand;
                    n.vmcs12.set_revision_id(m_platform.capabilities().vmcs_revision_id());
                }
                if (operand != n.vmcs12_ptr)
                    throw cpu::SimulationError(g.name + ": VMPTRLD of a second VMCS: L0 models one vmcs12 per vCPU");
                n.current_vmptr = operand;
                nested_vmx_succeed(p);
            }
            break;
        case ExitReason::Vmptrst:
            g.regs.rax = n.current_vmptr;
            nested_vmx_succeed(p);
            break;
        case ExitReason::Vmread: {
            if (n.current_vmptr == kInvalidVmptr) {
                nested_vmx_fail_invalid(p);
                break;
            }
            const auto r = n.vmcs12.vmread(g.regs.rdx);
            if (r.succeeded()) {
                g.regs.rax = r.value;
                nested_vmx_succeed(p);
            } else {
                nested_vmx_fail(p, n, r.status.error);
            }
            break;
        }
        case ExitReason::Vmwrite: {
            if (n.current_vmptr == kInvalidVmptr) {
                nested_vmx_fail_invalid(p);
                break;
            }
            const auto r = n.vmcs12.vmwrite(g.regs.rdx, g.regs.rax);
            if (r.succeeded())
                nested_vmx_succeed(p);
            else
                nested_vmx_fail(p, n, r.error);
            break;
        }
        case ExitReason::Vmlaunch:
        case ExitReason::Vmresume:
            nested_vmx_run(v, reason == ExitReason::Vmlaunch);
            return;
        default:
            break;
    }
    skip_emulated_instruction(v);
}

// ====================================================================================
// nested_vmx_run: L1's VMLAUNCH/VMRESUME
// ====================================================================================
void Kvm::nested_vmx_run(Vcpu& v, bool launch) {
    LogicalProcessor& p = lp(v);
    NestedVmx& n = *v.m_nested;
    vmcs::Vmcs& v12 = n.vmcs12;
    if (n.current_vmptr == kInvalidVmptr) {
        nested_vmx_fail_invalid(p);
        skip_emulated_instruction(v);
        return;
    }
    if (launch != (v12.launch_state() == vmcs::LaunchState::Clear)) {
        nested_vmx_fail(p, n, launch ? vmcs::VmInstructionError::VmlaunchNonClearVmcs
                                     : vmcs::VmInstructionError::VmresumeNonLaunchedVmcs);
        skip_emulated_instruction(v);
        return;
    }
    // L1 continues after its VMLAUNCH/VMRESUME when a VM exit from L2 comes back (in the
    // model, where HOST_RIP would send it): move its RIP now; it runs again only then.
    skip_emulated_instruction(v);
    if (v12.hw_read(Field::VmEntryIntrInfoField) & vmcs::kIntrInfoValid)
        throw cpu::SimulationError(v.m_ctx.name + ": event injection into L2 through vmcs12 is not modelled");
    // nested_check_guest_non_reg_state: L0 advertises HLT and wait-for-SIPI to L1
    // (nested_vmx_setup_ctls_msrs) and accepts ACTIVE, HLT or WAIT_SIPI.
    const auto activity = static_cast<ActivityState>(v12.hw_read(Field::GuestActivityState));
    if (activity != ActivityState::Active && activity != ActivityState::Hlt &&
        activity != ActivityState::WaitForSipi) {
        // VM-entry failure during guest-state checks: reason 33 with bit 31 (SDM 26.3),
        // L1 continues with the exit information; L2 does not run.
        p.step(Cost::KvmNestedEmulation, "nested_vmx_run: invalid vmcs12 guest state, entry fails",
               "vmx/nested.c", "kvm");
        const std::uint32_t reason =
            vmcs::kExitReasonEntryFailure | static_cast<std::uint32_t>(ExitReason::EntryFailGuestState);
        v12.set_exit_info(Field::VmExitReason, reason);
        v12.set_exit_info(Field::ExitQualification, 0);
        p.vmwrite(Field::GuestRflags, kRflagsFixed);
        n.l1_exits.push_back(L1Exit{reason, 0});
        return;
    }
    v12.set_launch_state(vmcs::LaunchState::Launched);
    // nested_vmx_enter_non_root_mode: vmcs02 becomes the loaded VMCS, guest mode.
    prepare_vmcs02(v);
    n.guest_mode = true;
    n.l2_halted = false;
    switch (activity) {
        case ActivityState::WaitForSipi:
            // KVM's own wait-for-SIPI: the vCPU does not run L2 until a SIPI exit.
            n.run_pending = false;
            v.m_mp_state = MpState::InitReceived;
            break;
        case ActivityState::Hlt:
            // No event to inject (checked above) and no window exiting: halt the vCPU.
            if (!(v12.hw_read(Field::CpuBasedVmExecControl) & vmcs::kPrimaryNmiWindowExiting) &&
                !((v12.hw_read(Field::CpuBasedVmExecControl) & vmcs::kPrimaryInterruptWindowExiting) &&
                  (v12.hw_read(Field::GuestRflags) & x86::kRflagsIf))) {
                n.run_pending = false;
                n.l2_halted = true;
                v.m_mp_state = MpState::Halted;
                break;
            }
            n.run_pending = true;
            break;
        default:
            n.run_pending = true;
            break;
    }
    ++m_platform.stats().counter("kvm.nested.entries", "count", "L1 VMLAUNCH/VMRESUME emulated (nested_vmx_run)");
}

void Kvm::prepare_vmcs02(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    NestedVmx& n = *v.m_nested;
    cpu::GuestContext& l2 = n.vmcs02;
    const vmcs::Vmcs& v12 = n.vmcs12;
    if (!n.vmcs02_ready) {
        // L2 sees L1's memory through an identity EPT12 and finds its code in the VM's
        // code table (docs/nested.md).
        l2.memory_map = v.m_ctx.memory_map;
        l2.code = v.m_ctx.code;
        m_platform.register_vmcs(l2);
        p.vmclear(l2.vmcs_address);
        p.vmptrld(l2.vmcs_address);
        // L0's controls: every MSR access and HLT exits to L0, which reflects to L1 what
        // vmcs12 asks for; physical interrupts exit to L0 (they are L0's).
        const std::uint64_t bitmap = m_platform.memory().allocate(model::kPageSize, model::kPageSize);
        std::vector<std::uint8_t> ones(model::kPageSize, 0xFF);
        m_platform.memory().poke(bitmap, ones.data(), ones.size());
        p.vmwrite(Field::PinBasedVmExecControl, vmcs::kPinDefault1 | vmcs::kPinExternalInterruptExiting |
                                                    vmcs::kPinNmiExiting | vmcs::kPinVirtualNmis);
        p.vmwrite(Field::CpuBasedVmExecControl,
                  vmcs::kPrimaryDefault1 | vmcs::kPrimaryHltExiting | vmcs::kPrimaryUseMsrBitmaps);
        p.vmwrite(Field::MsrBitmap, bitmap);
        p.vmwrite(Field::VmExitControls, vmcs::kExitDefault1 | vmcs::kExitHostAddressSpaceSize |
                                             vmcs::kExitAcknowledgeInterruptOnExit);
        p.vmwrite(Field::VmEntryControls, vmcs::kEntryDefault1 | vmcs::kEntryIa32eModeGuest);
        p.vmwrite(Field::VmcsLinkPointer, ~std::uint64_t{0});
        n.vmcs02_ready = true;
    } else if (p.current_context() != &l2) {
        p.vmptrld(l2.vmcs_address);
    }
    const std::uint64_t rip = v12.hw_read(Field::GuestRip);
    const std::uint64_t cs_base = v12.hw_read(Field::GuestCsBase);
    const auto activity = static_cast<ActivityState>(v12.hw_read(Field::GuestActivityState));
    if (activity == ActivityState::Active && n.l2_reset && l2.thread_started &&
        (rip != l2.vmcs.hw_read(Field::GuestRip) || cs_base != l2.vmcs.hw_read(Field::GuestCsBase)))
        throw cpu::SimulationError(l2.name + ": L1 restarts L2 at a new address after an INIT exit, but L2's "
                                   "program already runs (one program per L2 context is modelled)");
    p.vmwrite(Field::GuestRip, rip);
    p.vmwrite(Field::GuestCsSelector, v12.hw_read(Field::GuestCsSelector));
    p.vmwrite(Field::GuestCsBase, cs_base);
    p.vmwrite(Field::GuestRflags, v12.hw_read(Field::GuestRflags) | kRflagsFixed);
    p.vmwrite(Field::GuestInterruptibilityInfo, v12.hw_read(Field::GuestInterruptibilityInfo));
    // HLT and wait-for-SIPI are KVM's mp_state, not vmcs02's activity state.
    p.vmwrite(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
    if (activity == ActivityState::Active) n.l2_reset = false;
}

// ====================================================================================
// nested_vmx_vmexit: a VM exit to L1 (reflected from L2 or synthesized by L0)
// ====================================================================================
void Kvm::nested_vmx_vmexit(Vcpu& v, std::uint32_t reason, std::uint64_t qualification,
                            std::uint32_t intr_info, std::uint32_t instruction_length) {
    LogicalProcessor& p = lp(v);
    NestedVmx& n = *v.m_nested;
    vmcs::Vmcs& v12 = n.vmcs12;
    p.step(Cost::KvmNestedEmulation, "nested_vmx_vmexit: prepare_vmcs12, load L1's host state",
           "vmx/nested.c", "kvm");
    // prepare_vmcs12: L2's state from vmcs02, the activity state from mp_state.
    if (p.current_context() != &n.vmcs02) p.vmptrld(n.vmcs02.vmcs_address);
    for (Field f : {Field::GuestRip, Field::GuestCsSelector, Field::GuestCsBase, Field::GuestRflags,
                    Field::GuestInterruptibilityInfo})
        v12.hw_write(f, p.vmread(f).value);
    ActivityState activity = ActivityState::Active;
    if (v.m_mp_state == MpState::Halted || n.l2_halted)
        activity = ActivityState::Hlt;
    else if (v.m_mp_state == MpState::InitReceived)
        activity = ActivityState::WaitForSipi;
    v12.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(activity));
    vmcs::record_exit_information(v12, reason, qualification, intr_info, instruction_length);
    const auto basic = static_cast<std::uint16_t>(reason & vmcs::kExitReasonBasicMask);
    n.guest_mode = false;
    n.run_pending = false;
    n.l2_halted = false;
    if (basic == static_cast<std::uint16_t>(ExitReason::InitSignal)) n.l2_reset = true;
    // load_vmcs12_host_state: L1 runs again, after its VMLAUNCH/VMRESUME, RFLAGS = 2.
    p.vmptrld(v.m_ctx.vmcs_address);
    p.vmwrite(Field::GuestRflags, kRflagsFixed);
    v.m_mp_state = MpState::Runnable;  // "in case we halted in L2"
    n.l1_exits.push_back(L1Exit{reason, qualification});
    ++m_platform.stats().counter("kvm.nested.l1_exits." + std::to_string(basic), "count",
                                 "VM exits L0 reflected or synthesized to L1, by basic reason");
}

// ====================================================================================
// INIT/SIPI while nested: kvm_apic_accept_events -> kvm_check_nested_events
// ====================================================================================
bool Kvm::kvm_check_nested_events(Vcpu& v) {
    NestedVmx& n = *v.m_nested;
    while (n.guest_mode) {
        NestedEventInput in;
        in.init_pending = v.m_pending_init;
        in.sipi_pending = v.m_pending_sipi;
        in.sipi_vector = v.m_sipi_vector;
        in.init_received = v.m_mp_state == MpState::InitReceived;
        in.block_nested_events = n.run_pending;
        const NestedEventDecision d = vmx_check_nested_events(in);
        if (d.clear_init) v.m_pending_init = false;
        if (d.clear_sipi) v.m_pending_sipi = false;
        switch (d.action) {
            case NestedEventAction::None:
                return true;
            case NestedEventAction::Busy:
                ++n.events_busy;
                return false;
            case NestedEventAction::InitVmExit:
                nested_vmx_vmexit(v, static_cast<std::uint32_t>(ExitReason::InitSignal), 0);
                break;
            case NestedEventAction::InitInWaitForSipi:
                ++n.init_in_wait_for_sipi;
                ++m_platform.stats().counter("kvm.nested.init_in_wait_for_sipi", "count",
                                             "INIT consumed without exit (L2 in wait-for-SIPI)");
                break;
            case NestedEventAction::SipiVmExit:
                nested_vmx_vmexit(v, static_cast<std::uint32_t>(ExitReason::Sipi), d.exit_qualification);
                break;
            case NestedEventAction::SipiIgnored:
                ++n.sipi_ignored;
                ++m_platform.stats().counter("kvm.nested.sipi_ignored", "count",
                                             "SIPI to a vCPU in L2 outside wait-for-SIPI: ignored, falls through");
                break;
        }
    }
    return true;
}

bool Kvm::nested_apic_accept_events(Vcpu& v) {
    if (!v.m_nested || !v.m_nested->vmxon) return false;  // not in VMX operation: plain path
    NestedVmx& n = *v.m_nested;
    if (n.guest_mode && !kvm_check_nested_events(v)) return true;  // -EBUSY: retried later
    // After the nested checks (and any exit to L1 they caused): in L1's VMX root
    // operation INIT is blocked (stays latched until L1 enters L2) and a SIPI is dropped.
    if (nested_init_blocked(v) && v.m_pending_sipi) {
        v.m_pending_sipi = false;
        ++n.sipi_dropped_in_root;
        ++m_platform.stats().counter("kvm.nested.sipi_dropped_in_root", "count",
                                     "SIPI dropped while INIT is blocked in L1's VMX root operation");
    }
    return true;
}

// ====================================================================================
// Running L2: vcpu_enter_guest from the entry on, with vmcs02 loaded
// ====================================================================================
int Kvm::nested_vcpu_run_l2(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    NestedVmx& n = *v.m_nested;
    // L1's own pending interrupts are not injected while L2 runs (docs/nested.md).
    p.local_irq_disable();
    v.m_mode = VcpuMode::InGuestMode;
    if (n.run_pending && (v.m_pending_init || v.m_pending_sipi)) {
        // Nested events were blocked by the pending entry: enter L2, then exit at once
        // (KVM's req_immediate_exit by a self-IPI) to deliver them.
        p.step(Cost::KvmSendIpiMask, "req_immediate_exit: self-IPI", "x86.c vcpu_enter_guest", "kvm");
        p.host_send_ipi(p.apic().apic_id(), kRescheduleVector);
    }
    p.step(Cost::KvmVmxVcpuRunPre, "vmx_vcpu_run: before VMRESUME (vmcs02)", "vmx.c vmx_vcpu_run", "kvm");
    const bool launched = n.vmcs02.vmcs.launch_state() == vmcs::LaunchState::Launched;
    spec_ctrl_before_entry(v);  // L2's SPEC_CTRL: the VM's guest value (docs/nested.md)
    const cpu::EntryResult r = launched ? p.vmresume() : p.vmlaunch();
    spec_ctrl_after_exit(v);
    n.run_pending = false;
    p.step(Cost::KvmVmxVcpuRunPost, "vmx_vcpu_run: after VM exit (vmcs02)", "vmx.c vmx_vcpu_run", "kvm");
    leave_guest_mode(v);
    switch (r.outcome) {
        case cpu::EntryOutcome::GuestFinished:
            throw cpu::SimulationError(n.vmcs02.name + ": an L2 program returned (L2 programs end with a VM "
                                       "exit their L1 handles, e.g. VMCALL)");
        case cpu::EntryOutcome::VmFailInvalid:
            throw cpu::SimulationError(n.vmcs02.name + ": VM entry to L2 failed (VMfailInvalid)");
        case cpu::EntryOutcome::VmFailValid:
            throw cpu::SimulationError(n.vmcs02.name + ": VM entry to L2 failed with VM-instruction error " +
                                       std::to_string(vmcs::error_number(r.error)) + ": " + r.failed_check);
        case cpu::EntryOutcome::Exited:
            break;
    }
    ++v.m_exits[r.exit.basic()];
    if (r.exit.reason & vmcs::kExitReasonEntryFailure)
        throw cpu::SimulationError(n.vmcs02.name + ": VM entry to L2 failed (exit reason " +
                                   std::to_string(r.exit.basic()) + "): " + r.failed_check);
    if (r.exit.basic() == static_cast<std::uint16_t>(ExitReason::ExternalInterrupt)) {
        p.step(Cost::KvmHandleExternalInterrupt, "handle_external_interrupt_irqoff", "vmx.c", "kvm");
        if (r.exit.intr_info & vmcs::kIntrInfoValid)
            p.run_host_handler(static_cast<std::uint8_t>(r.exit.intr_info & vmcs::kIntrInfoVectorMask));
    }
    p.step(Cost::KvmExitCommon, "exit common path: IRQs on, accounting, SRCU", "x86.c vcpu_enter_guest", "kvm");
    p.local_irq_enable();
    p.step(Cost::KvmHandleExitDispatch, "vmx_handle_exit: nested_vmx_reflect_vmexit", "vmx.c, vmx/nested.c",
           "kvm");
    nested_handle_l2_exit(v, r.exit);
    return 1;
}

// nested_vmx_reflect_vmexit, then L0's own handlers for what L1 does not want.
void Kvm::nested_handle_l2_exit(Vcpu& v, const cpu::VmExit& e) {
    LogicalProcessor& p = lp(v);
    NestedVmx& n = *v.m_nested;
    cpu::GuestContext& g = n.vmcs02;  // L2's registers and decoded access
    auto reflect = [&] { nested_vmx_vmexit(v, e.reason, e.qualification, e.intr_info, e.instruction_length); };
    switch (static_cast<ExitReason>(e.basic())) {
        case ExitReason::ExternalInterrupt:
            return;  // a physical interrupt: L0's (handled with IRQs off)
        case ExitReason::Hlt:
            if (n.vmcs12.hw_read(Field::CpuBasedVmExecControl) & vmcs::kPrimaryHltExiting) return reflect();
            p.step(Cost::KvmHandleHlt, "kvm_emulate_halt (L2; L1 does not intercept HLT)", "x86.c", "kvm");
            skip_emulated_instruction(v);
            if (!kvm_vcpu_has_events(v)) {
                v.m_mp_state = MpState::Halted;
                n.l2_halted = true;
            }
            return;
        case ExitReason::Rdmsr:
        case ExitReason::Wrmsr: {
            const bool write = e.basic() == static_cast<std::uint16_t>(ExitReason::Wrmsr);
            const auto msr = static_cast<std::uint32_t>(g.regs.rcx);
            if (nested_exit_handled_msr(v, msr, write)) return reflect();
            // L1 passes the MSR through: it is the vCPU's own, e.g. the x2APIC ICR of the
            // local APIC L1 does not monitor (kvm_x2apic_icr_write -> kvm_apic_send_ipi).
            emulate_x2apic_msr(v, write, write ? "kvm_emulate_wrmsr -> kvm_set_msr_common (L2)" : "kvm_emulate_rdmsr (L2)");
            return;
        }
        case ExitReason::ApicAccess:
        case ExitReason::EptMisconfig: {
            // L2's access to the APIC page, which L1 maps to its own local APIC: L0
            // emulates it on the vCPU's APIC (kvm_emulate_instruction -> MMIO).
            emulate_apic_mmio(v, "kvm_emulate_instruction (L2 MMIO to the APIC)");
            return;
        }
        default:
            // CPUID, VMCALL, VMX instructions, ...: exits L1 always gets.
            return reflect();
    }
}

// nested_vmx_exit_handled_msr: whether L1 intercepts the MSR access (vmcs12's MSR bitmap,
// read from L1's memory; without MSR bitmaps every access exits to L1).
bool Kvm::nested_exit_handled_msr(Vcpu& v, std::uint32_t msr, bool write) {
    const vmcs::Vmcs& v12 = v.m_nested->vmcs12;
    if (!(v12.hw_read(Field::CpuBasedVmExecControl) & vmcs::kPrimaryUseMsrBitmaps)) return true;
    const auto where = vmcs::msr_bitmap_bit(msr, write);
    if (!where) return true;
    std::uint8_t byte = 0;
    m_platform.memory().peek(v.vm().gpa_to_hpa(v12.hw_read(Field::MsrBitmap) + where->byte), &byte, 1);
    return ((byte >> where->bit) & 1u) != 0;
}

}  // namespace vtx::vmm
