#include "vmcs/errors.hpp"

namespace vtx::vmcs {

std::string_view vm_instruction_error_name(VmInstructionError error) {
    switch (error) {
        case VmInstructionError::None:
            return "no error";
        case VmInstructionError::VmcallInVmxRoot:
            return "VMCALL executed in VMX root operation";
        case VmInstructionError::VmclearInvalidAddress:
            return "VMCLEAR with invalid physical address";
        case VmInstructionError::VmclearVmxonPointer:
            return "VMCLEAR with VMXON pointer";
        case VmInstructionError::VmlaunchNonClearVmcs:
            return "VMLAUNCH with non-clear VMCS";
        case VmInstructionError::VmresumeNonLaunchedVmcs:
            return "VMRESUME with non-launched VMCS";
        case VmInstructionError::VmresumeAfterVmxoff:
            return "VMRESUME after VMXOFF";
        case VmInstructionError::EntryInvalidControlField:
            return "VM entry with invalid control field(s)";
        case VmInstructionError::EntryInvalidHostStateField:
            return "VM entry with invalid host-state field(s)";
        case VmInstructionError::VmptrldInvalidAddress:
            return "VMPTRLD with invalid physical address";
        case VmInstructionError::VmptrldVmxonPointer:
            return "VMPTRLD with VMXON pointer";
        case VmInstructionError::VmptrldIncorrectRevisionId:
            return "VMPTRLD with incorrect VMCS revision identifier";
        case VmInstructionError::UnsupportedVmcsComponent:
            return "VMREAD/VMWRITE from/to unsupported VMCS component";
        case VmInstructionError::VmwriteReadOnlyComponent:
            return "VMWRITE to read-only VMCS component";
        case VmInstructionError::VmxonInVmxRoot:
            return "VMXON executed in VMX root operation";
        case VmInstructionError::EntryInvalidExecutiveVmcsPointer:
            return "VM entry with invalid executive-VMCS pointer";
        case VmInstructionError::EntryNonLaunchedExecutiveVmcs:
            return "VM entry with non-launched executive VMCS";
        case VmInstructionError::EntryExecutiveVmcsPointerNotVmxon:
            return "VM entry with executive-VMCS pointer not VMXON pointer";
        case VmInstructionError::VmcallNonClearVmcs:
            return "VMCALL with non-clear VMCS";
        case VmInstructionError::VmcallInvalidExitControlFields:
            return "VMCALL with invalid VM-exit control fields";
        case VmInstructionError::VmcallIncorrectMsegRevisionId:
            return "VMCALL with incorrect MSEG revision identifier";
        case VmInstructionError::VmxoffUnderDualMonitor:
            return "VMXOFF under dual-monitor treatment of SMIs and SMM";
        case VmInstructionError::VmcallInvalidSmmMonitorFeatures:
            return "VMCALL with invalid SMM-monitor features";
        case VmInstructionError::EntryInvalidExecutionControlsInExecutiveVmcs:
            return "VM entry with invalid VM-execution control fields in executive VMCS";
        case VmInstructionError::EntryEventsBlockedByMovSs:
            return "VM entry with events blocked by MOV SS";
        case VmInstructionError::InvalidInveptInvvpidOperand:
            return "invalid operand to INVEPT/INVVPID";
    }
    return "";
}

}  // namespace vtx::vmcs
