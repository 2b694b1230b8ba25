// VMCS field encodings: architectural values, the encoding rule, names and existence.
#include <catch2/catch.hpp>

#include "vmcs/fields.hpp"
#include "vmcs/vmcs_fixtures.hpp"

using namespace vtx::vmcs;
using vtx::vmcs::testing::ipiv_features;
using vtx::vmcs::testing::no_tertiary_features;

TEST_CASE("field encodings match the architectural values of reference section 1.3") {
    // Reference vtx-semantics.md 1.3 ([L-VMXH], [SDM-B]).
    CHECK(encoding(Field::PostedIntrNv) == 0x0002);
    CHECK(encoding(Field::LastPidPointerIndex) == 0x0008);
    CHECK(encoding(Field::GuestIntrStatus) == 0x0810);
    CHECK(encoding(Field::VirtualApicPageAddr) == 0x2012);
    CHECK(high_encoding(Field::VirtualApicPageAddr) == 0x2013);
    CHECK(encoding(Field::ApicAccessAddr) == 0x2014);
    CHECK(high_encoding(Field::ApicAccessAddr) == 0x2015);
    CHECK(encoding(Field::PostedIntrDescAddr) == 0x2016);
    CHECK(high_encoding(Field::PostedIntrDescAddr) == 0x2017);
    CHECK(encoding(Field::EoiExitBitmap0) == 0x201C);
    CHECK(encoding(Field::EoiExitBitmap1) == 0x201E);
    CHECK(encoding(Field::EoiExitBitmap2) == 0x2020);
    CHECK(encoding(Field::EoiExitBitmap3) == 0x2022);
    CHECK(encoding(Field::TertiaryVmExecControl) == 0x2034);
    CHECK(high_encoding(Field::TertiaryVmExecControl) == 0x2035);
    CHECK(encoding(Field::PidPointerTable) == 0x2042);
    CHECK(high_encoding(Field::PidPointerTable) == 0x2043);
    CHECK(encoding(Field::GuestPhysicalAddress) == 0x2400);
    CHECK(encoding(Field::PinBasedVmExecControl) == 0x4000);
    CHECK(encoding(Field::CpuBasedVmExecControl) == 0x4002);
    CHECK(encoding(Field::VmExitControls) == 0x400C);
    CHECK(encoding(Field::TprThreshold) == 0x401C);
    CHECK(encoding(Field::SecondaryVmExecControl) == 0x401E);
    CHECK(encoding(Field::VmInstructionError) == 0x4400);
    CHECK(encoding(Field::VmExitReason) == 0x4402);
    CHECK(encoding(Field::VmExitIntrInfo) == 0x4404);
    CHECK(encoding(Field::VmExitIntrErrorCode) == 0x4406);
    CHECK(encoding(Field::IdtVectoringInfoField) == 0x4408);
    CHECK(encoding(Field::IdtVectoringErrorCode) == 0x440A);
    CHECK(encoding(Field::VmExitInstructionLen) == 0x440C);
    CHECK(encoding(Field::VmxInstructionInfo) == 0x440E);
    CHECK(encoding(Field::GuestInterruptibilityInfo) == 0x4824);
    CHECK(encoding(Field::GuestActivityState) == 0x4826);
    CHECK(encoding(Field::ExitQualification) == 0x6400);
    CHECK(encoding(Field::GuestLinearAddress) == 0x640A);
}

