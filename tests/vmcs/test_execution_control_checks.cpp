// VM-entry checks on VM-execution control fields (SDM16 26.2.1.1, reference 7.1): every
// check fails with VMfailValid(7) and its name, and passes when the rule is respected.
#include <catch2/catch.hpp>

#include "vmcs/entry_check_support.hpp"

using namespace vtx::vmcs;
using namespace vtx::vmcs::testing;

namespace {
constexpr std::uint64_t kMisalignedPageOffset = 0x800;
}  // namespace

TEST_CASE("the fixture VMCS passes every control check on both processors") {
    for (const auto& f : {ipiv_features(), no_tertiary_features()}) {
        Setup s{f};
        expect_pass(check_vm_execution_controls(s.vmcs, s.caps, s.vtpr.reader()));
        expect_pass(check_vm_exit_controls(s.vmcs, s.caps));
        expect_pass(check_vm_entry_controls(s.vmcs, s.caps));
        expect_pass(s.check());
        CHECK(s.vtpr.reads == 0);  // VID = 1: VTPR is not consulted
    }
}

TEST_CASE("every check has a distinct name and an SDM section") {
    for (std::size_t i = 0; i < kEntryCheckCount; ++i) {
        const auto& info = check_info(static_cast<EntryCheck>(i));
        CHECK_FALSE(info.name.empty());
        CHECK_FALSE(info.sdm_section.empty());
        for (std::size_t j = 0; j < i; ++j)
            CHECK(check_info(static_cast<EntryCheck>(j)).name != info.name);
    }
}

TEST_CASE("pin-based controls must agree with the capability MSR") {
    Setup s{no_tertiary_features()};
    s.set_bits(Field::PinBasedVmExecControl, kPinActivatePreemptionTimer);  // allowed-1
    expect_pass(s.check());
    s.clear_bits(Field::PinBasedVmExecControl, kPinDefault1);  // default1 bits must be 1
    expect_fail(s.check(), EntryCheck::PinReservedBits);

    auto f = no_tertiary_features();
    f.posted_interrupts = false;
    Setup no_pi{f};  // the fixture sets "process posted interrupts", which f does not offer
    expect_fail(no_pi.check(), EntryCheck::PinReservedBits);
}

TEST_CASE("primary controls must agree with the (TRUE) capability MSR") {
    Setup s{no_tertiary_features()};
    // CR3-load/store exiting are default1 but may be 0 under the TRUE MSR (BASIC[55] = 1).
    s.clear_bits(Field::CpuBasedVmExecControl, kPrimaryCr3LoadExiting | kPrimaryCr3StoreExiting);
    expect_pass(s.check());
    // Without TRUE controls the original MSR applies, and it requires them.
    s.caps.override_msr(kMsrIa32VmxBasic, s.caps.basic() & ~kBasicTrueControls);
    expect_fail(s.check(), EntryCheck::PrimaryReservedBits);

    Setup t{no_tertiary_features()};
    t.set_bits(Field::CpuBasedVmExecControl, kPrimaryActivateTertiaryControls);
    expect_fail(t.check(), EntryCheck::PrimaryReservedBits);  // bit 17 not allowed-1
}

TEST_CASE("secondary controls are checked only when activated") {
    Setup s{no_tertiary_features()};
    s.set_bits(Field::SecondaryVmExecControl, kSecondaryEnableVmFunctions);  // not allowed-1
    expect_fail(s.check(), EntryCheck::SecondaryReservedBits);

    // With "activate secondary controls" = 0 the field is ignored, bogus bits and all.
    Setup off{no_tertiary_features()};
    off.without_vid();
    off.clear_bits(Field::CpuBasedVmExecControl, kPrimaryActivateSecondaryControls);
    off.write(Field::SecondaryVmExecControl, ~std::uint32_t{0});
    expect_pass(off.check());
    CHECK(off.vtpr.reads == 1);  // VID and APIC-access virtualization now count as 0
}

TEST_CASE("tertiary controls must agree with IA32_VMX_PROCBASED_CTLS3") {
    Setup s{ipiv_features()};
    s.set_bits(Field::TertiaryVmExecControl, kTertiaryLoadiwkeyExiting);  // not allowed-1
    expect_fail(s.check(), EntryCheck::TertiaryReservedBits);
    s.write(Field::TertiaryVmExecControl, kTertiaryIpiVirt);
    expect_pass(s.check());
}

