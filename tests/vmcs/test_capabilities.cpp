// VMX capability MSRs 0x480-0x493 built from two feature sets: one with IPI
// virtualization, one without tertiary controls.
#include <catch2/catch.hpp>

#include "vmcs/capabilities.hpp"
#include "vmcs/fields.hpp"
#include "vmcs/vmcs_fixtures.hpp"

using namespace vtx::vmcs;
using vtx::vmcs::testing::ipiv_features;
using vtx::vmcs::testing::no_tertiary_features;

namespace {
ControlCapability ctl(const VmxCapabilities& caps, std::uint32_t msr) {
    const auto value = caps.read_msr(msr);
    REQUIRE(value);
    return ControlCapability::from_msr(*value);
}
}  // namespace

TEST_CASE("capability MSR numbers are the architectural ones") {
    CHECK(kMsrIa32VmxBasic == 0x480);
    CHECK(kMsrIa32VmxPinbasedCtls == 0x481);
    CHECK(kMsrIa32VmxProcbasedCtls == 0x482);
    CHECK(kMsrIa32VmxExitCtls == 0x483);
    CHECK(kMsrIa32VmxEntryCtls == 0x484);
    CHECK(kMsrIa32VmxMisc == 0x485);
    CHECK(kMsrIa32VmxCr0Fixed0 == 0x486);
    CHECK(kMsrIa32VmxCr4Fixed1 == 0x489);
    CHECK(kMsrIa32VmxVmcsEnum == 0x48A);
    CHECK(kMsrIa32VmxProcbasedCtls2 == 0x48B);
    CHECK(kMsrIa32VmxEptVpidCap == 0x48C);
    CHECK(kMsrIa32VmxTruePinbasedCtls == 0x48D);
    CHECK(kMsrIa32VmxTrueProcbasedCtls == 0x48E);
    CHECK(kMsrIa32VmxTrueExitCtls == 0x48F);
    CHECK(kMsrIa32VmxTrueEntryCtls == 0x490);
    CHECK(kMsrIa32VmxVmfunc == 0x491);
    CHECK(kMsrIa32VmxProcbasedCtls3 == 0x492);
    CHECK(kMsrIa32VmxExitCtls2 == 0x493);
}

TEST_CASE("IA32_VMX_BASIC: revision id, region size, write-back, TRUE controls") {
    auto f = ipiv_features();
    f.vmcs_revision_id = 0x1234;
    const auto caps = build_capabilities(f);
    const auto basic = caps.read_msr(kMsrIa32VmxBasic);
    REQUIRE(basic);
    CHECK((*basic & kBasicRevisionIdMask) == 0x1234);
    CHECK((*basic & (std::uint64_t{1} << 31)) == 0);  // bit 31 is always 0
    CHECK(((*basic & kBasicRegionSizeMask) >> kBasicRegionSizeShift) == kVmcsRegionSize);
    CHECK(((*basic & kBasicMemoryTypeMask) >> kBasicMemoryTypeShift) == kMemoryTypeWriteBack);
    CHECK((*basic & kBasicTrueControls) != 0);  // bit 55
    CHECK((*basic & kBasicPhysAddr32Only) == 0);
    CHECK(caps.true_controls());
    CHECK(caps.vmcs_revision_id() == 0x1234);
}

TEST_CASE("with IPI virtualization: primary bit 17 may be 1 and 0x492 reports bit 4") {
    const auto caps = build_capabilities(ipiv_features());
    CHECK(ctl(caps, kMsrIa32VmxProcbasedCtls).may_be_one(kPrimaryActivateTertiaryControls));
    CHECK(ctl(caps, kMsrIa32VmxTrueProcbasedCtls).may_be_one(kPrimaryActivateTertiaryControls));
    CHECK(ctl(caps, kMsrIa32VmxProcbasedCtls).may_be_zero(kPrimaryActivateTertiaryControls));
    const auto ctls3 = caps.read_msr(kMsrIa32VmxProcbasedCtls3);
    REQUIRE(ctls3);
    CHECK((*ctls3 & kTertiaryIpiVirt) != 0);
    // All 64 bits are allowed-1 settings: nothing else is offered, nothing is required.
    CHECK(*ctls3 == kTertiaryIpiVirt);
    CHECK(caps.tertiary_allowed1() == kTertiaryIpiVirt);
}

