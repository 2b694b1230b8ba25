// VMREAD/VMWRITE semantics: errors 12 and 13, truncation, high-half access, hardware writes.
#include <catch2/catch.hpp>

#include "vmcs/exit_info.hpp"
#include "vmcs/vmcs.hpp"
#include "vmcs/vmcs_fixtures.hpp"

using namespace vtx::vmcs;
using vtx::vmcs::testing::ipiv_features;
using vtx::vmcs::testing::no_tertiary_features;

namespace {
constexpr VmxResult kUnsupported =
    VmxResult::fail_valid(VmInstructionError::UnsupportedVmcsComponent);
constexpr VmxResult kReadOnly = VmxResult::fail_valid(VmInstructionError::VmwriteReadOnlyComponent);
constexpr std::uint64_t kPattern = 0x1122'3344'5566'7788;
}  // namespace

TEST_CASE("VM-instruction error numbers have their architectural values") {
    CHECK(error_number(VmInstructionError::VmlaunchNonClearVmcs) == 4);
    CHECK(error_number(VmInstructionError::VmresumeNonLaunchedVmcs) == 5);
    CHECK(error_number(VmInstructionError::EntryInvalidControlField) == 7);
    CHECK(error_number(VmInstructionError::EntryInvalidHostStateField) == 8);
    CHECK(error_number(VmInstructionError::VmptrldIncorrectRevisionId) == 11);
    CHECK(error_number(VmInstructionError::UnsupportedVmcsComponent) == 12);
    CHECK(error_number(VmInstructionError::VmwriteReadOnlyComponent) == 13);
    CHECK(error_number(VmInstructionError::VmxonInVmxRoot) == 15);
    CHECK(error_number(VmInstructionError::EntryEventsBlockedByMovSs) == 26);
    CHECK(error_number(VmInstructionError::InvalidInveptInvvpidOperand) == 28);
    CHECK(vm_instruction_error_name(VmInstructionError::EntryInvalidControlField) ==
          "VM entry with invalid control field(s)");
}

