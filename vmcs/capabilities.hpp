#pragma once
// VMX capability MSRs 0x480-0x493 (SDM Vol. 3 Appendix A; MSR numbers from Linux
// asm/msr-index.h, 0x492 and 0x493 from the IPIv-series / Xen tertiary-controls patches;
// reference vtx-semantics.md section 1.2), built from a CPU profile's feature set.
#include <array>
#include <cstdint>
#include <optional>

#include "model/features.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/exit_info.hpp"

namespace vtx::vmcs {

// --- MSR numbers ---
inline constexpr std::uint32_t kMsrIa32VmxBasic = 0x480;
inline constexpr std::uint32_t kMsrIa32VmxPinbasedCtls = 0x481;
inline constexpr std::uint32_t kMsrIa32VmxProcbasedCtls = 0x482;
inline constexpr std::uint32_t kMsrIa32VmxExitCtls = 0x483;
inline constexpr std::uint32_t kMsrIa32VmxEntryCtls = 0x484;
inline constexpr std::uint32_t kMsrIa32VmxMisc = 0x485;
inline constexpr std::uint32_t kMsrIa32VmxCr0Fixed0 = 0x486;
inline constexpr std::uint32_t kMsrIa32VmxCr0Fixed1 = 0x487;
inline constexpr std::uint32_t kMsrIa32VmxCr4Fixed0 = 0x488;
inline constexpr std::uint32_t kMsrIa32VmxCr4Fixed1 = 0x489;
inline constexpr std::uint32_t kMsrIa32VmxVmcsEnum = 0x48A;
inline constexpr std::uint32_t kMsrIa32VmxProcbasedCtls2 = 0x48B;
inline constexpr std::uint32_t kMsrIa32VmxEptVpidCap = 0x48C;
inline constexpr std::uint32_t kMsrIa32VmxTruePinbasedCtls = 0x48D;
inline constexpr std::uint32_t kMsrIa32VmxTrueProcbasedCtls = 0x48E;
inline constexpr std::uint32_t kMsrIa32VmxTrueExitCtls = 0x48F;
inline constexpr std::uint32_t kMsrIa32VmxTrueEntryCtls = 0x490;
inline constexpr std::uint32_t kMsrIa32VmxVmfunc = 0x491;
inline constexpr std::uint32_t kMsrIa32VmxProcbasedCtls3 = 0x492;
inline constexpr std::uint32_t kMsrIa32VmxExitCtls2 = 0x493;
inline constexpr std::uint32_t kFirstVmxCapabilityMsr = kMsrIa32VmxBasic;
inline constexpr std::uint32_t kLastVmxCapabilityMsr = kMsrIa32VmxExitCtls2;
inline constexpr std::size_t kVmxCapabilityMsrCount =
    kLastVmxCapabilityMsr - kFirstVmxCapabilityMsr + 1;

// --- IA32_VMX_BASIC (SDM A.1) ---
inline constexpr std::uint64_t kBasicRevisionIdMask = 0x7FFF'FFFF;  // bits 30:0
inline constexpr unsigned kBasicRegionSizeShift = 32;               // bits 44:32
inline constexpr std::uint64_t kBasicRegionSizeMask = std::uint64_t{0x1FFF}
                                                      << kBasicRegionSizeShift;
inline constexpr std::uint64_t kBasicPhysAddr32Only = bit64(48);
inline constexpr std::uint64_t kBasicDualMonitor = bit64(49);
inline constexpr unsigned kBasicMemoryTypeShift = 50;  // bits 53:50
inline constexpr std::uint64_t kBasicMemoryTypeMask = std::uint64_t{0xF} << kBasicMemoryTypeShift;
inline constexpr std::uint64_t kBasicInsOutsInfo = bit64(54);
inline constexpr std::uint64_t kBasicTrueControls = bit64(55);
inline constexpr std::uint64_t kBasicNoErrorCodeConsistency = bit64(56);
inline constexpr std::uint64_t kMemoryTypeWriteBack = 6;  // SDM A.1: 6 = write-back
inline constexpr std::uint64_t kVmcsRegionSize = 4096;    // bytes to allocate per VMCS

// --- IA32_VMX_MISC (SDM A.6; Linux VMX_MISC_*) ---
inline constexpr std::uint64_t kMiscPreemptionTimerRateMask = 0x1F;  // bits 4:0
inline constexpr std::uint64_t kMiscSaveEferLma = bit64(5);
inline constexpr std::uint64_t kMiscActivityHlt = bit64(6);
inline constexpr std::uint64_t kMiscActivityShutdown = bit64(7);
inline constexpr std::uint64_t kMiscActivityWaitSipi = bit64(8);
inline constexpr std::uint64_t kMiscIntelPt = bit64(14);
inline constexpr std::uint64_t kMiscRdmsrInSmm = bit64(15);
inline constexpr unsigned kMiscCr3TargetCountShift = 16;  // bits 24:16
inline constexpr std::uint64_t kMiscCr3TargetCountMask = std::uint64_t{0x1FF}
                                                         << kMiscCr3TargetCountShift;
inline constexpr unsigned kMiscMaxMsrListShift = 25;  // bits 27:25: 512 * (N + 1) entries
inline constexpr std::uint64_t kMiscVmxoffBlocksSmi = bit64(28);
inline constexpr std::uint64_t kMiscVmwriteAnyField = bit64(29);
inline constexpr std::uint64_t kMiscZeroLengthInjection = bit64(30);
inline constexpr unsigned kCr3TargetValueCount = 4;  // CR3_TARGET_VALUE0..3 exist

// --- IA32_VMX_VMCS_ENUM (SDM A.9): bits 9:1 = highest index of any supported field ---
inline constexpr unsigned kVmcsEnumIndexShift = 1;

// --- IA32_VMX_EPT_VPID_CAP (SDM A.10; Linux VMX_EPT_* / VMX_VPID_*) ---
inline constexpr std::uint64_t kEptCapExecuteOnly = bit64(0);
inline constexpr std::uint64_t kEptCapPageWalk4 = bit64(6);
inline constexpr std::uint64_t kEptCapPageWalk5 = bit64(7);
inline constexpr std::uint64_t kEptCapMemoryTypeUc = bit64(8);
inline constexpr std::uint64_t kEptCapMemoryTypeWb = bit64(14);
inline constexpr std::uint64_t kEptCap2MbPages = bit64(16);
inline constexpr std::uint64_t kEptCap1GbPages = bit64(17);
inline constexpr std::uint64_t kEptCapInvept = bit64(20);
inline constexpr std::uint64_t kEptCapAccessedDirty = bit64(21);
inline constexpr std::uint64_t kEptCapInveptSingleContext = bit64(25);
inline constexpr std::uint64_t kEptCapInveptAllContext = bit64(26);
inline constexpr std::uint64_t kVpidCapInvvpid = bit64(32);
inline constexpr std::uint64_t kVpidCapIndividualAddress = bit64(40);
inline constexpr std::uint64_t kVpidCapSingleContext = bit64(41);
inline constexpr std::uint64_t kVpidCapAllContext = bit64(42);
inline constexpr std::uint64_t kVpidCapSingleContextRetainGlobals = bit64(43);

// --- CR0 / CR4 bits used by the fixed-bit MSRs (SDM A.7, A.8) ---
inline constexpr std::uint64_t kCr0Pe = bit64(0);
inline constexpr std::uint64_t kCr0Ne = bit64(5);
inline constexpr std::uint64_t kCr0Pg = bit64(31);
inline constexpr std::uint64_t kCr0Low32Bits = 0xFFFF'FFFF;  // CR0[63:32] are reserved
inline constexpr std::uint64_t kCr4Vme = bit64(0);
inline constexpr std::uint64_t kCr4Pvi = bit64(1);
inline constexpr std::uint64_t kCr4Tsd = bit64(2);
inline constexpr std::uint64_t kCr4De = bit64(3);
inline constexpr std::uint64_t kCr4Pse = bit64(4);
inline constexpr std::uint64_t kCr4Pae = bit64(5);
inline constexpr std::uint64_t kCr4Mce = bit64(6);
inline constexpr std::uint64_t kCr4Pge = bit64(7);
inline constexpr std::uint64_t kCr4Pce = bit64(8);
inline constexpr std::uint64_t kCr4Osfxsr = bit64(9);
inline constexpr std::uint64_t kCr4Osxmmexcpt = bit64(10);
inline constexpr std::uint64_t kCr4Vmxe = bit64(13);
inline constexpr std::uint64_t kCr4Fsgsbase = bit64(16);
inline constexpr std::uint64_t kCr4Pcide = bit64(17);
inline constexpr std::uint64_t kCr4Osxsave = bit64(18);
inline constexpr std::uint64_t kCr4Smep = bit64(20);
inline constexpr std::uint64_t kCr4Smap = bit64(21);
inline constexpr std::uint64_t kCr4Pke = bit64(22);

// One control-capability MSR: allowed-0 settings in bits 31:0 (a 1 there means the
// control must be 1), allowed-1 settings in bits 63:32 (a 0 there means it must be 0).
struct ControlCapability {
    std::uint32_t allowed0 = 0;
    std::uint32_t allowed1 = 0;