TEST_CASE("without tertiary controls: primary bit 17 must be 0 and 0x492 does not exist") {
    const auto caps = build_capabilities(no_tertiary_features());
    CHECK_FALSE(ctl(caps, kMsrIa32VmxProcbasedCtls).may_be_one(kPrimaryActivateTertiaryControls));
    CHECK_FALSE(
        ctl(caps, kMsrIa32VmxTrueProcbasedCtls).may_be_one(kPrimaryActivateTertiaryControls));
    CHECK_FALSE(caps.read_msr(kMsrIa32VmxProcbasedCtls3));
    CHECK(caps.tertiary_allowed1() == 0);
}

TEST_CASE("tertiary controls without IPIv: 0x492 exists with bit 4 clear") {
    auto f = ipiv_features();
    f.ipi_virtualization = false;
    const auto caps = build_capabilities(f);
    CHECK(ctl(caps, kMsrIa32VmxProcbasedCtls).may_be_one(kPrimaryActivateTertiaryControls));
    const auto ctls3 = caps.read_msr(kMsrIa32VmxProcbasedCtls3);
    REQUIRE(ctls3);
    CHECK((*ctls3 & kTertiaryIpiVirt) == 0);
}

TEST_CASE("control MSRs report default1 bits as allowed-0 in the original MSRs") {
    for (const auto& f : {ipiv_features(), no_tertiary_features()}) {
        const auto caps = build_capabilities(f);
        CHECK(ctl(caps, kMsrIa32VmxPinbasedCtls).allowed0 == kPinDefault1);
        CHECK(ctl(caps, kMsrIa32VmxProcbasedCtls).allowed0 == kPrimaryDefault1);
        CHECK(ctl(caps, kMsrIa32VmxExitCtls).allowed0 == kExitDefault1);
        CHECK(ctl(caps, kMsrIa32VmxEntryCtls).allowed0 == kEntryDefault1);
        // Every control MSR offers at least what it requires.
        for (std::uint32_t msr :
             {kMsrIa32VmxPinbasedCtls, kMsrIa32VmxProcbasedCtls, kMsrIa32VmxExitCtls,
              kMsrIa32VmxEntryCtls, kMsrIa32VmxTruePinbasedCtls, kMsrIa32VmxTrueProcbasedCtls,
              kMsrIa32VmxTrueExitCtls, kMsrIa32VmxTrueEntryCtls, kMsrIa32VmxProcbasedCtls2}) {
            const auto c = ctl(caps, msr);
            CHECK((c.allowed0 & ~c.allowed1) == 0);
        }
    }
}

