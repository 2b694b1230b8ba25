// The IPIv-specific VM-entry checks that the sources leave open (reference 7.1 GAP, 11 item
// 2): the expectations follow ipiv_entry_policy, so the decisions are tested as made.
#include <catch2/catch.hpp>

#include "vmcs/entry_check_support.hpp"

using namespace vtx::vmcs;
using namespace vtx::vmcs::testing;

TEST_CASE("IPIv policy: the decisions recorded in ipiv_entry_policy") {
    CHECK(ipiv_entry_policy::kRequiresTprShadow);
    CHECK(ipiv_entry_policy::kCheckPidPointerTableAddress);
    CHECK_FALSE(ipiv_entry_policy::kCheckLastPidPointerIndex);
    CHECK_FALSE(ipiv_entry_policy::kRequiresVirtualInterruptDelivery);
    CHECK_FALSE(ipiv_entry_policy::kRequiresPostedInterrupts);
}

TEST_CASE("IPIv policy: PID-pointer-table address must be 4-KByte aligned") {
    constexpr std::uint64_t kMisalignedTable = kPidTablePage | 0x40;
    Setup s{ipiv_features()};
    s.write(Field::PidPointerTable, kMisalignedTable);
    if (ipiv_entry_policy::kCheckPidPointerTableAddress) {
        expect_fail(s.check(), EntryCheck::IpivPidPointerTableAddress);
    } else {
        expect_pass(s.check());
    }
    s.write(Field::PidPointerTable, kPidTablePage);
    expect_pass(s.check());
}

TEST_CASE("IPIv policy: PID-pointer-table address must be within the physical-address width") {
    Setup s{ipiv_features()};
    s.write(Field::PidPointerTable, beyond_width(s.caps, kPidTablePage));
    if (ipiv_entry_policy::kCheckPidPointerTableAddress) {
        const auto result = s.check();
        expect_fail(result, EntryCheck::IpivPidPointerTableAddress);
        REQUIRE(result);
        CHECK(result->sdm_section.find("vtxsim policy") != std::string_view::npos);
    } else {
        expect_pass(s.check());
    }
}

TEST_CASE("IPIv policy: the table address is not checked when IPIv is off") {
    Setup s{ipiv_features()};
    s.write(Field::PidPointerTable, beyond_width(s.caps, kPidTablePage) | 0x40);
    s.clear_bits(Field::TertiaryVmExecControl, kTertiaryIpiVirt);
    expect_pass(s.check());
}

TEST_CASE("IPIv policy: any last PID-pointer index is accepted at VM entry") {
    constexpr std::uint16_t kLargestIndex = 0xFFFF;
    Setup s{ipiv_features()};
    s.write(Field::LastPidPointerIndex, 0);
    expect_pass(s.check());
    s.write(Field::LastPidPointerIndex, kLargestIndex);
    expect_pass(s.check());
}

TEST_CASE("IPIv policy: IPIv without virtual-interrupt delivery") {
    Setup s{ipiv_features()};
    s.without_vid();  // TPR shadow stays 1, so the documented rule is satisfied
    const auto result = s.check();
    if (ipiv_entry_policy::kRequiresVirtualInterruptDelivery) {
        expect_fail(result, EntryCheck::IpivRequiresVirtualInterruptDelivery);
    } else {
        expect_pass(result);
    }
}

TEST_CASE("IPIv policy: IPIv without process posted interrupts") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::PinBasedVmExecControl, kPinProcessPostedInterrupts);
    const auto result = s.check();
    if (ipiv_entry_policy::kRequiresPostedInterrupts) {
        expect_fail(result, EntryCheck::IpivRequiresPostedInterrupts);
    } else {
        expect_pass(result);
    }
}
