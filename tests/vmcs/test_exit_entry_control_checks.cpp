// VM-entry checks on VM-exit control fields (SDM16 26.2.1.2) and VM-entry control fields
// (SDM16 26.2.1.3), including event injection.
#include <catch2/catch.hpp>

#include "vmcs/entry_check_support.hpp"

using namespace vtx::vmcs;
using namespace vtx::vmcs::testing;

namespace {
constexpr std::uint64_t kMisalignedMsrArea = kMsrAreaAddress | 0x8;
constexpr std::uint32_t kTwoEntries = 2;
constexpr std::uint8_t kVectorInvalidOpcode = 6;  // #UD: no error code
constexpr std::uint8_t kVectorInt3 = 3;
constexpr std::uint32_t kInt3Length = 1;

constexpr std::uint64_t kMsrEntryBytes = 16;  // SDM: each MSR-area entry is 16 bytes

// A two-entry MSR area whose first entry fits the width but whose second does not.
std::uint64_t straddling_msr_area(const VmxCapabilities& caps) {
    return (std::uint64_t{1} << caps.physical_address_width()) - kMsrEntryBytes;
}
}  // namespace

// --- VM-exit controls ---

TEST_CASE("VM-exit controls must agree with the capability MSR") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::VmExitControls, kExitSaveDebugControls);  // TRUE MSR allows 0
    expect_pass(s.check());
    s.clear_bits(Field::VmExitControls, kExitDefault1 & ~kExitTrueClearableDefault1);
    expect_fail(s.check(), EntryCheck::ExitReservedBits);

    Setup t{ipiv_features()};
    t.set_bits(Field::VmExitControls, kExitActivateSecondaryControls);  // not offered
    expect_fail(t.check(), EntryCheck::ExitReservedBits);
}

TEST_CASE("secondary VM-exit controls must agree with IA32_VMX_EXIT_CTLS2") {
    constexpr std::uint64_t kSecondaryExitBit0 = 1;  // no secondary exit control is offered
    auto f = ipiv_features();
    f.secondary_exit_controls = true;
    Setup s{f};
    s.set_bits(Field::VmExitControls, kExitActivateSecondaryControls);
    expect_pass(s.check());
    s.write(Field::SecondaryVmExitControls, kSecondaryExitBit0);
    expect_fail(s.check(), EntryCheck::SecondaryExitReservedBits);
    s.clear_bits(Field::VmExitControls, kExitActivateSecondaryControls);
    expect_pass(s.check());  // ignored when not activated
}

TEST_CASE("save VMX-preemption timer value requires the timer to be active") {
    Setup s{ipiv_features()};
    s.set_bits(Field::VmExitControls, kExitSavePreemptionTimer);
    expect_fail(s.check(), EntryCheck::SavePreemptionTimerRequiresTimer);
    s.set_bits(Field::PinBasedVmExecControl, kPinActivatePreemptionTimer);
    expect_pass(s.check());
}

TEST_CASE("VM-exit MSR-store area is 16-byte aligned and within the width") {
    Setup s{ipiv_features()};
    s.write(Field::VmExitMsrStoreAddr, kMisalignedMsrArea);
    expect_pass(s.check());  // count 0: not checked
    s.write(Field::VmExitMsrStoreCount, kTwoEntries);
    expect_fail(s.check(), EntryCheck::ExitMsrStoreAddress);
    s.write(Field::VmExitMsrStoreAddr, straddling_msr_area(s.caps));
    expect_fail(s.check(), EntryCheck::ExitMsrStoreAddress);
    s.write(Field::VmExitMsrStoreAddr, kMsrAreaAddress);
    expect_pass(s.check());
}

TEST_CASE("VM-exit MSR-load area is 16-byte aligned and within the width") {
    Setup s{ipiv_features()};
    s.write(Field::VmExitMsrLoadCount, kTwoEntries);
    s.write(Field::VmExitMsrLoadAddr, kMisalignedMsrArea);
    expect_fail(s.check(), EntryCheck::ExitMsrLoadAddress);
    s.write(Field::VmExitMsrLoadAddr, beyond_width(s.caps, kMsrAreaAddress));
    expect_fail(s.check(), EntryCheck::ExitMsrLoadAddress);
    s.write(Field::VmExitMsrLoadAddr, kMsrAreaAddress);
    expect_pass(s.check());
}

