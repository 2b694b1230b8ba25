#include "apic/registers.hpp"

namespace vtx::apic {

std::uint32_t lvt_offset(Lvt lvt) {
    switch (lvt) {
        case Lvt::Cmci: return kApicOffsetLvtCmci;
        case Lvt::Timer: return kApicOffsetLvtTimer;
        case Lvt::Thermal: return kApicOffsetLvtThermal;
        case Lvt::Perf: return kApicOffsetLvtPerf;
        case Lvt::Lint0: return kApicOffsetLvtLint0;
        case Lvt::Lint1: return kApicOffsetLvtLint1;
        case Lvt::Error: return kApicOffsetLvtError;
    }
    return 0;
}

std::optional<Lvt> lvt_at_offset(std::uint32_t offset) {
    for (Lvt lvt : kAllLvts)
        if (lvt_offset(lvt) == offset) return lvt;
    return std::nullopt;
}

std::uint32_t lvt_defined_bits(Lvt lvt) {
    constexpr std::uint32_t common = kLvtVectorMask | kLvtDeliveryStatus | kLvtMask;
    switch (lvt) {
        // Timer: no delivery mode (always fixed). Timer mode bit 18 (TSC-deadline) is
        // reserved because this model reports no TSC-deadline support.
        case Lvt::Timer: return common | (kLvtTimerModePeriodic << kLvtTimerModeShift);
        case Lvt::Error: return common;
        case Lvt::Cmci:
        case Lvt::Thermal:
        case Lvt::Perf: return common | kLvtDeliveryModeMask;
        case Lvt::Lint0:
        case Lvt::Lint1:
            return common | kLvtDeliveryModeMask | kLvtInputPolarity | kLvtRemoteIrr |
                   kLvtTriggerMode;
    }
    return 0;
}

std::uint32_t lvt_writable_bits(Lvt lvt) {
    return lvt_defined_bits(lvt) & ~(kLvtDeliveryStatus | kLvtRemoteIrr);
}

const char* lvt_name(Lvt lvt) {
    switch (lvt) {
        case Lvt::Cmci: return "LVT CMCI";
        case Lvt::Timer: return "LVT timer";
        case Lvt::Thermal: return "LVT thermal sensor";
        case Lvt::Perf: return "LVT performance monitoring counters";
        case Lvt::Lint0: return "LVT LINT0";
        case Lvt::Lint1: return "LVT LINT1";
        case Lvt::Error: return "LVT error";
    }
    return "?";
}

std::uint32_t timer_divisor(std::uint32_t divide_config) {
    // Figure 11-10: bits 3 and 1:0 form a 3-bit value; 111b means divide by 1.
    const std::uint32_t code = (divide_config & 0x3) | ((divide_config >> 1) & 0x4);
    return code == 0x7 ? 1u : 2u << code;
}

namespace {
bool in_bitmap(std::uint32_t offset, std::uint32_t first) {
    return offset >= first && offset < first + kApicBitmapRegisters * kApicRegisterStride;
}
}  // namespace

RegisterAccess register_access(std::uint32_t offset, bool x2apic) {
    using A = RegisterAccess;
    if (offset % kApicRegisterStride != 0 || offset >= kApicPageSize) return A::None;
    if (in_bitmap(offset, kApicOffsetIsr0) || in_bitmap(offset, kApicOffsetTmr0) ||
        in_bitmap(offset, kApicOffsetIrr0))
        return A::ReadOnly;
    if (lvt_at_offset(offset)) return A::ReadWrite;
    switch (offset) {
        case kApicOffsetId: return x2apic ? A::ReadOnly : A::ReadWrite;
        case kApicOffsetVersion: return A::ReadOnly;
        case kApicOffsetTpr: return A::ReadWrite;
        case kApicOffsetApr: return x2apic ? A::None : A::ReadOnly;  // no MSR 809H
        case kApicOffsetPpr: return A::ReadOnly;
        case kApicOffsetEoi: return A::WriteOnly;
        case kApicOffsetRrd: return x2apic ? A::None : A::ReadOnly;  // no MSR 80CH
        case kApicOffsetLdr: return x2apic ? A::ReadOnly : A::ReadWrite;
        case kApicOffsetDfr: return x2apic ? A::None : A::ReadWrite;  // no MSR 80EH
        case kApicOffsetSvr: return A::ReadWrite;
        case kApicOffsetEsr: return A::ReadWrite;
        case kApicOffsetIcrLo: return A::ReadWrite;
        case kApicOffsetIcrHi: return x2apic ? A::None : A::ReadWrite;  // no MSR 831H
        case kApicOffsetTimerInitialCount: return A::ReadWrite;
        case kApicOffsetTimerCurrentCount: return A::ReadOnly;
        case kApicOffsetTimerDivide: return A::ReadWrite;
        case kApicOffsetSelfIpi: return x2apic ? A::WriteOnly : A::None;
        default: return A::None;
    }
}

const char* register_name(std::uint32_t offset) {
    if (in_bitmap(offset, kApicOffsetIsr0)) return "ISR";
    if (in_bitmap(offset, kApicOffsetTmr0)) return "TMR";
    if (in_bitmap(offset, kApicOffsetIrr0)) return "IRR";
    if (auto lvt = lvt_at_offset(offset)) return lvt_name(*lvt);
    switch (offset) {
        case kApicOffsetId: return "ID";
        case kApicOffsetVersion: return "version";
        case kApicOffsetTpr: return "TPR";
        case kApicOffsetApr: return "APR";
        case kApicOffsetPpr: return "PPR";
        case kApicOffsetEoi: return "EOI";
        case kApicOffsetRrd: return "RRD";
        case kApicOffsetLdr: return "LDR";
        case kApicOffsetDfr: return "DFR";
        case kApicOffsetSvr: return "SVR";
        case kApicOffsetEsr: return "ESR";
        case kApicOffsetIcrLo: return "ICR";
        case kApicOffsetIcrHi: return "ICR high";
        case kApicOffsetTimerInitialCount: return "timer initial count";
        case kApicOffsetTimerCurrentCount: return "timer current count";
        case kApicOffsetTimerDivide: return "timer divide configuration";
        case kApicOffsetSelfIpi: return "SELF IPI";
        default: return "reserved";
    }
}

}  // namespace vtx::apic