TEST_CASE("tertiary controls are ignored when primary bit 17 is 0, even with bogus bits") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::CpuBasedVmExecControl, kPrimaryActivateTertiaryControls);
    s.write(Field::TertiaryVmExecControl, ~std::uint64_t{0});
    expect_pass(s.check());

    // Not even the IPIv/TPR-shadow rule applies: IPIv counts as 0.
    s.without_tpr_shadow();
    s.write(Field::TertiaryVmExecControl, kTertiaryIpiVirt);
    expect_pass(s.check());
    CHECK(effective_tertiary_controls(s.vmcs) == 0);
}

TEST_CASE("CR3-target count must not exceed IA32_VMX_MISC[24:16]") {
    Setup s{ipiv_features()};
    s.write(Field::Cr3TargetCount, kCr3TargetValueCount);
    expect_pass(s.check());
    s.write(Field::Cr3TargetCount, kCr3TargetValueCount + 1);
    expect_fail(s.check(), EntryCheck::Cr3TargetCount);
}

TEST_CASE("I/O bitmap addresses are 4-KByte aligned and within the width") {
    Setup s{ipiv_features()};
    s.write(Field::IoBitmapA, kIoBitmapAPage | kMisalignedPageOffset);
    expect_pass(s.check());  // use I/O bitmaps = 0: not checked
    s.set_bits(Field::CpuBasedVmExecControl, kPrimaryUseIoBitmaps);
    expect_fail(s.check(), EntryCheck::IoBitmapAddresses);
    s.write(Field::IoBitmapA, kIoBitmapAPage);
    expect_pass(s.check());
    s.write(Field::IoBitmapB, beyond_width(s.caps, kIoBitmapBPage));
    expect_fail(s.check(), EntryCheck::IoBitmapAddresses);
}

TEST_CASE("MSR-bitmap address is 4-KByte aligned and within the width when used") {
    Setup s{ipiv_features()};
    s.write(Field::MsrBitmap, kMsrBitmapPage | kMisalignedPageOffset);
    expect_fail(s.check(), EntryCheck::MsrBitmapAddress);
    s.write(Field::MsrBitmap, beyond_width(s.caps, kMsrBitmapPage));
    expect_fail(s.check(), EntryCheck::MsrBitmapAddress);
    s.clear_bits(Field::CpuBasedVmExecControl, kPrimaryUseMsrBitmaps);
    expect_pass(s.check());
}

TEST_CASE("virtual-APIC address is 4-KByte aligned and within the width with TPR shadow") {
    Setup s{no_tertiary_features()};
    s.write(Field::VirtualApicPageAddr, kVirtualApicPage | kMisalignedPageOffset);
    expect_fail(s.check(), EntryCheck::VirtualApicAddress);
    s.write(Field::VirtualApicPageAddr, beyond_width(s.caps, kVirtualApicPage));
    expect_fail(s.check(), EntryCheck::VirtualApicAddress);
    s.write(Field::VirtualApicPageAddr, kVirtualApicPage);
    expect_pass(s.check());
}

TEST_CASE("TPR threshold bits 31:4 must be 0 when VID = 0") {
    constexpr std::uint32_t kThresholdWithReservedBit = 0x12;
    Setup s{no_tertiary_features()};
    s.write(Field::TprThreshold, kThresholdWithReservedBit);
    expect_pass(s.check());  // VID = 1: the threshold is not used
    s.without_vid();
    expect_fail(s.check(), EntryCheck::TprThresholdReservedBits);
    s.write(Field::TprThreshold, kThresholdWithReservedBit & kTprThresholdMask);
    expect_pass(s.check());
}

TEST_CASE("TPR threshold[3:0] must not exceed VTPR[7:4] without APIC-access virtualization") {
    Setup s{no_tertiary_features()};
    s.without_vid();
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryVirtualizeApicAccesses);
    s.write(Field::TprThreshold, 5);
    s.vtpr.value = 0x40;  // priority class 4 < 5
    expect_fail(s.check(), EntryCheck::TprThresholdAboveVtpr);
    CHECK(s.vtpr.last_address == kVirtualApicPage + kVirtualApicVtprOffset);
    s.vtpr.value = 0x50;  // class 5: equal is fine
    expect_pass(s.check());

    // With APIC-access virtualization the rule does not apply and VTPR is not read.
    Setup t{no_tertiary_features()};
    t.without_vid();
    t.write(Field::TprThreshold, 5);
    t.vtpr.value = 0;
    expect_pass(t.check());
    CHECK(t.vtpr.reads == 0);
}

TEST_CASE("use TPR shadow = 0 requires virtualize x2APIC mode = 0") {
    Setup s{no_tertiary_features()};
    s.without_tpr_shadow();
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryVirtualizeApicAccesses);
    expect_pass(s.check());
    s.set_bits(Field::SecondaryVmExecControl, kSecondaryVirtualizeX2apicMode);
    expect_fail(s.check(), EntryCheck::X2apicModeRequiresTprShadow);
    s.set_bits(Field::CpuBasedVmExecControl, kPrimaryUseTprShadow);
    expect_pass(s.check());
}

