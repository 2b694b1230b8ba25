#pragma once
// VM-entry checks on the VMX controls (SDM16 26.2.1; failure => VMfailValid(7), the entry
// does not happen) and on the guest activity state (SDM16 26.3.1.5; failure => VM-entry
// failure exit with basic reason 33 and bit 31 set). Reference vtx-semantics.md 7.1, 8.2.
// The checks of each function run in the SDM's listed order and the first failure wins.
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "vmcs/capabilities.hpp"
#include "vmcs/errors.hpp"
#include "vmcs/exit_info.hpp"
#include "vmcs/vmcs.hpp"

namespace vtx::vmcs {

// IPI-virtualization entry checks: the sources settle only the TPR-shadow dependency
// (new SDM "use TPR shadow = 0 => ... IPI virtualization must be 0", quoted by [SDM-Q2];
// reference vtx-semantics.md 7.1 GAP and 11 item 2). Everything else is a vtxsim decision,
// made here and only here, and explained in docs/vmcs-choices.md.
namespace ipiv_entry_policy {
// Documented: IPIv = 1 requires "use TPR shadow" = 1.
inline constexpr bool kRequiresTprShadow = true;
// Decision: the PID-pointer-table address must be 4-KByte aligned and within the
// physical-address width, as every other table the VMCS points to (virtual-APIC page,
// APIC-access page, MSR and I/O bitmaps, EPTP list). KVM always supplies a page-aligned
// table, so real VMMs are unaffected.
inline constexpr bool kCheckPidPointerTableAddress = true;
// Decision: no entry check on LAST_PID_POINTER_INDEX; any 16-bit value is accepted and the
// bound is enforced per IPI ("virtual APIC ID beyond end of tables" => APIC-write exit).
inline constexpr bool kCheckLastPidPointerIndex = false;
// Decision: IPIv does not additionally require virtual-interrupt delivery or
// "process posted interrupts" at VM entry (not quoted anywhere; a guess would reject
// configurations hardware might accept).
inline constexpr bool kRequiresVirtualInterruptDelivery = false;
inline constexpr bool kRequiresPostedInterrupts = false;
}  // namespace ipiv_entry_policy

enum class EntryCheck : std::uint8_t {
    // VM-execution control fields (26.2.1.1), in the SDM's order
    PinReservedBits,
    PrimaryReservedBits,
    SecondaryReservedBits,
    TertiaryReservedBits,
    Cr3TargetCount,
    IoBitmapAddresses,
    MsrBitmapAddress,
    VirtualApicAddress,
    TprThresholdReservedBits,
    TprThresholdAboveVtpr,
    X2apicModeRequiresTprShadow,
    ApicRegisterVirtualizationRequiresTprShadow,
    VirtualInterruptDeliveryRequiresTprShadow,
    IpiVirtualizationRequiresTprShadow,
    VirtualNmisRequireNmiExiting,
    NmiWindowRequiresVirtualNmis,
    ApicAccessAddress,
    X2apicModeExcludesApicAccesses,
    VirtualInterruptDeliveryRequiresExternalInterruptExiting,
    PostedInterruptsRequireVirtualInterruptDelivery,
    PostedInterruptsRequireAckInterruptOnExit,
    PostedInterruptNotificationVector,
    PostedInterruptDescriptorAddress,
    VpidNotZero,
    EptPointer,
    UnrestrictedGuestRequiresEpt,
    VmFunctionControls,
    EptpSwitching,
    IpivPidPointerTableAddress,
    IpivRequiresVirtualInterruptDelivery,
    IpivRequiresPostedInterrupts,
    // VM-exit control fields (26.2.1.2)
    ExitReservedBits,
    SecondaryExitReservedBits,
    SavePreemptionTimerRequiresTimer,
    ExitMsrStoreAddress,
    ExitMsrLoadAddress,
    // VM-entry control fields (26.2.1.3)
    EntryReservedBits,
    EventInjectionReservedBits,
    EventInjectionType,
    EventInjectionVector,
    EventInjectionDeliverErrorCode,
    EventInjectionErrorCodeBits,
    EventInjectionInstructionLength,
    EntryMsrLoadAddress,
    EntryOutsideSmm,
};
inline constexpr std::size_t kEntryCheckCount =
    static_cast<std::size_t>(EntryCheck::EntryOutsideSmm) + 1;

enum class GuestStateCheck : std::uint8_t {
    ActivityStateValue,
    ActivityStateSupported,
    HltRequiresSsDplZero,
    BlockingRequiresActive,
    InjectedEventAllowedInActivityState,
    WaitForSipiExcludesEntryToSmm,
};
inline constexpr std::size_t kGuestStateCheckCount =
    static_cast<std::size_t>(GuestStateCheck::WaitForSipiExcludesEntryToSmm) + 1;

struct CheckInfo {
    std::string_view name;         // stable snake_case identifier, e.g. "virtual_apic_address"
    std::string_view sdm_section;  // where the rule is stated
    std::string_view description;  // the rule in one line
};
const CheckInfo& check_info(EntryCheck check);
const CheckInfo& check_info(GuestStateCheck check);

struct ControlCheckFailure {
    EntryCheck check;
    VmxResult result;  // VMfailValid(VM entry with invalid control field(s)) = error 7
    std::string_view name;
    std::string_view sdm_section;
};
// nullopt = every check passed.
using ControlCheckResult = std::optional<ControlCheckFailure>;

struct GuestStateCheckFailure {
    GuestStateCheck check;
    std::uint32_t exit_reason;         // 33 | bit 31 (VM-entry failure, invalid guest state)
    std::uint64_t exit_qualification;  // kEntryFailQualDefault
    std::string_view name;
    std::string_view sdm_section;
};
using GuestStateCheckResult = std::optional<GuestStateCheckFailure>;

// VTPR lives on the virtual-APIC page at this offset (SDM16 29.1.1).
inline constexpr std::uint64_t kVirtualApicVtprOffset = 0x080;
// Reads one byte of physical memory. Called with (virtual-APIC address +
// kVirtualApicVtprOffset), and only when the threshold-vs-VTPR check applies (use TPR
// shadow = 1, virtualize APIC accesses = 0, virtual-interrupt delivery = 0); an empty reader
// is then a caller bug (std::invalid_argument).
using VtprReader = std::function<std::uint8_t(std::uint64_t physical_address)>;

ControlCheckResult check_vm_execution_controls(const Vmcs& vmcs, const VmxCapabilities& caps,
                                               const VtprReader& read_vtpr);
ControlCheckResult check_vm_exit_controls(const Vmcs& vmcs, const VmxCapabilities& caps);
ControlCheckResult check_vm_entry_controls(const Vmcs& vmcs, const VmxCapabilities& caps);
// All three, in the SDM order (execution, exit, entry).
ControlCheckResult check_vmx_controls(const Vmcs& vmcs, const VmxCapabilities& caps,
                                      const VtprReader& read_vtpr);

// Guest non-register state: activity state (SDM16 26.3.1.5, reference 8.2).
GuestStateCheckResult check_guest_activity_state(const Vmcs& vmcs, const VmxCapabilities& caps);

}  // namespace vtx::vmcs
