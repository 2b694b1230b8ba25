// APIC virtualization (SDM16 29): IPI virtualization (new SDM 30.1.6), the APIC-access page and
// APIC-write emulation, TPR/EOI/self-IPI virtualization, and the x2APIC MSR accesses that
// "virtualize x2APIC mode" handles with the MSR bitmaps.
#include "cpu/logical_processor.hpp"


#include "cpu/flow_encodings.hpp"
#include "cpu/platform.hpp"
#include "model/x86.hpp"
#include "pid/descriptor.hpp"
#include "pid/pid_table.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/msr_bitmap.hpp"

namespace vtx::cpu {

namespace {
// Offsets of the APIC-access page whose writes are virtualized with APIC-register
// virtualization (SDM16 29.4.3.1, reference 4.1): the low 4 bytes of these slots.
bool apic_reg_virt_write_offset(std::uint32_t off) {
    switch (off & ~kApicSlotMask) {
        case 0x020: case 0x080: case 0x0B0: case 0x0D0: case 0x0E0: case 0x0F0:
        case 0x280: case 0x300: case 0x310: case 0x380: case 0x3E0:
            return true;
        default:
            return (off & ~kApicSlotMask) >= 0x320 && (off & ~kApicSlotMask) <= 0x370;
    }
}
// Reads virtualized with APIC-register virtualization (SDM16 29.4.2).
bool apic_reg_virt_read_offset(std::uint32_t off) {
    const std::uint32_t slot = off & ~kApicSlotMask;
    if (slot >= 0x100 && slot <= 0x270) return true;  // ISR, TMR, IRR
    return apic_reg_virt_write_offset(off) || slot == 0x030;
}
}  // namespace

// ====================================================================================
// IPI virtualization (new SDM 30.1.6, reference 5.3)
// ====================================================================================
bool LogicalProcessor::virtualize_ipi(GuestContext& g, std::uint8_t vector, std::uint32_t apic_id) {
    vmcs::Vmcs& v = g.vmcs;
    step(Cost::VmxIpivMicrocode, "IPI virtualization", "SDM 30.1.6");
    auto decline = [&](const char* why) {
        trace("vmx", why, "SDM 30.1.6", 0);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), kVapicIcrLo);
        return false;
    };
    // Step 1: illegal vector.
    if (vector < apic::kFirstValidVector) return decline("IPIv step 1: vector < 16: APIC-write exit");
    // Step 2: bound check against the last PID-pointer index.
    if (apic_id > v.hw_read(Field::LastPidPointerIndex))
        return decline("IPIv step 2: APIC ID beyond last PID-pointer index: APIC-write exit");
    // Step 3: read the 8-byte PID-pointer table entry.
    const std::uint64_t table = v.hw_read(Field::PidPointerTable);
    const pid::PidTableEntry entry{
        m_port.read64(table + std::uint64_t{apic_id} * pid::kPidTableEntryBytes)};
    trace("vmx", "IPIv step 3: read PID-pointer table entry", "SDM 30.1.6", 0);
    // Step 4: the entry must be valid, reserved bits clear, within the address width.
    if (!entry.usable(m_platform.profile().features.physical_address_width))
        return decline("IPIv step 4: PID-pointer entry not usable: APIC-write exit");
    pid::PostedInterruptDescriptor desc(m_port, entry.descriptor_address());
    // Step 5: first locked RMW: PIR[V] := 1.
    desc.ipiv_set_pir(vector);
    trace("vmx", "IPIv step 5: set PIR bit (locked RMW)", "SDM 30.1.6", 0);
    // Step 6: second locked RMW: ON := 1 and notify iff ON = 0 and SN = 0.
    const pid::IpivNotification n = desc.ipiv_update_notification();
    trace("vmx", n.send_notify ? "IPIv step 6: ON := 1, notify" : "IPIv step 6: no notification",
          "SDM 30.1.6", 0);
    ++m_stat_ipiv_virtualized;
    // Step 7: the notification, an ordinary physical IPI through this processor's APIC.
    if (n.send_notify) {
        if (InterruptObserver* o = m_platform.interrupt_observer())
            o->notification_sent(entry.descriptor_address(), n.nv, now_cycles());
        send_notification(n.nv, n.ndst);
    }
    return true;
}

