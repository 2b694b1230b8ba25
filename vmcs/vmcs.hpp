#pragma once
// A VMCS as a value: field storage, launch state and revision identifier, with the
// VMREAD/VMWRITE rules of SDM Vol. 3 chapter 30 ("VMREAD", "VMWRITE" operation sections):
//   * a component the processor does not support (unknown encoding, reserved encoding bits,
//     feature absent, high access to a non-64-bit field) -> VMfailValid(12);
//   * VMWRITE to a read-only (VM-exit information) field -> VMfailValid(13), unless
//     IA32_VMX_MISC[29] ("VMWRITE to any supported field") is 1;
//   * values are truncated to the field width on VMWRITE and zero-extended on VMREAD;
//   * high access (encoding | 1) reads/writes bits 63:32 of a 64-bit field.
// Whether a VMCS is current, and VMfailInvalid, belong to the processor (cpu/).
#include <array>
#include <bitset>
#include <cstdint>

#include "model/features.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/errors.hpp"
#include "vmcs/fields.hpp"

namespace vtx::vmcs {

enum class LaunchState : std::uint8_t { Clear, Launched };

struct VmreadResult {
    VmxResult status;
    std::uint64_t value = 0;  // valid when status.succeeded()
    constexpr bool succeeded() const { return status.succeeded(); }
};

class Vmcs {
  public:
    // A VMCS for a processor with these features: they decide which fields exist and
    // whether exit-information fields are writable (IA32_VMX_MISC[29]). The revision
    // identifier is the processor's (IA32_VMX_BASIC[30:0]). Launch state starts Clear.
    explicit Vmcs(const model::CpuFeatures& features = model::CpuFeatures{});

    // --- Software (VMX instruction) view ---
    // `encoding` is the register operand; any bit set outside the encoding format (bits
    // 63:15, bit 12) names no component and fails with error 12.
    VmreadResult vmread(std::uint64_t encoding) const;
    VmxResult vmwrite(std::uint64_t encoding, std::uint64_t value);
    VmreadResult vmread(Field f) const { return vmread(std::uint64_t{encoding(f)}); }
    VmxResult vmwrite(Field f, std::uint64_t value) { return vmwrite(encoding(f), value); }

    // --- Processor (microcode) view: no permission checks ---
    // Reads a field's full value; a field the processor lacks reads as 0.
    std::uint64_t hw_read(Field f) const {
        // No test of m_supported: such a field's value is never stored (vmwrite and hw_write
        // refuse it), so it stays 0.
        return m_values[field_position(f)];
    }
    // Writes a field, truncated to its width; a field the processor lacks is not stored.
    // Used for the fields hardware writes, e.g. the
    // read-only VM-exit information fields on VM exit, and guest state saved on exit.
    void hw_write(Field f, std::uint64_t value) {
        const std::size_t pos = field_position(f);
        if (m_supported[pos]) m_values[pos] = value & width_mask(field_width(f));
    }
    // Alias of hw_write() that documents intent at VM-exit call sites.
    void set_exit_info(Field f, std::uint64_t value) { hw_write(f, value); }

    // --- Launch state and header ---
    LaunchState launch_state() const { return m_launch_state; }
    void set_launch_state(LaunchState s) { m_launch_state = s; }
    // What VMCLEAR does to the VMCS data (SDM VMCLEAR: launch state := clear).
    void vmclear() { m_launch_state = LaunchState::Clear; }

    std::uint32_t revision_id() const { return m_revision_id; }
    void set_revision_id(std::uint32_t id) { m_revision_id = id; }

    bool supports(Field f) const;
    bool supports(std::uint32_t encoding) const;

  private:
    std::array<std::uint64_t, kKnownFieldCount> m_values{};
    std::bitset<kKnownFieldCount> m_supported;
    bool m_vmwrite_to_read_only = false;
    LaunchState m_launch_state = LaunchState::Clear;
    std::uint32_t m_revision_id = 0;
};

// Control values as the processor uses them (SDM16 24.6.2): secondary controls count
// only if "activate secondary controls" is 1, tertiary only if "activate tertiary
// controls" is 1; otherwise the processor acts as if they were all 0.
inline std::uint32_t effective_secondary_controls(const Vmcs& vmcs) {
    const auto primary = static_cast<std::uint32_t>(vmcs.hw_read(Field::CpuBasedVmExecControl));
    if ((primary & kPrimaryActivateSecondaryControls) == 0) return 0;
    return static_cast<std::uint32_t>(vmcs.hw_read(Field::SecondaryVmExecControl));
}
inline std::uint64_t effective_tertiary_controls(const Vmcs& vmcs) {
    const auto primary = static_cast<std::uint32_t>(vmcs.hw_read(Field::CpuBasedVmExecControl));
    if ((primary & kPrimaryActivateTertiaryControls) == 0) return 0;
    return vmcs.hw_read(Field::TertiaryVmExecControl);
}

}  // namespace vtx::vmcs
