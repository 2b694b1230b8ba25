// Exit reasons, interruption information, activity states and other exit-info formats.
#include <catch2/catch.hpp>

#include "vmcs/controls.hpp"
#include "vmcs/exit_info.hpp"

using namespace vtx::vmcs;

TEST_CASE("basic exit reasons have the numbers of reference section 9.1") {
    CHECK(static_cast<int>(ExitReason::ExceptionOrNmi) == 0);
    CHECK(static_cast<int>(ExitReason::ExternalInterrupt) == 1);
    CHECK(static_cast<int>(ExitReason::TripleFault) == 2);
    CHECK(static_cast<int>(ExitReason::InitSignal) == 3);
    CHECK(static_cast<int>(ExitReason::Sipi) == 4);
    CHECK(static_cast<int>(ExitReason::InterruptWindow) == 7);
    CHECK(static_cast<int>(ExitReason::NmiWindow) == 8);
    CHECK(static_cast<int>(ExitReason::Cpuid) == 10);
    CHECK(static_cast<int>(ExitReason::Hlt) == 12);
    CHECK(static_cast<int>(ExitReason::Vmcall) == 18);
    CHECK(static_cast<int>(ExitReason::Vmclear) == 19);
    CHECK(static_cast<int>(ExitReason::Vmlaunch) == 20);
    CHECK(static_cast<int>(ExitReason::Vmptrld) == 21);
    CHECK(static_cast<int>(ExitReason::Vmptrst) == 22);
    CHECK(static_cast<int>(ExitReason::Vmread) == 23);
    CHECK(static_cast<int>(ExitReason::Vmresume) == 24);
    CHECK(static_cast<int>(ExitReason::Vmwrite) == 25);
    CHECK(static_cast<int>(ExitReason::Vmxoff) == 26);
    CHECK(static_cast<int>(ExitReason::Vmxon) == 27);
    CHECK(static_cast<int>(ExitReason::Rdmsr) == 31);
    CHECK(static_cast<int>(ExitReason::Wrmsr) == 32);
    CHECK(static_cast<int>(ExitReason::EntryFailGuestState) == 33);
    CHECK(static_cast<int>(ExitReason::EntryFailMsrLoad) == 34);
    CHECK(static_cast<int>(ExitReason::EntryFailMachineCheck) == 41);
    CHECK(static_cast<int>(ExitReason::TprBelowThreshold) == 43);
    CHECK(static_cast<int>(ExitReason::ApicAccess) == 44);
    CHECK(static_cast<int>(ExitReason::VirtualizedEoi) == 45);
    CHECK(static_cast<int>(ExitReason::EptViolation) == 48);
    CHECK(static_cast<int>(ExitReason::EptMisconfig) == 49);
    CHECK(static_cast<int>(ExitReason::PreemptionTimer) == 52);
    CHECK(static_cast<int>(ExitReason::ApicWrite) == 56);
}

TEST_CASE("exit reasons have KVM names and can be found by name") {
    CHECK(exit_reason_name(ExitReason::ApicWrite) == "APIC_WRITE");
    CHECK(exit_reason_name(ExitReason::VirtualizedEoi) == "EOI_INDUCED");
    CHECK(exit_reason_name(ExitReason::Sipi) == "SIPI_SIGNAL");
    CHECK(exit_reason_name(ExitReason::Wrmsr) == "MSR_WRITE");
    CHECK(exit_reason_name(static_cast<ExitReason>(35)).empty());  // 35 is undefined
    CHECK(find_exit_reason_by_name("apic_access") == ExitReason::ApicAccess);
    CHECK(find_exit_reason_by_name("INIT_SIGNAL") == ExitReason::InitSignal);
    CHECK_FALSE(find_exit_reason_by_name("NOT_A_REASON"));
}

