// Virtual-interrupt delivery, TPR and EOI virtualization, and VM entry into HLT with a
// pending virtual interrupt (SDM16 29.1.2-29.2.2, 26.6.5; reference vtx-semantics.md 3, 7.4).
// Named after the kvm-unit-tests vmx tests they follow.
#include <catch2/catch.hpp>

#include <vector>

#include "cpu/harness.hpp"

using namespace vtx::cpu;
using namespace vtx::cpu::test;
namespace vmcs = vtx::vmcs;

namespace {

// What a guest interrupt handler saw when it ran.
struct Delivery {
    std::uint8_t vector = 0;
    int step = 0;  // how far the guest program had got
    std::uint8_t rvi = 0, svi = 0;
    std::uint32_t vppr = 0;
    bool visr = false, virr = false;
    std::uint32_t activity = 0;
    double cycle = 0;
};

Delivery observe(TestVcpu& v, GuestCpu& g, std::uint8_t vector, int step) {
    Delivery d;
    d.vector = vector;
    d.step = step;
    d.rvi = v.rvi();
    d.svi = v.svi();
    d.vppr = v.vapic32(kVapicPpr);
    d.visr = v.visr(vector);
    d.virr = v.virr(vector);
    d.activity = static_cast<std::uint32_t>(v.ctx.vmcs.hw_read(Field::GuestActivityState));
    d.cycle = g.cpu().now_cycles();
    return d;
}

}  // namespace