TEST_CASE("TRUE control MSRs let CR3 exiting and debug-control default1 bits be 0") {
    const auto caps = build_capabilities(ipiv_features());
    const auto true_primary = ctl(caps, kMsrIa32VmxTrueProcbasedCtls);
    CHECK(true_primary.allowed0 ==
          (kPrimaryDefault1 & ~(kPrimaryCr3LoadExiting | kPrimaryCr3StoreExiting)));
    CHECK(true_primary.allowed0 == 0x0400'6172u);  // as on current hardware / KVM nested
    CHECK(ctl(caps, kMsrIa32VmxTrueExitCtls).allowed0 == 0x0003'6DFBu);
    CHECK(ctl(caps, kMsrIa32VmxTrueEntryCtls).allowed0 == 0x0000'11FBu);
    CHECK(ctl(caps, kMsrIa32VmxTruePinbasedCtls).allowed0 == kPinDefault1);
    // VM entry checks against the TRUE MSRs because bit 55 is set.
    CHECK(caps.primary().allowed0 == true_primary.allowed0);
}

TEST_CASE("allowed-1 settings follow the APIC-virtualization features") {
    const auto caps = build_capabilities(no_tertiary_features());
    const auto pin = ctl(caps, kMsrIa32VmxPinbasedCtls);
    CHECK(pin.may_be_one(kPinExternalInterruptExiting | kPinNmiExiting | kPinVirtualNmis |
                         kPinActivatePreemptionTimer | kPinProcessPostedInterrupts));
    const auto primary = ctl(caps, kMsrIa32VmxProcbasedCtls);
    CHECK(primary.may_be_one(kPrimaryUseTprShadow | kPrimaryUseMsrBitmaps |
                             kPrimaryActivateSecondaryControls | kPrimaryHltExiting |
                             kPrimaryInterruptWindowExiting | kPrimaryNmiWindowExiting));
    const auto secondary = ctl(caps, kMsrIa32VmxProcbasedCtls2);
    CHECK(secondary.allowed0 == 0);
    CHECK(secondary.may_be_one(kSecondaryVirtualizeApicAccesses | kSecondaryVirtualizeX2apicMode |
                               kSecondaryApicRegisterVirtualization |
                               kSecondaryVirtualInterruptDelivery | kSecondaryEnableEpt |
                               kSecondaryEnableVpid));
    CHECK_FALSE(secondary.may_be_one(kSecondaryEnableVmFunctions));
    CHECK(ctl(caps, kMsrIa32VmxExitCtls).may_be_one(kExitAcknowledgeInterruptOnExit));

    auto reduced = no_tertiary_features();
    reduced.posted_interrupts = false;
    reduced.virtual_interrupt_delivery = false;
    reduced.tpr_shadow = false;
    const auto reduced_caps = build_capabilities(reduced);
    CHECK_FALSE(ctl(reduced_caps, kMsrIa32VmxPinbasedCtls).may_be_one(kPinProcessPostedInterrupts));
    CHECK_FALSE(ctl(reduced_caps, kMsrIa32VmxProcbasedCtls).may_be_one(kPrimaryUseTprShadow));
    CHECK_FALSE(ctl(reduced_caps, kMsrIa32VmxProcbasedCtls2)
                    .may_be_one(kSecondaryVirtualInterruptDelivery));
}

TEST_CASE("without secondary controls 0x48B, 0x48C and primary bit 31 disappear") {
    auto f = no_tertiary_features();
    f.secondary_controls = false;
    const auto caps = build_capabilities(f);
    CHECK_FALSE(ctl(caps, kMsrIa32VmxProcbasedCtls).may_be_one(kPrimaryActivateSecondaryControls));
    CHECK_FALSE(caps.read_msr(kMsrIa32VmxProcbasedCtls2));
    CHECK_FALSE(caps.read_msr(kMsrIa32VmxEptVpidCap));
    CHECK(caps.secondary().allowed1 == 0);
}

TEST_CASE("IA32_VMX_MISC: activity states 6-8, bit 5, CR3-target count, timer rate") {
    const auto caps = build_capabilities(ipiv_features());
    const auto misc = caps.read_msr(kMsrIa32VmxMisc);
    REQUIRE(misc);
    CHECK((*misc & kMiscSaveEferLma) != 0);
    CHECK((*misc & kMiscActivityHlt) != 0);
    CHECK((*misc & kMiscActivityShutdown) != 0);
    CHECK((*misc & kMiscActivityWaitSipi) != 0);
    CHECK((*misc & kMiscVmwriteAnyField) == 0);
    CHECK((*misc & kMiscPreemptionTimerRateMask) == ipiv_features().preemption_timer_rate);
    CHECK(caps.cr3_target_count() == kCr3TargetValueCount);
    CHECK(caps.activity_state_supported(ActivityState::WaitForSipi));

    auto f = ipiv_features();
    f.activity_shutdown = false;
    f.activity_wait_for_sipi = false;
    f.vmwrite_to_exit_info = true;
    const auto reduced = build_capabilities(f);
    const auto reduced_misc = reduced.read_msr(kMsrIa32VmxMisc);
    REQUIRE(reduced_misc);
    CHECK((*reduced_misc & kMiscActivityHlt) != 0);
    CHECK((*reduced_misc & kMiscActivityShutdown) == 0);
    CHECK((*reduced_misc & kMiscActivityWaitSipi) == 0);
    CHECK((*reduced_misc & kMiscVmwriteAnyField) != 0);
    CHECK(reduced.activity_state_supported(ActivityState::Active));
    CHECK(reduced.activity_state_supported(ActivityState::Hlt));
    CHECK_FALSE(reduced.activity_state_supported(ActivityState::Shutdown));
    CHECK_FALSE(reduced.activity_state_supported(ActivityState::WaitForSipi));
}

TEST_CASE("CR0/CR4 fixed MSRs: PE, NE, PG and VMXE fixed to 1") {
    const auto caps = build_capabilities(no_tertiary_features());
    CHECK(caps.read_msr(kMsrIa32VmxCr0Fixed0) == (kCr0Pe | kCr0Ne | kCr0Pg));
    CHECK(caps.read_msr(kMsrIa32VmxCr0Fixed1) == kCr0Low32Bits);
    CHECK(caps.read_msr(kMsrIa32VmxCr4Fixed0) == kCr4Vmxe);
    const auto cr4_fixed1 = caps.read_msr(kMsrIa32VmxCr4Fixed1);
    REQUIRE(cr4_fixed1);
    CHECK((*cr4_fixed1 & kCr4Vmxe) != 0);  // fixed-0 bits are a subset of fixed-1 bits
    CHECK((*cr4_fixed1 & kCr4Pae) != 0);
}

TEST_CASE("IA32_VMX_EPT_VPID_CAP reports 4-level walks, UC/WB, A/D flags and INVVPID") {
    const auto caps = build_capabilities(no_tertiary_features());
    const auto cap = caps.read_msr(kMsrIa32VmxEptVpidCap);
    REQUIRE(cap);
    CHECK((*cap & kEptCapPageWalk4) != 0);
    CHECK((*cap & kEptCapMemoryTypeWb) != 0);
    CHECK((*cap & kEptCapMemoryTypeUc) != 0);
    CHECK((*cap & kEptCapAccessedDirty) != 0);
    CHECK((*cap & kVpidCapInvvpid) != 0);

    auto f = no_tertiary_features();
    f.ept = false;
    f.vpid = false;
    CHECK_FALSE(build_capabilities(f).read_msr(kMsrIa32VmxEptVpidCap));
}

TEST_CASE("IA32_VMX_VMFUNC and IA32_VMX_EXIT_CTLS2 exist only with their features") {
    const auto plain = build_capabilities(ipiv_features());
    CHECK_FALSE(plain.read_msr(kMsrIa32VmxVmfunc));
    CHECK_FALSE(plain.read_msr(kMsrIa32VmxExitCtls2));
    CHECK_FALSE(ctl(plain, kMsrIa32VmxExitCtls).may_be_one(kExitActivateSecondaryControls));

    auto f = ipiv_features();
    f.vm_functions = true;
    f.secondary_exit_controls = true;
    const auto caps = build_capabilities(f);
    CHECK(caps.read_msr(kMsrIa32VmxVmfunc) == kVmfuncEptpSwitching);
    CHECK(ctl(caps, kMsrIa32VmxProcbasedCtls2).may_be_one(kSecondaryEnableVmFunctions));
    CHECK(ctl(caps, kMsrIa32VmxExitCtls).may_be_one(kExitActivateSecondaryControls));
    CHECK(caps.read_msr(kMsrIa32VmxExitCtls2) == std::uint64_t{0});
}

TEST_CASE("IA32_VMX_VMCS_ENUM reports the highest supported field index") {
    // PID_POINTER_TABLE (0x2042) has index 0x21, the highest one vtxsim knows.
    const auto with = build_capabilities(ipiv_features());
    CHECK(with.read_msr(kMsrIa32VmxVmcsEnum) ==
          std::uint64_t{field_index(encoding(Field::PidPointerTable))} << kVmcsEnumIndexShift);
    // Without tertiary controls the highest is VMX_PREEMPTION_TIMER_VALUE (0x482E, index 0x17).
    const auto without = build_capabilities(no_tertiary_features());
    CHECK(without.read_msr(kMsrIa32VmxVmcsEnum) ==
          std::uint64_t{field_index(encoding(Field::VmxPreemptionTimerValue))}
              << kVmcsEnumIndexShift);
}

TEST_CASE("MSRs outside 0x480-0x493 are not capability MSRs and overrides are honoured") {
    auto caps = build_capabilities(ipiv_features());
    CHECK_FALSE(caps.read_msr(kFirstVmxCapabilityMsr - 1));
    CHECK_FALSE(caps.read_msr(kLastVmxCapabilityMsr + 1));
    caps.override_msr(kMsrIa32VmxProcbasedCtls3, std::nullopt);
    CHECK_FALSE(caps.read_msr(kMsrIa32VmxProcbasedCtls3));
    CHECK(caps.tertiary_allowed1() == 0);
    CHECK(caps.physical_address_width() == ipiv_features().physical_address_width);
}