void LogicalProcessor::send_notification(std::uint8_t nv, std::uint32_t ndst) {
    ++m_notifications_sent;
    if (m_platform.timeline().enabled())
        m_platform.timeline().instant(now_cycles(), m_index, "IPIv notification", "ipiv", {{"nv", nv}, {"ndst", ndst}});
    ++m_stat_notifications_sent;
    sync_point();
    if (m_apic->x2apic_mode()) {
        const auto r = m_apic->wrmsr(apic::kX2ApicMsrIcr, (std::uint64_t{ndst} << kX2apicIcrDestShift) | nv, annotation());
        charge_cycles(r.cycles);
    } else {
        const std::uint32_t dest = pid::apic_id_from_ndst(ndst, false);
        charge_cycles(m_apic->mmio_write(kVapicIcrHi, dest << kXapicIcrDestShift, annotation()).cycles);
        charge_cycles(m_apic->mmio_write(kVapicIcrLo, nv, annotation()).cycles);
    }
}

// ====================================================================================
// APIC-access page (SDM 29.4) and APIC-write emulation (29.4.3.2)
// ====================================================================================
bool LogicalProcessor::apic_access_mmio(GuestContext& g, std::uint32_t offset, unsigned size,
                                        bool write, std::uint64_t& value, std::uint64_t start_rip,
                                        unsigned length) {
    const bool tpr_shadow = primary() & vmcs::kPrimaryUseTprShadow;
    const std::uint32_t sec = secondary();
    const bool vid = sec & vmcs::kSecondaryVirtualInterruptDelivery;
    const bool reg_virt = sec & vmcs::kSecondaryApicRegisterVirtualization;
    const bool ipiv = tertiary() & vmcs::kTertiaryIpiVirt;
    const bool in_low_dword = (offset & kApicSlotMask) + size <= 4;
    bool virtualize = false;
    if (tpr_shadow && size <= 4 && in_low_dword) {
        const std::uint32_t slot = offset & ~kApicSlotMask;
        if (write)
            virtualize = slot == kVapicTpr || (vid && (slot == kVapicEoi || slot == kVapicIcrLo)) ||
                         (ipiv && slot == kVapicIcrLo) || (reg_virt && apic_reg_virt_write_offset(offset));
        else  // SDM16 29.4.2: without APIC-register virtualization only the TPR is read
            virtualize = reg_virt ? apic_reg_virt_read_offset(offset) : slot == kVapicTpr;
    }
    if (!virtualize) {
        // APIC-access VM exit: fault-like, qualification = offset | access type.
        const auto type = write ? vmcs::ApicAccessType::LinearWrite : vmcs::ApicAccessType::LinearRead;
        g.mmio = DecodedMmio{true, write, kGuestApicBase + offset, size, write ? value : 0};
        set_rip(g, start_rip);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicAccess),
                offset | (static_cast<std::uint64_t>(type) << vmcs::kApicAccessTypeShift), 0, length);
        return false;
    }
    step(Cost::VmxApicAccessVirt, write ? "virtualized write to the APIC-access page"
                                        : "virtualized read of the APIC-access page",
         write ? "SDM 29.4.3" : "SDM 29.4.2");
    VirtualApicPage page = vapic();
    if (!write) {
        value = page.read32(offset & ~3u) >> (8 * (offset & 3u));
        advance_rip(g, length);
        return true;
    }
    page.write32(offset & ~3u, static_cast<std::uint32_t>(value));
    advance_rip(g, length);  // the write completes; APIC-write emulation follows
    return apic_write_emulation(g, offset & ~kApicSlotMask);
}

