// User interrupts (Intel SDM vol. 2 SENDUIPI, STUI, CLUI, UIRET; vol. 3 "User Interrupts";
// reference vtx-semantics.md 5.8): SENDUIPI and its notification, in VMX non-root operation
// with and without IPI virtualization; user-interrupt notification processing when
// virtual-interrupt delivery delivers UINV; recognition and delivery of a user interrupt;
// the IA32_UINTR_* MSRs of a guest that the VMM does not intercept. The points the sources
// leave open are named choices in docs/cpu-choices.md "User interrupts".
#include "cpu/logical_processor.hpp"

#include "cpu/flow_encodings.hpp"
#include "cpu/guest.hpp"
#include "cpu/platform.hpp"
#include "pid/layout.hpp"
#include "pid/user_interrupts.hpp"
#include "vmcs/controls.hpp"

namespace vtx::cpu {

bool LogicalProcessor::raise_exception(GuestContext& g, std::uint8_t vector) {
    // A fault: delivered through the guest IDT with RIP at the faulting instruction (the
    // guest's handler decides where to resume, as kvm-unit-tests' fixups do).
    deliver_guest_interrupt(g, vector);
    return false;
}

// ====================================================================================
// SENDUIPI (SDM vol. 2 "SENDUIPI", Operation; in VMX non-root operation: reference 5.8)
// ====================================================================================
bool LogicalProcessor::exec_senduipi(GuestContext& g, std::uint64_t index) {
    // #UD unless the processor has user interrupts, CR4.UINTR = 1 and the UITT is valid
    // (IA32_UINTR_TT[0]).
    if (!m_platform.profile().features.uintr || !(g.vmcs.hw_read(Field::GuestCr4) & x86::kCr4Uintr) ||
        !g.uintr.uitt_valid())
        return raise_exception(g, x86::kVectorUd);
    step(Cost::UintrSenduipi, "SENDUIPI", "SDM vol. 2 SENDUIPI", "guest");
    // Step 1: the index must lie within the UITT (UITTSZ + 1 entries).
    if (index > g.uintr.uittsz()) return raise_exception(g, x86::kVectorGp);
    // Step 2: the 16-byte UITT entry (supervisor accesses, whatever the CPL).
    const std::uint64_t entry_address = translate(g, g.uintr.uitt_address() + index * pid::kUittEntryBytes);
    const pid::UittEntry entry{m_port.read64(entry_address), m_port.read64(entry_address + 8)};
    trace("guest", "SENDUIPI step 2: read the UITT entry", "SDM vol. 2 SENDUIPI", 0);
    if (!entry.valid() || !entry.reserved_bits_clear()) return raise_exception(g, x86::kVectorGp);
    // Step 3, under lock: a UPID with reserved bits set is a #GP (and is left as it was);
    // otherwise PIR[UV] := 1, and ON := 1 with a notification iff ON = SN = 0. Two locked
    // operations, PIR first (as IPIv's steps 5 and 6), so that the notification's receiver
    // finds the bit.
    const std::uint64_t upid = translate(g, entry.upid_address());
    pid::UpidControl control{m_port.read64(upid)};
    if (!control.reserved_bits_clear()) return raise_exception(g, x86::kVectorGp);
    m_port.locked_bts(upid + pid::kUpidPirOffset, entry.uv());
    bool notify = false;
    for (;;) {
        if (control.on() || control.sn()) break;
        const std::uint64_t seen =
            m_port.locked_cmpxchg(upid, control.raw, control.raw | pid::UpidControl::kOn);
        if (seen == control.raw) {
            notify = true;
            break;
        }
        control.raw = seen;
    }
    trace("guest", notify ? "SENDUIPI step 3: PIR[UV] := 1, ON := 1, notify" : "SENDUIPI step 3: PIR[UV] := 1, no notification",
          "SDM vol. 2 SENDUIPI", 0);
    ++m_stat_uipis_sent;
    advance_rip(g, kLenSenduipi);
    if (!notify) return true;
    // Step 4: the notification, an ordinary IPI with vector NV to NDST (xAPIC: NDST[15:8]).
    const std::uint8_t nv = control.nv();
    if (m_non_root && (primary() & vmcs::kPrimaryUseTprShadow)) {
        // In VMX non-root operation the notification is a virtualized ICR write: vICR :=
        // the IPI, then IPI virtualization, or an APIC-write VM exit (trap-like, 300H) that
        // the VMM's x2APIC/xAPIC ICR emulation sends (reference 5.8).
        const bool x2apic = secondary() & vmcs::kSecondaryVirtualizeX2apicMode;
        const std::uint32_t dest = control.destination(x2apic);
        VirtualApicPage page = vapic();
        if (x2apic) {
            page.write64(kVapicIcrLo, (std::uint64_t{dest} << 32) | nv);
        } else {
            page.write32(kVapicIcrHi, dest << kXapicIcrDestShift);
            page.write32(kVapicIcrLo, nv);
        }
        trace("guest", "SENDUIPI step 4: notification to vICR", "vtx-semantics.md 5.8", 0);
        if (tertiary() & vmcs::kTertiaryIpiVirt) return virtualize_ipi(g, nv, dest);  // new SDM 30.7 (UNVERIFIED)
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), kVapicIcrLo);
        return false;
    }
    send_notification(nv, control.ndst());
    return true;
}

