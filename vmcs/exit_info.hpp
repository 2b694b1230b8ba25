#pragma once
// Exit reasons, the formats of the VM-exit information fields, activity states and
// interruptibility bits. Sources: SDM Appendix C (basic exit reasons), SDM16 24.4.2,
// 24.9, 27.2 (tables 24-15 ff.); Linux uapi/asm/vmx.h and asm/vmx.h
// (reference vtx-semantics.md sections 8.1, 9.1, 9.2).
#include <cstdint>
#include <optional>
#include <string_view>

namespace vtx::vmcs {

// Basic exit reasons (exit-reason field bits 15:0), SDM Appendix C.
enum class ExitReason : std::uint16_t {
    ExceptionOrNmi = 0,
    ExternalInterrupt = 1,
    TripleFault = 2,
    InitSignal = 3,
    Sipi = 4,
    IoSmi = 5,
    OtherSmi = 6,
    InterruptWindow = 7,
    NmiWindow = 8,
    TaskSwitch = 9,
    Cpuid = 10,
    Getsec = 11,
    Hlt = 12,
    Invd = 13,
    Invlpg = 14,
    Rdpmc = 15,
    Rdtsc = 16,
    Rsm = 17,
    Vmcall = 18,
    Vmclear = 19,
    Vmlaunch = 20,
    Vmptrld = 21,
    Vmptrst = 22,
    Vmread = 23,
    Vmresume = 24,
    Vmwrite = 25,
    Vmxoff = 26,
    Vmxon = 27,
    CrAccess = 28,
    DrAccess = 29,
    IoInstruction = 30,
    Rdmsr = 31,
    Wrmsr = 32,
    EntryFailGuestState = 33,
    EntryFailMsrLoad = 34,
    Mwait = 36,
    MonitorTrapFlag = 37,
    Monitor = 39,
    Pause = 40,
    EntryFailMachineCheck = 41,
    TprBelowThreshold = 43,
    ApicAccess = 44,
    VirtualizedEoi = 45,
    GdtrIdtrAccess = 46,
    LdtrTrAccess = 47,
    EptViolation = 48,
    EptMisconfig = 49,
    Invept = 50,
    Rdtscp = 51,
    PreemptionTimer = 52,
    Invvpid = 53,
    Wbinvd = 54,
    Xsetbv = 55,
    ApicWrite = 56,
    Rdrand = 57,
    Invpcid = 58,
    Vmfunc = 59,
    Encls = 60,
    Rdseed = 61,
    PmlFull = 62,
    Xsaves = 63,
    Xrstors = 64,
};

// KVM-style name ("EXTERNAL_INTERRUPT", "APIC_WRITE", ...); "" for an undefined number.
std::string_view exit_reason_name(ExitReason reason);
// Inverse of exit_reason_name (case-insensitive), for scenario files.
std::optional<ExitReason> find_exit_reason_by_name(std::string_view name);

// --- Exit-reason field (VMCS 0x4402) ---
inline constexpr std::uint32_t kExitReasonBasicMask = 0xFFFF;  // bits 15:0
inline constexpr std::uint32_t kExitReasonBusLockDetected = 1u << 26;
inline constexpr std::uint32_t kExitReasonEnclaveMode = 1u << 27;
inline constexpr std::uint32_t kExitReasonPendingMtf = 1u << 28;
inline constexpr std::uint32_t kExitReasonFromVmxRoot = 1u << 29;
inline constexpr std::uint32_t kExitReasonEntryFailure = 1u << 31;  // VM-entry failure

constexpr std::uint32_t make_exit_reason(ExitReason basic, bool entry_failure = false) {
    return static_cast<std::uint32_t>(basic) | (entry_failure ? kExitReasonEntryFailure : 0u);
}
constexpr ExitReason basic_exit_reason(std::uint32_t exit_reason_field) {
    return static_cast<ExitReason>(exit_reason_field & kExitReasonBasicMask);
}
constexpr bool is_entry_failure(std::uint32_t exit_reason_field) {
    return (exit_reason_field & kExitReasonEntryFailure) != 0;
}

// Exit qualification for VM-entry failures with basic reason 33 (SDM16 26.7; Linux
// enum vm_entry_failure_code).
inline constexpr std::uint64_t kEntryFailQualDefault = 0;
inline constexpr std::uint64_t kEntryFailQualPdpte = 2;
inline constexpr std::uint64_t kEntryFailQualNmiInjection = 3;
inline constexpr std::uint64_t kEntryFailQualVmcsLinkPointer = 4;

// --- Interruption information (VM-exit 0x4404, IDT-vectoring 0x4408, VM-entry 0x4016) ---
inline constexpr std::uint32_t kIntrInfoVectorMask = 0xFF;  // bits 7:0
inline constexpr unsigned kIntrInfoTypeShift = 8;           // bits 10:8
inline constexpr std::uint32_t kIntrInfoTypeMask = 0x7u << kIntrInfoTypeShift;
inline constexpr std::uint32_t kIntrInfoErrorCodeValid = 1u << 11;  // "deliver error code" on entry
inline constexpr std::uint32_t kIntrInfoNmiUnblockingIret = 1u << 12;
inline constexpr std::uint32_t kIntrInfoValid = 1u << 31;
inline constexpr std::uint32_t kIntrInfoEntryReservedBits = 0x7FFFF000;  // bits 30:12 on entry

enum class InterruptionType : std::uint8_t {
    ExternalInterrupt = 0,
    Reserved = 1,
    Nmi = 2,
    HardwareException = 3,
    SoftwareInterrupt = 4,
    PrivilegedSoftwareException = 5,
    SoftwareException = 6,
    OtherEvent = 7,
};

constexpr std::uint32_t make_interruption_info(std::uint8_t vector, InterruptionType type,
                                               bool error_code_valid = false) {
    return kIntrInfoValid | (static_cast<std::uint32_t>(type) << kIntrInfoTypeShift) |
           (error_code_valid ? kIntrInfoErrorCodeValid : 0u) | vector;
}
constexpr std::uint8_t interruption_vector(std::uint32_t info) {
    return static_cast<std::uint8_t>(info & kIntrInfoVectorMask);
}
constexpr InterruptionType interruption_type(std::uint32_t info) {
    return static_cast<InterruptionType>((info & kIntrInfoTypeMask) >> kIntrInfoTypeShift);
}
constexpr bool interruption_valid(std::uint32_t info) { return (info & kIntrInfoValid) != 0; }

// Exception vectors that matter to VM-entry event-injection checks.
inline constexpr std::uint8_t kVectorDebug = 1;  // #DB
inline constexpr std::uint8_t kVectorNmi = 2;
inline constexpr std::uint8_t kVectorDoubleFault = 8;         // #DF
inline constexpr std::uint8_t kVectorInvalidTss = 10;         // #TS
inline constexpr std::uint8_t kVectorSegmentNotPresent = 11;  // #NP
inline constexpr std::uint8_t kVectorStackFault = 12;         // #SS
inline constexpr std::uint8_t kVectorGeneralProtection = 13;  // #GP
inline constexpr std::uint8_t kVectorPageFault = 14;          // #PF
inline constexpr std::uint8_t kVectorAlignmentCheck = 17;     // #AC
inline constexpr std::uint8_t kVectorMachineCheck = 18;       // #MC
inline constexpr std::uint8_t kVectorControlProtection = 21;  // #CP
inline constexpr std::uint8_t kLastExceptionVector = 31;
inline constexpr std::uint8_t kOtherEventPendingMtfVector = 0;  // type 7, vector 0

// --- APIC-access exit qualification (SDM16 27.2.1 Table 27-6; Linux APIC_ACCESS_*) ---
inline constexpr std::uint64_t kApicAccessOffsetMask = 0xFFF;  // bits 11:0
inline constexpr unsigned kApicAccessTypeShift = 12;           // bits 15:12
inline constexpr std::uint64_t kApicAccessTypeMask = std::uint64_t{0xF} << kApicAccessTypeShift;
enum class ApicAccessType : std::uint8_t {
    LinearRead = 0,
    LinearWrite = 1,
    LinearInstructionFetch = 2,
    LinearEventDelivery = 3,
    GuestPhysicalEventDelivery = 10,
    GuestPhysicalInstruction = 15,
};
constexpr std::uint64_t make_apic_access_qualification(std::uint32_t offset, ApicAccessType t) {
    return (static_cast<std::uint64_t>(t) << kApicAccessTypeShift) |
           (offset & kApicAccessOffsetMask);
}

// APIC-write exit qualification: bits 11:0 = page offset. Virtualized-EOI: bits 7:0 = vector.
inline constexpr std::uint64_t kApicWriteOffsetMask = 0xFFF;
inline constexpr std::uint64_t kVirtualizedEoiVectorMask = 0xFF;
// SIPI exit qualification: bits 7:0 = SIPI vector.
inline constexpr std::uint64_t kSipiVectorMask = 0xFF;

// --- Guest activity state (VMCS 0x4826), SDM16 24.4.2 ---
enum class ActivityState : std::uint32_t {
    Active = 0,
    Hlt = 1,
    Shutdown = 2,
    WaitForSipi = 3,
};
inline constexpr std::uint32_t kLastActivityState =
    static_cast<std::uint32_t>(ActivityState::WaitForSipi);

// --- Guest interruptibility state (VMCS 0x4824), SDM16 24.4.2 Table 24-3 ---
inline constexpr std::uint32_t kBlockingBySti = 1u << 0;
inline constexpr std::uint32_t kBlockingByMovSs = 1u << 1;
// Blocking by STI or by MOV SS (SDM 25.4.2, table 25-3): interrupts are held back for one
// instruction. KVM: __vmx_interrupt_blocked() without the RFLAGS.IF half.
constexpr bool blocked_by_sti_or_mov_ss(std::uint64_t interruptibility) {
    return (interruptibility & (kBlockingBySti | kBlockingByMovSs)) != 0;
}
inline constexpr std::uint32_t kBlockingBySmi = 1u << 2;
inline constexpr std::uint32_t kBlockingByNmi = 1u << 3;
inline constexpr std::uint32_t kEnclaveInterruption = 1u << 4;

// --- Segment access rights (guest xx_AR_BYTES), SDM16 24.4.1 Table 24-2 ---
inline constexpr unsigned kSegmentArDplShift = 5;  // bits 6:5
inline constexpr std::uint32_t kSegmentArDplMask = 0x3u << kSegmentArDplShift;
inline constexpr std::uint32_t kSegmentArUnusable = 1u << 16;

class Vmcs;
// What every VM exit records (SDM 27.2): exit reason, qualification, exit interruption
// information and instruction length, and the valid bit of the VM-entry interruption-
// information field cleared. The processor's VM exit and nested KVM's VM exit to L1 use it.
void record_exit_information(Vmcs& v, std::uint32_t reason, std::uint64_t qualification,
                             std::uint32_t intr_info, std::uint32_t instruction_length);

}  // namespace vtx::vmcs
