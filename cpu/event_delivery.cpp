// Event recognition at instruction boundaries (SDM 6.9 priorities, 26.2 / SDM16 25.2), delivery
// through the guest IDT, virtual-interrupt delivery (SDM16 29.2) and posted-interrupt
// processing (SDM16 29.6).
#include "cpu/logical_processor.hpp"


#include "cpu/flow_encodings.hpp"
#include "cpu/platform.hpp"
#include "model/x86.hpp"
#include "cpu/guest.hpp"
#include "pid/descriptor.hpp"
#include "vmcs/controls.hpp"

namespace vtx::cpu {

namespace {
std::uint32_t intr_info_external(std::uint8_t vector) {
    return vector | (static_cast<std::uint32_t>(vmcs::InterruptionType::ExternalInterrupt)
                     << vmcs::kIntrInfoTypeShift) |
           vmcs::kIntrInfoValid;
}
constexpr std::uint32_t kIntrInfoNmi =
    vmcs::kVectorNmi | (static_cast<std::uint32_t>(vmcs::InterruptionType::Nmi) << vmcs::kIntrInfoTypeShift) |
    vmcs::kIntrInfoValid;

bool blocked_by_nmi(std::uint64_t interruptibility) { return (interruptibility & vmcs::kBlockingByNmi) != 0; }
bool blocked_by_mov_ss(std::uint64_t interruptibility) { return (interruptibility & vmcs::kBlockingByMovSs) != 0; }

}  // namespace

// ====================================================================================
// Instruction boundary: event recognition and delivery (SDM 6.9 priorities, 25.2, 29.2)
// ====================================================================================
bool LogicalProcessor::recognize_events(GuestContext& g) {
    vmcs::Vmcs& v = g.vmcs;
    if (g.pending_injection >= 0) {
        const auto vec = static_cast<std::uint8_t>(g.pending_injection);
        g.pending_injection = -1;
        v.hw_write(Field::VmEntryIntrInfoField,
                   v.hw_read(Field::VmEntryIntrInfoField) & ~std::uint64_t{vmcs::kIntrInfoValid});
        trace("vmx", "VM entry: deliver injected event", "SDM 26.6", 0);
        // An injected NMI leaves NMI blocking (virtual-NMI blocking with "virtual NMIs")
        // in effect until IRET (SDM 27.6.1.2).
        if (g.pending_injection_nmi)
            v.hw_write(Field::GuestInterruptibilityInfo,
                       v.hw_read(Field::GuestInterruptibilityInfo) | vmcs::kBlockingByNmi);
        deliver_guest_interrupt(g, vec);
        return false;
    }
    if (m_tpr_threshold_exit_pending) {
        m_tpr_threshold_exit_pending = false;
        trace("vmx", "TPR threshold above VTPR after VM entry: VM exit", "SDM 26.7.7", 0);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::TprBelowThreshold), 0);
        return false;
    }
    for (;;) {
        const auto activity = static_cast<ActivityState>(v.hw_read(Field::GuestActivityState));
        // INIT: VM exit (reason 3), except in wait-for-SIPI where it is blocked (25.2).
        if (m_apic->init_pending() && activity != ActivityState::WaitForSipi) {
            m_apic->clear_init();
            trace("vmx", "INIT signal in VMX non-root: VM exit", "SDM 25.2", 0);
            vm_exit(g, static_cast<std::uint32_t>(ExitReason::InitSignal), 0);
            return false;
        }
        // SIPI: VM exit (reason 4) in wait-for-SIPI; discarded in any other state.
        if (m_apic->sipi_pending()) {
            const std::uint8_t vec = m_apic->sipi_vector();
            m_apic->clear_sipi();
            if (activity == ActivityState::WaitForSipi) {
                trace("vmx", "SIPI in wait-for-SIPI: VM exit", "SDM 25.2", 0);
                vm_exit(g, static_cast<std::uint32_t>(ExitReason::Sipi), vec & vmcs::kSipiVectorMask);
                return false;
            }
            trace("vmx", "SIPI outside wait-for-SIPI: discarded", "SDM 26.6.2", 0);
            continue;
        }
        if (activity == ActivityState::WaitForSipi || activity == ActivityState::Shutdown) {
            // External interrupts, NMIs (and INIT in wait-for-SIPI) are blocked.
            wait_for(m_apic->interrupt_event());
            sync_point();
            continue;
        }
        const std::uint64_t interruptibility = v.hw_read(Field::GuestInterruptibilityInfo);
        const bool sti_blocked = vmcs::blocked_by_sti_or_mov_ss(interruptibility);
        // NMI-window exiting (SDM 26.7.6): an exit before any instruction once there is no
        // virtual-NMI blocking and no blocking by STI or MOV SS.
        if ((primary() & vmcs::kPrimaryNmiWindowExiting) && !blocked_by_nmi(interruptibility) && !sti_blocked) {
            trace("vmx", "NMI window open: VM exit", "SDM 26.7.6", 0);
            vm_exit(g, static_cast<std::uint32_t>(ExitReason::NmiWindow), 0);
            return false;
        }
        // NMIs (SDM 26.2, 24.4.2): with "NMI exiting" a VM exit (reason 0, NMI interruption
        // information), held only by blocking by MOV SS (and, without "virtual NMIs", by
        // NMI blocking); otherwise delivered through the guest IDT, held by NMI blocking,
        // which the delivery sets and IRET clears.
        if (m_apic->nmi_pending() && !blocked_by_mov_ss(interruptibility)) {
            const bool nmi_exiting = pin() & vmcs::kPinNmiExiting;
            const bool virtual_nmis = pin() & vmcs::kPinVirtualNmis;
            if (nmi_exiting && (virtual_nmis || !blocked_by_nmi(interruptibility))) {
                m_apic->clear_nmi();
                step(Cost::VmxExternalInterruptExit, "NMI recognized: VM exit", "SDM 26.2");
                vm_exit(g, static_cast<std::uint32_t>(ExitReason::ExceptionOrNmi), 0, kIntrInfoNmi);
                return false;
            }
            if (!nmi_exiting && !blocked_by_nmi(interruptibility)) {
                m_apic->clear_nmi();
                trace("vmx", "NMI delivered through the guest IDT", "SDM 6.7", 0);
                if (activity == ActivityState::Hlt)
                    v.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
                v.hw_write(Field::GuestInterruptibilityInfo, interruptibility | vmcs::kBlockingByNmi);
                deliver_guest_interrupt(g, vmcs::kVectorNmi);
                return false;
            }
        }
        // Interrupt-window exiting (SDM 25.2): an exit as soon as interrupts are enabled.
        if ((primary() & vmcs::kPrimaryInterruptWindowExiting) && guest_if(g) && !sti_blocked) {
            vm_exit(g, static_cast<std::uint32_t>(ExitReason::InterruptWindow), 0);
            return false;
        }
        // Virtual-interrupt delivery ranks above external interrupts (SDM 29.2.2).
        if (secondary() & vmcs::kSecondaryVirtualInterruptDelivery) {
            VirtualApicPage page = vapic();
            const bool recognized = evaluate_pending_virtual_interrupts(v, page);
            if (recognized && guest_if(g) && !sti_blocked &&
                !(primary() & vmcs::kPrimaryInterruptWindowExiting)) {
                step(Cost::VmxEvaluatePending, "evaluate pending virtual interrupts: recognized",
                     "SDM 29.2.1");
                if (activity == ActivityState::Hlt)
                    v.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
                deliver_virtual_interrupt(g);
                return false;  // guest code ran: re-evaluate on the current processor
            }
        }
        // External interrupts (SDM 25.2, 29.6). Blocking by STI or by MOV SS holds them
        // for one instruction also when they cause VM exits (and so posted-interrupt
        // processing); RFLAGS.IF matters only when they do not.
        if (m_apic->intr_pending() && !sti_blocked) {
            if (pin() & vmcs::kPinExternalInterruptExiting) {
                step(Cost::VmxExternalInterruptExit, "external interrupt recognized", "SDM 25.2");
                const auto exit_ctl = v.hw_read(Field::VmExitControls);
                if (exit_ctl & vmcs::kExitAcknowledgeInterruptOnExit) {
                    const std::uint8_t vec = m_apic->acknowledge();
                    step(Cost::ApicInterruptAck, "acknowledge local APIC", "SDM 29.6 step 1", "apic");
                    if ((pin() & vmcs::kPinProcessPostedInterrupts) &&
                        vec == static_cast<std::uint8_t>(v.hw_read(Field::PostedIntrNv))) {
                        posted_interrupt_processing(g, vec);
                        continue;
                    }
                    vm_exit(g, static_cast<std::uint32_t>(ExitReason::ExternalInterrupt), 0,
                            intr_info_external(vec));
                    return false;
                }
                vm_exit(g, static_cast<std::uint32_t>(ExitReason::ExternalInterrupt), 0, 0);
                return false;
            }
            if (guest_if(g)) {
                // The guest owns the physical APIC (no external-interrupt exiting).
                const std::uint8_t vec = m_apic->acknowledge();
                step(Cost::ApicInterruptAck, "acknowledge local APIC", "SDM 10.8", "apic");
                if (activity == ActivityState::Hlt)
                    v.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
                deliver_guest_interrupt(g, vec);
                return false;
            }
        }
        if (activity == ActivityState::Hlt) {
            wait_for(m_apic->interrupt_event());
            sync_point();
            continue;
        }
        // User interrupts rank below every other event: UIF = 1 at CPL 3 with UIRR != 0.
        if (user_interrupt_pending(g)) {
            deliver_user_interrupt(g);
            return false;  // guest code ran: re-evaluate on the current processor
        }
        return true;
    }
}

