#include "sim/fuzz_targets.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "model/error.hpp"
#include "model/profile.hpp"
#include "sim/options.hpp"
#include "sim/scenario_file.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/entry_checks.hpp"
#include "vmcs/fields.hpp"

namespace vtx::sim {

void fuzz_profile(const std::uint8_t* data, std::size_t size) {
    try {
        (void)model::CpuProfile::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    } catch (const model::ConfigError&) {
    }
}

void fuzz_scenario(const std::uint8_t* data, std::size_t size) {
    try {
        const ScenarioFile f = parse_scenario_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
        (void)scenario_spec(f);
    } catch (const model::ConfigError&) {
    }
}

void fuzz_set(const std::uint8_t* data, std::size_t size) {
    static const model::CpuProfile profile = load_profile("spr");
    std::vector<std::string> sets;
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    for (std::string line; std::getline(in, line);) sets.push_back(line);
    RunSpec spec;
    spec.profile = profile;
    try {
        apply_sets(sets, spec);
    } catch (const model::ConfigError&) {
    }
}

namespace {

// A finding: the input is kept by libFuzzer (and the suite's corpus replay fails).
[[noreturn]] void finding(const char* what) {
    std::fprintf(stderr, "fuzz_vmentry: %s\n", what);
    std::abort();
}

constexpr std::array kAllFields = {
#define VTX_FUZZ_FIELD(name, text, enc, req) vmcs::Field::name,
    VTX_VMCS_FIELD_LIST(VTX_FUZZ_FIELD)
#undef VTX_FUZZ_FIELD
};

struct ProfileCaps {
    model::CpuProfile profile;
    vmcs::VmxCapabilities caps;
};

ProfileCaps make_profile_caps(const std::string& name) {
    model::CpuProfile profile = load_profile(name);
    const vmcs::VmxCapabilities caps = vmcs::build_capabilities(profile.features);
    return {std::move(profile), caps};
}

const ProfileCaps& profile_caps(bool icx) {
    static const ProfileCaps spr = make_profile_caps("spr");
    static const ProfileCaps ic = make_profile_caps("icx");
    return icx ? ic : spr;
}

// KVM's controls for an x2APIC guest with APICv and IPIv (vmm/kvm.cpp init_vmcs), within
// what the processor allows.
void kvm_like_base(vmcs::Vmcs& v, const vmcs::VmxCapabilities& caps) {
    using namespace vmcs;
    auto within = [](const ControlCapability& c, std::uint32_t want) { return (want | c.allowed0) & c.allowed1; };
    v.vmwrite(Field::PinBasedVmExecControl,
              within(caps.pin_based(), kPinExternalInterruptExiting | kPinNmiExiting | kPinVirtualNmis |
                                           kPinProcessPostedInterrupts));
    v.vmwrite(Field::CpuBasedVmExecControl,
              within(caps.primary(), kPrimaryHltExiting | kPrimaryUseTprShadow | kPrimaryUseMsrBitmaps |
                                         kPrimaryActivateSecondaryControls | kPrimaryActivateTertiaryControls));
    v.vmwrite(Field::SecondaryVmExecControl,
              within(caps.secondary(), kSecondaryVirtualizeX2apicMode | kSecondaryApicRegisterVirtualization |
                                           kSecondaryVirtualInterruptDelivery));
    v.vmwrite(Field::TertiaryVmExecControl, kTertiaryIpiVirt & caps.tertiary_allowed1());
    v.vmwrite(Field::VmExitControls, within(caps.exit(), kExitHostAddressSpaceSize | kExitAcknowledgeInterruptOnExit));
    v.vmwrite(Field::VmEntryControls, within(caps.entry(), kEntryIa32eModeGuest));
    v.vmwrite(Field::PostedIntrNv, 0xF2);
    v.vmwrite(Field::PostedIntrDescAddr, 0x10000);
    v.vmwrite(Field::VirtualApicPageAddr, 0x11000);
    v.vmwrite(Field::MsrBitmap, 0x12000);
    v.vmwrite(Field::PidPointerTable, 0x13000);
    v.vmwrite(Field::LastPidPointerIndex, 4095);
    v.vmwrite(Field::VmcsLinkPointer, ~std::uint64_t{0});
}

// The control rules an accepted VM entry must satisfy, re-stated from the SDM (26.2.1.1,
// 26.2.1.2, 26.2.1.3) rather than taken from entry_checks.cpp.
void check_accepted_entry(const vmcs::Vmcs& v, const vmcs::VmxCapabilities& caps) {
    using namespace vmcs;
    const auto pin = static_cast<std::uint32_t>(v.hw_read(Field::PinBasedVmExecControl));
    const auto primary = static_cast<std::uint32_t>(v.hw_read(Field::CpuBasedVmExecControl));
    const std::uint32_t secondary = effective_secondary_controls(v);
    const std::uint64_t tertiary = effective_tertiary_controls(v);
    const auto exit = static_cast<std::uint32_t>(v.hw_read(Field::VmExitControls));
    const auto entry = static_cast<std::uint32_t>(v.hw_read(Field::VmEntryControls));
    if (!caps.pin_based().permits(pin)) finding("accepted: pin-based controls outside the allowed settings");
    if (!caps.primary().permits(primary)) finding("accepted: primary controls outside the allowed settings");
    if ((primary & kPrimaryActivateSecondaryControls) && !caps.secondary().permits(secondary))
        finding("accepted: secondary controls outside the allowed settings");
    if (tertiary & ~caps.tertiary_allowed1()) finding("accepted: tertiary controls outside the allowed settings");
    if (!caps.exit().permits(exit)) finding("accepted: VM-exit controls outside the allowed settings");
    if (!caps.entry().permits(entry)) finding("accepted: VM-entry controls outside the allowed settings");
    const bool tpr_shadow = primary & kPrimaryUseTprShadow;
    if (!tpr_shadow && (secondary & (kSecondaryVirtualizeX2apicMode | kSecondaryApicRegisterVirtualization |
                                     kSecondaryVirtualInterruptDelivery)))
        finding("accepted: x2APIC mode, APIC-register virtualization or VID without use TPR shadow");
    if ((secondary & kSecondaryVirtualizeX2apicMode) && (secondary & kSecondaryVirtualizeApicAccesses))
        finding("accepted: virtualize x2APIC mode with virtualize APIC accesses");
    if ((secondary & kSecondaryVirtualInterruptDelivery) && !(pin & kPinExternalInterruptExiting))
        finding("accepted: virtual-interrupt delivery without external-interrupt exiting");
    if ((pin & kPinVirtualNmis) && !(pin & kPinNmiExiting)) finding("accepted: virtual NMIs without NMI exiting");
    if ((primary & kPrimaryNmiWindowExiting) && !(pin & kPinVirtualNmis))
        finding("accepted: NMI-window exiting without virtual NMIs");
    if (pin & kPinProcessPostedInterrupts) {
        if (!(secondary & kSecondaryVirtualInterruptDelivery)) finding("accepted: posted interrupts without VID");
        if (!(exit & kExitAcknowledgeInterruptOnExit)) finding("accepted: posted interrupts without ack on exit");
        if (v.hw_read(Field::PostedIntrNv) > 0xFF) finding("accepted: a notification vector above 255");
        if (v.hw_read(Field::PostedIntrDescAddr) & 0x3F) finding("accepted: a PID address not 64-byte aligned");
    }
    if (tpr_shadow && (v.hw_read(Field::VirtualApicPageAddr) & 0xFFF))
        finding("accepted: a virtual-APIC address not 4-KByte aligned");
    if (tertiary & kTertiaryIpiVirt) {
        if (ipiv_entry_policy::kRequiresTprShadow && !tpr_shadow) finding("accepted: IPIv without use TPR shadow");
        if (ipiv_entry_policy::kCheckPidPointerTableAddress && (v.hw_read(Field::PidPointerTable) & 0xFFF))
            finding("accepted: IPIv with a PID-pointer table not 4-KByte aligned");
    }
}

}  // namespace

void fuzz_vmentry(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return;
    const ProfileCaps& pc = profile_caps(data[0] & 1);
    vmcs::Vmcs v(pc.profile.features);
    if (data[0] & 2) kvm_like_base(v, pc.caps);
    // Records of 10 bytes: a 16-bit selector, then a 64-bit value (little-endian).
    // Selector bit 15: bits 14:0 are a raw encoding; otherwise a known field (by position),
    // and bit 14 says the value is XORed into the field's value (bit flips).
    for (std::size_t at = 1; at + 10 <= size; at += 10) {
        const std::uint16_t sel = static_cast<std::uint16_t>(data[at] | (data[at + 1] << 8));
        std::uint64_t value = 0;
        for (int b = 7; b >= 0; --b) value = (value << 8) | data[at + 2 + static_cast<std::size_t>(b)];
        std::uint64_t encoding;
        if (sel & 0x8000) {
            encoding = sel & 0x7FFF;
        } else {
            const vmcs::Field f = kAllFields[(sel & 0x3FFF) % kAllFields.size()];
            encoding = vmcs::encoding(f);
            if (sel & 0x4000) value ^= v.hw_read(f);
        }
        const vmcs::VmxResult r = v.vmwrite(encoding, value);
        if (r.status == vmcs::VmxStatus::FailInvalid) finding("VMWRITE gave VMfailInvalid with a current VMCS");
        if (r.status == vmcs::VmxStatus::FailValid &&
            r.error != vmcs::VmInstructionError::UnsupportedVmcsComponent &&
            r.error != vmcs::VmInstructionError::VmwriteReadOnlyComponent)
            finding("VMWRITE failed with an error other than 12 or 13");
    }
    const vmcs::VtprReader vtpr = [&](std::uint64_t pa) { return static_cast<std::uint8_t>(pa * 0x9E3779B1u >> 24); };
    const auto controls = vmcs::check_vmx_controls(v, pc.caps, vtpr);
    const auto again = vmcs::check_vmx_controls(v, pc.caps, vtpr);
    if (controls.has_value() != again.has_value() || (controls && controls->check != again->check))
        finding("the control checks gave two answers for one VMCS");
    if (controls) {
        if (controls->result.status != vmcs::VmxStatus::FailValid ||
            controls->result.error != vmcs::VmInstructionError::EntryInvalidControlField)
            finding("a failed control check is not VMfailValid(7)");
        if (controls->name.empty() || controls->sdm_section.empty() ||
            controls->name != vmcs::check_info(controls->check).name)
            finding("a failed control check without its name and SDM section");
        return;
    }
    check_accepted_entry(v, pc.caps);
    if (const auto guest = vmcs::check_guest_activity_state(v, pc.caps)) {
        if (guest->exit_reason != (33u | vmcs::kExitReasonEntryFailure))
            finding("a guest-state failure that is not exit reason 33 with bit 31");
        if (guest->name.empty() || guest->name != vmcs::check_info(guest->check).name)
            finding("a guest-state failure without its name");
    }
}

FuzzTarget fuzz_target(const std::string& name) {
    if (name == "profile") return fuzz_profile;
    if (name == "scenario") return fuzz_scenario;
    if (name == "set") return fuzz_set;
    if (name == "vmentry") return fuzz_vmentry;
    return nullptr;
}

}  // namespace vtx::sim