TEST_CASE("use TPR shadow = 0 requires APIC-register virtualization = 0") {
    Setup s{no_tertiary_features()};
    s.without_tpr_shadow();
    s.set_bits(Field::SecondaryVmExecControl, kSecondaryApicRegisterVirtualization);
    expect_fail(s.check(), EntryCheck::ApicRegisterVirtualizationRequiresTprShadow);
    s.set_bits(Field::CpuBasedVmExecControl, kPrimaryUseTprShadow);
    expect_pass(s.check());
}

TEST_CASE("use TPR shadow = 0 requires virtual-interrupt delivery = 0") {
    Setup s{no_tertiary_features()};
    s.without_tpr_shadow();
    s.set_bits(Field::SecondaryVmExecControl, kSecondaryVirtualInterruptDelivery);
    expect_fail(s.check(), EntryCheck::VirtualInterruptDeliveryRequiresTprShadow);
    s.set_bits(Field::CpuBasedVmExecControl, kPrimaryUseTprShadow);
    expect_pass(s.check());
}

TEST_CASE("IPI virtualization with use TPR shadow = 0 fails with error 7") {
    Setup s{ipiv_features()};
    s.without_tpr_shadow();
    expect_pass(s.check());
    s.set_bits(Field::TertiaryVmExecControl, kTertiaryIpiVirt);
    const auto result = s.check();
    expect_fail(result, EntryCheck::IpiVirtualizationRequiresTprShadow);
    REQUIRE(result);
    CHECK(result->name == "ipi_virtualization_requires_tpr_shadow");
    CHECK(result->sdm_section.find("IPIv") != std::string_view::npos);
    static_assert(ipiv_entry_policy::kRequiresTprShadow);
}

TEST_CASE("NMI exiting = 0 requires virtual NMIs = 0") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::PinBasedVmExecControl, kPinNmiExiting);
    expect_fail(s.check(), EntryCheck::VirtualNmisRequireNmiExiting);
    s.clear_bits(Field::PinBasedVmExecControl, kPinVirtualNmis);
    expect_pass(s.check());
}

TEST_CASE("virtual NMIs = 0 requires NMI-window exiting = 0") {
    Setup s{ipiv_features()};
    s.set_bits(Field::CpuBasedVmExecControl, kPrimaryNmiWindowExiting);
    expect_pass(s.check());  // virtual NMIs = 1
    s.clear_bits(Field::PinBasedVmExecControl, kPinVirtualNmis);
    expect_fail(s.check(), EntryCheck::NmiWindowRequiresVirtualNmis);
}

TEST_CASE("APIC-access address is 4-KByte aligned and within the width when virtualized") {
    Setup s{ipiv_features()};
    s.write(Field::ApicAccessAddr, kApicAccessPage | kMisalignedPageOffset);
    expect_fail(s.check(), EntryCheck::ApicAccessAddress);
    s.write(Field::ApicAccessAddr, beyond_width(s.caps, kApicAccessPage));
    expect_fail(s.check(), EntryCheck::ApicAccessAddress);
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryVirtualizeApicAccesses);
    expect_pass(s.check());
}

TEST_CASE("virtualize x2APIC mode = 1 requires virtualize APIC accesses = 0") {
    Setup s{ipiv_features()};
    s.set_bits(Field::SecondaryVmExecControl, kSecondaryVirtualizeX2apicMode);
    expect_fail(s.check(), EntryCheck::X2apicModeExcludesApicAccesses);
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryVirtualizeApicAccesses);
    expect_pass(s.check());  // KVM's x2APIC configuration
}

TEST_CASE("virtual-interrupt delivery requires external-interrupt exiting") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::PinBasedVmExecControl, kPinExternalInterruptExiting);
    expect_fail(s.check(), EntryCheck::VirtualInterruptDeliveryRequiresExternalInterruptExiting);
    s.without_vid();
    expect_pass(s.check());
}

TEST_CASE("process posted interrupts requires virtual-interrupt delivery") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryVirtualInterruptDelivery);
    expect_fail(s.check(), EntryCheck::PostedInterruptsRequireVirtualInterruptDelivery);
    s.clear_bits(Field::PinBasedVmExecControl, kPinProcessPostedInterrupts);
    expect_pass(s.check());
}

