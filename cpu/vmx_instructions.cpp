// The root-mode VMX instructions (SDM 31, "VMX Instruction Reference"): VMXON, VMXOFF,
// VMCLEAR, VMPTRLD, VMREAD, VMWRITE with their VMfail conditions.
#include "cpu/logical_processor.hpp"


#include "cpu/flow_encodings.hpp"
#include "cpu/platform.hpp"
#include "model/x86.hpp"

namespace vtx::cpu {

// ====================================================================================
// Root-mode API: VMX instructions (SDM 30)
// ====================================================================================
// VMfail(ErrorNumber) (SDM 30.2 "Conventions"): VMfailValid, with the error number in the
// current VMCS, when there is one; VMfailInvalid otherwise.
vmcs::VmxResult LogicalProcessor::vm_fail(vmcs::VmInstructionError e) {
    if (!m_current) return vmcs::VmxResult::fail_invalid();
    m_current->vmcs.hw_write(Field::VmInstructionError, vmcs::error_number(e));
    return vmcs::VmxResult::fail_valid(e);
}

vmcs::VmxResult LogicalProcessor::vmxon(std::uint64_t region) {
    sync_point();
    step(Cost::VmxVmxon, "VMXON", "SDM 30 VMXON");
    if (m_vmx_on) {
        return vm_fail(vmcs::VmInstructionError::VmxonInVmxRoot);
    }
    if (region % model::kPageSize) return vmcs::VmxResult::fail_invalid();
    m_vmx_on = true;
    m_vmxon_region = region;
    m_current = nullptr;
    return vmcs::VmxResult::succeed();
}

vmcs::VmxResult LogicalProcessor::vmxoff() {
    sync_point();
    if (!m_vmx_on) return vmcs::VmxResult::fail_invalid();
    m_vmx_on = false;
    m_current = nullptr;
    return vmcs::VmxResult::succeed();
}

vmcs::VmxResult LogicalProcessor::vmclear(std::uint64_t address) {
    step(Cost::VmxVmptrld, "VMCLEAR", "SDM 30 VMCLEAR");
    if (address % model::kPageSize) return vm_fail(vmcs::VmInstructionError::VmclearInvalidAddress);
    if (address == m_vmxon_region) return vm_fail(vmcs::VmInstructionError::VmclearVmxonPointer);
    GuestContext* ctx = m_platform.vmcs_at(address);
    if (ctx) ctx->vmcs.vmclear();
    if (ctx == m_current) m_current = nullptr;
    return vmcs::VmxResult::succeed();
}

vmcs::VmxResult LogicalProcessor::vmptrld(std::uint64_t address) {
    step(Cost::VmxVmptrld, "VMPTRLD", "SDM 30 VMPTRLD");
    if (address % model::kPageSize) return vm_fail(vmcs::VmInstructionError::VmptrldInvalidAddress);
    if (address == m_vmxon_region) return vm_fail(vmcs::VmInstructionError::VmptrldVmxonPointer);
    GuestContext* ctx = m_platform.vmcs_at(address);
    std::uint32_t revision = 0;
    m_platform.memory().peek(address, &revision, sizeof revision);
    if (!ctx || revision != capabilities().vmcs_revision_id())
        return vm_fail(vmcs::VmInstructionError::VmptrldIncorrectRevisionId);
    m_current = ctx;
    return vmcs::VmxResult::succeed();
}

vmcs::VmreadResult LogicalProcessor::vmread(Field f) {
    charge(Cost::VmxVmread);
    if (!m_current) return {vmcs::VmxResult::fail_invalid(), 0};
    auto r = m_current->vmcs.vmread(f);
    if (r.status.status == vmcs::VmxStatus::FailValid)
        m_current->vmcs.hw_write(Field::VmInstructionError, vmcs::error_number(r.status.error));
    return r;
}

vmcs::VmxResult LogicalProcessor::vmwrite(Field f, std::uint64_t value) {
    charge(Cost::VmxVmwrite);
    if (!m_current) return vmcs::VmxResult::fail_invalid();
    auto r = m_current->vmcs.vmwrite(f, value);
    if (r.status == vmcs::VmxStatus::FailValid)
        m_current->vmcs.hw_write(Field::VmInstructionError, vmcs::error_number(r.error));
    return r;
}

}  // namespace vtx::cpu
