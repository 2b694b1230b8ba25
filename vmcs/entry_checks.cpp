#include "vmcs/entry_checks.hpp"

#include <array>
#include <stdexcept>

#include "vmcs/controls.hpp"

namespace vtx::vmcs {
namespace {

constexpr std::string_view kSdmExec = "SDM16 26.2.1.1";
constexpr std::string_view kSdmExit = "SDM16 26.2.1.2";
constexpr std::string_view kSdmEntry = "SDM16 26.2.1.3";
constexpr std::string_view kSdmGuest = "SDM16 26.3.1.5";
constexpr std::string_view kSdmIpivEra =
    "SDM (IPIv-era) checks on VM-execution control fields, quoted by [SDM-Q2]";
constexpr std::string_view kSdmTertiary =
    "SDM (IPIv-era) checks on VM-execution control fields; Bochs VMenterLoadCheckVmControls";
constexpr std::string_view kVtxsimPolicy = "SDM gap: vtxsim policy, docs/vmcs-choices.md";

// Indexed by EntryCheck.
constexpr std::array<CheckInfo, kEntryCheckCount> kEntryChecks{{
    {"pin_based_reserved_bits", kSdmExec,
     "pin-based controls agree with IA32_VMX_(TRUE_)PINBASED_CTLS"},
    {"primary_reserved_bits", kSdmExec,
     "primary controls agree with IA32_VMX_(TRUE_)PROCBASED_CTLS"},
    {"secondary_reserved_bits", kSdmExec,
     "if activate secondary controls = 1, secondary controls agree with IA32_VMX_PROCBASED_CTLS2"},
    {"tertiary_reserved_bits", kSdmTertiary,
     "if activate tertiary controls = 1, tertiary controls agree with IA32_VMX_PROCBASED_CTLS3"},
    {"cr3_target_count", kSdmExec, "CR3-target count <= IA32_VMX_MISC[24:16]"},
    {"io_bitmap_addresses", kSdmExec,
     "if use I/O bitmaps = 1, I/O bitmap A and B are 4-KByte aligned and within the "
     "physical-address width"},
    {"msr_bitmap_address", kSdmExec,
     "if use MSR bitmaps = 1, the MSR-bitmap address is 4-KByte aligned and within the "
     "physical-address width"},
    {"virtual_apic_address", kSdmExec,
     "if use TPR shadow = 1, the virtual-APIC address is 4-KByte aligned and within the "
     "physical-address width"},
    {"tpr_threshold_reserved_bits", kSdmExec,
     "if use TPR shadow = 1 and virtual-interrupt delivery = 0, TPR threshold bits 31:4 are 0"},
    {"tpr_threshold_above_vtpr", kSdmExec,
     "if use TPR shadow = 1, virtualize APIC accesses = 0 and virtual-interrupt delivery = 0, "
     "TPR threshold[3:0] <= VTPR[7:4]"},
    {"x2apic_mode_requires_tpr_shadow", kSdmExec,
     "if use TPR shadow = 0, virtualize x2APIC mode = 0"},
    {"apic_register_virtualization_requires_tpr_shadow", kSdmExec,
     "if use TPR shadow = 0, APIC-register virtualization = 0"},
    {"virtual_interrupt_delivery_requires_tpr_shadow", kSdmExec,
     "if use TPR shadow = 0, virtual-interrupt delivery = 0"},
    {"ipi_virtualization_requires_tpr_shadow", kSdmIpivEra,
     "if use TPR shadow = 0, IPI virtualization = 0"},
    {"virtual_nmis_require_nmi_exiting", kSdmExec, "if NMI exiting = 0, virtual NMIs = 0"},
    {"nmi_window_requires_virtual_nmis", kSdmExec, "if virtual NMIs = 0, NMI-window exiting = 0"},
    {"apic_access_address", kSdmExec,
     "if virtualize APIC accesses = 1, the APIC-access address is 4-KByte aligned and within "
     "the physical-address width"},
    {"x2apic_mode_excludes_apic_accesses", kSdmExec,
     "if virtualize x2APIC mode = 1, virtualize APIC accesses = 0"},
    {"virtual_interrupt_delivery_requires_external_interrupt_exiting", kSdmExec,
     "if virtual-interrupt delivery = 1, external-interrupt exiting = 1"},
    {"posted_interrupts_require_virtual_interrupt_delivery", kSdmExec,
     "if process posted interrupts = 1, virtual-interrupt delivery = 1"},
    {"posted_interrupts_require_ack_interrupt_on_exit", kSdmExec,
     "if process posted interrupts = 1, acknowledge interrupt on exit = 1"},
    {"posted_interrupt_notification_vector", kSdmExec,
     "if process posted interrupts = 1, notification vector bits 15:8 are 0"},
    {"posted_interrupt_descriptor_address", kSdmExec,
     "if process posted interrupts = 1, descriptor address bits 5:0 are 0 and it is within "
     "the physical-address width"},
    {"vpid_not_zero", kSdmExec, "if enable VPID = 1, VPID != 0"},
    {"ept_pointer", kSdmExec,
     "if enable EPT = 1, the EPTP memory type, page-walk length, A/D enable and reserved bits "
     "agree with IA32_VMX_EPT_VPID_CAP and the physical-address width"},
    {"unrestricted_guest_requires_ept", kSdmExec, "if unrestricted guest = 1, enable EPT = 1"},
    {"vm_function_controls", kSdmExec,
     "if enable VM functions = 1, VM-function controls agree with IA32_VMX_VMFUNC"},
    {"eptp_switching", kSdmExec,
     "if EPTP switching = 1, enable EPT = 1 and the EPTP-list address is 4-KByte aligned and "
     "within the physical-address width"},
    {"ipiv_pid_pointer_table_address", kVtxsimPolicy,
     "if IPI virtualization = 1, the PID-pointer-table address is 4-KByte aligned and within "
     "the physical-address width"},
    {"ipiv_requires_virtual_interrupt_delivery", kVtxsimPolicy,
     "if IPI virtualization = 1, virtual-interrupt delivery = 1 (disabled by policy)"},
    {"ipiv_requires_posted_interrupts", kVtxsimPolicy,
     "if IPI virtualization = 1, process posted interrupts = 1 (disabled by policy)"},
    {"exit_reserved_bits", kSdmExit, "VM-exit controls agree with IA32_VMX_(TRUE_)EXIT_CTLS"},
    {"secondary_exit_reserved_bits", kSdmExit,
     "if activate secondary VM-exit controls = 1, they agree with IA32_VMX_EXIT_CTLS2"},
    {"save_preemption_timer_requires_timer", kSdmExit,
     "if activate VMX-preemption timer = 0, save VMX-preemption timer value = 0"},
    {"exit_msr_store_address", kSdmExit,
     "if the VM-exit MSR-store count is not 0, the address is 16-byte aligned and the area is "
     "within the physical-address width"},
    {"exit_msr_load_address", kSdmExit,
     "if the VM-exit MSR-load count is not 0, the address is 16-byte aligned and the area is "
     "within the physical-address width"},
    {"entry_reserved_bits", kSdmEntry, "VM-entry controls agree with IA32_VMX_(TRUE_)ENTRY_CTLS"},
    {"event_injection_reserved_bits", kSdmEntry,
     "VM-entry interruption information bits 30:12 are 0"},
    {"event_injection_type", kSdmEntry,
     "interruption type is not 1 (reserved), and 7 (other event) only if the monitor trap "
     "flag is supported"},
    {"event_injection_vector", kSdmEntry,
     "NMI uses vector 2, hardware exceptions vectors 0-31, other event vector 0"},
    {"event_injection_deliver_error_code", kSdmEntry,
     "deliver-error-code is 1 exactly for hardware exceptions that push one (8, 10-14, 17, 21) "
     "in protected mode"},
    {"event_injection_error_code_bits", kSdmEntry,
     "if deliver-error-code = 1, error-code bits 31:16 are 0"},
    {"event_injection_instruction_length", kSdmEntry,
     "software interrupts and exceptions have an instruction length of 1-15 (0 only if "
     "IA32_VMX_MISC[30])"},
    {"entry_msr_load_address", kSdmEntry,
     "if the VM-entry MSR-load count is not 0, the address is 16-byte aligned and the area is "
     "within the physical-address width"},
    {"entry_outside_smm", kSdmEntry,
     "outside SMM, entry to SMM = 0 and deactivate dual-monitor treatment = 0"},
}};

constexpr std::array<CheckInfo, kGuestStateCheckCount> kGuestStateChecks{{
    {"activity_state_value", kSdmGuest, "activity state is 0-3"},
    {"activity_state_supported", kSdmGuest,
     "activity state is supported according to IA32_VMX_MISC[8:6]"},
    {"hlt_requires_ss_dpl_zero", kSdmGuest, "HLT only if SS.DPL = 0"},
    {"blocking_requires_active", kSdmGuest,
     "activity state is active if the interruptibility state shows blocking by STI or MOV SS"},
    {"injected_event_allowed_in_activity_state", kSdmGuest,
     "an injected event is one the target activity state allows"},
    {"wait_for_sipi_excludes_entry_to_smm", kSdmGuest,
     "wait-for-SIPI is not allowed with entry to SMM = 1"},
}};

constexpr std::uint64_t kPageSize = 4096;
constexpr std::uint64_t kPageOffsetMask = kPageSize - 1;
constexpr std::uint64_t kPidAlignmentMask = 0x3F;             // PID is 64-byte aligned (bits 5:0)
constexpr std::uint64_t kMsrAreaAlignmentMask = 0xF;          // MSR areas are 16-byte aligned
constexpr std::uint64_t kMsrAreaEntrySize = 16;               // bytes per MSR-load/store entry
constexpr std::uint32_t kErrorCodeReservedBits = 0xFFFF0000;  // bits 31:16
constexpr std::uint32_t kMaxInstructionLength = 15;
constexpr std::uint32_t kVtprPriorityClassShift = 4;  // VTPR[7:4]

ControlCheckResult fail(EntryCheck check) {
    const CheckInfo& info = check_info(check);
    return ControlCheckFailure{check,
                               VmxResult::fail_valid(VmInstructionError::EntryInvalidControlField),
                               info.name, info.sdm_section};
}

GuestStateCheckResult fail(GuestStateCheck check) {
    const CheckInfo& info = check_info(check);
    return GuestStateCheckFailure{check, make_exit_reason(ExitReason::EntryFailGuestState, true),
                                  kEntryFailQualDefault, info.name, info.sdm_section};
}

std::uint32_t read32(const Vmcs& vmcs, Field f) {
    return static_cast<std::uint32_t>(vmcs.hw_read(f));
}

bool page_address_ok(std::uint64_t address, unsigned width) {
    return (address & kPageOffsetMask) == 0 && !exceeds_physical_width(address, width);
}

// An MSR-load/store area of `count` 16-byte entries at `address` (SDM16 26.2.1.2/26.2.1.3).
bool msr_area_ok(std::uint64_t address, std::uint32_t count, unsigned width) {
    if (count == 0) return true;
    const std::uint64_t last_byte = address + std::uint64_t{count} * kMsrAreaEntrySize - 1;
    return (address & kMsrAreaAlignmentMask) == 0 && !exceeds_physical_width(address, width) &&
           !exceeds_physical_width(last_byte, width);
}

bool eptp_ok(std::uint64_t eptp, std::uint64_t cap, unsigned width) {
    const std::uint64_t memory_type = eptp & kEptpMemoryTypeMask;
    const bool type_ok = (memory_type == kEptMemoryTypeUc && (cap & kEptCapMemoryTypeUc)) ||
                         (memory_type == kEptMemoryTypeWb && (cap & kEptCapMemoryTypeWb));
    const std::uint64_t walk = eptp & kEptpPageWalkMask;
    const bool walk_ok = (walk == kEptpPageWalk4 && (cap & kEptCapPageWalk4)) ||
                         (walk == kEptpPageWalk5 && (cap & kEptCapPageWalk5));
    const bool ad_ok = (eptp & kEptpAccessedDirtyEnable) == 0 || (cap & kEptCapAccessedDirty);
    return type_ok && walk_ok && ad_ok && (eptp & kEptpReservedLowBits) == 0 &&
           !exceeds_physical_width(eptp, width);
}

// Exceptions that push an error code (SDM Vol. 3 6.15; VM-entry deliver-error-code check).
constexpr bool exception_has_error_code(std::uint8_t vector) {
    switch (vector) {
        case kVectorDoubleFault:
        case kVectorInvalidTss:
        case kVectorSegmentNotPresent:
        case kVectorStackFault:
        case kVectorGeneralProtection:
        case kVectorPageFault:
        case kVectorAlignmentCheck:
        case kVectorControlProtection:
            return true;
        default:
            return false;
    }
}

constexpr bool is_software_event(InterruptionType type) {
    return type == InterruptionType::SoftwareInterrupt ||
           type == InterruptionType::PrivilegedSoftwareException ||
           type == InterruptionType::SoftwareException;
}

// SDM16 26.3.1.5: which injected events each activity state allows.
bool event_allowed_in(ActivityState state, std::uint32_t info) {
    const InterruptionType type = interruption_type(info);
    const std::uint8_t vector = interruption_vector(info);
    const bool machine_check =
        type == InterruptionType::HardwareException && vector == kVectorMachineCheck;
    switch (state) {
        case ActivityState::Active:
            return true;
        case ActivityState::Hlt:
            return type == InterruptionType::ExternalInterrupt || type == InterruptionType::Nmi ||
                   machine_check ||
                   (type == InterruptionType::HardwareException && vector == kVectorDebug) ||
                   (type == InterruptionType::OtherEvent && vector == kOtherEventPendingMtfVector);
        case ActivityState::Shutdown:
            return type == InterruptionType::Nmi || machine_check;
        case ActivityState::WaitForSipi:
            return false;
    }
    return false;
}

}  // namespace

const CheckInfo& check_info(EntryCheck check) {
    return kEntryChecks.at(static_cast<std::size_t>(check));
}

const CheckInfo& check_info(GuestStateCheck check) {
    return kGuestStateChecks.at(static_cast<std::size_t>(check));
}

ControlCheckResult check_vm_execution_controls(const Vmcs& vmcs, const VmxCapabilities& caps,
                                               const VtprReader& read_vtpr) {
    const unsigned width = caps.physical_address_width();
    const std::uint32_t pin = read32(vmcs, Field::PinBasedVmExecControl);
    const std::uint32_t primary = read32(vmcs, Field::CpuBasedVmExecControl);
    // Secondary/tertiary controls are read only if activated; otherwise they act as 0.
    const std::uint32_t secondary = effective_secondary_controls(vmcs);
    const std::uint64_t tertiary = effective_tertiary_controls(vmcs);
    const std::uint32_t exit = read32(vmcs, Field::VmExitControls);

    if (!caps.pin_based().permits(pin)) return fail(EntryCheck::PinReservedBits);
    if (!caps.primary().permits(primary)) return fail(EntryCheck::PrimaryReservedBits);
    if ((primary & kPrimaryActivateSecondaryControls) && !caps.secondary().permits(secondary))
        return fail(EntryCheck::SecondaryReservedBits);
    if ((primary & kPrimaryActivateTertiaryControls) && (tertiary & ~caps.tertiary_allowed1()))
        return fail(EntryCheck::TertiaryReservedBits);

    if (read32(vmcs, Field::Cr3TargetCount) > caps.cr3_target_count())
        return fail(EntryCheck::Cr3TargetCount);
    if ((primary & kPrimaryUseIoBitmaps) &&
        (!page_address_ok(vmcs.hw_read(Field::IoBitmapA), width) ||
         !page_address_ok(vmcs.hw_read(Field::IoBitmapB), width)))
        return fail(EntryCheck::IoBitmapAddresses);
    if ((primary & kPrimaryUseMsrBitmaps) &&
        !page_address_ok(vmcs.hw_read(Field::MsrBitmap), width))
        return fail(EntryCheck::MsrBitmapAddress);

    const bool tpr_shadow = (primary & kPrimaryUseTprShadow) != 0;
    const bool vid = (secondary & kSecondaryVirtualInterruptDelivery) != 0;
    const bool apic_accesses = (secondary & kSecondaryVirtualizeApicAccesses) != 0;
    const bool ipiv = (tertiary & kTertiaryIpiVirt) != 0;
    if (tpr_shadow) {
        const std::uint64_t virtual_apic = vmcs.hw_read(Field::VirtualApicPageAddr);
        if (!page_address_ok(virtual_apic, width)) return fail(EntryCheck::VirtualApicAddress);
        const std::uint32_t threshold = read32(vmcs, Field::TprThreshold);
        if (!vid && (threshold & kTprThresholdReservedBits))
            return fail(EntryCheck::TprThresholdReservedBits);
        if (!vid && !apic_accesses) {
            if (!read_vtpr)
                throw std::invalid_argument("check_vm_execution_controls: VTPR reader required");
            const std::uint8_t vtpr = read_vtpr(virtual_apic + kVirtualApicVtprOffset);
            if ((threshold & kTprThresholdMask) > (std::uint32_t{vtpr} >> kVtprPriorityClassShift))
                return fail(EntryCheck::TprThresholdAboveVtpr);
        }
    } else {
        if (secondary & kSecondaryVirtualizeX2apicMode)
            return fail(EntryCheck::X2apicModeRequiresTprShadow);
        if (secondary & kSecondaryApicRegisterVirtualization)
            return fail(EntryCheck::ApicRegisterVirtualizationRequiresTprShadow);
        if (vid) return fail(EntryCheck::VirtualInterruptDeliveryRequiresTprShadow);
        if (ipiv_entry_policy::kRequiresTprShadow && ipiv)
            return fail(EntryCheck::IpiVirtualizationRequiresTprShadow);
    }

    if (!(pin & kPinNmiExiting) && (pin & kPinVirtualNmis))
        return fail(EntryCheck::VirtualNmisRequireNmiExiting);
    if (!(pin & kPinVirtualNmis) && (primary & kPrimaryNmiWindowExiting))
        return fail(EntryCheck::NmiWindowRequiresVirtualNmis);

    if (apic_accesses && !page_address_ok(vmcs.hw_read(Field::ApicAccessAddr), width))
        return fail(EntryCheck::ApicAccessAddress);
    if ((secondary & kSecondaryVirtualizeX2apicMode) && apic_accesses)
        return fail(EntryCheck::X2apicModeExcludesApicAccesses);
    if (vid && !(pin & kPinExternalInterruptExiting))
        return fail(EntryCheck::VirtualInterruptDeliveryRequiresExternalInterruptExiting);

    if (pin & kPinProcessPostedInterrupts) {
        if (!vid) return fail(EntryCheck::PostedInterruptsRequireVirtualInterruptDelivery);
        if (!(exit & kExitAcknowledgeInterruptOnExit))
            return fail(EntryCheck::PostedInterruptsRequireAckInterruptOnExit);
        if (vmcs.hw_read(Field::PostedIntrNv) & kPostedIntrNvReservedBits)
            return fail(EntryCheck::PostedInterruptNotificationVector);
        const std::uint64_t pid = vmcs.hw_read(Field::PostedIntrDescAddr);
        if ((pid & kPidAlignmentMask) || exceeds_physical_width(pid, width))
            return fail(EntryCheck::PostedInterruptDescriptorAddress);
    }

    if ((secondary & kSecondaryEnableVpid) && vmcs.hw_read(Field::VirtualProcessorId) == 0)
        return fail(EntryCheck::VpidNotZero);
    const bool ept = (secondary & kSecondaryEnableEpt) != 0;
    if (ept && !eptp_ok(vmcs.hw_read(Field::EptPointer), caps.ept_vpid_cap(), width))
        return fail(EntryCheck::EptPointer);
    if ((secondary & kSecondaryUnrestrictedGuest) && !ept)
        return fail(EntryCheck::UnrestrictedGuestRequiresEpt);
    if (secondary & kSecondaryEnableVmFunctions) {
        const std::uint64_t vmfunc = vmcs.hw_read(Field::VmFunctionControl);
        if (vmfunc & ~caps.vmfunc_allowed1()) return fail(EntryCheck::VmFunctionControls);
        if ((vmfunc & kVmfuncEptpSwitching) &&
            (!ept || !page_address_ok(vmcs.hw_read(Field::EptpListAddress), width)))
            return fail(EntryCheck::EptpSwitching);
    }

    if (ipiv) {
        static_assert(!ipiv_entry_policy::kCheckLastPidPointerIndex,
                      "no architectural rule for LAST_PID_POINTER_INDEX is defined; write one "
                      "here before enabling the policy");
        if (ipiv_entry_policy::kCheckPidPointerTableAddress &&
            !page_address_ok(vmcs.hw_read(Field::PidPointerTable), width))
            return fail(EntryCheck::IpivPidPointerTableAddress);
        if (ipiv_entry_policy::kRequiresVirtualInterruptDelivery && !vid)
            return fail(EntryCheck::IpivRequiresVirtualInterruptDelivery);
        if (ipiv_entry_policy::kRequiresPostedInterrupts && !(pin & kPinProcessPostedInterrupts))
            return fail(EntryCheck::IpivRequiresPostedInterrupts);
    }
    return std::nullopt;
}

ControlCheckResult check_vm_exit_controls(const Vmcs& vmcs, const VmxCapabilities& caps) {
    const unsigned width = caps.physical_address_width();
    const std::uint32_t exit = read32(vmcs, Field::VmExitControls);
    const std::uint32_t pin = read32(vmcs, Field::PinBasedVmExecControl);

    if (!caps.exit().permits(exit)) return fail(EntryCheck::ExitReservedBits);
    if ((exit & kExitActivateSecondaryControls) &&
        (vmcs.hw_read(Field::SecondaryVmExitControls) & ~caps.exit_controls2_allowed1()))
        return fail(EntryCheck::SecondaryExitReservedBits);
    if (!(pin & kPinActivatePreemptionTimer) && (exit & kExitSavePreemptionTimer))
        return fail(EntryCheck::SavePreemptionTimerRequiresTimer);
    if (!msr_area_ok(vmcs.hw_read(Field::VmExitMsrStoreAddr),
                     read32(vmcs, Field::VmExitMsrStoreCount), width))
        return fail(EntryCheck::ExitMsrStoreAddress);
    if (!msr_area_ok(vmcs.hw_read(Field::VmExitMsrLoadAddr),
                     read32(vmcs, Field::VmExitMsrLoadCount), width))
        return fail(EntryCheck::ExitMsrLoadAddress);
    return std::nullopt;
}

ControlCheckResult check_vm_entry_controls(const Vmcs& vmcs, const VmxCapabilities& caps) {
    const unsigned width = caps.physical_address_width();
    const std::uint32_t entry = read32(vmcs, Field::VmEntryControls);
    if (!caps.entry().permits(entry)) return fail(EntryCheck::EntryReservedBits);

    const std::uint32_t info = read32(vmcs, Field::VmEntryIntrInfoField);
    if (interruption_valid(info)) {
        const InterruptionType type = interruption_type(info);
        const std::uint8_t vector = interruption_vector(info);
        if (info & kIntrInfoEntryReservedBits) return fail(EntryCheck::EventInjectionReservedBits);
        if (type == InterruptionType::Reserved ||
            (type == InterruptionType::OtherEvent &&
             !caps.primary().may_be_one(kPrimaryMonitorTrapFlag)))
            return fail(EntryCheck::EventInjectionType);
        if ((type == InterruptionType::Nmi && vector != kVectorNmi) ||
            (type == InterruptionType::HardwareException && vector > kLastExceptionVector) ||
            (type == InterruptionType::OtherEvent && vector != kOtherEventPendingMtfVector))
            return fail(EntryCheck::EventInjectionVector);

        const bool deliver_error_code = (info & kIntrInfoErrorCodeValid) != 0;
        if (!(caps.basic() & kBasicNoErrorCodeConsistency)) {
            const bool unrestricted =
                (effective_secondary_controls(vmcs) & kSecondaryUnrestrictedGuest) != 0;
            const bool protected_mode = !unrestricted || (vmcs.hw_read(Field::GuestCr0) & kCr0Pe);
            const bool expected = type == InterruptionType::HardwareException && protected_mode &&
                                  exception_has_error_code(vector);
            if (deliver_error_code != expected)
                return fail(EntryCheck::EventInjectionDeliverErrorCode);
        }
        if (deliver_error_code &&
            (read32(vmcs, Field::VmEntryExceptionErrorCode) & kErrorCodeReservedBits))
            return fail(EntryCheck::EventInjectionErrorCodeBits);
        if (is_software_event(type)) {
            const std::uint32_t length = read32(vmcs, Field::VmEntryInstructionLen);
            const bool zero_ok = caps.zero_length_injection();
            if (length > kMaxInstructionLength || (length == 0 && !zero_ok))
                return fail(EntryCheck::EventInjectionInstructionLength);
        }
    }

    if (!msr_area_ok(vmcs.hw_read(Field::VmEntryMsrLoadAddr),
                     read32(vmcs, Field::VmEntryMsrLoadCount), width))
        return fail(EntryCheck::EntryMsrLoadAddress);
    // vtxsim never runs in SMM, so every VM entry is "not from SMM".
    if (entry & (kEntryToSmm | kEntryDeactivateDualMonitor))
        return fail(EntryCheck::EntryOutsideSmm);
    return std::nullopt;
}

ControlCheckResult check_vmx_controls(const Vmcs& vmcs, const VmxCapabilities& caps,
                                      const VtprReader& read_vtpr) {
    if (auto failure = check_vm_execution_controls(vmcs, caps, read_vtpr)) return failure;
    if (auto failure = check_vm_exit_controls(vmcs, caps)) return failure;
    return check_vm_entry_controls(vmcs, caps);
}

GuestStateCheckResult check_guest_activity_state(const Vmcs& vmcs, const VmxCapabilities& caps) {
    const std::uint32_t raw_state = read32(vmcs, Field::GuestActivityState);
    if (raw_state > kLastActivityState) return fail(GuestStateCheck::ActivityStateValue);
    const auto state = static_cast<ActivityState>(raw_state);
    if (!caps.activity_state_supported(state)) return fail(GuestStateCheck::ActivityStateSupported);

    const std::uint32_t ss_ar = read32(vmcs, Field::GuestSsArBytes);
    if (state == ActivityState::Hlt && (ss_ar & kSegmentArDplMask) != 0)
        return fail(GuestStateCheck::HltRequiresSsDplZero);

    const std::uint32_t interruptibility = read32(vmcs, Field::GuestInterruptibilityInfo);
    if ((interruptibility & (kBlockingBySti | kBlockingByMovSs)) && state != ActivityState::Active)
        return fail(GuestStateCheck::BlockingRequiresActive);

    const std::uint32_t info = read32(vmcs, Field::VmEntryIntrInfoField);
    if (interruption_valid(info) && !event_allowed_in(state, info))
        return fail(GuestStateCheck::InjectedEventAllowedInActivityState);

    if (state == ActivityState::WaitForSipi && (read32(vmcs, Field::VmEntryControls) & kEntryToSmm))
        return fail(GuestStateCheck::WaitForSipiExcludesEntryToSmm);
    return std::nullopt;
}

}  // namespace vtx::vmcs