    static constexpr ControlCapability from_msr(std::uint64_t msr) {
        return {static_cast<std::uint32_t>(msr), static_cast<std::uint32_t>(msr >> 32)};
    }
    constexpr std::uint64_t to_msr() const { return (std::uint64_t{allowed1} << 32) | allowed0; }
    // Every bit required to be 1 is 1 and no bit that must be 0 is 1.
    constexpr bool permits(std::uint32_t value) const {
        return (value & allowed0) == allowed0 && (value & ~allowed1) == 0;
    }
    constexpr bool may_be_one(std::uint32_t bits) const { return (allowed1 & bits) == bits; }
    constexpr bool may_be_zero(std::uint32_t bits) const { return (allowed0 & bits) == 0; }
};

class VmxCapabilities {
  public:
    // RDMSR of a VMX capability MSR: nullopt when the MSR does not exist on this processor
    // (RDMSR would #GP), e.g. 0x492 without "activate tertiary controls" allowed-1.
    std::optional<std::uint64_t> read_msr(std::uint32_t msr) const;

    // Replace (or remove, with nullopt) one MSR value: for what-if experiments and tests.
    // Decoded views below follow the new value.
    void override_msr(std::uint32_t msr, std::optional<std::uint64_t> value);

    std::uint64_t basic() const { return msr_or_zero(kMsrIa32VmxBasic); }
    bool true_controls() const { return (basic() & kBasicTrueControls) != 0; }
    std::uint32_t vmcs_revision_id() const {
        return static_cast<std::uint32_t>(basic() & kBasicRevisionIdMask);
    }