bool LogicalProcessor::apic_write_emulation(GuestContext& g, std::uint32_t offset) {
    vmcs::Vmcs& v = g.vmcs;
    step(Cost::VmxApicWriteEmulation, "APIC-write emulation", "SDM 29.4.3.2");
    const bool vid = secondary() & vmcs::kSecondaryVirtualInterruptDelivery;
    VirtualApicPage page = vapic();
    auto apic_write_exit = [&](std::uint32_t off) {
        trace("vmx", "APIC-write VM exit (trap-like)", "SDM 29.4.3.3", 0);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), off);
        return false;
    };
    switch (offset) {
        case kVapicTpr:
            page.write32(kVapicTpr, page.read32(kVapicTpr) & 0xFF);  // clear bytes 3:1
            return tpr_virtualization_flow(g);
        case kVapicEoi:
            if (!vid) return apic_write_exit(offset);
            page.write32(kVapicEoi, 0);
            return eoi_virtualization_flow(g);
        case kVapicIcrLo: {
            const std::uint32_t icr_lo = page.read32(kVapicIcrLo);
            if ((tertiary() & vmcs::kTertiaryIpiVirt) && icr_qualifies_for_ipiv(icr_lo)) {
                const std::uint32_t dest = page.read32(kVapicIcrHi) >> kXapicIcrDestShift;
                return virtualize_ipi(g, static_cast<std::uint8_t>(icr_lo & 0xFF), dest);
            }
            if (vid && vicr_is_self_ipi(icr_lo)) {
                self_ipi_virtualization_flow(g, static_cast<std::uint8_t>(icr_lo & 0xFF));
                return true;
            }
            return apic_write_exit(offset);
        }
        case kVapicIcrHi:
            page.write32(kVapicIcrHi, page.read32(kVapicIcrHi) & 0xFF000000u);  // clear bytes 2:0
            return true;
        default:
            (void)v;
            return apic_write_exit(offset);
    }
}

bool LogicalProcessor::tpr_virtualization_flow(GuestContext& g) {
    step(Cost::VmxTprVirt, "TPR virtualization", "SDM 29.1.2");
    VirtualApicPage page = vapic();
    if (!(secondary() & vmcs::kSecondaryVirtualInterruptDelivery)) {
        const auto threshold = g.vmcs.hw_read(Field::TprThreshold) & 0xF;
        if (((page.read32(kVapicTpr) >> 4) & 0xF) < threshold) {
            vm_exit(g, static_cast<std::uint32_t>(ExitReason::TprBelowThreshold), 0);
            return false;
        }
        return true;
    }
    step(Cost::VmxPprVirt, "PPR virtualization", "SDM 29.1.3");
    ppr_virtualization(g.vmcs, page);
    return true;  // evaluation happens at the next instruction boundary
}

bool LogicalProcessor::eoi_virtualization_flow(GuestContext& g) {
    step(Cost::VmxEoiVirt, "EOI virtualization", "SDM 29.1.4");
    VirtualApicPage page = vapic();
    const EoiVirtualizationResult r = eoi_virtualization(g.vmcs, page);
    if (r.eoi_exit) {
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::VirtualizedEoi), r.vector);
        return false;
    }
    return true;
}

void LogicalProcessor::self_ipi_virtualization_flow(GuestContext& g, std::uint8_t vector) {
    step(Cost::VmxSelfIpiVirt, "self-IPI virtualization", "SDM 29.1.5");
    VirtualApicPage page = vapic();
    self_ipi_virtualization(g.vmcs, page, vector);
}