TEST_CASE("field encodings a VMM touches have their Linux asm/vmx.h values") {
    CHECK(encoding(Field::VirtualProcessorId) == 0x0000);
    CHECK(encoding(Field::GuestCsSelector) == 0x0802);
    CHECK(encoding(Field::GuestSsSelector) == 0x0804);
    CHECK(encoding(Field::IoBitmapA) == 0x2000);
    CHECK(encoding(Field::IoBitmapB) == 0x2002);
    CHECK(encoding(Field::MsrBitmap) == 0x2004);
    CHECK(encoding(Field::EptPointer) == 0x201A);
    CHECK(encoding(Field::VmcsLinkPointer) == 0x2800);
    CHECK(encoding(Field::VmEntryControls) == 0x4012);
    CHECK(encoding(Field::VmEntryIntrInfoField) == 0x4016);
    CHECK(encoding(Field::VmEntryExceptionErrorCode) == 0x4018);
    CHECK(encoding(Field::VmEntryInstructionLen) == 0x401A);
    CHECK(encoding(Field::GuestCsLimit) == 0x4802);
    CHECK(encoding(Field::GuestCsArBytes) == 0x4816);
    CHECK(encoding(Field::GuestSsArBytes) == 0x4818);
    CHECK(encoding(Field::VmxPreemptionTimerValue) == 0x482E);
    CHECK(encoding(Field::GuestCr0) == 0x6800);
    CHECK(encoding(Field::GuestCr3) == 0x6802);
    CHECK(encoding(Field::GuestCr4) == 0x6804);
    CHECK(encoding(Field::GuestCsBase) == 0x6808);
    CHECK(encoding(Field::GuestSsBase) == 0x680A);
    CHECK(encoding(Field::GuestRsp) == 0x681C);
    CHECK(encoding(Field::GuestRip) == 0x681E);
    CHECK(encoding(Field::GuestRflags) == 0x6820);
    CHECK(encoding(Field::GuestPendingDbgExceptions) == 0x6822);
    CHECK(encoding(Field::HostCr0) == 0x6C00);
    CHECK(encoding(Field::HostCr3) == 0x6C02);
    CHECK(encoding(Field::HostCr4) == 0x6C04);
    CHECK(encoding(Field::HostRsp) == 0x6C14);
    CHECK(encoding(Field::HostRip) == 0x6C16);
}