    // The capability VM entry checks against: the TRUE MSR if IA32_VMX_BASIC[55] = 1,
    // otherwise the original one (SDM A.3.1, A.3.2, A.4, A.5).
    ControlCapability pin_based() const;
    ControlCapability primary() const;
    ControlCapability exit() const;
    ControlCapability entry() const;
    // IA32_VMX_PROCBASED_CTLS2; all-zero when the MSR does not exist.
    ControlCapability secondary() const;
    // IA32_VMX_PROCBASED_CTLS3: all 64 bits are allowed-1 settings (0 when absent).
    std::uint64_t tertiary_allowed1() const { return msr_or_zero(kMsrIa32VmxProcbasedCtls3); }
    // IA32_VMX_EXIT_CTLS2: all 64 bits are allowed-1 settings (0 when absent).
    std::uint64_t exit_controls2_allowed1() const { return msr_or_zero(kMsrIa32VmxExitCtls2); }
    std::uint64_t vmfunc_allowed1() const { return msr_or_zero(kMsrIa32VmxVmfunc); }
    std::uint64_t ept_vpid_cap() const { return msr_or_zero(kMsrIa32VmxEptVpidCap); }

    std::uint64_t misc() const { return msr_or_zero(kMsrIa32VmxMisc); }
    bool activity_state_supported(ActivityState state) const;
    unsigned cr3_target_count() const {
        return static_cast<unsigned>((misc() & kMiscCr3TargetCountMask) >>
                                     kMiscCr3TargetCountShift);
    }
    bool vmwrite_to_read_only() const { return (misc() & kMiscVmwriteAnyField) != 0; }
    bool zero_length_injection() const { return (misc() & kMiscZeroLengthInjection) != 0; }

    // CPUID.80000008H:EAX[7:0]; addresses referenced by the VMCS must fit in it.
    unsigned physical_address_width() const { return m_physical_address_width; }
    void set_physical_address_width(unsigned width) { m_physical_address_width = width; }

  private:
    std::uint64_t msr_or_zero(std::uint32_t msr) const { return read_msr(msr).value_or(0); }

    std::array<std::optional<std::uint64_t>, kVmxCapabilityMsrCount> m_msrs{};
    unsigned m_physical_address_width = 0;
};

VmxCapabilities build_capabilities(const model::CpuFeatures& features);

// The controls this model can run with a 1 setting (allowed-1), before default1 bits.
// Exposed so that tests and profiles can see exactly what a feature set offers.
std::uint32_t supported_pin_based_controls(const model::CpuFeatures& features);
std::uint32_t supported_primary_controls(const model::CpuFeatures& features);
std::uint32_t supported_secondary_controls(const model::CpuFeatures& features);
std::uint64_t supported_tertiary_controls(const model::CpuFeatures& features);
std::uint32_t supported_exit_controls(const model::CpuFeatures& features);
std::uint32_t supported_entry_controls(const model::CpuFeatures& features);

// Default1 controls the TRUE MSRs report as allowed-0 = 0 (they may be cleared when
// IA32_VMX_BASIC[55] = 1). Same choice as KVM's nested VMX and current hardware: CR3-load/
// store exiting, save/load debug controls.
inline constexpr std::uint32_t kPinTrueClearableDefault1 = 0;
inline constexpr std::uint32_t kPrimaryTrueClearableDefault1 =
    kPrimaryCr3LoadExiting | kPrimaryCr3StoreExiting;
inline constexpr std::uint32_t kExitTrueClearableDefault1 = kExitSaveDebugControls;
inline constexpr std::uint32_t kEntryTrueClearableDefault1 = kEntryLoadDebugControls;

// Whether bits beyond the physical-address width are set (SDM: "must not set any bits
// beyond the processor's physical-address width").
constexpr bool exceeds_physical_width(std::uint64_t address, unsigned width) {
    return width < 64 && (address >> width) != 0;
}

}  // namespace vtx::vmcs
