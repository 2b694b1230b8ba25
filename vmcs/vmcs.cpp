#include "vmcs/vmcs.hpp"

#include "vmcs/controls.hpp"

namespace vtx::vmcs {
namespace {

// Encodings are 32-bit values with bits 31:15 reserved; a 64-bit register operand with
// any bit outside the defined encoding bits names no component.
constexpr std::uint64_t kOperandDefinedBits = kEncodingDefinedBits;
constexpr unsigned kHighHalfShift = 32;
constexpr std::uint64_t kLowHalfMask = 0xFFFF'FFFFull;

}  // namespace

Vmcs::Vmcs(const model::CpuFeatures& features)
    : m_vmwrite_to_read_only(features.vmwrite_to_exit_info),
      m_revision_id(features.vmcs_revision_id) {
    for (std::size_t i = 0; i < kKnownFieldCount; ++i) {
        m_supported[i] = requirement_met(known_field(i).requirement, features);
    }
}

bool Vmcs::supports(std::uint32_t enc) const {
    if ((enc & ~kEncodingDefinedBits) != 0) return false;
    const auto pos = field_position(enc & ~kEncodingAccessHigh);
    if (!pos || !m_supported[*pos]) return false;
    return !is_high_access(enc) || field_width(enc) == FieldWidth::Bits64;
}

bool Vmcs::supports(Field f) const { return supports(encoding(f)); }

VmreadResult Vmcs::vmread(std::uint64_t operand) const {
    // SDM VMREAD: "IF register source operand does not correspond to any VMCS field THEN
    // VMfailValid(VMREAD/VMWRITE from/to unsupported VMCS component)".
    if ((operand & ~kOperandDefinedBits) != 0 || !supports(static_cast<std::uint32_t>(operand)))
        return {VmxResult::fail_valid(VmInstructionError::UnsupportedVmcsComponent), 0};
    const auto enc = static_cast<std::uint32_t>(operand);
    const std::uint64_t stored = m_values[*field_position(enc & ~kEncodingAccessHigh)];
    const std::uint64_t value = is_high_access(enc) ? stored >> kHighHalfShift : stored;
    return {VmxResult::succeed(), value};
}

VmxResult Vmcs::vmwrite(std::uint64_t operand, std::uint64_t value) {
    if ((operand & ~kOperandDefinedBits) != 0 || !supports(static_cast<std::uint32_t>(operand)))
        return VmxResult::fail_valid(VmInstructionError::UnsupportedVmcsComponent);
    const auto enc = static_cast<std::uint32_t>(operand);
    // SDM VMWRITE: "ELSE IF VMCS field indexed by secondary source operand is read-only and
    // IA32_VMX_MISC[29] = 0 THEN VMfailValid(VMWRITE to read-only VMCS component)".
    if (is_read_only(enc) && !m_vmwrite_to_read_only)
        return VmxResult::fail_valid(VmInstructionError::VmwriteReadOnlyComponent);
    std::uint64_t& slot = m_values[*field_position(enc & ~kEncodingAccessHigh)];
    if (is_high_access(enc)) {
        slot = (slot & kLowHalfMask) | ((value & kLowHalfMask) << kHighHalfShift);
    } else {
        slot = value & width_mask(field_width(enc));
    }
    return VmxResult::succeed();
}

}  // namespace vtx::vmcs