TEST_CASE("VMWRITE truncates to the field width and VMREAD zero-extends") {
    Vmcs vmcs{ipiv_features()};
    REQUIRE(vmcs.vmwrite(Field::GuestCsSelector, kPattern).succeeded());        // 16-bit
    REQUIRE(vmcs.vmwrite(Field::GuestActivityState, kPattern).succeeded());     // 32-bit
    REQUIRE(vmcs.vmwrite(Field::TertiaryVmExecControl, kPattern).succeeded());  // 64-bit
    REQUIRE(vmcs.vmwrite(Field::GuestRip, kPattern).succeeded());               // natural
    CHECK(vmcs.vmread(Field::GuestCsSelector).value == 0x7788);
    CHECK(vmcs.vmread(Field::GuestActivityState).value == 0x5566'7788);
    CHECK(vmcs.vmread(Field::TertiaryVmExecControl).value == kPattern);
    CHECK(vmcs.vmread(Field::GuestRip).value == kPattern);
    CHECK(vmcs.hw_read(Field::GuestCsSelector) == 0x7788);
    CHECK(vmcs.vmread(Field::GuestRip).succeeded());
}

TEST_CASE("high access reads and writes bits 63:32 of a 64-bit field") {
    Vmcs vmcs{ipiv_features()};
    REQUIRE(vmcs.vmwrite(Field::PidPointerTable, kPattern).succeeded());
    const auto high = vmcs.vmread(std::uint64_t{high_encoding(Field::PidPointerTable)});
    REQUIRE(high.succeeded());
    CHECK(high.value == 0x1122'3344);

    // A high write replaces bits 63:32 with bits 31:0 of the source, keeping bits 31:0.
    REQUIRE(
        vmcs.vmwrite(std::uint64_t{high_encoding(Field::PidPointerTable)}, 0xFFFF'FFFF'AABB'CCDD)
            .succeeded());
    CHECK(vmcs.vmread(Field::PidPointerTable).value == 0xAABB'CCDD'5566'7788);

    // A full write afterwards replaces all 64 bits.
    REQUIRE(vmcs.vmwrite(Field::PidPointerTable, 0x1000).succeeded());
    CHECK(vmcs.vmread(std::uint64_t{high_encoding(Field::PidPointerTable)}).value == 0);
}

TEST_CASE("high access to a 16-bit, 32-bit or natural-width field is unsupported (error 12)") {
    Vmcs vmcs{ipiv_features()};
    for (Field f : {Field::LastPidPointerIndex, Field::TprThreshold, Field::GuestRip,
                    Field::ExitQualification}) {
        INFO(field_name(f));
        const std::uint64_t high = encoding(f) | kEncodingAccessHigh;
        CHECK(vmcs.vmread(high).status == kUnsupported);
        CHECK(vmcs.vmwrite(high, 1) == kUnsupported);
    }
}

TEST_CASE("fields the processor lacks fail with error 12 on VMREAD and VMWRITE") {
    Vmcs vmcs{no_tertiary_features()};
    for (Field f :
         {Field::LastPidPointerIndex, Field::PidPointerTable, Field::TertiaryVmExecControl}) {
        INFO(field_name(f));
        CHECK_FALSE(vmcs.supports(f));
        CHECK(vmcs.vmread(f).status == kUnsupported);
        CHECK(vmcs.vmwrite(f, 0) == kUnsupported);
    }
    // The same fields are fine on an IPIv processor.
    Vmcs ipiv{ipiv_features()};
    CHECK(ipiv.vmwrite(Field::LastPidPointerIndex, 3).succeeded());
    CHECK(ipiv.vmread(Field::LastPidPointerIndex).value == 3);
}

TEST_CASE("unknown encodings and operands with reserved bits fail with error 12") {
    Vmcs vmcs{ipiv_features()};
    constexpr std::uint64_t kUnknownEncoding = 0x0006;  // HLAT prefix size: not modelled
    constexpr std::uint64_t kOperandBit32 = std::uint64_t{1} << 32;
    constexpr std::uint64_t kEncodingBit15 = std::uint64_t{1} << 15;
    CHECK(vmcs.vmread(kUnknownEncoding).status == kUnsupported);
    CHECK(vmcs.vmwrite(kUnknownEncoding, 0) == kUnsupported);
    CHECK(vmcs.vmread(encoding(Field::GuestRip) | kOperandBit32).status == kUnsupported);
    CHECK(vmcs.vmwrite(encoding(Field::GuestRip) | kOperandBit32, 0) == kUnsupported);
    CHECK(vmcs.vmread(encoding(Field::GuestRip) | kEncodingBit15).status == kUnsupported);
    CHECK(vmcs.vmwrite(encoding(Field::GuestRip) | kEncodingReservedBit12, 0) == kUnsupported);
}

TEST_CASE("VMWRITE to a read-only exit-information field fails with error 13") {
    Vmcs vmcs{ipiv_features()};
    for (Field f :
         {Field::VmInstructionError, Field::VmExitReason, Field::VmExitIntrInfo,
          Field::ExitQualification, Field::GuestLinearAddress, Field::GuestPhysicalAddress}) {
        INFO(field_name(f));
        CHECK(vmcs.vmwrite(f, 1) == kReadOnly);
        CHECK(vmcs.vmread(f).succeeded());  // readable
        CHECK(vmcs.vmread(f).value == 0);   // and unchanged
    }
    // High half of a read-only 64-bit field is read-only too.
    CHECK(vmcs.vmwrite(std::uint64_t{high_encoding(Field::GuestPhysicalAddress)}, 1) == kReadOnly);
}

TEST_CASE("error 12 takes precedence over error 13") {
    auto f = ipiv_features();
    f.ept = false;  // GUEST_PHYSICAL_ADDRESS exists only with EPT
    Vmcs vmcs{f};
    CHECK(vmcs.vmwrite(Field::GuestPhysicalAddress, 1) == kUnsupported);
}

TEST_CASE("with IA32_VMX_MISC[29] VMWRITE may write exit-information fields") {
    auto f = ipiv_features();
    f.vmwrite_to_exit_info = true;
    Vmcs vmcs{f};
    REQUIRE(vmcs.vmwrite(Field::ExitQualification, kPattern).succeeded());
    CHECK(vmcs.vmread(Field::ExitQualification).value == kPattern);
    REQUIRE(vmcs.vmwrite(Field::VmExitReason, kPattern).succeeded());
    CHECK(vmcs.vmread(Field::VmExitReason).value == 0x5566'7788);  // still truncated
}

TEST_CASE("the processor-side setter writes read-only fields, truncated to width") {
    Vmcs vmcs{ipiv_features()};
    const std::uint32_t reason = make_exit_reason(ExitReason::ApicWrite);
    vmcs.set_exit_info(Field::VmExitReason, reason);
    vmcs.hw_write(Field::ExitQualification, 0x300);
    vmcs.hw_write(Field::VmInstructionError, kPattern);
    CHECK(vmcs.vmread(Field::VmExitReason).value == reason);
    CHECK(vmcs.vmread(Field::ExitQualification).value == 0x300);
    CHECK(vmcs.hw_read(Field::VmInstructionError) == 0x5566'7788);
}

TEST_CASE("fields the processor lacks read as 0 and ignore hardware writes") {
    Vmcs vmcs{no_tertiary_features()};
    vmcs.hw_write(Field::TertiaryVmExecControl, kPattern);
    CHECK(vmcs.hw_read(Field::TertiaryVmExecControl) == 0);
    // Nor does VMWRITE store one (hw_read relies on it: it does not test support itself).
    CHECK(vmcs.vmwrite(Field::TertiaryVmExecControl, kPattern) == kUnsupported);
    CHECK(vmcs.hw_read(Field::TertiaryVmExecControl) == 0);
}

TEST_CASE(
    "launch state starts clear and VMCLEAR clears it and the revision id comes from the profile") {
    auto f = ipiv_features();
    f.vmcs_revision_id = 0x12;
    Vmcs vmcs{f};
    CHECK(vmcs.launch_state() == LaunchState::Clear);
    CHECK(vmcs.revision_id() == 0x12);
    vmcs.set_launch_state(LaunchState::Launched);
    CHECK(vmcs.launch_state() == LaunchState::Launched);
    vmcs.vmclear();
    CHECK(vmcs.launch_state() == LaunchState::Clear);
    vmcs.set_revision_id(0x34);
    CHECK(vmcs.revision_id() == 0x34);
}

TEST_CASE("Vmcs is a value type: copies are independent") {
    Vmcs a{ipiv_features()};
    REQUIRE(a.vmwrite(Field::GuestRip, 0x1000).succeeded());
    Vmcs b = a;
    REQUIRE(b.vmwrite(Field::GuestRip, 0x2000).succeeded());
    CHECK(a.vmread(Field::GuestRip).value == 0x1000);
    CHECK(b.vmread(Field::GuestRip).value == 0x2000);
}

TEST_CASE("secondary and tertiary controls count only when activated") {
    Vmcs vmcs{ipiv_features()};
    REQUIRE(vmcs.vmwrite(Field::SecondaryVmExecControl, kSecondaryVirtualInterruptDelivery)
                .succeeded());
    REQUIRE(vmcs.vmwrite(Field::TertiaryVmExecControl, kTertiaryIpiVirt).succeeded());
    REQUIRE(vmcs.vmwrite(Field::CpuBasedVmExecControl, 0).succeeded());
    CHECK(effective_secondary_controls(vmcs) == 0);
    CHECK(effective_tertiary_controls(vmcs) == 0);
    REQUIRE(vmcs.vmwrite(Field::CpuBasedVmExecControl,
                         kPrimaryActivateSecondaryControls | kPrimaryActivateTertiaryControls)
                .succeeded());
    CHECK(effective_secondary_controls(vmcs) == kSecondaryVirtualInterruptDelivery);
    CHECK(effective_tertiary_controls(vmcs) == kTertiaryIpiVirt);
}