TEST_CASE("width, type, index and access type are derived from the encoding bits") {
    // 0x0008: width 0 (16), type 0 (control), index 4, full access.
    CHECK(field_width(0x0008u) == FieldWidth::Bits16);
    CHECK(field_type(0x0008u) == FieldType::Control);
    CHECK(field_index(0x0008u) == 4);
    CHECK_FALSE(is_high_access(0x0008u));
    // 0x2043: width 1 (64), control, index 0x21, high access.
    CHECK(field_width(0x2043u) == FieldWidth::Bits64);
    CHECK(field_type(0x2043u) == FieldType::Control);
    CHECK(field_index(0x2043u) == 0x21);
    CHECK(is_high_access(0x2043u));
    // 0x4402 exit reason: 32-bit, exit-information (read-only).
    CHECK(field_width(Field::VmExitReason) == FieldWidth::Bits32);
    CHECK(field_type(Field::VmExitReason) == FieldType::ExitInfo);
    CHECK(is_read_only(Field::VmExitReason));
    CHECK(is_read_only(Field::GuestPhysicalAddress));
    CHECK(is_read_only(Field::ExitQualification));
    CHECK_FALSE(is_read_only(Field::GuestRip));
    // Guest and host state, natural width.
    CHECK(field_width(Field::GuestRip) == FieldWidth::Natural);
    CHECK(field_type(Field::GuestRip) == FieldType::GuestState);
    CHECK(field_type(Field::HostRip) == FieldType::HostState);
    CHECK(field_width(Field::GuestActivityState) == FieldWidth::Bits32);
    CHECK(field_type(Field::GuestActivityState) == FieldType::GuestState);
    CHECK(field_width(Field::GuestIntrStatus) == FieldWidth::Bits16);
    CHECK(field_width(Field::PidPointerTable) == FieldWidth::Bits64);

    CHECK(width_mask(FieldWidth::Bits16) == 0xFFFFu);
    CHECK(width_mask(FieldWidth::Bits32) == 0xFFFF'FFFFu);
    CHECK(width_mask(FieldWidth::Bits64) == ~std::uint64_t{0});
    CHECK(width_mask(FieldWidth::Natural) == ~std::uint64_t{0});
}

TEST_CASE("every known field is a full-access encoding whose name round-trips") {
    REQUIRE(kKnownFieldCount > 100);
    for (std::size_t i = 0; i < kKnownFieldCount; ++i) {
        const FieldInfo& info = known_field(i);
        INFO(info.name);
        CHECK_FALSE(is_high_access(encoding(info.field)));
        CHECK(field_name(info.field) == info.name);
        const auto found = find_field_by_name(info.name);
        REQUIRE(found);
        CHECK(*found == info.field);
        CHECK(field_position(encoding(info.field)) == i);
    }
}

TEST_CASE("find_field_by_name is case-insensitive and rejects unknown names") {
    CHECK(find_field_by_name("GUEST_RIP") == Field::GuestRip);
    CHECK(find_field_by_name("guest_rip") == Field::GuestRip);
    CHECK(find_field_by_name("Pid_Pointer_Table") == Field::PidPointerTable);
    CHECK(find_field_by_name("LAST_PID_POINTER_INDEX") == Field::LastPidPointerIndex);
    CHECK(field_name(Field::PostedIntrNv) == "POSTED_INTR_NV");
    CHECK_FALSE(find_field_by_name("GUEST_RIPX"));
    CHECK_FALSE(find_field_by_name(""));
    CHECK_FALSE(find_field_by_name("PID_POINTER_TABLE_HIGH"));
}

TEST_CASE("IPIv fields exist only with IPI virtualization") {
    const auto with = ipiv_features();
    const auto without = no_tertiary_features();
    CHECK(is_supported_field(Field::LastPidPointerIndex, with));
    CHECK(is_supported_field(Field::PidPointerTable, with));
    CHECK(is_supported_field(high_encoding(Field::PidPointerTable), with));
    CHECK(is_supported_field(Field::TertiaryVmExecControl, with));
    CHECK_FALSE(is_supported_field(Field::LastPidPointerIndex, without));
    CHECK_FALSE(is_supported_field(Field::PidPointerTable, without));
    CHECK_FALSE(is_supported_field(high_encoding(Field::PidPointerTable), without));
    CHECK_FALSE(is_supported_field(Field::TertiaryVmExecControl, without));

    // Tertiary controls without IPIv: the tertiary field exists, the IPIv fields do not.
    auto tertiary_only = ipiv_features();
    tertiary_only.ipi_virtualization = false;
    CHECK(is_supported_field(Field::TertiaryVmExecControl, tertiary_only));
    CHECK_FALSE(is_supported_field(Field::PidPointerTable, tertiary_only));
    CHECK_FALSE(is_supported_field(Field::LastPidPointerIndex, tertiary_only));
}

TEST_CASE("VID, posted-interrupt and other feature-dependent fields follow the features") {
    auto f = no_tertiary_features();
    CHECK(is_supported_field(Field::GuestIntrStatus, f));
    CHECK(is_supported_field(Field::EoiExitBitmap3, f));
    CHECK(is_supported_field(Field::PostedIntrNv, f));
    CHECK(is_supported_field(Field::PostedIntrDescAddr, f));

    auto no_vid = f;
    no_vid.virtual_interrupt_delivery = false;
    CHECK_FALSE(is_supported_field(Field::GuestIntrStatus, no_vid));
    CHECK_FALSE(is_supported_field(Field::EoiExitBitmap0, no_vid));

    auto no_secondary = f;
    no_secondary.secondary_controls = false;  // VID is a secondary control
    CHECK_FALSE(is_supported_field(Field::GuestIntrStatus, no_secondary));
    CHECK_FALSE(is_supported_field(Field::SecondaryVmExecControl, no_secondary));
    CHECK_FALSE(is_supported_field(Field::EptPointer, no_secondary));

    auto no_posted = f;
    no_posted.posted_interrupts = false;
    CHECK_FALSE(is_supported_field(Field::PostedIntrNv, no_posted));
    CHECK_FALSE(is_supported_field(Field::PostedIntrDescAddr, no_posted));

    auto no_tpr = f;
    no_tpr.tpr_shadow = false;
    CHECK_FALSE(is_supported_field(Field::VirtualApicPageAddr, no_tpr));
    CHECK_FALSE(is_supported_field(Field::TprThreshold, no_tpr));

    CHECK_FALSE(is_supported_field(Field::VmFunctionControl, f));  // no VM functions by default
    CHECK_FALSE(is_supported_field(Field::SecondaryVmExitControls, f));
}

TEST_CASE("high access exists only for 64-bit fields and reserved encoding bits are unsupported") {
    const auto f = ipiv_features();
    CHECK(is_supported_field(high_encoding(Field::VirtualApicPageAddr), f));
    CHECK(is_supported_field(high_encoding(Field::GuestPhysicalAddress), f));
    CHECK_FALSE(is_supported_field(encoding(Field::VmExitReason) | kEncodingAccessHigh, f));
    CHECK_FALSE(is_supported_field(encoding(Field::GuestRip) | kEncodingAccessHigh, f));
    CHECK_FALSE(is_supported_field(encoding(Field::PostedIntrNv) | kEncodingAccessHigh, f));
    CHECK_FALSE(is_supported_field(encoding(Field::GuestRip) | kEncodingReservedBit12, f));
    constexpr std::uint32_t kReservedEncodingBit15 = 1u << 15;
    CHECK_FALSE(is_supported_field(encoding(Field::GuestRip) | kReservedEncodingBit15, f));
    CHECK_FALSE(is_supported_field(0x0006u, f));  // HLAT prefix size: not modelled
}