void LogicalProcessor::deliver_virtual_interrupt(GuestContext& g) {
    step(Cost::VmxVirtualInterruptDelivery, "virtual-interrupt delivery", "SDM 29.2.2");
    VirtualApicPage page = vapic();
    const std::uint8_t vec = virtual_interrupt_delivery_update(g.vmcs, page);
    // New SDM 30.2.2 step 4: the user-interrupt notification vector is not delivered
    // through the IDT; it runs user-interrupt notification processing.
    if (uintr_notification_is(g, vec)) {
        uintr_notification_processing(g);
        return;
    }
    deliver_guest_interrupt(g, vec);
}

void LogicalProcessor::deliver_guest_interrupt(GuestContext& g, std::uint8_t vector) {
    step(Cost::GuestEventDelivery, "deliver through the guest IDT", "SDM 6.12", "guest");
    if (InterruptObserver* o = m_platform.interrupt_observer(); o && vector >= x86::kFirstExternalVector)
        o->interrupt_delivered(g, vector, now_cycles());
    ++g.delivered_interrupts;
    ++m_stat_interrupts_delivered;
    const GuestHandler* installed = g.idt.find(vector);
    if (!installed || !*installed)
        throw SimulationError(g.name + ": interrupt vector " + std::to_string(vector) +
                              " delivered with no guest IDT handler");
    // A copy: the handler may install handlers itself.
    const GuestHandler handler = *installed;
    const std::uint64_t rflags = g.vmcs.hw_read(Field::GuestRflags);
    // The delivery pushes RIP (the frame); the handler runs elsewhere; IRET pops it.
    const std::uint64_t outer_return_rip = g.return_rip;
    g.return_rip = rip(g);
    g.vmcs.hw_write(Field::GuestRflags, rflags & ~x86::kRflagsIf);  // interrupt gate
    // The handler saves and restores the registers it uses (as an ISR stub pushes and
    // pops them): the interrupted instruction's operands (e.g. WRMSR's ECX, EDX:EAX, set
    // before the boundary where the interrupt was taken) and its decoded MMIO access must
    // survive the handler's own instructions.
    const GuestRegisters saved_regs = g.regs;
    const DecodedMmio saved_mmio = g.mmio;
    handler(*g.api, vector);
    g.regs = saved_regs;
    g.mmio = saved_mmio;
    // IRET, on whichever processor the vCPU now runs.
    LogicalProcessor& lp = *g.lp;
    lp.step(Cost::GuestIret, "IRET", "SDM 6.14", "guest");
    lp.set_rip(g, g.return_rip);
    // IRET unblocks NMIs (and, with "virtual NMIs", virtual NMIs: SDM 26.3 / 25.3).
    if (const auto intr = g.vmcs.hw_read(Field::GuestInterruptibilityInfo); intr & vmcs::kBlockingByNmi)
        g.vmcs.hw_write(Field::GuestInterruptibilityInfo, intr & ~std::uint64_t{vmcs::kBlockingByNmi});
    g.return_rip = outer_return_rip;
    g.vmcs.hw_write(Field::GuestRflags, g.vmcs.hw_read(Field::GuestRflags) | (rflags & x86::kRflagsIf));
}

