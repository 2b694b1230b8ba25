// INIT and SIPI around VMX operation (SDM16 23.8, 25.2, 27.1, 27.2.1; reference
// vtx-semantics.md 8.3-8.5). Named after kvm-unit-tests vmx_init_signal_test and
// vmx_sipi_signal_test. The signals come from another processor's physical APIC.
#include <catch2/catch.hpp>

#include <vector>

#include "cpu/harness.hpp"

using namespace vtx::cpu;
using namespace vtx::cpu::test;
namespace vmcs = vtx::vmcs;

namespace {
void send_init(LogicalProcessor& p, std::uint32_t dest) { p.host_send_ipi(dest, 0, kIcrInit | kIcrLevelAssert); }
void send_sipi(LogicalProcessor& p, std::uint32_t dest, std::uint8_t vector) {
    p.host_send_ipi(dest, vector, kIcrStartup);
}
}  // namespace

TEST_CASE("vmx_init_signal_test: INIT in non-root causes exit 3, INIT in root is latched until the next VM entry",
          "[cpu][init]") {
    Harness h("spr", 2);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.passthrough_x2apic_msrs(false);
    v.rflags = kRflagsFixed | kRflagsIf;
    int phase = 0;
    struct InRoot {
        bool latched = false, still_vmx = false, x2apic = false, sw_enabled = false;
        std::uint32_t exits_while_latched = 99;
    } in_root;
    v.on_exit = [&](TestVcpu& t, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason != reason(ExitReason::InitSignal)) return false;
        if (t.exits.size() == 1) {
            // Root operation: a second INIT arrives and is blocked (latched, no effect).
            phase = 2;
            wait_until(p, [&] { return p.apic().init_pending(); });
            delay(p, 3000);
            in_root.latched = p.apic().init_pending();
            in_root.still_vmx = p.in_vmx_operation();
            in_root.x2apic = p.apic().x2apic_mode();          // no INIT reset of the APIC
            in_root.sw_enabled = p.apic().software_enabled();
            in_root.exits_while_latched = static_cast<std::uint32_t>(t.exits.size());
            return true;
        }
        phase = 4;  // second exit: let the guest finish
        return true;
    };
    v.program([&](GuestCpu& g) {
        phase = 1;
        g.spin_until([&] { return phase == 4; });
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return phase == 1; });
        delay(p, 1000);
        send_init(p, h.cpu(0).apic().apic_id());  // target in VMX non-root operation
        wait_until(p, [&] { return phase == 2; });
        send_init(p, h.cpu(0).apic().apic_id());  // target in VMX root operation
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    REQUIRE(v.exits.size() == 2);
    const ExitRecord& first = v.exits[0];
    const ExitRecord& second = v.exits[1];
    CHECK(first.reason == reason(ExitReason::InitSignal));
    CHECK(first.qualification == 0);
    CHECK(in_root.latched);
    CHECK(in_root.still_vmx);
    CHECK(in_root.x2apic);
    CHECK(in_root.sw_enabled);
    CHECK(in_root.exits_while_latched == 1);
    // The latched INIT causes the exit right after VMRESUME: no guest instruction in between.
    CHECK(second.reason == reason(ExitReason::InitSignal));
    CHECK(second.qualification == 0);
    CHECK(second.guest_rip == first.guest_rip);
    CHECK(second.guest_instructions == first.guest_instructions);
    REQUIRE(v.entry_cycles.size() == 3);
    CHECK(second.cycle > v.entry_cycles[1]);
    // The guest kept its state through both exits (INIT's normal actions are not performed).
    CHECK(second.activity == static_cast<std::uint32_t>(ActivityState::Active));
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::GuestFinished);
    CHECK_FALSE(h.cpu(0).apic().init_pending());
}

TEST_CASE("vmx_init_signal_test: INIT is blocked in wait-for-SIPI", "[cpu][init][sipi]") {
    Harness h("spr", 2);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.activity = ActivityState::WaitForSipi;
    bool init_seen_pending = false;
    v.on_exit = [&](TestVcpu&, LogicalProcessor&, const ExitRecord&) { return false; };
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return h.cpu(0).in_non_root(); });
        send_init(p, h.cpu(0).apic().apic_id());
        delay(p, 5000);
        init_seen_pending = h.cpu(0).apic().init_pending();
        send_sipi(p, h.cpu(0).apic().apic_id(), 0x21);
    });
    REQUIRE(h.run() == "");
    CHECK(init_seen_pending);  // held, neither taken nor an exit
    REQUIRE(v.exits.size() == 1);
    CHECK(v.exits[0].reason == reason(ExitReason::Sipi));
    CHECK(v.exits[0].qualification == 0x21);
}

