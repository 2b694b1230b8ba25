#include "sim/fuzz_targets.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "apic/apic_state.hpp"
#include "apic/destination.hpp"
#include "apic/icr.hpp"
#include "apic/interrupt_message.hpp"
#include "apic/registers.hpp"
#include "cpu/virtual_apic.hpp"
#include "model/error.hpp"
#include "model/memory.hpp"
#include "pid/descriptor.hpp"
#include "pid/layout.hpp"
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

namespace {

[[noreturn]] void apic_finding(const char* what) {
    std::fprintf(stderr, "fuzz_apic: %s\n", what);
    std::abort();
}

// The input as a stream of bytes (zeros past its end).
class Bytes {
public:
    Bytes(const std::uint8_t* data, std::size_t size) : m_data(data), m_size(size) {}
    bool done() const { return m_pos >= m_size; }
    std::uint8_t u8() { return m_pos < m_size ? m_data[m_pos++] : 0; }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= std::uint32_t{u8()} << (8 * i);
        return v;
    }
    std::uint64_t u64() { return std::uint64_t{u32()} | (std::uint64_t{u32()} << 32); }

private:
    const std::uint8_t* m_data;
    std::size_t m_size;
    std::size_t m_pos = 0;
};

// The xAPIC register offsets (and some reserved ones) an op picks from.
constexpr std::array<std::uint32_t, 24> kApicOffsets = {
    apic::kApicOffsetId,        apic::kApicOffsetVersion,   apic::kApicOffsetTpr,       apic::kApicOffsetApr,
    apic::kApicOffsetPpr,       apic::kApicOffsetEoi,       apic::kApicOffsetRrd,       apic::kApicOffsetLdr,
    apic::kApicOffsetDfr,       apic::kApicOffsetSvr,       apic::kApicOffsetIsr0 + 0x10, apic::kApicOffsetTmr0,
    apic::kApicOffsetIrr0 + 0x70, apic::kApicOffsetEsr,     apic::kApicOffsetLvtCmci,   apic::kApicOffsetIcrLo,
    apic::kApicOffsetIcrHi,     apic::kApicOffsetLvtTimer,  apic::kApicOffsetLvtLint0,  apic::kApicOffsetLvtError,
    apic::kApicOffsetTimerInitialCount, apic::kApicOffsetTimerDivide, apic::kApicOffsetSelfIpi, 0x040 /* reserved */};

void check_invariants(const apic::ApicState& a, std::uint32_t initial_id) {
    if (a.x2apic_id() != initial_id) apic_finding("the x2APIC ID changed");
    if (a.x2apic_mode() && a.ldr() != apic::x2apic_ldr_of(a.x2apic_id()))
        apic_finding("x2APIC LDR not derived from the x2APIC ID");
    const std::uint8_t isrv = a.highest_isr().value_or(0);
    const std::uint8_t tpr = a.tpr();
    const std::uint8_t ppr = (tpr >> 4) >= (isrv >> 4) ? tpr : static_cast<std::uint8_t>(isrv & 0xF0);
    if (a.ppr() != ppr) apic_finding("PPR is not max(TPR, ISRV & F0H) (SDM 11.8.3.1)");
}

}  // namespace

