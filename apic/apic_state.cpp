#include "apic/apic_state.hpp"

#include <algorithm>

namespace vtx::apic {

// ---------------------------------------------------------------- VectorBits


const char* apic_mode_name(ApicMode m) {
    switch (m) {
        case ApicMode::Disabled: return "disabled";
        case ApicMode::XApic: return "xAPIC";
        case ApicMode::X2Apic: return "x2APIC";
    }
    return "?";
}

const char* accept_outcome_name(AcceptOutcome o) {
    switch (o) {
        case AcceptOutcome::Accepted: return "accepted";
        case AcceptOutcome::Coalesced: return "coalesced";
        case AcceptOutcome::NmiLatched: return "NMI latched";
        case AcceptOutcome::InitLatched: return "INIT latched";
        case AcceptOutcome::StartUpLatched: return "SIPI latched";
        case AcceptOutcome::SmiLatched: return "SMI latched";
        case AcceptOutcome::RejectedHardwareDisabled: return "rejected (hardware disabled)";
        case AcceptOutcome::RejectedSoftwareDisabled: return "rejected (software disabled)";
        case AcceptOutcome::RejectedIllegalVector: return "rejected (illegal vector)";
        case AcceptOutcome::Ignored: return "ignored";
    }
    return "?";
}

bool is_accepted(AcceptOutcome o) {
    switch (o) {
        case AcceptOutcome::Accepted:
        case AcceptOutcome::Coalesced:
        case AcceptOutcome::NmiLatched:
        case AcceptOutcome::InitLatched:
        case AcceptOutcome::StartUpLatched:
        case AcceptOutcome::SmiLatched: return true;
        default: return false;
    }
}

// ---------------------------------------------------------------- construction, reset

ApicState::ApicState(std::uint32_t initial_apic_id, bool bsp, unsigned max_phys_addr)
    : m_bsp(bsp),
      m_max_phys_addr(max_phys_addr),
      m_x2apic_id(initial_apic_id),
      m_xapic_id(static_cast<std::uint8_t>(initial_apic_id & kXApicIdMask)) {
    reset_registers();
}

void ApicState::reset_registers() {
    // 11.12.5.1: IRR, ISR, TMR, ICR, LDR, TPR, divide configuration, timer counts zero;
    // LVTs masked; SVR 000000FFH; DFR all ones; ESR clear. The version register is fixed.
    m_tpr = 0;
    m_ldr = 0;
    m_dfr = kDfrResetValue;
    m_svr = kSvrResetValue;
    m_irr.reset();
    m_isr.reset();
    m_tmr.reset();
    m_esr = 0;
    m_esr_pending = 0;
    m_lvt.fill(kLvtResetValue);
    m_icr = 0;
    m_timer_initial = m_timer_current = m_timer_divide = 0;
}

void ApicState::init_reset() { reset_registers(); }

// ---------------------------------------------------------------- IA32_APIC_BASE

std::uint64_t ApicState::apic_base() const {
    std::uint64_t v = m_base_address;
    if (m_bsp) v |= kApicBaseBsp;
    if (m_mode != ApicMode::Disabled) v |= kApicBaseGlobalEnable;
    if (m_mode == ApicMode::X2Apic) v |= kApicBaseX2ApicEnable;
    return v;
}

WriteResult ApicState::write_apic_base(std::uint64_t value) {
    WriteResult r;
    const std::uint64_t reserved_high =
        m_max_phys_addr >= 64 ? 0 : ~((1ull << m_max_phys_addr) - 1);
    const bool en = value & kApicBaseGlobalEnable;
    const bool extd = value & kApicBaseX2ApicEnable;
    const ApicMode next = !en ? ApicMode::Disabled : extd ? ApicMode::X2Apic : ApicMode::XApic;
    const bool illegal =
        (value & (kApicBaseReservedLow | reserved_high)) != 0 ||
        (!en && extd) ||                                                    // invalid state
        (m_mode == ApicMode::X2Apic && next == ApicMode::XApic) ||          // 11.12.5
        (m_mode == ApicMode::Disabled && next == ApicMode::X2Apic);
    if (illegal) {
        r.status = AccessStatus::GeneralProtection;
        return r;
    }
    m_bsp = value & kApicBaseBsp;
    m_base_address = value & ~((1ull << kApicBaseAddressShift) - 1) & ~reserved_high;
    if (next != m_mode) {
        r.mode_changed = true;
        // Entering the disabled state loses all register state but the IDs (11.12.5.1:
        // the x2APIC ID and the legacy xAPIC ID are preserved). xAPIC -> x2APIC keeps the
        // registers; the x2APIC ID and the derived LDR take over.
        if (next == ApicMode::Disabled) reset_registers();
        m_mode = next;
    }
    return r;
}

bool ApicState::software_enabled() const {
    return hardware_enabled() && (m_svr & kSvrApicSoftwareEnable) != 0;
}

// ---------------------------------------------------------------- IDs

std::uint32_t ApicState::apic_id() const {
    return m_mode == ApicMode::X2Apic ? m_x2apic_id : m_xapic_id;
}

std::uint32_t ApicState::ldr() const {
    return m_mode == ApicMode::X2Apic ? x2apic_ldr_of(m_x2apic_id) : m_ldr;
}

DestinationView ApicState::destination_view() const {
    DestinationView v;
    v.apic_id = apic_id();
    v.x2apic = x2apic_mode();
    v.ldr = ldr();
    v.dfr_model = m_dfr >> kDfrModelShift;
    v.hardware_enabled = hardware_enabled();
    v.software_enabled = software_enabled();
    v.ppr = ppr();
    return v;
}

// ---------------------------------------------------------------- priorities

std::uint8_t ApicState::ppr() const {
    // 11.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4]:0000.
    const std::uint32_t isrv = m_isr.highest().value_or(0);
    if ((m_tpr >> kPriorityClassShift) >= (isrv >> kPriorityClassShift)) return m_tpr;
    return static_cast<std::uint8_t>(isrv & kPriorityClassMask);
}

std::uint8_t ApicState::apr() const {
    // 11.6.2.4 (arbitration priority): APR = TPR if TPR[7:4] >= IRRV[7:4] and
    // TPR[7:4] > ISRV[7:4]; else the highest of TPR, ISRV and IRRV classes, low nibble 0.
    const std::uint32_t tpr_class = m_tpr >> kPriorityClassShift;
    const std::uint32_t isrv_class = m_isr.highest().value_or(0) >> kPriorityClassShift;
    const std::uint32_t irrv_class = m_irr.highest().value_or(0) >> kPriorityClassShift;
    if (tpr_class >= irrv_class && tpr_class > isrv_class) return m_tpr;
    return static_cast<std::uint8_t>(std::max({tpr_class, isrv_class, irrv_class})
                                     << kPriorityClassShift);
}

bool ApicState::has_deliverable_irr() const {
    if (!software_enabled()) return false;
    const auto v = m_irr.highest();
    return v && (*v >> kPriorityClassShift) > (ppr() >> kPriorityClassShift);
}

std::uint8_t ApicState::acknowledge() {
    if (!has_deliverable_interrupt()) return spurious_vector();  // 11.9: no ISR bit set
    const std::uint8_t v = *m_irr.highest();
    m_irr.clear(v);
    m_isr.set(v);
    return v;
}

std::optional<EoiResult> ApicState::eoi() {
    const auto v = m_isr.highest();
    if (!v) return std::nullopt;
    m_isr.clear(*v);
    EoiResult r;
    r.vector = *v;
    r.level_triggered = m_tmr.test(*v);
    r.broadcast = r.level_triggered && (m_svr & kSvrEoiBroadcastSuppression) == 0;
    return r;
}

// ---------------------------------------------------------------- receiving

void ApicState::set_irr(std::uint8_t vector, TriggerMode trigger) {
    m_irr.set(vector);
    // 11.8.4: on acceptance, TMR is cleared for edge-triggered and set for level-triggered.
    if (trigger == TriggerMode::Level)
        m_tmr.set(vector);
    else
        m_tmr.clear(vector);
}

AcceptOutcome ApicState::accept_fixed(std::uint8_t vector, TriggerMode trigger) {
    if (!software_enabled()) return AcceptOutcome::RejectedSoftwareDisabled;
    if (vector < kFirstValidVector) {
        record_error(kEsrReceivedIllegalVector);
        return AcceptOutcome::RejectedIllegalVector;
    }
    if (m_irr.test(vector)) return AcceptOutcome::Coalesced;
    set_irr(vector, trigger);
    return AcceptOutcome::Accepted;
}

AcceptOutcome ApicState::accept(const InterruptMessage& msg) {
    if (!hardware_enabled()) return AcceptOutcome::RejectedHardwareDisabled;
    // A software-disabled APIC still takes NMI, SMI, INIT and SIPI (11.4.7.2).
    switch (msg.delivery_mode) {
        case DeliveryMode::Fixed:
        case DeliveryMode::LowestPriority: return accept_fixed(msg.vector, msg.trigger_mode);
        case DeliveryMode::Nmi: m_nmi_pending = true; return AcceptOutcome::NmiLatched;
        case DeliveryMode::Smi: m_smi_pending = true; return AcceptOutcome::SmiLatched;
        case DeliveryMode::Init: m_init_pending = true; return AcceptOutcome::InitLatched;
        case DeliveryMode::StartUp:
            m_sipi_pending = true;
            m_sipi_vector = msg.vector;
            return AcceptOutcome::StartUpLatched;
        case DeliveryMode::Reserved3:
        case DeliveryMode::Reserved7: return AcceptOutcome::Ignored;
    }
    return AcceptOutcome::Ignored;
}

AcceptOutcome ApicState::raise_local(Lvt lvt) {
    if (!hardware_enabled()) return AcceptOutcome::RejectedHardwareDisabled;
    const std::uint32_t entry = m_lvt[static_cast<std::size_t>(lvt)];
    if (entry & kLvtMask) return AcceptOutcome::Ignored;
    const auto vector = static_cast<std::uint8_t>(entry & kLvtVectorMask);
    const bool has_mode = (lvt_defined_bits(lvt) & kLvtDeliveryModeMask) != 0;
    const std::uint32_t mode =
        has_mode ? (entry & kLvtDeliveryModeMask) >> kLvtDeliveryModeShift : kLvtDeliveryFixed;
    const bool level = (lvt_defined_bits(lvt) & kLvtTriggerMode) && (entry & kLvtTriggerMode);
    switch (mode) {
        case kLvtDeliveryFixed:
            return accept_fixed(vector, level ? TriggerMode::Level : TriggerMode::Edge);
        case kLvtDeliveryNmi: m_nmi_pending = true; return AcceptOutcome::NmiLatched;
        case kLvtDeliverySmi: m_smi_pending = true; return AcceptOutcome::SmiLatched;
        case kLvtDeliveryInit: m_init_pending = true; return AcceptOutcome::InitLatched;
        default: return AcceptOutcome::Ignored;  // ExtINT (no 8259A modelled), reserved
    }
}

void ApicState::record_error(std::uint32_t esr_bits) {
    m_esr_pending |= esr_bits;
    // The error interrupt itself: an illegal vector in the LVT error entry only records
    // another error bit (no recursion).
    const std::uint32_t entry = m_lvt[static_cast<std::size_t>(Lvt::Error)];
    if ((entry & kLvtMask) || !software_enabled()) return;
    const auto vector = static_cast<std::uint8_t>(entry & kLvtVectorMask);
    if (vector < kFirstValidVector) {
        m_esr_pending |= kEsrReceivedIllegalVector;
        return;
    }
    if (!m_irr.test(vector)) set_irr(vector, TriggerMode::Edge);
}

// ---------------------------------------------------------------- register file

ReadResult ApicState::read_mmio(std::uint32_t offset) {
    if (m_mode != ApicMode::XApic) return {0, AccessStatus::NotClaimed};
    const RegisterAccess access = register_access(offset, false);
    if (access == RegisterAccess::None) {
        record_error(kEsrIllegalRegisterAddress);
        return {0, AccessStatus::Ok};
    }
    if (access == RegisterAccess::WriteOnly) return {0, AccessStatus::Ok};
    return read_register(offset, false);
}

WriteResult ApicState::write_mmio(std::uint32_t offset, std::uint32_t value) {
    WriteResult r;
    if (m_mode != ApicMode::XApic) {
        r.status = AccessStatus::NotClaimed;
        return r;
    }
    const RegisterAccess access = register_access(offset, false);
    if (access == RegisterAccess::None) {
        record_error(kEsrIllegalRegisterAddress);
        return r;
    }
    if (access == RegisterAccess::ReadOnly) return r;  // ignored
    return write_register(offset, value, false);
}

ReadResult ApicState::read_msr(std::uint32_t msr) {
    if (msr == kMsrIa32ApicBase) return {apic_base(), AccessStatus::Ok};
    if (!is_x2apic_msr(msr) || m_mode != ApicMode::X2Apic)
        return {0, AccessStatus::GeneralProtection};  // 11.12.2: not in x2APIC mode
    const std::uint32_t offset = offset_of_x2apic_msr(msr);
    const RegisterAccess access = register_access(offset, true);
    if (access == RegisterAccess::None || access == RegisterAccess::WriteOnly)
        return {0, AccessStatus::GeneralProtection};
    return read_register(offset, true);
}

WriteResult ApicState::write_msr(std::uint32_t msr, std::uint64_t value) {
    if (msr == kMsrIa32ApicBase) return write_apic_base(value);
    WriteResult gp;
    gp.status = AccessStatus::GeneralProtection;
    if (!is_x2apic_msr(msr) || m_mode != ApicMode::X2Apic) return gp;
    const std::uint32_t offset = offset_of_x2apic_msr(msr);
    const RegisterAccess access = register_access(offset, true);
    if (access == RegisterAccess::None || access == RegisterAccess::ReadOnly) return gp;
    // 11.12.1.2: bits 63:32 of every x2APIC MSR but the ICR are reserved.
    if (offset != kApicOffsetIcrLo && (value >> 32) != 0) return gp;
    return write_register(offset, value, true);
}

ReadResult ApicState::read_register(std::uint32_t offset, bool x2apic) {
    auto ok = [](std::uint64_t v) { return ReadResult{v, AccessStatus::Ok}; };
    auto bitmap = [&](const VectorBits& bits, std::uint32_t first) {
        return ok(bits.word((offset - first) / kApicRegisterStride));
    };
    if (offset >= kApicOffsetIsr0 && offset < kApicOffsetTmr0) return bitmap(m_isr, kApicOffsetIsr0);
    if (offset >= kApicOffsetTmr0 && offset < kApicOffsetIrr0) return bitmap(m_tmr, kApicOffsetTmr0);
    if (offset >= kApicOffsetIrr0 && offset < kApicOffsetEsr) return bitmap(m_irr, kApicOffsetIrr0);
    if (auto lvt = lvt_at_offset(offset)) return ok(m_lvt[static_cast<std::size_t>(*lvt)]);
    switch (offset) {
        case kApicOffsetId:
            return ok(x2apic ? m_x2apic_id
                             : static_cast<std::uint32_t>(m_xapic_id) << kXApicIdShift);
        case kApicOffsetVersion: return ok(kApicVersionValue);
        case kApicOffsetTpr: return ok(m_tpr);
        case kApicOffsetApr: return ok(apr());
        case kApicOffsetPpr: return ok(ppr());
        case kApicOffsetRrd: return ok(0);  // remote read is not supported (P4 and later)
        case kApicOffsetLdr: return ok(ldr());
        case kApicOffsetDfr: return ok(m_dfr);
        case kApicOffsetSvr: return ok(m_svr);
        case kApicOffsetEsr: return ok(m_esr);
        case kApicOffsetIcrLo:
            // Delivery status reads 0 (idle): this model sends an IPI at once.
            return ok(x2apic ? m_icr : (m_icr & 0xFFFFFFFFull & ~kIcrDeliveryStatus));
        case kApicOffsetIcrHi: return ok(m_icr >> kIcrHiShift);
        case kApicOffsetTimerInitialCount: return ok(m_timer_initial);
        case kApicOffsetTimerCurrentCount: return ok(m_timer_current);
        case kApicOffsetTimerDivide: return ok(m_timer_divide);
        default: return ok(0);
    }
}

WriteResult ApicState::write_register(std::uint32_t offset, std::uint64_t value, bool x2apic) {
    WriteResult r;
    const auto v32 = static_cast<std::uint32_t>(value);
    // x2APIC: a non-zero write to a reserved bit raises #GP (11.12.1.3); xAPIC ignores it.
    auto reserved = [&](std::uint32_t defined_bits) { return x2apic && (v32 & ~defined_bits) != 0; };
    auto gp = [&] {
        r.status = AccessStatus::GeneralProtection;
        return r;
    };

    if (auto lvt = lvt_at_offset(offset)) {
        if (reserved(lvt_defined_bits(*lvt))) return gp();
        auto& entry = m_lvt[static_cast<std::size_t>(*lvt)];
        const std::uint32_t writable = lvt_writable_bits(*lvt);
        entry = (entry & ~writable) | (v32 & writable);
        // 11.4.7.2: while software-disabled, LVT mask bits stay set.
        if (!software_enabled()) entry |= kLvtMask;
        return r;
    }
    switch (offset) {
        case kApicOffsetId:  // xAPIC only (read-only in x2APIC mode)
            m_xapic_id = static_cast<std::uint8_t>(v32 >> kXApicIdShift);
            return r;
        case kApicOffsetTpr:
            if (reserved(kTprMask)) return gp();
            m_tpr = static_cast<std::uint8_t>(v32 & kTprMask);
            return r;
        case kApicOffsetEoi:
            if (x2apic && v32 != 0) return gp();  // WRMSR of a non-zero value: #GP(0)
            r.eoi = eoi();
            return r;
        case kApicOffsetLdr:  // xAPIC only
            m_ldr = v32 & kXApicLdrMask;
            return r;
        case kApicOffsetDfr:  // xAPIC only
            m_dfr = (v32 & ~kDfrReservedOnes) | kDfrReservedOnes;
            return r;
        case kApicOffsetSvr: {
            if (reserved(kSvrDefinedBits)) return gp();
            m_svr = v32 & kSvrDefinedBits;
            if (!(m_svr & kSvrApicSoftwareEnable))
                for (auto& entry : m_lvt) entry |= kLvtMask;  // 11.4.7.2
            return r;
        }
        case kApicOffsetEsr:
            if (x2apic && v32 != 0) return gp();
            // 11.5.3: a write makes the errors since the previous write visible.
            m_esr = m_esr_pending;
            m_esr_pending = 0;
            return r;
        case kApicOffsetIcrLo:
            if (x2apic) {
                if (value & kX2ApicIcrReservedBits) return gp();
                m_icr = value & ~kIcrDeliveryStatus;  // bit 12 is ignored
            } else {
                m_icr = (m_icr & ~0xFFFFFFFFull) | (v32 & kXApicIcrLoWritable);
            }
            r.send_icr = m_icr;  // the write of the low doubleword sends the IPI
            return r;
        case kApicOffsetIcrHi:  // xAPIC only
            m_icr = (m_icr & 0xFFFFFFFFull) |
                    (static_cast<std::uint64_t>(v32 & kXApicIcrHiWritable) << kIcrHiShift);
            return r;
        case kApicOffsetTimerInitialCount:
            m_timer_initial = v32;
            r.timer_started = true;
            return r;
        case kApicOffsetTimerDivide:
            if (reserved(kTimerDivideDefinedBits)) return gp();
            m_timer_divide = v32 & kTimerDivideDefinedBits;
            return r;
        case kApicOffsetSelfIpi:  // x2APIC only
            if (reserved(kSelfIpiDefinedBits)) return gp();
            r.self_ipi = static_cast<std::uint8_t>(v32 & kSelfIpiDefinedBits);
            return r;
        default: return r;
    }
}

}  // namespace vtx::apic
