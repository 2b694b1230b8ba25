// Guest activity-state checks (SDM16 26.3.1.5, reference 8.2): a failure is a VM-entry
// failure with exit reason 33 | bit 31.
#include <catch2/catch.hpp>

#include "vmcs/entry_check_support.hpp"

using namespace vtx::vmcs;
using namespace vtx::vmcs::testing;

namespace {

constexpr std::uint32_t kSsArDpl3 = 0x3u << kSegmentArDplShift;

void set_state(Setup& s, ActivityState state) {
    s.write(Field::GuestActivityState, static_cast<std::uint32_t>(state));
}

GuestStateCheckResult check(const Setup& s) { return check_guest_activity_state(s.vmcs, s.caps); }

void expect_guest_fail(const GuestStateCheckResult& result, GuestStateCheck expected) {
    REQUIRE(result);
    INFO("failed check: " << result->name);
    CHECK(result->check == expected);
    CHECK(result->exit_reason == make_exit_reason(ExitReason::EntryFailGuestState, true));
    CHECK(result->exit_reason == (33u | (1u << 31)));
    CHECK(result->exit_qualification == kEntryFailQualDefault);
    CHECK(result->name == check_info(expected).name);
    CHECK(result->sdm_section == check_info(expected).sdm_section);
}

void expect_guest_pass(const GuestStateCheckResult& result) {
    INFO("unexpected failure: " << (result ? result->name : std::string_view{}));
    CHECK_FALSE(result);
}

}  // namespace

TEST_CASE("activity states 0-3 pass when supported") {
    Setup s{ipiv_features()};
    for (auto state : {ActivityState::Active, ActivityState::Hlt, ActivityState::Shutdown,
                       ActivityState::WaitForSipi}) {
        set_state(s, state);
        expect_guest_pass(check(s));
    }
}

TEST_CASE("activity state values above 3 fail") {
    Setup s{ipiv_features()};
    s.write(Field::GuestActivityState, kLastActivityState + 1);
    expect_guest_fail(check(s), GuestStateCheck::ActivityStateValue);
}

TEST_CASE("activity states must be supported by IA32_VMX_MISC") {
    auto f = ipiv_features();
    f.activity_wait_for_sipi = false;
    f.activity_shutdown = false;
    Setup s{f};
    set_state(s, ActivityState::WaitForSipi);
    expect_guest_fail(check(s), GuestStateCheck::ActivityStateSupported);
    set_state(s, ActivityState::Shutdown);
    expect_guest_fail(check(s), GuestStateCheck::ActivityStateSupported);
    set_state(s, ActivityState::Hlt);
    expect_guest_pass(check(s));
}

TEST_CASE("HLT requires SS.DPL = 0") {
    Setup s{ipiv_features()};
    set_state(s, ActivityState::Hlt);
    s.write(Field::GuestSsArBytes, kSsArDpl3);
    expect_guest_fail(check(s), GuestStateCheck::HltRequiresSsDplZero);
    set_state(s, ActivityState::Active);
    expect_guest_pass(check(s));
}

TEST_CASE("STI or MOV-SS blocking requires the active state") {
    Setup s{ipiv_features()};
    set_state(s, ActivityState::Hlt);
    s.write(Field::GuestInterruptibilityInfo, kBlockingBySti);
    expect_guest_fail(check(s), GuestStateCheck::BlockingRequiresActive);
    s.write(Field::GuestInterruptibilityInfo, kBlockingByMovSs);
    expect_guest_fail(check(s), GuestStateCheck::BlockingRequiresActive);
    s.write(Field::GuestInterruptibilityInfo, kBlockingByNmi);  // NMI blocking is fine
    expect_guest_pass(check(s));
    s.write(Field::GuestInterruptibilityInfo, kBlockingBySti);
    set_state(s, ActivityState::Active);
    expect_guest_pass(check(s));
}

TEST_CASE("injected events must suit the target activity state") {
    const std::uint32_t ext = make_interruption_info(0x30, InterruptionType::ExternalInterrupt);
    const std::uint32_t nmi = make_interruption_info(kVectorNmi, InterruptionType::Nmi);
    const std::uint32_t mc =
        make_interruption_info(kVectorMachineCheck, InterruptionType::HardwareException);
    const std::uint32_t db =
        make_interruption_info(kVectorDebug, InterruptionType::HardwareException);
    const std::uint32_t mtf =
        make_interruption_info(kOtherEventPendingMtfVector, InterruptionType::OtherEvent);
    const std::uint32_t gp =
        make_interruption_info(kVectorGeneralProtection, InterruptionType::HardwareException, true);
    Setup s{ipiv_features()};
    const auto expect_with = [&](ActivityState state, std::uint32_t info, bool allowed) {
        set_state(s, state);
        s.write(Field::VmEntryIntrInfoField, info);
        if (allowed) {
            expect_guest_pass(check(s));
        } else {
            expect_guest_fail(check(s), GuestStateCheck::InjectedEventAllowedInActivityState);
        }
    };
    expect_with(ActivityState::Active, gp, true);
    expect_with(ActivityState::Hlt, ext, true);
    expect_with(ActivityState::Hlt, nmi, true);
    expect_with(ActivityState::Hlt, mc, true);
    expect_with(ActivityState::Hlt, db, true);
    expect_with(ActivityState::Hlt, mtf, true);
    expect_with(ActivityState::Hlt, gp, false);
    expect_with(ActivityState::Shutdown, nmi, true);
    expect_with(ActivityState::Shutdown, mc, true);
    expect_with(ActivityState::Shutdown, ext, false);
    expect_with(ActivityState::WaitForSipi, nmi, false);
    expect_with(ActivityState::WaitForSipi, ext, false);
    // An invalid (not injected) event is ignored.
    expect_with(ActivityState::WaitForSipi, ext & ~kIntrInfoValid, true);
}

TEST_CASE("wait-for-SIPI is not allowed with entry to SMM") {
    Setup s{ipiv_features()};
    set_state(s, ActivityState::WaitForSipi);
    s.set_bits(Field::VmEntryControls, kEntryToSmm);
    expect_guest_fail(check(s), GuestStateCheck::WaitForSipiExcludesEntryToSmm);
    set_state(s, ActivityState::Hlt);
    expect_guest_pass(check(s));
}