TEST_CASE("vmx_sipi_signal_test: SIPI in wait-for-SIPI exits 4 with the vector, a later SIPI is discarded",
          "[cpu][sipi]") {
    Harness h("spr", 2);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.passthrough_x2apic_msrs(false);
    v.rflags = kRflagsFixed | kRflagsIf;
    v.activity = ActivityState::WaitForSipi;
    v.rip = 0xDEAD;  // never used: the AP starts where the SIPI says
    constexpr std::uint8_t kSipiVector = 0x12;
    int phase = 0;
    bool second_sent = false;
    std::uint64_t started_at_linear = 0;
    v.on_exit = [&](TestVcpu& t, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason != reason(ExitReason::Sipi)) return false;
        // What KVM does for its guest: CS = vector << 8, base vector << 12, RIP 0, active.
        p.vmwrite(Field::GuestCsSelector, e.qualification << 8);
        p.vmwrite(Field::GuestCsBase, e.qualification << 12);
        p.vmwrite(Field::GuestRip, 0);
        p.vmwrite(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
        (void)t;
        phase = 2;
        return true;
    };
    v.code[std::uint64_t{kSipiVector} << 12] = [&](GuestCpu& g) {
        started_at_linear = v.ctx.vmcs.hw_read(Field::GuestCsBase) + v.guest_rip();
        phase = 3;
        // Until the second SIPI has reached the APIC and an instruction boundary has passed.
        g.spin_until([&] {
            return second_sent && h.cpu(0).apic().delivery_log().size() == 2 && !h.cpu(0).apic().sipi_pending();
        });
        g.compute(500);
    };
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return h.cpu(0).in_non_root(); });
        delay(p, 2000);
        send_sipi(p, h.cpu(0).apic().apic_id(), kSipiVector);
        wait_until(p, [&] { return phase == 3; });
        send_sipi(p, h.cpu(0).apic().apic_id(), 0x34);  // active: discarded, no exit
        second_sent = true;
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    REQUIRE(v.exits.size() == 1);
    const ExitRecord& e = v.exits[0];
    CHECK(e.reason == reason(ExitReason::Sipi));
    CHECK(e.qualification == kSipiVector);  // bits 7:0 = vector, the rest 0
    // The activity state saved is the one before the exit.
    CHECK(e.activity == static_cast<std::uint32_t>(ActivityState::WaitForSipi));
    CHECK(e.guest_instructions == 0);
    CHECK(phase == 3);
    CHECK(started_at_linear == std::uint64_t{kSipiVector} << 12);
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::GuestFinished);
    REQUIRE(h.cpu(0).apic().delivery_log().size() == 2);
    CHECK(h.cpu(0).apic().delivery_log()[1].vector == 0x34);
    CHECK_FALSE(h.cpu(0).apic().sipi_pending());
    CHECK(h.cpu(0).exits(reason(ExitReason::Sipi)) == 1);
}

TEST_CASE("vmx_sipi_signal_test: a SIPI that arrives in VMX root operation is discarded", "[cpu][sipi]") {
    // SDM 26.2 (SDM16 25.2): "If a logical processor is not in the wait-for-SIPI activity
    // state when a SIPI arrives, no VM exit occurs and the SIPI is discarded." A SIPI that
    // reaches the processor while the VMM runs must not cause a SIPI exit with its stale
    // vector once the VMM enters the guest in wait-for-SIPI.
    Harness h("spr", 2);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.passthrough_x2apic_msrs(false);
    v.rflags = kRflagsFixed | kRflagsIf;
    constexpr std::uint8_t kStaleVector = 0x55, kLiveVector = 0x66;
    int phase = 0;
    bool pending_after_root_sipi = true;
    v.on_exit = [&](TestVcpu&, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason == reason(ExitReason::Vmcall)) {
            phase = 1;  // root operation: the other processor sends a SIPI now
            wait_until(p, [&] { return p.apic().delivery_log().size() == 1; });
            delay(p, 1000);
            pending_after_root_sipi = p.apic().sipi_pending();
            p.vmwrite(Field::GuestRip, v.guest_rip() + e.instruction_length);
            p.vmwrite(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::WaitForSipi));
            phase = 2;
            return true;
        }
        return false;  // the SIPI exit ends the test
    };
    v.program([&](GuestCpu& g) {
        g.vmcall(0);
        g.compute(1);  // its boundary finds the processor in wait-for-SIPI
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return phase == 1; });
        send_sipi(p, h.cpu(0).apic().apic_id(), kStaleVector);
        wait_until(p, [&] { return phase == 2 && h.cpu(0).in_non_root(); });
        delay(p, 2000);
        send_sipi(p, h.cpu(0).apic().apic_id(), kLiveVector);
    });
    REQUIRE(h.run() == "");
    CHECK_FALSE(pending_after_root_sipi);
    REQUIRE(v.exits.size() == 2);
    CHECK(v.exits[0].reason == reason(ExitReason::Vmcall));
    CHECK(v.exits[1].reason == reason(ExitReason::Sipi));
    CHECK(v.exits[1].qualification == kLiveVector);
}