// --- VM-entry controls ---

TEST_CASE("VM-entry controls must agree with the capability MSR") {
    Setup s{ipiv_features()};
    s.clear_bits(Field::VmEntryControls, kEntryLoadDebugControls);  // TRUE MSR allows 0
    expect_pass(s.check());
    s.clear_bits(Field::VmEntryControls, kEntryDefault1);
    expect_fail(s.check(), EntryCheck::EntryReservedBits);
}

TEST_CASE("entry to SMM and deactivate dual-monitor treatment must be 0 outside SMM") {
    Setup s{ipiv_features()};
    s.set_bits(Field::VmEntryControls, kEntryToSmm);
    expect_fail(s.check(), EntryCheck::EntryOutsideSmm);
    s.clear_bits(Field::VmEntryControls, kEntryToSmm);
    s.set_bits(Field::VmEntryControls, kEntryDeactivateDualMonitor);
    expect_fail(s.check(), EntryCheck::EntryOutsideSmm);
    s.clear_bits(Field::VmEntryControls, kEntryDeactivateDualMonitor);
    expect_pass(s.check());
}

TEST_CASE("VM-entry MSR-load area is 16-byte aligned and within the width") {
    Setup s{ipiv_features()};
    s.write(Field::VmEntryMsrLoadCount, kTwoEntries);
    s.write(Field::VmEntryMsrLoadAddr, kMisalignedMsrArea);
    expect_fail(s.check(), EntryCheck::EntryMsrLoadAddress);
    s.write(Field::VmEntryMsrLoadAddr, straddling_msr_area(s.caps));
    expect_fail(s.check(), EntryCheck::EntryMsrLoadAddress);
    s.write(Field::VmEntryMsrLoadAddr, kMsrAreaAddress);
    expect_pass(s.check());
}

TEST_CASE("event injection: bits 30:12 of the interruption information must be 0") {
    Setup s{ipiv_features()};
    const std::uint32_t ext = make_interruption_info(0x30, InterruptionType::ExternalInterrupt);
    s.write(Field::VmEntryIntrInfoField, ext);
    expect_pass(s.check());
    s.write(Field::VmEntryIntrInfoField, ext | kIntrInfoNmiUnblockingIret);  // bit 12
    expect_fail(s.check(), EntryCheck::EventInjectionReservedBits);
    // Not checked when the valid bit is 0.
    s.write(Field::VmEntryIntrInfoField, (ext | kIntrInfoNmiUnblockingIret) & ~kIntrInfoValid);
    expect_pass(s.check());
}

TEST_CASE("event injection: type 1 is reserved, type 7 needs monitor-trap-flag support") {
    Setup s{ipiv_features()};
    s.write(Field::VmEntryIntrInfoField, make_interruption_info(0x30, InterruptionType::Reserved));
    expect_fail(s.check(), EntryCheck::EventInjectionType);
    s.write(Field::VmEntryIntrInfoField,
            make_interruption_info(kOtherEventPendingMtfVector, InterruptionType::OtherEvent));
    expect_pass(s.check());
    const auto primary =
        ControlCapability::from_msr(*s.caps.read_msr(kMsrIa32VmxTrueProcbasedCtls));
    s.caps.override_msr(
        kMsrIa32VmxTrueProcbasedCtls,
        ControlCapability{primary.allowed0, primary.allowed1 & ~kPrimaryMonitorTrapFlag}.to_msr());
    expect_fail(s.check(), EntryCheck::EventInjectionType);
}

TEST_CASE("event injection: NMI vector 2, exceptions 0-31, other event vector 0") {
    Setup s{ipiv_features()};
    s.write(Field::VmEntryIntrInfoField, make_interruption_info(kVectorNmi, InterruptionType::Nmi));
    expect_pass(s.check());
    s.write(Field::VmEntryIntrInfoField, make_interruption_info(3, InterruptionType::Nmi));
    expect_fail(s.check(), EntryCheck::EventInjectionVector);
    s.write(Field::VmEntryIntrInfoField,
            make_interruption_info(kLastExceptionVector + 1, InterruptionType::HardwareException));
    expect_fail(s.check(), EntryCheck::EventInjectionVector);
    s.write(Field::VmEntryIntrInfoField, make_interruption_info(1, InterruptionType::OtherEvent));
    expect_fail(s.check(), EntryCheck::EventInjectionVector);
}

