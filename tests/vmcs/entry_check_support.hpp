#pragma once
// Helpers for the VM-entry check tests (included after catch.hpp).
#include <catch2/catch.hpp>

#include "vmcs/entry_checks.hpp"
#include "vmcs/vmcs_fixtures.hpp"

namespace vtx::vmcs::testing {

// A processor, its capability MSRs, and a VMCS that passes every check.
struct Setup {
    model::CpuFeatures features;
    VmxCapabilities caps;
    Vmcs vmcs;
    FakeVtpr vtpr;

    explicit Setup(const model::CpuFeatures& f)
        : features(f), caps(build_capabilities(f)), vmcs(make_apicv_vmcs(f, caps)) {}
    Setup(const Setup&) = delete;  // vtpr.reader() captures `this`
    Setup& operator=(const Setup&) = delete;

    void write(Field f, std::uint64_t value) {
        INFO("VMWRITE " << field_name(f));
        REQUIRE(vmcs.vmwrite(f, value).succeeded());
    }
    void set_bits(Field f, std::uint64_t bits) { write(f, vmcs.hw_read(f) | bits); }
    void clear_bits(Field f, std::uint64_t bits) { write(f, vmcs.hw_read(f) & ~bits); }

    // Turn off posted interrupts and virtual-interrupt delivery (posted interrupts need VID),
    // so that the TPR-threshold rules for VID = 0 apply.
    void without_vid() {
        clear_bits(Field::PinBasedVmExecControl, kPinProcessPostedInterrupts);
        clear_bits(Field::SecondaryVmExecControl, kSecondaryVirtualInterruptDelivery);
    }
    // Turn off everything that requires "use TPR shadow" (posted interrupts, VID, APIC-register
    // virtualization, x2APIC mode, IPIv) and then TPR shadow itself.
    void without_tpr_shadow() {
        without_vid();
        clear_bits(Field::SecondaryVmExecControl,
                   kSecondaryApicRegisterVirtualization | kSecondaryVirtualizeX2apicMode);
        if (vmcs.supports(Field::TertiaryVmExecControl))
            clear_bits(Field::TertiaryVmExecControl, kTertiaryIpiVirt);
        clear_bits(Field::CpuBasedVmExecControl, kPrimaryUseTprShadow);
    }

    ControlCheckResult check() { return check_vmx_controls(vmcs, caps, vtpr.reader()); }
};

inline void expect_fail(const ControlCheckResult& result, EntryCheck expected) {
    REQUIRE(result);
    INFO("failed check: " << result->name);
    CHECK(result->check == expected);
    CHECK(result->result == VmxResult::fail_valid(VmInstructionError::EntryInvalidControlField));
    CHECK(error_number(result->result.error) == 7);
    CHECK(result->name == check_info(expected).name);
    CHECK(result->sdm_section == check_info(expected).sdm_section);
    CHECK_FALSE(result->sdm_section.empty());
}

inline void expect_pass(const ControlCheckResult& result) {
    INFO("unexpected failure: " << (result ? result->name : std::string_view{}));
    CHECK_FALSE(result);
}

// An address with a bit set just beyond the physical-address width.
inline std::uint64_t beyond_width(const VmxCapabilities& caps, std::uint64_t aligned_base) {
    return aligned_base | (std::uint64_t{1} << caps.physical_address_width());
}

}  // namespace vtx::vmcs::testing
