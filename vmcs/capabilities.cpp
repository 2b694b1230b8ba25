#include "vmcs/capabilities.hpp"

#include <algorithm>

#include "vmcs/feature_support.hpp"
#include "vmcs/fields.hpp"

namespace vtx::vmcs {
namespace {

// CR0 bits fixed to 1 in VMX operation (SDM 23.8: PE, NE, PG; "unrestricted guest" relaxes
// PE/PG for the guest only, the MSR still reports them).
constexpr std::uint64_t kCr0Fixed0 = kCr0Pe | kCr0Ne | kCr0Pg;
constexpr std::uint64_t kCr0Fixed1 = kCr0Low32Bits;
constexpr std::uint64_t kCr4Fixed0 = kCr4Vmxe;
// CR4 bits the modelled processor implements (no SMX, UMIP, LA57, CET...).
constexpr std::uint64_t kCr4Fixed1 = kCr4Vme | kCr4Pvi | kCr4Tsd | kCr4De | kCr4Pse | kCr4Pae |
                                     kCr4Mce | kCr4Pge | kCr4Pce | kCr4Osfxsr | kCr4Osxmmexcpt |
                                     kCr4Vmxe | kCr4Fsgsbase | kCr4Pcide | kCr4Osxsave | kCr4Smep |
                                     kCr4Smap | kCr4Pke;

constexpr std::uint64_t kEptCapabilities =
    kEptCapExecuteOnly | kEptCapPageWalk4 | kEptCapMemoryTypeUc | kEptCapMemoryTypeWb |
    kEptCap2MbPages | kEptCap1GbPages | kEptCapInvept | kEptCapAccessedDirty |
    kEptCapInveptSingleContext | kEptCapInveptAllContext;
constexpr std::uint64_t kVpidCapabilities = kVpidCapInvvpid | kVpidCapIndividualAddress |
                                            kVpidCapSingleContext | kVpidCapAllContext |
                                            kVpidCapSingleContextRetainGlobals;

constexpr std::size_t msr_slot(std::uint32_t msr) { return msr - kFirstVmxCapabilityMsr; }
constexpr bool is_capability_msr(std::uint32_t msr) {
    return msr >= kFirstVmxCapabilityMsr && msr <= kLastVmxCapabilityMsr;
}

constexpr std::uint64_t control_msr(std::uint32_t default1, std::uint32_t supported,
                                    std::uint32_t clearable_default1) {
    return ControlCapability{default1 & ~clearable_default1, default1 | supported}.to_msr();
}

std::uint64_t highest_supported_field_index(const model::CpuFeatures& features) {
    unsigned highest = 0;
    for (std::size_t i = 0; i < kKnownFieldCount; ++i) {
        const FieldInfo& info = known_field(i);
        if (requirement_met(info.requirement, features))
            highest = std::max(highest, field_index(encoding(info.field)));
    }
    return highest;
}

}  // namespace

std::uint32_t supported_pin_based_controls(const model::CpuFeatures& f) {
    std::uint32_t c = kPinExternalInterruptExiting | kPinNmiExiting | kPinVirtualNmis;
    if (supports_preemption_timer(f)) c |= kPinActivatePreemptionTimer;
    if (supports_posted_interrupts(f)) c |= kPinProcessPostedInterrupts;
    return c;
}

std::uint32_t supported_primary_controls(const model::CpuFeatures& f) {
    std::uint32_t c = kPrimaryInterruptWindowExiting | kPrimaryUseTscOffsetting |
                      kPrimaryHltExiting | kPrimaryInvlpgExiting | kPrimaryMwaitExiting |
                      kPrimaryRdpmcExiting | kPrimaryRdtscExiting | kPrimaryCr3LoadExiting |
                      kPrimaryCr3StoreExiting | kPrimaryCr8LoadExiting | kPrimaryCr8StoreExiting |
                      kPrimaryNmiWindowExiting | kPrimaryMovDrExiting |
                      kPrimaryUnconditionalIoExiting | kPrimaryUseIoBitmaps |
                      kPrimaryMonitorTrapFlag | kPrimaryMonitorExiting | kPrimaryPauseExiting;
    if (supports_tertiary_controls(f)) c |= kPrimaryActivateTertiaryControls;
    if (supports_tpr_shadow(f)) c |= kPrimaryUseTprShadow;
    if (supports_msr_bitmaps(f)) c |= kPrimaryUseMsrBitmaps;
    if (supports_secondary_controls(f)) c |= kPrimaryActivateSecondaryControls;
    return c;
}

std::uint32_t supported_secondary_controls(const model::CpuFeatures& f) {
    if (!supports_secondary_controls(f)) return 0;
    std::uint32_t c =
        kSecondaryDescriptorTableExiting | kSecondaryEnableRdtscp | kSecondaryWbinvdExiting;
    if (supports_virtualize_apic_accesses(f)) c |= kSecondaryVirtualizeApicAccesses;
    if (supports_ept(f)) c |= kSecondaryEnableEpt;
    if (supports_virtualize_x2apic_mode(f)) c |= kSecondaryVirtualizeX2apicMode;
    if (supports_vpid(f)) c |= kSecondaryEnableVpid;
    if (supports_unrestricted_guest(f)) c |= kSecondaryUnrestrictedGuest;
    if (supports_apic_register_virtualization(f)) c |= kSecondaryApicRegisterVirtualization;
    if (supports_virtual_interrupt_delivery(f)) c |= kSecondaryVirtualInterruptDelivery;
    if (supports_vm_functions(f)) c |= kSecondaryEnableVmFunctions;
    return c;
}

std::uint64_t supported_tertiary_controls(const model::CpuFeatures& f) {
    std::uint64_t c = 0;
    if (supports_ipi_virtualization(f)) c |= kTertiaryIpiVirt;
    return c;
}

std::uint32_t supported_exit_controls(const model::CpuFeatures& f) {
    std::uint32_t c = kExitHostAddressSpaceSize | kExitLoadPerfGlobalCtrl |
                      kExitAcknowledgeInterruptOnExit | kExitSavePat | kExitLoadPat |
                      kExitSaveEfer | kExitLoadEfer;
    if (supports_preemption_timer(f)) c |= kExitSavePreemptionTimer;
    if (supports_secondary_exit_controls(f)) c |= kExitActivateSecondaryControls;
    return c;
}

std::uint32_t supported_entry_controls(const model::CpuFeatures&) {
    // Entry to SMM / deactivate dual-monitor treatment may be 1 (as on hardware); VM entry
    // outside SMM rejects them (entry-control check, SDM16 26.2.1.3).
    return kEntryIa32eModeGuest | kEntryToSmm | kEntryDeactivateDualMonitor |
           kEntryLoadPerfGlobalCtrl | kEntryLoadPat | kEntryLoadEfer;
}

std::optional<std::uint64_t> VmxCapabilities::read_msr(std::uint32_t msr) const {
    if (!is_capability_msr(msr)) return std::nullopt;
    return m_msrs[msr_slot(msr)];
}

void VmxCapabilities::override_msr(std::uint32_t msr, std::optional<std::uint64_t> value) {
    if (is_capability_msr(msr)) m_msrs[msr_slot(msr)] = value;
}

ControlCapability VmxCapabilities::pin_based() const {
    return ControlCapability::from_msr(
        msr_or_zero(true_controls() ? kMsrIa32VmxTruePinbasedCtls : kMsrIa32VmxPinbasedCtls));
}
ControlCapability VmxCapabilities::primary() const {
    return ControlCapability::from_msr(
        msr_or_zero(true_controls() ? kMsrIa32VmxTrueProcbasedCtls : kMsrIa32VmxProcbasedCtls));
}
ControlCapability VmxCapabilities::exit() const {
    return ControlCapability::from_msr(
        msr_or_zero(true_controls() ? kMsrIa32VmxTrueExitCtls : kMsrIa32VmxExitCtls));
}
ControlCapability VmxCapabilities::entry() const {
    return ControlCapability::from_msr(
        msr_or_zero(true_controls() ? kMsrIa32VmxTrueEntryCtls : kMsrIa32VmxEntryCtls));
}
ControlCapability VmxCapabilities::secondary() const {
    return ControlCapability::from_msr(msr_or_zero(kMsrIa32VmxProcbasedCtls2));
}

bool VmxCapabilities::activity_state_supported(ActivityState state) const {
    switch (state) {
        case ActivityState::Active:
            return true;
        case ActivityState::Hlt:
            return (misc() & kMiscActivityHlt) != 0;
        case ActivityState::Shutdown:
            return (misc() & kMiscActivityShutdown) != 0;
        case ActivityState::WaitForSipi:
            return (misc() & kMiscActivityWaitSipi) != 0;
    }
    return false;
}

VmxCapabilities build_capabilities(const model::CpuFeatures& f) {
    VmxCapabilities caps;
    caps.set_physical_address_width(f.physical_address_width);

    // IA32_VMX_BASIC (A.1): revision, region size, WB, INS/OUTS info, TRUE controls.
    // Bit 48 = 0 (addresses limited by the physical-address width), bit 49 = 0 (no SMM
    // dual-monitor treatment modelled), bit 56 = 0 (error-code consistency checked).
    caps.override_msr(kMsrIa32VmxBasic, (f.vmcs_revision_id & kBasicRevisionIdMask) |
                                            (kVmcsRegionSize << kBasicRegionSizeShift) |
                                            (kMemoryTypeWriteBack << kBasicMemoryTypeShift) |
                                            kBasicInsOutsInfo | kBasicTrueControls);

    const std::uint32_t pin = supported_pin_based_controls(f);
    const std::uint32_t primary = supported_primary_controls(f);
    const std::uint32_t exit = supported_exit_controls(f);
    const std::uint32_t entry = supported_entry_controls(f);
    constexpr std::uint32_t kNoneClearable = 0;
    caps.override_msr(kMsrIa32VmxPinbasedCtls, control_msr(kPinDefault1, pin, kNoneClearable));
    caps.override_msr(kMsrIa32VmxProcbasedCtls,
                      control_msr(kPrimaryDefault1, primary, kNoneClearable));
    caps.override_msr(kMsrIa32VmxExitCtls, control_msr(kExitDefault1, exit, kNoneClearable));
    caps.override_msr(kMsrIa32VmxEntryCtls, control_msr(kEntryDefault1, entry, kNoneClearable));
    caps.override_msr(kMsrIa32VmxTruePinbasedCtls,
                      control_msr(kPinDefault1, pin, kPinTrueClearableDefault1));
    caps.override_msr(kMsrIa32VmxTrueProcbasedCtls,
                      control_msr(kPrimaryDefault1, primary, kPrimaryTrueClearableDefault1));
    caps.override_msr(kMsrIa32VmxTrueExitCtls,
                      control_msr(kExitDefault1, exit, kExitTrueClearableDefault1));
    caps.override_msr(kMsrIa32VmxTrueEntryCtls,
                      control_msr(kEntryDefault1, entry, kEntryTrueClearableDefault1));

    // IA32_VMX_MISC (A.6).
    std::uint64_t misc =
        kMiscSaveEferLma | (std::uint64_t{kCr3TargetValueCount} << kMiscCr3TargetCountShift);
    if (supports_preemption_timer(f))
        misc |= f.preemption_timer_rate & kMiscPreemptionTimerRateMask;
    if (f.activity_hlt) misc |= kMiscActivityHlt;
    if (f.activity_shutdown) misc |= kMiscActivityShutdown;
    if (f.activity_wait_for_sipi) misc |= kMiscActivityWaitSipi;
    if (f.vmwrite_to_exit_info) misc |= kMiscVmwriteAnyField;
    caps.override_msr(kMsrIa32VmxMisc, misc);

    caps.override_msr(kMsrIa32VmxCr0Fixed0, kCr0Fixed0);
    caps.override_msr(kMsrIa32VmxCr0Fixed1, kCr0Fixed1);
    caps.override_msr(kMsrIa32VmxCr4Fixed0, kCr4Fixed0);
    caps.override_msr(kMsrIa32VmxCr4Fixed1, kCr4Fixed1);
    caps.override_msr(kMsrIa32VmxVmcsEnum, highest_supported_field_index(f) << kVmcsEnumIndexShift);

    // IA32_VMX_PROCBASED_CTLS2 exists only if "activate secondary controls" may be 1 (A.3.3);
    // its allowed-0 half is all zero.
    if (primary & kPrimaryActivateSecondaryControls) {
        caps.override_msr(kMsrIa32VmxProcbasedCtls2,
                          ControlCapability{0, supported_secondary_controls(f)}.to_msr());
    }
    // IA32_VMX_EPT_VPID_CAP exists only if EPT or VPID may be 1 (A.10).
    if (supports_ept(f) || supports_vpid(f)) {
        caps.override_msr(kMsrIa32VmxEptVpidCap, (supports_ept(f) ? kEptCapabilities : 0) |
                                                     (supports_vpid(f) ? kVpidCapabilities : 0));
    }
    // IA32_VMX_VMFUNC exists only if "enable VM functions" may be 1 (A.11).
    if (supports_vm_functions(f)) {
        caps.override_msr(kMsrIa32VmxVmfunc, supports_ept(f) ? kVmfuncEptpSwitching : 0);
    }
    // IA32_VMX_PROCBASED_CTLS3 exists only if "activate tertiary controls" may be 1; all 64
    // bits are allowed-1 settings (Linux feat_ctl.c; Xen tertiary-controls patch).
    if (primary & kPrimaryActivateTertiaryControls) {
        caps.override_msr(kMsrIa32VmxProcbasedCtls3, supported_tertiary_controls(f));
    }
    // IA32_VMX_EXIT_CTLS2 exists only if "activate secondary VM-exit controls" may be 1; all
    // 64 bits are allowed-1 settings. No secondary exit control is modelled.
    if (exit & kExitActivateSecondaryControls) {
        constexpr std::uint64_t kNoSecondaryExitControls = 0;
        caps.override_msr(kMsrIa32VmxExitCtls2, kNoSecondaryExitControls);
    }
    return caps;
}

}  // namespace vtx::vmcs