// ====================================================================================
// MSR accesses (SDM 25.1.3, 29.5)
// ====================================================================================
bool LogicalProcessor::msr_bitmap_intercepts(std::uint32_t msr, bool write) const {
    if (!(primary() & vmcs::kPrimaryUseMsrBitmaps)) return true;
    const auto where = vmcs::msr_bitmap_bit(msr, write);
    if (!where) return true;
    std::uint8_t byte = 0;
    m_platform.memory().peek(vmcs().hw_read(Field::MsrBitmap) + where->byte, &byte, 1);
    return (byte >> where->bit) & 1u;
}

// WRMSR of an x2APIC MSR that the bitmap does not intercept, with virtualize x2APIC mode.
// Returns false if a VM exit happened; `handled` = the access was virtualized.
bool LogicalProcessor::x2apic_msr_write(GuestContext& g, std::uint32_t msr, std::uint64_t value,
                                        std::uint64_t start_rip, unsigned length, bool& handled) {
    handled = true;
    const bool vid = secondary() & vmcs::kSecondaryVirtualInterruptDelivery;
    const bool ipiv = tertiary() & vmcs::kTertiaryIpiVirt;
    const auto eax = static_cast<std::uint32_t>(value);
    const auto edx = static_cast<std::uint32_t>(value >> 32);
    VirtualApicPage page = vapic();
    auto gp = [&]() {
        set_rip(g, start_rip);
        deliver_guest_interrupt(g, x86::kVectorGp);
        return false;
    };
    if (msr == apic::kX2ApicMsrTpr) {
        if (edx || (eax & ~0xFFu)) return gp();
        step(Cost::VmxMsrVirt, "WRMSR 808H virtualized", "SDM 29.5");
        page.write64(kVapicTpr, value);
        advance_rip(g, length);
        return tpr_virtualization_flow(g);
    }
    if (msr == apic::kX2ApicMsrEoi && vid) {
        if (value) return gp();
        step(Cost::VmxMsrVirt, "WRMSR 80BH virtualized", "SDM 29.5");
        page.write64(kVapicEoi, 0);
        advance_rip(g, length);
        return eoi_virtualization_flow(g);
    }
    if (msr == apic::kX2ApicMsrSelfIpi && vid) {
        if (edx || (eax & ~0xFFu)) return gp();
        step(Cost::VmxMsrVirt, "WRMSR 83FH virtualized", "SDM 29.5");
        page.write64(kVapicSelfIpi, value);
        advance_rip(g, length);
        if (eax & 0xF0) {
            self_ipi_virtualization_flow(g, static_cast<std::uint8_t>(eax));
            return true;
        }
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), kVapicSelfIpi);
        return false;
    }
    if (msr == apic::kX2ApicMsrIcr && ipiv) {
        // New SDM 30.5: reserved-bit #GP, the 64-bit value to VICR, then the IPIv test.
        if (eax & kIcrReservedX2apic) return gp();
        step(Cost::VmxMsrVirt, "WRMSR 830H virtualized (IPI virtualization)", "SDM 30.5");
        page.write64(kVapicIcrLo, value);
        advance_rip(g, length);
        if (icr_qualifies_for_ipiv(eax))
            return virtualize_ipi(g, static_cast<std::uint8_t>(eax), edx);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), kVapicIcrLo);
        return false;
    }
    handled = false;  // operates normally: the physical x2APIC register
    return true;
}

bool LogicalProcessor::x2apic_msr_read(GuestContext& g, std::uint32_t msr, std::uint64_t& value,
                                       bool& handled) {
    handled = false;
    VirtualApicPage page = vapic();
    if (secondary() & vmcs::kSecondaryApicRegisterVirtualization) {
        step(Cost::VmxMsrVirt, "RDMSR of an x2APIC MSR virtualized", "SDM 29.5");
        value = page.read64((msr & 0xFF) << 4);
        handled = true;
    } else if (msr == apic::kX2ApicMsrTpr) {
        step(Cost::VmxMsrVirt, "RDMSR 808H virtualized", "SDM 29.5");
        value = page.read64(kVapicTpr);
        handled = true;
    }
    (void)g;
    return true;
}

}  // namespace vtx::cpu
