#pragma once
// VM-instruction error numbers and the VMsucceed / VMfail result of a VMX instruction.
// SDM Vol. 3 "VM Instruction Error Numbers" (SDM16 Table 30-1; Linux asm/vmx.h
// enum vm_instruction_error_number).
#include <cstdint>
#include <string_view>

namespace vtx::vmcs {

enum class VmInstructionError : std::uint32_t {
    None = 0,  // not an architectural error number: "no error recorded"
    VmcallInVmxRoot = 1,
    VmclearInvalidAddress = 2,
    VmclearVmxonPointer = 3,
    VmlaunchNonClearVmcs = 4,
    VmresumeNonLaunchedVmcs = 5,
    VmresumeAfterVmxoff = 6,
    EntryInvalidControlField = 7,
    EntryInvalidHostStateField = 8,
    VmptrldInvalidAddress = 9,
    VmptrldVmxonPointer = 10,
    VmptrldIncorrectRevisionId = 11,
    UnsupportedVmcsComponent = 12,
    VmwriteReadOnlyComponent = 13,
    VmxonInVmxRoot = 15,
    EntryInvalidExecutiveVmcsPointer = 16,
    EntryNonLaunchedExecutiveVmcs = 17,
    EntryExecutiveVmcsPointerNotVmxon = 18,
    VmcallNonClearVmcs = 19,
    VmcallInvalidExitControlFields = 20,
    VmcallIncorrectMsegRevisionId = 22,
    VmxoffUnderDualMonitor = 23,
    VmcallInvalidSmmMonitorFeatures = 24,
    EntryInvalidExecutionControlsInExecutiveVmcs = 25,
    EntryEventsBlockedByMovSs = 26,
    InvalidInveptInvvpidOperand = 28,
};

// Short description as worded in the SDM table ("" for numbers that are not defined).
std::string_view vm_instruction_error_name(VmInstructionError error);

constexpr std::uint32_t error_number(VmInstructionError error) {
    return static_cast<std::uint32_t>(error);
}

// The three outcomes of a VMX instruction (SDM 30.2 "Conventions"): VMsucceed (CF=ZF=0),
// VMfailInvalid (CF=1, no current VMCS), VMfailValid(n) (ZF=1, error n stored in the
// current VMCS's VM-instruction error field).
enum class VmxStatus : std::uint8_t { Succeed, FailInvalid, FailValid };

struct VmxResult {
    VmxStatus status = VmxStatus::Succeed;
    VmInstructionError error = VmInstructionError::None;  // meaningful for FailValid only

    static constexpr VmxResult succeed() { return {}; }
    static constexpr VmxResult fail_invalid() { return {VmxStatus::FailInvalid, {}}; }
    static constexpr VmxResult fail_valid(VmInstructionError e) {
        return {VmxStatus::FailValid, e};
    }

    constexpr bool succeeded() const { return status == VmxStatus::Succeed; }
    constexpr bool failed_valid_with(VmInstructionError e) const {
        return status == VmxStatus::FailValid && error == e;
    }
    friend constexpr bool operator==(const VmxResult& a, const VmxResult& b) {
        return a.status == b.status && a.error == b.error;
    }
    friend constexpr bool operator!=(const VmxResult& a, const VmxResult& b) { return !(a == b); }
};

}  // namespace vtx::vmcs
