// VM entry (SDM 27 / SDM16 26) and VM exit (SDM 28 / SDM16 27), and the hand-over of the
// processor between the VMM thread and a guest thread (docs/architecture.md).
#include "cpu/logical_processor.hpp"


#include "cpu/flow_encodings.hpp"
#include "cpu/platform.hpp"
#include "model/error.hpp"
#include "model/x86.hpp"
#include "cpu/guest.hpp"
#include "pid/pid_table.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/entry_checks.hpp"

namespace vtx::cpu {

// ====================================================================================
// VM entry (SDM 26)
// ====================================================================================
EntryResult LogicalProcessor::vm_entry(bool launch) {
    sync_point();
    EntryResult result;
    // 26.1 basic checks.
    if (!m_vmx_on || !m_current) {
        result.outcome = EntryOutcome::VmFailInvalid;
        return result;
    }
    GuestContext& g = *m_current;
    vmcs::Vmcs& v = g.vmcs;
    auto fail_valid = [&](vmcs::VmInstructionError e, std::string what = {}) {
        v.hw_write(Field::VmInstructionError, vmcs::error_number(e));
        result.outcome = EntryOutcome::VmFailValid;
        result.error = e;
        result.failed_check = std::move(what);
        return result;
    };
    step(Cost::VmxEntryChecks, launch ? "VMLAUNCH: basic checks" : "VMRESUME: basic checks",
         "SDM 26.1");
    if (launch && v.launch_state() != vmcs::LaunchState::Clear)
        return fail_valid(vmcs::VmInstructionError::VmlaunchNonClearVmcs);
    if (!launch && v.launch_state() != vmcs::LaunchState::Launched)
        return fail_valid(vmcs::VmInstructionError::VmresumeNonLaunchedVmcs);
    // 26.2 checks on VMX controls (error 7).
    const vmcs::VtprReader read_vtpr = [this](std::uint64_t pa) {
        std::uint8_t b = 0;
        m_platform.memory().peek(pa, &b, 1);
        return b;
    };
    if (auto f = vmcs::check_vmx_controls(v, capabilities(), read_vtpr)) {
        trace("vmx", "VM entry fails: invalid control field", "SDM 26.2.1", 0);
        return fail_valid(vmcs::VmInstructionError::EntryInvalidControlField,
                          std::string(f->name) + " (" + std::string(f->sdm_section) + ")");
    }
    // 26.3 checks on the guest state (failure: VM exit with bit 31 set, reason 33).
    if (auto gf = vmcs::check_guest_activity_state(v, capabilities())) {
        step(Cost::VmxExitLoadHost, "VM entry fails: invalid guest state; load host state",
             "SDM 26.7");
        v.set_exit_info(Field::VmExitReason, gf->exit_reason);
        v.set_exit_info(Field::ExitQualification, gf->exit_qualification);
        result.outcome = EntryOutcome::Exited;
        result.exit.reason = gf->exit_reason;
        result.exit.qualification = gf->exit_qualification;
        result.failed_check = std::string(gf->name) + " (" + std::string(gf->sdm_section) + ")";
        count_exit(result.exit.basic());
        return result;
    }
    // 26.3.2 load guest state.
    step(Cost::VmxEntryLoadGuest, "VM entry: load guest state", "SDM 26.3.2");
    v.set_launch_state(vmcs::LaunchState::Launched);
    m_non_root = true;
    // 26.3.2.5 / 29.1.3: with virtual-interrupt delivery, RVI/SVI come from the guest
    // interrupt status, then PPR virtualization; evaluation of pending virtual interrupts
    // happens at the first instruction boundary (event_window).
    if (secondary() & vmcs::kSecondaryVirtualInterruptDelivery) {
        step(Cost::VmxEntryVirtualApic, "VM entry: load RVI/SVI, PPR virtualization",
             "SDM 26.3.2.5, 29.1.3");
        VirtualApicPage page = vapic();
        ppr_virtualization(v, page);
    }
    // 26.6 event injection: a valid VM-entry interruption-information field delivers the
    // event through the guest IDT before any instruction; a vectoring entry ends active.
    const auto entry_info = v.hw_read(Field::VmEntryIntrInfoField);
    if (entry_info & vmcs::kIntrInfoValid) {
        g.pending_injection = static_cast<int>(entry_info & vmcs::kIntrInfoVectorMask);
        g.pending_injection_nmi = vmcs::interruption_type(static_cast<std::uint32_t>(entry_info)) ==
                                  vmcs::InterruptionType::Nmi;
        v.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
    }
    // 26.7.7 (SDM16 26.6.7) VM exits induced by the TPR threshold: with "use TPR shadow"
    // and "virtualize APIC accesses" 1 and virtual-interrupt delivery 0, a TPR-below-
    // threshold VM exit occurs immediately after VM entry (after any event injection) if
    // TPR threshold[3:0] > VTPR[7:4]. (With "virtualize APIC accesses" 0 the entry checks
    // rule that case out.)
    {
        const std::uint32_t sec = secondary();
        if ((primary() & vmcs::kPrimaryUseTprShadow) && (sec & vmcs::kSecondaryVirtualizeApicAccesses) &&
            !(sec & vmcs::kSecondaryVirtualInterruptDelivery)) {
            const auto threshold = v.hw_read(Field::TprThreshold) & vmcs::kTprThresholdMask;
            m_tpr_threshold_exit_pending = threshold > ((vapic().read32(kVapicTpr) >> 4) & 0xF);
        } else {
            m_tpr_threshold_exit_pending = false;
        }
    }
    // Hand the processor to the guest thread; control returns here at the next VM exit.
    g.lp = this;
    m_guest_finished = false;
    if (m_platform.timeline().enabled()) m_platform.timeline().begin(now_cycles(), m_index, g.name, "guest");
    if (g.restart_requested) {
        // A reset vCPU: unwind the abandoned program's thread (SystemC process control)
        // and start over where the VMCS now points.
        g.restart_requested = false;
        if (g.thread_started && g.thread.valid() && !g.thread.terminated()) g.thread.kill();
        g.thread_started = false;
        g.pending_injection = -1;
    }
    if (!g.thread_started)
        start_guest_thread(g);
    else
        g.resume_event.notify(sc_core::SC_ZERO_TIME);
    sc_core::wait(m_exit_event);
    if (m_guest_finished) {
        result.outcome = EntryOutcome::GuestFinished;
        return result;
    }
    result.outcome = EntryOutcome::Exited;
    result.exit = m_last_exit;
    return result;
}

void LogicalProcessor::start_guest_thread(GuestContext& g) {
    g.thread_started = true;
    if (!g.api) g.api = std::make_unique<GuestCpu>(g);
    sc_core::sc_spawn_options opts;
    opts.set_stack_size(256 * 1024);
    GuestContext* gp = &g;
    std::string name = g.name + "_guest";
    for (char& ch : name)
        if (ch == '.') ch = '_';
    g.thread = sc_core::sc_spawn([this, gp]() { model::keep_input_error_kind([&] { guest_thread_body(gp); }); },
                                 sc_core::sc_gen_unique_name(name.c_str()), &opts);
}

void LogicalProcessor::guest_thread_body(GuestContext* gp) {
    GuestContext& g = *gp;
    // An inactive activity state at entry: wait for the event that activates it.
    while (!g.lp->event_window(g)) {
    }
    const std::uint64_t linear = g.vmcs.hw_read(Field::GuestCsBase) + g.vmcs.hw_read(Field::GuestRip);
    GuestProgram program = g.code ? g.code(linear) : GuestProgram{};
    if (!program)
        throw SimulationError(g.name + ": no guest code at linear address " +
                              pid::hex_address(linear));
    program(*g.api);
    // The guest program returned: the VM has nothing left to run on this vCPU.
    LogicalProcessor& lp = *g.lp;
    lp.sync_point();
    g.finished = true;
    lp.m_platform.timeline().end(lp.now_cycles(), lp.m_index);
    lp.m_guest_finished = true;
    lp.m_non_root = false;
    lp.m_exit_event.notify(sc_core::SC_ZERO_TIME);
}

// ====================================================================================
// VM exit (SDM 27)
// ====================================================================================
void LogicalProcessor::vm_exit(GuestContext& g, std::uint32_t reason, std::uint64_t qualification,
                               std::uint32_t intr_info, std::uint32_t length) {
    vmcs::Vmcs& v = g.vmcs;
    // 27.2 record information about the VM exit.
    step(Cost::VmxExitSaveGuest, "VM exit: record exit information, save guest state",
         "SDM 27.2, 27.3");
    vmcs::record_exit_information(v, reason, qualification, intr_info, length);
    // 27.5 load host state; INIT is blocked again in root operation.
    step(Cost::VmxExitLoadHost, "VM exit: load host state", "SDM 27.5");
    m_non_root = false;
    const auto basic = static_cast<std::uint16_t>(reason & vmcs::kExitReasonBasicMask);
    count_exit(basic);
    m_last_exit = VmExit{reason, qualification, intr_info, length};
    if (m_platform.timeline().enabled()) {
        m_platform.timeline().end(now_cycles(), m_index);
        m_platform.timeline().instant(now_cycles(), m_index,
                                      "VM exit " + std::string(vmcs::exit_reason_name(static_cast<vmcs::ExitReason>(basic))),
                                      "vmx", {{"reason", basic}, {"qualification", qualification}});
    }
    m_exit_event.notify(sc_core::SC_ZERO_TIME);
    // The guest thread sleeps until the VMM enters this context again (possibly on
    // another processor).
    sc_core::wait(g.resume_event);
}

}  // namespace vtx::cpu