TEST_CASE("process posted interrupts requires acknowledge interrupt on exit") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::VmExitControls, kExitAcknowledgeInterruptOnExit);
    expect_fail(s.check(), EntryCheck::PostedInterruptsRequireAckInterruptOnExit);
    s.clear_bits(Field::PinBasedVmExecControl, kPinProcessPostedInterrupts);
    expect_pass(s.check());
}

TEST_CASE("posted-interrupt notification vector bits 15:8 must be 0") {
    Setup s{ipiv_features()};
    s.write(Field::PostedIntrNv, 0x01F2);
    expect_fail(s.check(), EntryCheck::PostedInterruptNotificationVector);
    s.write(Field::PostedIntrNv, 0x00FF);
    expect_pass(s.check());
}

TEST_CASE("posted-interrupt descriptor address is 64-byte aligned and within the width") {
    constexpr std::uint64_t kMisalignedPid = kPidAddress | 0x8;
    Setup s{ipiv_features()};
    s.write(Field::PostedIntrDescAddr, kMisalignedPid);
    expect_fail(s.check(), EntryCheck::PostedInterruptDescriptorAddress);
    s.write(Field::PostedIntrDescAddr, beyond_width(s.caps, kPidAddress));
    expect_fail(s.check(), EntryCheck::PostedInterruptDescriptorAddress);
    s.write(Field::PostedIntrDescAddr, kPidAddress);
    expect_pass(s.check());
}

TEST_CASE("enable VPID requires a non-zero VPID") {
    Setup s{ipiv_features()};
    s.write(Field::VirtualProcessorId, 0);
    expect_fail(s.check(), EntryCheck::VpidNotZero);
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryEnableVpid);
    expect_pass(s.check());
}

TEST_CASE("EPT pointer: memory type, walk length, A/D flag, reserved bits, width") {
    constexpr std::uint64_t kEptMemoryTypeWc = 1;  // not allowed for EPT structures
    constexpr std::uint64_t kEptpReservedBit7 = std::uint64_t{1} << 7;
    const std::uint64_t good = kEptRootPage | kEptMemoryTypeWb | kEptpPageWalk4;
    Setup s{ipiv_features()};
    s.write(Field::EptPointer, kEptRootPage | kEptMemoryTypeWc | kEptpPageWalk4);
    expect_fail(s.check(), EntryCheck::EptPointer);
    s.write(Field::EptPointer, kEptRootPage | kEptMemoryTypeUc | kEptpPageWalk4);
    expect_pass(s.check());
    s.write(Field::EptPointer, kEptRootPage | kEptMemoryTypeWb | kEptpPageWalk5);
    expect_fail(s.check(), EntryCheck::EptPointer);  // 5-level walks not offered
    s.write(Field::EptPointer, good | kEptpReservedBit7);
    expect_fail(s.check(), EntryCheck::EptPointer);
    s.write(Field::EptPointer, beyond_width(s.caps, good));
    expect_fail(s.check(), EntryCheck::EptPointer);
    s.write(Field::EptPointer, good | kEptpAccessedDirtyEnable);
    expect_pass(s.check());
    s.caps.override_msr(kMsrIa32VmxEptVpidCap, s.caps.ept_vpid_cap() & ~kEptCapAccessedDirty);
    expect_fail(s.check(), EntryCheck::EptPointer);
}

TEST_CASE("unrestricted guest requires enable EPT") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryEnableEpt);
    expect_fail(s.check(), EntryCheck::UnrestrictedGuestRequiresEpt);
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryUnrestrictedGuest);
    expect_pass(s.check());
}

TEST_CASE("VM-function controls must agree with IA32_VMX_VMFUNC and EPTP switching needs EPT") {
    constexpr std::uint64_t kUnsupportedVmfunc = std::uint64_t{1} << 1;
    constexpr std::uint64_t kEptpListPage = 0x0020'0000;
    auto f = ipiv_features();
    f.vm_functions = true;
    Setup s{f};
    s.set_bits(Field::SecondaryVmExecControl, kSecondaryEnableVmFunctions);
    expect_pass(s.check());
    s.write(Field::VmFunctionControl, kUnsupportedVmfunc);
    expect_fail(s.check(), EntryCheck::VmFunctionControls);

    s.write(Field::VmFunctionControl, kVmfuncEptpSwitching);
    s.write(Field::EptpListAddress, kEptpListPage | kMisalignedPageOffset);
    expect_fail(s.check(), EntryCheck::EptpSwitching);
    s.write(Field::EptpListAddress, kEptpListPage);
    expect_pass(s.check());
    s.clear_bits(Field::SecondaryVmExecControl, kSecondaryEnableEpt | kSecondaryUnrestrictedGuest);
    expect_fail(s.check(), EntryCheck::EptpSwitching);
}
