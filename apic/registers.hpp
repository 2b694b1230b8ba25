#pragma once
// The local APIC register map and architectural bit positions.
//   SDM Vol. 3A 11.4.1 Table 11-1 (xAPIC MMIO offsets), 11.4.4 (IA32_APIC_BASE),
//   11.12.1.2 Table 11-6 (x2APIC MSRs), and the register figures of chapter 11.
// (Chapter 11 in current SDMs; chapter 10 in editions before 2023.)
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace vtx::apic {

// ---------------------------------------------------------------- MSRs
inline constexpr std::uint32_t kMsrIa32ApicBase = 0x1B;
inline constexpr std::uint32_t kX2ApicMsrBase = 0x800;  // 800H-BFFH: x2APIC register space
inline constexpr std::uint32_t kX2ApicMsrLast = 0xBFF;

// IA32_APIC_BASE (SDM 11.4.4, Figure 11-5; 11.12.1 for EXTD).
inline constexpr std::uint64_t kApicBaseBsp = 1ull << 8;
inline constexpr std::uint64_t kApicBaseX2ApicEnable = 1ull << 10;  // EXTD
inline constexpr std::uint64_t kApicBaseGlobalEnable = 1ull << 11;  // EN
inline constexpr unsigned kApicBaseAddressShift = 12;
inline constexpr std::uint64_t kApicBaseReservedLow = 0xFFull | (1ull << 9);  // bits 7:0 and 9
inline constexpr std::uint64_t kApicDefaultBaseAddress = 0xFEE00000;
inline constexpr unsigned kDefaultMaxPhysAddr = 46;  // MAXPHYADDR (CPUID.80000008H:EAX[7:0])

// ---------------------------------------------------------------- xAPIC MMIO offsets
inline constexpr std::uint32_t kApicPageSize = 0x1000;
inline constexpr std::uint32_t kApicRegisterStride = 0x10;  // one 32-bit register per 16 bytes
inline constexpr std::uint32_t kApicOffsetId = 0x020;
inline constexpr std::uint32_t kApicOffsetVersion = 0x030;
inline constexpr std::uint32_t kApicOffsetTpr = 0x080;
inline constexpr std::uint32_t kApicOffsetApr = 0x090;
inline constexpr std::uint32_t kApicOffsetPpr = 0x0A0;
inline constexpr std::uint32_t kApicOffsetEoi = 0x0B0;
inline constexpr std::uint32_t kApicOffsetRrd = 0x0C0;
inline constexpr std::uint32_t kApicOffsetLdr = 0x0D0;
inline constexpr std::uint32_t kApicOffsetDfr = 0x0E0;
inline constexpr std::uint32_t kApicOffsetSvr = 0x0F0;
inline constexpr std::uint32_t kApicOffsetIsr0 = 0x100;  // ISR 0x100-0x170
inline constexpr std::uint32_t kApicOffsetTmr0 = 0x180;  // TMR 0x180-0x1F0
inline constexpr std::uint32_t kApicOffsetIrr0 = 0x200;  // IRR 0x200-0x270
inline constexpr std::uint32_t kApicOffsetEsr = 0x280;
inline constexpr std::uint32_t kApicOffsetLvtCmci = 0x2F0;
inline constexpr std::uint32_t kApicOffsetIcrLo = 0x300;
inline constexpr std::uint32_t kApicOffsetIcrHi = 0x310;
inline constexpr std::uint32_t kApicOffsetLvtTimer = 0x320;
inline constexpr std::uint32_t kApicOffsetLvtThermal = 0x330;
inline constexpr std::uint32_t kApicOffsetLvtPerf = 0x340;
inline constexpr std::uint32_t kApicOffsetLvtLint0 = 0x350;
inline constexpr std::uint32_t kApicOffsetLvtLint1 = 0x360;
inline constexpr std::uint32_t kApicOffsetLvtError = 0x370;
inline constexpr std::uint32_t kApicOffsetTimerInitialCount = 0x380;
inline constexpr std::uint32_t kApicOffsetTimerCurrentCount = 0x390;
inline constexpr std::uint32_t kApicOffsetTimerDivide = 0x3E0;
inline constexpr std::uint32_t kApicOffsetSelfIpi = 0x3F0;  // x2APIC only (MSR 83FH)
inline constexpr std::uint32_t kApicBitmapRegisters = 8;     // ISR/TMR/IRR: 8 x 32 bits

// x2APIC MSR address of the register at an xAPIC offset (SDM 11.12.1.2: 800H + offset/16).
constexpr std::uint32_t x2apic_msr_of(std::uint32_t offset) {
    return kX2ApicMsrBase + offset / kApicRegisterStride;
}
// The xAPIC offset that an x2APIC MSR address maps to.
constexpr std::uint32_t offset_of_x2apic_msr(std::uint32_t msr) {
    return (msr - kX2ApicMsrBase) * kApicRegisterStride;
}
constexpr bool is_x2apic_msr(std::uint32_t msr) {
    return msr >= kX2ApicMsrBase && msr <= kX2ApicMsrLast;
}
inline constexpr std::uint32_t kX2ApicMsrId = x2apic_msr_of(kApicOffsetId);
inline constexpr std::uint32_t kX2ApicMsrVersion = x2apic_msr_of(kApicOffsetVersion);
inline constexpr std::uint32_t kX2ApicMsrTpr = x2apic_msr_of(kApicOffsetTpr);
inline constexpr std::uint32_t kX2ApicMsrPpr = x2apic_msr_of(kApicOffsetPpr);
inline constexpr std::uint32_t kX2ApicMsrEoi = x2apic_msr_of(kApicOffsetEoi);
inline constexpr std::uint32_t kX2ApicMsrLdr = x2apic_msr_of(kApicOffsetLdr);
inline constexpr std::uint32_t kX2ApicMsrSvr = x2apic_msr_of(kApicOffsetSvr);
inline constexpr std::uint32_t kX2ApicMsrIsr0 = x2apic_msr_of(kApicOffsetIsr0);
inline constexpr std::uint32_t kX2ApicMsrTmr0 = x2apic_msr_of(kApicOffsetTmr0);
inline constexpr std::uint32_t kX2ApicMsrIrr0 = x2apic_msr_of(kApicOffsetIrr0);
inline constexpr std::uint32_t kX2ApicMsrEsr = x2apic_msr_of(kApicOffsetEsr);
inline constexpr std::uint32_t kX2ApicMsrLvtCmci = x2apic_msr_of(kApicOffsetLvtCmci);
inline constexpr std::uint32_t kX2ApicMsrIcr = x2apic_msr_of(kApicOffsetIcrLo);
inline constexpr std::uint32_t kX2ApicMsrLvtTimer = x2apic_msr_of(kApicOffsetLvtTimer);
inline constexpr std::uint32_t kX2ApicMsrLvtError = x2apic_msr_of(kApicOffsetLvtError);
inline constexpr std::uint32_t kX2ApicMsrTimerInitialCount = x2apic_msr_of(kApicOffsetTimerInitialCount);
inline constexpr std::uint32_t kX2ApicMsrTimerCurrentCount = x2apic_msr_of(kApicOffsetTimerCurrentCount);
inline constexpr std::uint32_t kX2ApicMsrTimerDivide = x2apic_msr_of(kApicOffsetTimerDivide);
inline constexpr std::uint32_t kX2ApicMsrSelfIpi = x2apic_msr_of(kApicOffsetSelfIpi);
static_assert(kX2ApicMsrIcr == 0x830 && kX2ApicMsrSelfIpi == 0x83F && kX2ApicMsrIrr0 == 0x820);

// ---------------------------------------------------------------- register fields
// Local APIC ID (Figure 11-6): xAPIC ID in bits 31:24; x2APIC ID is the whole 32 bits.
inline constexpr unsigned kXApicIdShift = 24;
inline constexpr std::uint32_t kXApicIdMask = 0xFF;
inline constexpr std::uint32_t kXApicBroadcastId = 0xFF;
inline constexpr std::uint32_t kX2ApicBroadcastId = 0xFFFFFFFF;

// Local APIC version register (Figure 11-7).
inline constexpr std::uint32_t kApicVersionIntegrated = 0x15;  // 1XH: integrated local APIC
inline constexpr unsigned kApicVersionMaxLvtShift = 16;
inline constexpr std::uint32_t kApicLvtCount = 7;  // CMCI, timer, thermal, perf, LINT0, LINT1, error
inline constexpr std::uint32_t kApicVersionEoiBroadcastSuppression = 1u << 24;
inline constexpr std::uint32_t kApicVersionValue =
    kApicVersionIntegrated | ((kApicLvtCount - 1) << kApicVersionMaxLvtShift) |
    kApicVersionEoiBroadcastSuppression;

// Priorities (11.8.3.1): a priority class is vector[7:4]; vectors 0-15 are illegal.
inline constexpr unsigned kPriorityClassShift = 4;
inline constexpr std::uint32_t kPriorityClassMask = 0xF0;
inline constexpr std::uint32_t kTprMask = 0xFF;  // TPR bits 31:8 reserved
inline constexpr std::uint8_t kFirstValidVector = 16;

// Logical destination (11.6.2.2, Figures 11-13/11-14; x2APIC 11.12.10.2).
inline constexpr unsigned kXApicLdrShift = 24;  // xAPIC logical ID in LDR bits 31:24
inline constexpr std::uint32_t kXApicLdrMask = 0xFF000000;
inline constexpr unsigned kDfrModelShift = 28;  // DFR bits 31:28
inline constexpr std::uint32_t kDfrModelFlat = 0xF;
inline constexpr std::uint32_t kDfrModelCluster = 0x0;
inline constexpr std::uint32_t kDfrReservedOnes = 0x0FFFFFFF;  // bits 27:0 read as 1s
inline constexpr std::uint32_t kDfrResetValue = 0xFFFFFFFF;
inline constexpr unsigned kXApicClusterShift = 4;        // xAPIC cluster: logical ID[7:4]
inline constexpr std::uint32_t kXApicClusterMemberMask = 0xF;
inline constexpr unsigned kX2ApicLdrClusterShift = 16;   // x2APIC LDR: cluster in 31:16
inline constexpr std::uint32_t kX2ApicLdrMemberMask = 0xFFFF;  // one bit per member in 15:0
inline constexpr unsigned kX2ApicIdClusterShift = 4;     // cluster = x2APIC ID[19:4]
inline constexpr std::uint32_t kX2ApicIdClusterMask = 0xFFFF;
inline constexpr std::uint32_t kX2ApicIdMemberMask = 0xF;  // member bit = 1 << x2APIC ID[3:0]

// Spurious-interrupt vector register (Figure 11-23).
inline constexpr std::uint32_t kSvrVectorMask = 0xFF;
inline constexpr std::uint32_t kSvrApicSoftwareEnable = 1u << 8;
inline constexpr std::uint32_t kSvrFocusProcessorChecking = 1u << 9;  // no effect (P4 and later)
inline constexpr std::uint32_t kSvrEoiBroadcastSuppression = 1u << 12;
inline constexpr std::uint32_t kSvrDefinedBits =
    kSvrVectorMask | kSvrApicSoftwareEnable | kSvrFocusProcessorChecking |
    kSvrEoiBroadcastSuppression;
inline constexpr std::uint32_t kSvrResetValue = 0xFF;

// Error status register (11.5.3, Figure 11-9).
inline constexpr std::uint32_t kEsrSendChecksumError = 1u << 0;
inline constexpr std::uint32_t kEsrReceiveChecksumError = 1u << 1;
inline constexpr std::uint32_t kEsrSendAcceptError = 1u << 2;
inline constexpr std::uint32_t kEsrReceiveAcceptError = 1u << 3;
inline constexpr std::uint32_t kEsrRedirectableIpi = 1u << 4;
inline constexpr std::uint32_t kEsrSendIllegalVector = 1u << 5;
inline constexpr std::uint32_t kEsrReceivedIllegalVector = 1u << 6;
inline constexpr std::uint32_t kEsrIllegalRegisterAddress = 1u << 7;

// Local vector table entries (11.5.1, Figure 11-8).
enum class Lvt : std::uint8_t { Cmci, Timer, Thermal, Perf, Lint0, Lint1, Error };
inline constexpr std::array<Lvt, kApicLvtCount> kAllLvts = {
    Lvt::Cmci, Lvt::Timer, Lvt::Thermal, Lvt::Perf, Lvt::Lint0, Lvt::Lint1, Lvt::Error};
inline constexpr std::uint32_t kLvtVectorMask = 0xFF;
inline constexpr unsigned kLvtDeliveryModeShift = 8;
inline constexpr std::uint32_t kLvtDeliveryModeMask = 0x7u << kLvtDeliveryModeShift;
inline constexpr std::uint32_t kLvtDeliveryStatus = 1u << 12;  // read-only
inline constexpr std::uint32_t kLvtInputPolarity = 1u << 13;   // LINT0/LINT1
inline constexpr std::uint32_t kLvtRemoteIrr = 1u << 14;       // LINT0/LINT1, read-only
inline constexpr std::uint32_t kLvtTriggerMode = 1u << 15;     // LINT0/LINT1
inline constexpr std::uint32_t kLvtMask = 1u << 16;
inline constexpr unsigned kLvtTimerModeShift = 17;
inline constexpr std::uint32_t kLvtTimerModeMask = 0x3u << kLvtTimerModeShift;
inline constexpr std::uint32_t kLvtTimerModeOneShot = 0x0;
inline constexpr std::uint32_t kLvtTimerModePeriodic = 0x1;
inline constexpr std::uint32_t kLvtTimerModeTscDeadline = 0x2;  // not supported by this model
inline constexpr std::uint32_t kLvtResetValue = kLvtMask;
// LVT delivery-mode encodings (Figure 11-8).
inline constexpr std::uint32_t kLvtDeliveryFixed = 0x0;
inline constexpr std::uint32_t kLvtDeliverySmi = 0x2;
inline constexpr std::uint32_t kLvtDeliveryNmi = 0x4;
inline constexpr std::uint32_t kLvtDeliveryInit = 0x5;
inline constexpr std::uint32_t kLvtDeliveryExtInt = 0x7;

std::uint32_t lvt_offset(Lvt lvt);
std::optional<Lvt> lvt_at_offset(std::uint32_t offset);
// Bits that exist in the entry (writable or read-only); the others are reserved.
std::uint32_t lvt_defined_bits(Lvt lvt);
// Bits software can change (read-only status bits excluded).
std::uint32_t lvt_writable_bits(Lvt lvt);
const char* lvt_name(Lvt lvt);

// Timer divide configuration register (Figure 11-10): bits 0, 1 and 3.
inline constexpr std::uint32_t kTimerDivideDefinedBits = 0xB;
// The divisor encoded by a divide-configuration value (2, 4, ... 128, or 1 for 1011b).
std::uint32_t timer_divisor(std::uint32_t divide_config);

// SELF IPI register (x2APIC, 11.12.11): vector in bits 7:0.
inline constexpr std::uint32_t kSelfIpiDefinedBits = 0xFF;

// ---------------------------------------------------------------- access semantics
enum class RegisterAccess : std::uint8_t { None, ReadOnly, WriteOnly, ReadWrite };

// Access semantics of the register at an xAPIC offset, in xAPIC mode (MMIO) or x2APIC mode
// (MSR). None: no register there (reserved). ICR: in x2APIC mode 0x300 is the 64-bit ICR and
// 0x310 does not exist.
RegisterAccess register_access(std::uint32_t offset, bool x2apic);
const char* register_name(std::uint32_t offset);

}  // namespace vtx::apic