bool LogicalProcessor::exec_uif(GuestContext& g, bool set) {
    if (!m_platform.profile().features.uintr || !(g.vmcs.hw_read(Field::GuestCr4) & x86::kCr4Uintr))
        return raise_exception(g, x86::kVectorUd);
    step(Cost::UintrUif, set ? "STUI" : "CLUI", "SDM vol. 2 STUI/CLUI", "guest");
    g.uintr.uif = set;
    advance_rip(g, kLenUif);
    return true;
}

// ====================================================================================
// User-interrupt notification processing (SDM vol. 3 "User-Interrupt Notification
// Processing"; in virtual-interrupt delivery: new SDM 30.2.2, reference 3)
// ====================================================================================
bool LogicalProcessor::uintr_notification_is(const GuestContext& g, std::uint8_t vector) const {
    // CR4.UINTR = 1, IA32_EFER.LMA = 1 (an IA-32e mode guest) and the vector is UINV.
    return (g.vmcs.hw_read(Field::GuestCr4) & x86::kCr4Uintr) &&
           (g.vmcs.hw_read(Field::VmEntryControls) & vmcs::kEntryIa32eModeGuest) && vector == g.uintr.uinv();
}

void LogicalProcessor::uintr_notification_processing(GuestContext& g) {
    step(Cost::UintrNotification, "user-interrupt notification processing", "SDM vol. 3 user interrupts", "pi");
    const std::uint64_t upid = translate(g, g.uintr.pd);
    // Step 1: clear UPID.ON (locked AND: the rest of the descriptor untouched).
    m_port.locked_and(upid, ~pid::UpidControl::kOn);
    // Step 2: PIR into a temporary, PIR := 0 (locked XCHG: no posted bit is lost).
    const std::uint64_t pir = m_port.locked_xchg(upid + pid::kUpidPirOffset, 0);
    // Step 3: UIRR |= PIR: the user interrupts are recognized (delivered at a boundary).
    g.uintr.rr |= pir;
    trace("pi", "clear UPID.ON, PIR -> UIRR (locked)", "SDM vol. 3 user interrupts", 0);
    ++m_stat_uintr_notifications;
    // The notification occupies VISR[UINV] as any delivered virtual interrupt: it ends
    // with EOI virtualization (a named choice, docs/cpu-choices.md "User interrupts").
    eoi_virtualization_flow(g);
}

// ====================================================================================
// User-interrupt delivery and UIRET (SDM vol. 3 "User-Interrupt Delivery")
// ====================================================================================
void LogicalProcessor::deliver_user_interrupt(GuestContext& g) {
    step(Cost::UintrDelivery, "user-interrupt delivery", "SDM vol. 3 user interrupts", "guest");
    // UIRRV := the highest requested user vector; UIRR[UIRRV] := 0; UIF := 0; the frame
    // (RSP, RFLAGS, RIP, UIRRV) is pushed and RIP := UIHANDLER.
    const unsigned uirrv = 63u - static_cast<unsigned>(__builtin_clzll(g.uintr.rr));
    g.uintr.rr &= ~(std::uint64_t{1} << uirrv);
    g.uintr.uif = false;
    ++m_stat_user_interrupts;
    const auto it = g.user_handlers.find(g.uintr.handler);
    if (it == g.user_handlers.end() || !it->second)
        throw SimulationError(g.name + ": user interrupt " + std::to_string(uirrv) + " delivered to UIHANDLER " +
                              pid::hex_address(g.uintr.handler) + ", where no handler is installed");
    const UserInterruptHandler handler = it->second;  // a copy: the handler may install others
    const std::uint64_t outer_return_rip = g.return_rip;
    g.return_rip = rip(g);
    const GuestRegisters saved_regs = g.regs;
    handler(*g.api, static_cast<std::uint8_t>(uirrv));
    g.regs = saved_regs;
    // UIRET, on whichever processor the vCPU now runs: pops the frame, UIF := 1.
    LogicalProcessor& lp = *g.lp;
    lp.step(Cost::UintrUiret, "UIRET", "SDM vol. 2 UIRET", "guest");
    lp.set_rip(g, g.return_rip);
    g.return_rip = outer_return_rip;
    g.uintr.uif = true;
}

// ====================================================================================
// The IA32_UINTR_* MSRs (a guest's, when the VMM does not intercept them)
// ====================================================================================
bool LogicalProcessor::uintr_msr_access(GuestContext& g, std::uint32_t msr, bool write, std::uint64_t& value) {
    if (!m_platform.profile().features.uintr) return raise_exception(g, x86::kVectorGp);
    UintrState& u = g.uintr;
    std::uint64_t* reg = nullptr;
    std::uint64_t reserved = 0;
    switch (msr) {
        case x86::kMsrUintrRr: reg = &u.rr; break;
        case x86::kMsrUintrHandler: reg = &u.handler; break;
        case x86::kMsrUintrStackAdjust: reg = &u.stack_adjust; break;
        case x86::kMsrUintrMisc: reg = &u.misc; reserved = ~std::uint64_t{0} << 40; break;  // bits 63:40
        case x86::kMsrUintrPd: reg = &u.pd; reserved = 0x3F; break;                            // 64-byte aligned
        case x86::kMsrUintrTt: reg = &u.tt; reserved = 0xE; break;                             // bits 3:1
        default: return raise_exception(g, x86::kVectorGp);
    }
    charge(Cost::ApicMsrAccess);  // an MSR access of the core, as the x2APIC ones
    if (write) {
        if (value & reserved) return raise_exception(g, x86::kVectorGp);
        *reg = value;
    } else {
        value = *reg;
    }
    return true;
}

}  // namespace vtx::cpu