// ====================================================================================
// Posted-interrupt processing (SDM 29.6, reference 6.3)
// ====================================================================================
bool LogicalProcessor::posted_interrupt_processing(GuestContext& g, std::uint8_t vector) {
    vmcs::Vmcs& v = g.vmcs;
    step(Cost::VmxPostedInterruptProcessing, "posted-interrupt processing (notification vector)",
         "SDM 29.6");
    (void)vector;  // step 1-2: the acknowledged vector is the notification vector
    pid::PostedInterruptDescriptor desc(m_port, v.hw_read(Field::PostedIntrDescAddr));
    // Step 3: clear ON (locked AND).
    desc.clear_on();
    trace("pi", "step 3: clear PID.ON (locked)", "SDM 29.6", 0);
    // Step 4: EOI to the local APIC, dismissing the notification.
    m_apic->eoi();
    step(Cost::ApicEoi, "step 4: EOI to the local APIC", "SDM 29.6", "pi");
    // Step 5: OR the PIR into VIRR and clear PIR (one locked access).
    const pid::Pir pir = desc.fetch_and_clear_pir();
    trace("pi", "step 5: PIR -> VIRR, clear PIR (locked)", "SDM 29.6", 0);
    VirtualApicPage page = vapic();
    merge_pir_into_virr(v, page, pir.words.data());
    // Step 6: RVI := max(RVI, highest PIR vector) (done by merge_pir_into_virr).
    // Step 7: evaluate pending virtual interrupts (at the caller's next iteration).
    step(Cost::VmxEvaluatePending, "step 7: evaluate pending virtual interrupts", "SDM 29.6",
         "pi");
    ++m_stat_pi_processed;
    return true;
}

}  // namespace vtx::cpu