void fuzz_apic(const std::uint8_t* data, std::size_t size) {
    Bytes in(data, size);
    const std::uint8_t config = in.u8();
    const unsigned n = 2 + (config & 7) % 7;  // 2..8 APICs
    const bool x2apic = config & 0x08;
    const bool ipiv = config & 0x10;
    try {
        std::vector<apic::ApicState> apics;
        for (unsigned i = 0; i < n; ++i) apics.emplace_back(i, i == 0);
        if (x2apic)
            for (auto& a : apics)
                if (!a.write_apic_base(a.apic_base() | apic::kApicBaseX2ApicEnable).ok())
                    apic_finding("xAPIC -> x2APIC refused");
        for (auto& a : apics) a.write_mmio(apic::kApicOffsetSvr, 0x1FF), a.write_msr(apic::kX2ApicMsrSvr, 0x1FF);
        // IPIv's posted-interrupt descriptors, one per APIC (NV 0xF2, NDST = the APIC's ID).
        model::PhysicalMemory mem(0x10000, nullptr);
        model::DirectMemoryPort port(mem, 0);
        std::vector<pid::PostedInterruptDescriptor> pids;
        for (unsigned i = 0; i < n; ++i) {
            pids.emplace_back(port, 0x1000 + i * pid::kPidBytes);
            pids.back().initialize(0xF2, i);
        }
        // Routes a message the APIC `src` sends and has the targets accept it.
        auto route = [&](const apic::InterruptMessage& msg, std::size_t src) {
            std::vector<apic::DestinationView> views;
            for (const auto& a : apics) views.push_back(a.destination_view());
            for (const std::size_t t : apic::resolve_destinations(msg, views, src)) {
                if (t >= n) apic_finding("a destination beyond the APICs");
                (void)apics[t].accept(msg);
            }
        };
        for (int ops = 0; ops < 256 && !in.done(); ++ops) {
            const std::uint8_t op = in.u8();
            const std::size_t who = in.u8() % n;
            apic::ApicState& a = apics[who];
            const std::uint32_t off = kApicOffsets[in.u8() % kApicOffsets.size()];
            const std::uint64_t value = in.u64();
            apic::WriteResult w;
            switch (op % 8) {
                case 0: (void)a.read_mmio(off); break;
                case 1: w = a.write_mmio(off, static_cast<std::uint32_t>(value)); break;
                case 2: (void)a.read_msr(apic::x2apic_msr_of(off)); break;
                case 3: {
                    // (A reserved bit set: the WRMSR's #GP comes first, below.)
                    const bool x2apic_icr_write = a.x2apic_mode() && off == apic::kApicOffsetIcrLo &&
                                                  (value & apic::kX2ApicIcrReservedBits) == 0;
                    // IPIv (SDM 30.1.6): a qualifying ICR whose destination is within the
                    // PID-pointer table (last index n - 1 here) is posted; one beyond it (the
                    // broadcast ID FFFFFFFFH among them) is an APIC-write exit, and the VMM
                    // sends it as the APIC would (the write below).
                    if (x2apic_icr_write && ipiv && cpu::icr_qualifies_for_ipiv(static_cast<std::uint32_t>(value)) &&
                        (value & 0xFF) >= 16 && (value >> 32) < n) {  // steps 1-2: else an APIC-write exit
                        // What it virtualizes must be a fixed, physical, edge IPI without
                        // shorthand, which reaches at most one APIC; it posts instead of sending.
                        const apic::Icr f = apic::decode_icr(value, true);
                        if (f.delivery_mode != apic::DeliveryMode::Fixed ||
                            f.destination_mode != apic::DestinationMode::Physical ||
                            f.shorthand != apic::Shorthand::None || f.trigger_mode != apic::TriggerMode::Edge)
                            apic_finding("IPIv qualified an ICR that is not fixed, physical, edge, no shorthand");
                        std::vector<apic::DestinationView> views;
                        for (const auto& x : apics) views.push_back(x.destination_view());
                        const auto targets = apic::resolve_destinations(
                            apic::message_from_icr(f, true, a.apic_id()), views, who);
                        // (x2APIC IDs are unique; an APIC switched back to xAPIC mode may have
                        // taken any xAPIC ID, a mixed system being undefined.)
                        const bool all_x2apic = std::all_of(apics.begin(), apics.end(),
                                                            [](const apic::ApicState& x) { return x.x2apic_mode(); });
                        if (all_x2apic && targets.size() > 1)
                            apic_finding("an IPIv-qualifying ICR reached more than one APIC");
                        {
                            auto& d = pids[f.destination];
                            const bool on_before = d.on(), sn = d.sn();
                            d.ipiv_set_pir(f.vector);
                            const pid::IpivNotification note = d.ipiv_update_notification();
                            if (!d.pir_bit(f.vector)) apic_finding("IPIv step 5 left the PIR bit clear");
                            // Step 6: ON := 1 and notify iff ON = 0 and SN = 0; else no change.
                            if (note.send_notify != (!on_before && !sn) || d.on() != (on_before || !sn))
                                apic_finding("IPIv step 6: ON / SendNotify not as the SDM says");
                        }
                        break;
                    }
                    w = a.write_msr(apic::x2apic_msr_of(off), value);
                    break;
                }
                case 4: w = a.write_apic_base(value); break;
                case 5: {
                    const bool deliverable = a.has_deliverable_interrupt();
                    const auto irr = a.highest_irr();
                    const std::uint8_t v = a.acknowledge();
                    if (deliverable && (!irr || v != *irr || !a.isr().test(v)))
                        apic_finding("INTA did not move the highest IRR vector to the ISR");
                    if (!deliverable && v != a.spurious_vector()) apic_finding("INTA without an interrupt is not spurious");
                    break;
                }
                case 6: {
                    const auto isr = a.highest_isr();
                    const auto e = a.eoi();
                    if (isr.has_value() != e.has_value() || (e && (e->vector != *isr || a.isr().test(*isr))))
                        apic_finding("EOI did not clear the highest ISR bit");
                    break;
                }
                case 7: {  // PID reset by the VMM (SN set or cleared: a preempted or running vCPU)
                    auto& d = pids[who];
                    if (value & 1) d.set_sn(); else d.clear_sn();
                    if (value & 2) d.initialize(0xF2, static_cast<std::uint32_t>(who));
                    break;
                }
            }
            if (w.send_icr) {
                const apic::Icr f = apic::decode_icr(*w.send_icr, a.x2apic_mode());
                if (apic::check_icr(f) == apic::IcrCheck::Valid)
                    route(apic::message_from_icr(f, a.x2apic_mode(), a.apic_id()), who);
            }
            if (w.self_ipi) route(apic::self_ipi_message(*w.self_ipi, a.apic_id()), who);
            for (unsigned i = 0; i < n; ++i) check_invariants(apics[i], i);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_apic: %s\n", e.what());
        apic_finding("an APIC access threw");
    }
}

FuzzTarget fuzz_target(const std::string& name) {
    if (name == "apic") return fuzz_apic;
    if (name == "profile") return fuzz_profile;
    if (name == "scenario") return fuzz_scenario;
    if (name == "set") return fuzz_set;
    if (name == "vmentry") return fuzz_vmentry;
    return nullptr;
}

}  // namespace vtx::sim