TEST_CASE("event injection: deliver-error-code must match the exception") {
    Setup s{ipiv_features()};
    const auto gp = [](bool code) {
        return make_interruption_info(kVectorGeneralProtection, InterruptionType::HardwareException,
                                      code);
    };
    s.write(Field::VmEntryIntrInfoField, gp(true));
    expect_pass(s.check());
    s.write(Field::VmEntryIntrInfoField, gp(false));
    expect_fail(s.check(), EntryCheck::EventInjectionDeliverErrorCode);
    s.write(
        Field::VmEntryIntrInfoField,
        make_interruption_info(kVectorInvalidOpcode, InterruptionType::HardwareException, true));
    expect_fail(s.check(), EntryCheck::EventInjectionDeliverErrorCode);
    s.write(Field::VmEntryIntrInfoField,
            make_interruption_info(0x30, InterruptionType::ExternalInterrupt, true));
    expect_fail(s.check(), EntryCheck::EventInjectionDeliverErrorCode);

    // Unrestricted guest in real mode (CR0.PE = 0): no error code is delivered.
    s.write(Field::GuestCr0, s.vmcs.hw_read(Field::GuestCr0) & ~(kCr0Pe | kCr0Pg));
    s.write(Field::VmEntryIntrInfoField, gp(true));
    expect_fail(s.check(), EntryCheck::EventInjectionDeliverErrorCode);
    s.write(Field::VmEntryIntrInfoField, gp(false));
    expect_pass(s.check());

    // IA32_VMX_BASIC[56] = 1 lifts the consistency rule.
    s.caps.override_msr(kMsrIa32VmxBasic, s.caps.basic() | kBasicNoErrorCodeConsistency);
    s.write(Field::VmEntryIntrInfoField, gp(true));
    expect_pass(s.check());
}

TEST_CASE("event injection: error-code bits 31:16 must be 0") {
    Setup s{ipiv_features()};
    s.write(Field::VmEntryIntrInfoField,
            make_interruption_info(kVectorPageFault, InterruptionType::HardwareException, true));
    s.write(Field::VmEntryExceptionErrorCode, 0xFFFF);
    expect_pass(s.check());
    s.write(Field::VmEntryExceptionErrorCode, 0x1'0000);
    expect_fail(s.check(), EntryCheck::EventInjectionErrorCodeBits);
}

TEST_CASE("event injection: software events need an instruction length of 1-15") {
    Setup s{ipiv_features()};
    s.write(Field::VmEntryIntrInfoField,
            make_interruption_info(kVectorInt3, InterruptionType::SoftwareException));
    s.write(Field::VmEntryInstructionLen, 0);
    expect_fail(s.check(), EntryCheck::EventInjectionInstructionLength);
    s.write(Field::VmEntryInstructionLen, 16);
    expect_fail(s.check(), EntryCheck::EventInjectionInstructionLength);
    s.write(Field::VmEntryInstructionLen, kInt3Length);
    expect_pass(s.check());
    // Length 0 is allowed when IA32_VMX_MISC[30] says so.
    s.write(Field::VmEntryInstructionLen, 0);
    s.caps.override_msr(kMsrIa32VmxMisc, s.caps.misc() | kMiscZeroLengthInjection);
    expect_pass(s.check());
}

TEST_CASE("control checks run in SDM order: execution, then exit, then entry") {
    Setup s{ipiv_features()};
    s.set_bits(Field::VmEntryControls, kEntryToSmm);
    s.set_bits(Field::VmExitControls, kExitSavePreemptionTimer);
    expect_fail(s.check(), EntryCheck::SavePreemptionTimerRequiresTimer);
    s.write(Field::VirtualProcessorId, 0);
    expect_fail(s.check(), EntryCheck::VpidNotZero);
}