TEST_CASE("exit-reason field: basic reason in 15:0, VM-entry failure in bit 31") {
    CHECK(kExitReasonEntryFailure == 0x8000'0000u);
    const std::uint32_t failed = make_exit_reason(ExitReason::EntryFailGuestState, true);
    CHECK(failed == 0x8000'0021u);
    CHECK(is_entry_failure(failed));
    CHECK(basic_exit_reason(failed) == ExitReason::EntryFailGuestState);
    const std::uint32_t normal = make_exit_reason(ExitReason::ExternalInterrupt);
    CHECK(normal == 1);
    CHECK_FALSE(is_entry_failure(normal));
}

TEST_CASE("interruption-information format: vector 7:0, type 10:8, error code 11, valid 31") {
    CHECK(kIntrInfoVectorMask == 0xFFu);
    CHECK(kIntrInfoTypeMask == 0x700u);
    CHECK(kIntrInfoErrorCodeValid == 0x800u);
    CHECK(kIntrInfoValid == 0x8000'0000u);
    CHECK(static_cast<int>(InterruptionType::ExternalInterrupt) == 0);
    CHECK(static_cast<int>(InterruptionType::Nmi) == 2);
    CHECK(static_cast<int>(InterruptionType::HardwareException) == 3);
    CHECK(static_cast<int>(InterruptionType::SoftwareInterrupt) == 4);
    CHECK(static_cast<int>(InterruptionType::PrivilegedSoftwareException) == 5);
    CHECK(static_cast<int>(InterruptionType::SoftwareException) == 6);
    CHECK(static_cast<int>(InterruptionType::OtherEvent) == 7);

    // External interrupt 0xEC acknowledged on exit (Linux INTR_TYPE_EXT_INTR | valid).
    const std::uint32_t ext = make_interruption_info(0xEC, InterruptionType::ExternalInterrupt);
    CHECK(ext == 0x8000'00ECu);
    // #GP with error code: 0x80000B0D (Linux: INTR_INFO_VALID_MASK | HARD_EXCEPTION | DELIVER_CODE
    // | 13).
    const std::uint32_t gp =
        make_interruption_info(kVectorGeneralProtection, InterruptionType::HardwareException, true);
    CHECK(gp == 0x8000'0B0Du);
    CHECK(interruption_vector(gp) == kVectorGeneralProtection);
    CHECK(interruption_type(gp) == InterruptionType::HardwareException);
    CHECK(interruption_valid(gp));
    CHECK_FALSE(interruption_valid(gp & ~kIntrInfoValid));
}

TEST_CASE("APIC-access qualification: offset 11:0, access type 15:12") {
    CHECK(static_cast<int>(ApicAccessType::LinearRead) == 0);
    CHECK(static_cast<int>(ApicAccessType::LinearWrite) == 1);
    CHECK(static_cast<int>(ApicAccessType::LinearInstructionFetch) == 2);
    CHECK(static_cast<int>(ApicAccessType::LinearEventDelivery) == 3);
    CHECK(static_cast<int>(ApicAccessType::GuestPhysicalEventDelivery) == 10);
    CHECK(static_cast<int>(ApicAccessType::GuestPhysicalInstruction) == 15);
    constexpr std::uint32_t kIcrLowOffset = 0x300;
    CHECK(make_apic_access_qualification(kIcrLowOffset, ApicAccessType::LinearWrite) == 0x1300u);
}

TEST_CASE("activity states 0-3 and interruptibility bits") {
    CHECK(static_cast<int>(ActivityState::Active) == 0);
    CHECK(static_cast<int>(ActivityState::Hlt) == 1);
    CHECK(static_cast<int>(ActivityState::Shutdown) == 2);
    CHECK(static_cast<int>(ActivityState::WaitForSipi) == 3);
    CHECK(kBlockingBySti == 1u);
    CHECK(kBlockingByMovSs == 2u);
    CHECK(kBlockingBySmi == 4u);
    CHECK(kBlockingByNmi == 8u);
}

TEST_CASE("control bits sit at their architectural positions") {
    CHECK(kPinExternalInterruptExiting == 1u << 0);
    CHECK(kPinNmiExiting == 1u << 3);
    CHECK(kPinVirtualNmis == 1u << 5);
    CHECK(kPinActivatePreemptionTimer == 1u << 6);
    CHECK(kPinProcessPostedInterrupts == 1u << 7);
    CHECK(kPrimaryInterruptWindowExiting == 1u << 2);
    CHECK(kPrimaryHltExiting == 1u << 7);
    CHECK(kPrimaryActivateTertiaryControls == 0x0002'0000u);
    CHECK(kPrimaryCr8LoadExiting == 1u << 19);
    CHECK(kPrimaryCr8StoreExiting == 1u << 20);
    CHECK(kPrimaryUseTprShadow == 1u << 21);
    CHECK(kPrimaryNmiWindowExiting == 1u << 22);
    CHECK(kPrimaryUseMsrBitmaps == 1u << 28);
    CHECK(kPrimaryActivateSecondaryControls == 1u << 31);
    CHECK(kSecondaryVirtualizeApicAccesses == 1u << 0);
    CHECK(kSecondaryEnableEpt == 1u << 1);
    CHECK(kSecondaryVirtualizeX2apicMode == 1u << 4);
    CHECK(kSecondaryEnableVpid == 1u << 5);
    CHECK(kSecondaryApicRegisterVirtualization == 1u << 8);
    CHECK(kSecondaryVirtualInterruptDelivery == 1u << 9);
    CHECK(kTertiaryIpiVirt == std::uint64_t{1} << 4);
    CHECK(kExitHostAddressSpaceSize == 1u << 9);
    CHECK(kExitAcknowledgeInterruptOnExit == 0x8000u);
    CHECK(kEntryIa32eModeGuest == 1u << 9);
    CHECK(kEntryToSmm == 1u << 10);
}