TEST_CASE("vmx_basic_vid_test: RVI set at entry is delivered through the guest IDT once IF = 1",
          "[cpu][vid]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_xapic();
    v.pend_virtual_interrupt(0x31);
    v.pend_virtual_interrupt(0x42);  // RVI = 0x42, the highest VIRR bit
    v.rflags = kRflagsFixed;         // IF = 0 at entry
    std::vector<Delivery> got;
    int step = 0;
    auto isr = [&](GuestCpu& g, std::uint8_t vec) {
        got.push_back(observe(v, g, vec, step));
        g.mmio_write32(kGuestApicBase + kVapicEoi, 0);  // virtualized EOI
    };
    v.handler(0x42, isr);
    v.handler(0x31, isr);
    v.program([&](GuestCpu& g) {
        step = 1;
        g.compute(200);  // IF = 0: the recognized interrupt waits
        step = 2;
        g.sti();
        step = 3;
        g.compute(10);  // the STI shadow covers this instruction's boundary
        step = 4;
        g.compute(10);  // delivered at this boundary
        step = 5;
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    CHECK(v.exits.empty());  // no VM exit at all
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::GuestFinished);

    REQUIRE(got.size() == 2);
    // 0x42 first: after the instruction following STI, not before.
    CHECK(got[0].vector == 0x42);
    CHECK(got[0].step == 4);
    CHECK(got[0].svi == 0x42);            // SVI := V
    CHECK(got[0].visr);                   // VISR[V] := 1
    CHECK_FALSE(got[0].virr);             // VIRR[V] := 0
    CHECK(got[0].vppr == 0x40);           // VPPR := V & F0H
    CHECK(got[0].rvi == 0x31);            // RVI moves to the next VIRR bit
    // 0x31 after the virtualized EOI of 0x42 and the IRET that re-enabled IF.
    CHECK(got[1].vector == 0x31);
    CHECK(got[1].step == 4);
    CHECK(got[1].svi == 0x31);
    CHECK(got[1].visr);
    CHECK(got[1].vppr == 0x30);
    CHECK(got[1].rvi == 0);
    // Everything retired: no request, nothing in service.
    CHECK(v.rvi() == 0);
    CHECK(v.svi() == 0);
    CHECK(v.vapic32(kVapicPpr) == 0);
    CHECK_FALSE(v.visr(0x42));
    CHECK_FALSE(v.visr(0x31));
    CHECK(v.ctx.delivered_interrupts == 2);
}

TEST_CASE("vmx_basic_vid_test: VTPR holds back delivery until TPR virtualization lowers VPPR",
          "[cpu][vid]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_xapic();
    v.pend_virtual_interrupt(0x42);
    v.page().write32(kVapicTpr, 0x50);  // VTPR class 5 > RVI class 4
    v.rflags = kRflagsFixed | kRflagsIf;
    std::vector<Delivery> got;
    int step = 0;
    std::uint32_t vppr_at_start = 0;
    v.handler(0x42, [&](GuestCpu& g, std::uint8_t vec) {
        got.push_back(observe(v, g, vec, step));
        g.mmio_write32(kGuestApicBase + kVapicEoi, 0);
    });
    v.program([&](GuestCpu& g) {
        vppr_at_start = v.vapic32(kVapicPpr);  // PPR virtualization at VM entry
        step = 1;
        g.compute(100);
        g.mmio_write32(kGuestApicBase + kVapicTpr, 0xFFFFFF20);  // TPR virtualization
        step = 2;
        g.compute(10);
        step = 3;
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    CHECK(v.exits.empty());
    CHECK(vppr_at_start == 0x50);
    CHECK(v.vapic32(kVapicTpr) == 0x20);  // APIC-write emulation clears VTPR bytes 3:1
    REQUIRE(got.size() == 1);
    CHECK(got[0].vector == 0x42);
    CHECK(got[0].step == 2);  // not while VTPR was 0x50
    CHECK(got[0].vppr == 0x40);
    CHECK(v.vapic32(kVapicPpr) == 0x20);  // after the EOI: VPPR = VTPR
}

TEST_CASE("vmx_eoi_virt_test: xAPIC EOI write with the EOI-exit bitmap bit set exits 45, trap-like",
          "[cpu][eoi]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_xapic();
    set_eoi_exit(v.eoi_exit_bitmap, 0x42);  // 0x31 has no bit: EOI virtualization without exit
    v.pend_virtual_interrupt(0x31);
    v.pend_virtual_interrupt(0x42);
    v.rflags = kRflagsFixed | kRflagsIf;
    std::vector<Delivery> got;
    std::vector<std::uint64_t> rip_before, rip_after;
    struct AtExit {
        bool visr42 = true;
        std::uint32_t veoi = 1, vppr = 1;
    } at_exit;
    v.on_exit = [&](TestVcpu& t, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason == reason(ExitReason::VirtualizedEoi)) {
            at_exit.visr42 = t.visr(0x42);
            at_exit.veoi = t.vapic32(kVapicEoi);
            at_exit.vppr = t.vapic32(kVapicPpr);
        }
        return TestVcpu::default_exit_handler(t, p, e);  // trap-like: RIP is not moved
    };
    auto isr = [&](GuestCpu& g, std::uint8_t vec) {
        got.push_back(observe(v, g, vec, 0));
        rip_before.push_back(v.guest_rip());
        g.mmio_write32(kGuestApicBase + kVapicEoi, 0xABCD);  // any value: VEOI is cleared
        rip_after.push_back(v.guest_rip());
    };
    v.handler(0x42, isr);
    v.handler(0x31, isr);
    v.program([&](GuestCpu& g) { g.compute(10); });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    REQUIRE(got.size() == 2);
    CHECK(got[0].vector == 0x42);
    CHECK(got[1].vector == 0x31);
    REQUIRE(v.exits.size() == 1);
    const ExitRecord& e = v.exits[0];
    CHECK(e.reason == reason(ExitReason::VirtualizedEoi));
    CHECK(e.qualification == 0x42);                       // the vector whose EOI was virtualized
    CHECK(e.guest_rip == rip_before[0] + kLenMovMmio);    // trap-like: after the MOV
    CHECK(rip_after[0] == rip_before[0] + kLenMovMmio);   // and the guest does not repeat it
    CHECK(e.svi() == 0);                                  // EOI virtualization ran before the exit
    CHECK(e.rvi() == 0x31);
    CHECK_FALSE(at_exit.visr42);
    CHECK(at_exit.veoi == 0);
    CHECK(at_exit.vppr == 0);
    // 0x31 is delivered only after the exit and VMRESUME (evaluation is skipped on the exit path).
    CHECK(got[1].cycle > e.cycle);
    CHECK(rip_after[1] == rip_before[1] + kLenMovMmio);
    CHECK_FALSE(v.visr(0x31));
    CHECK(v.svi() == 0);
}

TEST_CASE("vmx_eoi_virt_test: x2APIC WRMSR 80BH with the EOI-exit bitmap bit set exits 45, trap-like",
          "[cpu][eoi]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.passthrough_x2apic_msrs(false);
    set_eoi_exit(v.eoi_exit_bitmap, 0xA1);  // bitmap 2, bit 33
    v.pend_virtual_interrupt(0xA1);
    v.pend_virtual_interrupt(0x62);
    v.rflags = kRflagsFixed | kRflagsIf;
    std::vector<std::uint8_t> got;
    std::vector<std::uint64_t> rip_before;
    auto isr = [&](GuestCpu& g, std::uint8_t vec) {
        got.push_back(vec);
        rip_before.push_back(v.guest_rip());
        g.wrmsr(kMsrEoi, 0);
    };
    v.handler(0xA1, isr);
    v.handler(0x62, isr);
    v.program([&](GuestCpu& g) { g.compute(10); });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    CHECK(got == std::vector<std::uint8_t>{0xA1, 0x62});
    REQUIRE(v.exits.size() == 1);
    CHECK(v.exits[0].reason == reason(ExitReason::VirtualizedEoi));
    CHECK(v.exits[0].qualification == 0xA1);
    CHECK(v.exits[0].guest_rip == rip_before[0] + kLenWrmsr);
    CHECK(v.exits[0].svi() == 0);
    CHECK(v.exits[0].rvi() == 0x62);
    CHECK_FALSE(v.visr(0xA1));
    CHECK_FALSE(v.visr(0x62));
}

TEST_CASE("vmx_eoi_virt_test: nested in-service vectors retire highest first, SVI follows VISR",
          "[cpu][eoi]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.passthrough_x2apic_msrs(false);
    v.pend_virtual_interrupt(0x81);
    v.rflags = kRflagsFixed | kRflagsIf;
    std::vector<Delivery> got;
    std::uint8_t svi_after_inner_eoi = 0;
    v.handler(0x81, [&](GuestCpu& g, std::uint8_t vec) {
        got.push_back(observe(v, g, vec, 0));
        g.wrmsr(kMsrSelfIpi, 0xB3);  // self-IPI of a higher class while 0x81 is in service
        g.sti();                     // allow nesting
        g.compute(5);
        g.compute(5);
        g.cli();
        g.wrmsr(kMsrEoi, 0);
    });
    v.handler(0xB3, [&](GuestCpu& g, std::uint8_t vec) {
        got.push_back(observe(v, g, vec, 0));
        g.wrmsr(kMsrEoi, 0);
        svi_after_inner_eoi = v.svi();
    });
    v.program([&](GuestCpu& g) { g.compute(10); });
    REQUIRE(h.run() == "");
    CHECK(v.exits.empty());
    REQUIRE(got.size() == 2);
    CHECK(got[0].vector == 0x81);
    CHECK(got[1].vector == 0xB3);
    CHECK(got[1].svi == 0xB3);
    CHECK(got[1].vppr == 0xB0);
    CHECK(svi_after_inner_eoi == 0x81);  // SVI := highest remaining VISR bit
    CHECK(v.svi() == 0);
    CHECK_FALSE(v.visr(0x81));
}

TEST_CASE("vmx_hlt_with_rvi_test: VM entry in HLT with RVI set and IF = 1 wakes and delivers at once",
          "[cpu][hlt]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_xapic();
    v.controls.primary |= vmcs::kPrimaryHltExiting;  // irrelevant to an entry into HLT
    v.activity = ActivityState::Hlt;
    v.rflags = kRflagsFixed | kRflagsIf;
    v.pend_virtual_interrupt(0x55);
    std::vector<Delivery> got;
    std::size_t delivered_before_program = 99;
    v.handler(0x55, [&](GuestCpu& g, std::uint8_t vec) {
        got.push_back(observe(v, g, vec, 0));
        g.mmio_write32(kGuestApicBase + kVapicEoi, 0);
    });
    v.program([&](GuestCpu& g) {
        delivered_before_program = got.size();
        g.compute(10);
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    CHECK(v.exits.empty());
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::GuestFinished);
    REQUIRE(got.size() == 1);
    CHECK(got[0].vector == 0x55);
    CHECK(got[0].activity == static_cast<std::uint32_t>(ActivityState::Active));  // woken
    CHECK(delivered_before_program == 1);  // before the instruction after HLT
    REQUIRE(v.entry_cycles.size() == 1);
    // "At once": nothing but the entry and the delivery itself between the two.
    const auto& costs = h.platform().costs();
    const double bound = costs[vtx::model::Cost::VmxEntryChecks] + costs[vtx::model::Cost::VmxEntryLoadGuest] +
                         costs[vtx::model::Cost::VmxEntryVirtualApic] +
                         costs[vtx::model::Cost::VmxEvaluatePending] +
                         costs[vtx::model::Cost::VmxVirtualInterruptDelivery] +
                         costs[vtx::model::Cost::GuestEventDelivery] + 1;
    CHECK(got[0].cycle - v.entry_cycles[0] <= bound);
}

TEST_CASE("vmx_hlt_with_rvi_test: with IF = 0 the processor stays in HLT", "[cpu][hlt]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_xapic();
    v.activity = ActivityState::Hlt;
    v.rflags = kRflagsFixed;  // IF = 0
    v.pend_virtual_interrupt(0x55);
    bool ran = false;
    v.handler(0x55, [&](GuestCpu&, std::uint8_t) { ran = true; });
    v.program([&](GuestCpu&) { ran = true; });
    // Nothing wakes the guest: the VMM never gets control back.
    CHECK(h.run(200000) != "");
    CHECK(v.vmx_errors.empty());
    CHECK(v.exits.empty());
    CHECK_FALSE(ran);
    CHECK(v.ctx.vmcs.hw_read(Field::GuestActivityState) == static_cast<std::uint64_t>(ActivityState::Hlt));
    CHECK(v.rvi() == 0x55);
    CHECK(v.virr(0x55));
}

TEST_CASE("vmx_tpr_threshold_test: TPR threshold above VTPR exits 43 right after VM entry and after a TPR write",
          "[cpu][tpr]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls{};
    v.controls.primary |= vmcs::kPrimaryUseTprShadow | vmcs::kPrimaryActivateSecondaryControls;
    v.controls.secondary = vmcs::kSecondaryVirtualizeApicAccesses;  // VID = 0
    v.tpr_threshold = 5;
    v.page().write32(kVapicTpr, 0x30);  // VTPR[7:4] = 3 < 5
    std::uint64_t rip_before_write = 0;
    bool program_ran = false;
    v.on_exit = [&](TestVcpu&, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason != reason(ExitReason::TprBelowThreshold)) return false;
        // As KVM's update_cr8_intercept: lower the threshold, or the exit repeats at once.
        p.vmwrite(Field::TprThreshold, p.vmread(Field::TprThreshold).value == 5 ? 2 : 0);
        return true;
    };
    v.program([&](GuestCpu& g) {
        program_ran = true;
        g.compute(10);
        rip_before_write = v.guest_rip();
        g.mmio_write32(kGuestApicBase + kVapicTpr, 0x10);  // VTPR[7:4] = 1 < 2
        g.compute(10);
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    REQUIRE(v.exits.size() == 2);
    // Immediately after VM entry: no guest instruction has run.
    CHECK(v.exits[0].reason == reason(ExitReason::TprBelowThreshold));
    CHECK(v.exits[0].qualification == 0);
    CHECK(v.exits[0].guest_instructions == 0);
    CHECK(v.exits[0].guest_rip == kGuestEntry);
    // TPR virtualization of the write: trap-like, after the MOV.
    CHECK(v.exits[1].reason == reason(ExitReason::TprBelowThreshold));
    CHECK(v.exits[1].guest_rip == rip_before_write + kLenMovMmio);
    CHECK(v.vapic32(kVapicTpr) == 0x10);
    CHECK(program_ran);
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::GuestFinished);
}
