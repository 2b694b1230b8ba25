// Posted-interrupt processing (SDM16 29.6; reference vtx-semantics.md 6.2-6.3): another
// processor posts with the PID API (KVM's protocol) and sends the notification vector to
// the target's physical APIC. Named after kvm-unit-tests vmx_posted_interrupts_test.
#include <catch2/catch.hpp>

#include <vector>

#include "cpu/harness.hpp"

using namespace vtx::cpu;
using namespace vtx::cpu::test;
namespace pid = vtx::pid;
namespace vmcs = vtx::vmcs;

namespace {

// KVM __vmx_deliver_posted_interrupt: PIR bit, ON, then the notification IPI.
void post(LogicalProcessor& p, TestVcpu& target, std::uint8_t vector, std::uint8_t nv = kPostedIntrVector) {
    pid::PostedInterruptDescriptor d(p.memory(), target.pid_address);
    d.kvm_test_and_set_pir(vector);
    d.kvm_test_and_set_on();
    p.host_send_ipi(d.ndst(), nv);
}

struct Seen {
    std::uint8_t vector = 0;
    double cycle = 0;
    PidSnapshot pid;
    bool virr = true, visr = false;
    std::uint8_t svi = 0;
    std::uint32_t activity = 0;
    std::uint64_t instructions = 0;  // guest instructions retired before the delivery
};

// A target vCPU on processor 0 with x2APIC APICv; handlers EOI through WRMSR 80BH.
TestVcpu& make_target(Harness& h, std::vector<Seen>& seen, std::initializer_list<std::uint8_t> vectors) {
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.passthrough_x2apic_msrs(false);
    v.rflags = kRflagsFixed | kRflagsIf;
    for (std::uint8_t vec : vectors)
        v.handler(vec, [&v, &seen](GuestCpu& g, std::uint8_t got) {
            Seen s;
            s.vector = got;
            s.cycle = g.cpu().now_cycles();
            s.pid = v.pid_state();
            s.virr = v.virr(got);
            s.visr = v.visr(got);
            s.svi = v.svi();
            s.activity = static_cast<std::uint32_t>(v.ctx.vmcs.hw_read(Field::GuestActivityState));
            s.instructions = v.ctx.instructions;
            seen.push_back(s);
            g.wrmsr(kMsrEoi, 0);
        });
    return v;
}

}  // namespace

TEST_CASE("vmx_posted_interrupts_test: the notification vector in non-root operation is processed without a VM exit",
          "[cpu][pi]") {
    Harness h("spr", 2);
    std::vector<Seen> seen;
    TestVcpu& v = make_target(h, seen, {0x45});
    bool ready = false;
    v.program([&](GuestCpu& g) {
        ready = true;
        g.spin_until([&] { return !seen.empty(); });
    });
    PidSnapshot posted;
    double sent_at = 0;
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return ready; });
        delay(p, 500);
        post(p, v, 0x45);
        posted = v.pid_state();
        sent_at = p.now_cycles();
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    CHECK(v.exits.empty());  // no external-interrupt exit for the notification vector
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::GuestFinished);
    // What the sender left in the PID.
    CHECK(posted.pir.test(0x45));
    CHECK(posted.info.on());
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].vector == 0x45);
    CHECK(seen[0].cycle > sent_at);
    // Posted-interrupt processing: ON cleared, PIR moved to VIRR and cleared, then delivery.
    CHECK_FALSE(seen[0].pid.info.on());
    CHECK(seen[0].pid.pir.empty());
    CHECK_FALSE(seen[0].virr);
    CHECK(seen[0].visr);
    CHECK(seen[0].svi == 0x45);
    CHECK(seen[0].pid.info.nv() == kPostedIntrVector);  // the rest of the PID is untouched
    // The notification was dismissed with an EOI to the physical APIC (step 4).
    const auto& apic = h.cpu(0).apic();
    CHECK(apic.accepted_count(kPostedIntrVector) == 1);
    CHECK_FALSE(apic.state().isr().test(kPostedIntrVector));
    CHECK_FALSE(apic.state().irr().test(kPostedIntrVector));
    CHECK(h.platform().stats().value("pi.processed") == 1);
}

TEST_CASE("vmx_posted_interrupts_test: several posted vectors are merged into VIRR and delivered by priority",
          "[cpu][pi]") {
    Harness h("spr", 2);
    std::vector<Seen> seen;
    TestVcpu& v = make_target(h, seen, {0x45, 0x46, 0x91});
    bool ready = false;
    v.program([&](GuestCpu& g) {
        ready = true;
        g.spin_until([&] { return seen.size() == 3; });
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return ready; });
        pid::PostedInterruptDescriptor d(p.memory(), v.pid_address);
        d.kvm_test_and_set_pir(0x45);
        d.kvm_test_and_set_pir(0x91);
        d.kvm_test_and_set_pir(0x46);
        d.kvm_test_and_set_on();
        p.host_send_ipi(d.ndst(), kPostedIntrVector);
    });
    REQUIRE(h.run() == "");
    CHECK(v.exits.empty());
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].vector == 0x91);
    CHECK(seen[1].vector == 0x46);
    CHECK(seen[2].vector == 0x45);
    CHECK(h.platform().stats().value("pi.processed") == 1);  // one notification, three vectors
    CHECK(v.pid_state().pir.empty());
}

TEST_CASE("vmx_posted_interrupts_test: a vector other than the notification vector causes an external-interrupt exit",
          "[cpu][pi]") {
    Harness h("spr", 2);
    std::vector<Seen> seen;
    TestVcpu& v = make_target(h, seen, {0x33});
    bool ready = false, exited = false;
    std::vector<std::uint8_t> host_handled;
    h.cpu(0).set_host_handler(0x33, [&](std::uint8_t vec) { host_handled.push_back(vec); });
    v.on_exit = [&](TestVcpu&, LogicalProcessor&, const ExitRecord&) {
        exited = true;
        return true;
    };
    v.program([&](GuestCpu& g) {
        ready = true;
        g.spin_until([&] { return exited; });
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return ready; });
        p.host_send_ipi(h.cpu(0).apic().apic_id(), 0x33);
    });
    REQUIRE(h.run() == "");
    REQUIRE(v.exits.size() == 1);
    const ExitRecord& e = v.exits[0];
    CHECK(e.reason == reason(ExitReason::ExternalInterrupt));
    CHECK(vmcs::interruption_valid(e.intr_info));  // acknowledged on exit
    CHECK(vmcs::interruption_vector(e.intr_info) == 0x33);
    CHECK(vmcs::interruption_type(e.intr_info) == vmcs::InterruptionType::ExternalInterrupt);
    CHECK(e.qualification == 0);
    CHECK(host_handled == std::vector<std::uint8_t>{0x33});
    CHECK(seen.empty());  // not delivered to the guest
    const PidSnapshot s = v.pid_state();
    CHECK(s.pir.empty());
    CHECK_FALSE(s.info.on());
    CHECK(h.platform().stats().value("pi.processed") == 0);
    CHECK_FALSE(h.cpu(0).apic().state().isr().test(0x33));  // the host handler's EOI
}

TEST_CASE("vmx_posted_interrupts_test: a posted interrupt wakes the guest from HLT (HLT exiting = 0)",
          "[cpu][pi][hlt]") {
    Harness h("spr", 2);
    std::vector<Seen> seen;
    TestVcpu& v = make_target(h, seen, {0x46});
    REQUIRE_FALSE(v.controls.primary & vmcs::kPrimaryHltExiting);
    v.rflags = kRflagsFixed;
    std::size_t seen_when_hlt_returned = 99;
    v.program([&](GuestCpu& g) {
        g.sti_hlt();
        seen_when_hlt_returned = seen.size();
    });
    double halted_at = 0;
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] {
            return h.cpu(0).in_non_root() &&
                   v.ctx.vmcs.hw_read(Field::GuestActivityState) == static_cast<std::uint64_t>(ActivityState::Hlt);
        });
        halted_at = p.now_cycles();
        delay(p, 2000);
        post(p, v, 0x46);
    });
    REQUIRE(h.run() == "");
    CHECK(v.exits.empty());
    CHECK(halted_at > 0);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].vector == 0x46);
    CHECK(seen[0].activity == static_cast<std::uint32_t>(ActivityState::Active));
    CHECK(seen[0].cycle > halted_at + 2000);
    CHECK(seen_when_hlt_returned == 1);
    CHECK_FALSE(seen[0].pid.info.on());
    CHECK(seen[0].pid.pir.empty());
}

TEST_CASE("vmx_posted_interrupts_test: a notification arriving in root operation is processed right after the next VM entry",
          "[cpu][pi]") {
    Harness h("spr", 2);
    std::vector<Seen> seen;
    TestVcpu& v = make_target(h, seen, {0x47});
    bool in_root = false, posted = false;
    struct InRoot {
        PidSnapshot pid;
        bool virr = true;
        bool host_pending = false;
        std::uint8_t rvi = 0xFF;
    } in_root_state;
    double resumed_at = 0;
    v.on_exit = [&](TestVcpu& t, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason != reason(ExitReason::Vmcall)) return true;
        in_root = true;
        wait_until(p, [&] { return posted && p.host_interrupt_pending(); });
        delay(p, 1000);  // ON stays set; nothing is merged while in root operation
        in_root_state.pid = t.pid_state();
        in_root_state.virr = t.virr(0x47);
        in_root_state.host_pending = p.host_interrupt_pending();
        in_root_state.rvi = t.rvi();
        t.skip(p);
        resumed_at = p.now_cycles();
        return true;  // VMRESUME without touching VIRR/RVI (hardware alone)
    };
    v.program([&](GuestCpu& g) {
        g.vmcall(0);
        g.spin_until([&] { return !seen.empty(); });
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return in_root; });
        post(p, v, 0x47);
        posted = true;
    });
    REQUIRE(h.run() == "");
    REQUIRE(v.exits.size() == 1);  // the VMCALL only: no external-interrupt exit
    CHECK(v.exits[0].reason == reason(ExitReason::Vmcall));
    CHECK(in_root_state.pid.pir.test(0x47));
    CHECK(in_root_state.pid.info.on());
    CHECK_FALSE(in_root_state.virr);
    CHECK(in_root_state.rvi == 0);
    CHECK(in_root_state.host_pending);  // the notification waits in the physical APIC's IRR
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].vector == 0x47);
    CHECK(seen[0].cycle > resumed_at);
    CHECK_FALSE(seen[0].pid.info.on());
    CHECK(seen[0].pid.pir.empty());
    CHECK(h.platform().stats().value("pi.processed") == 1);
    CHECK_FALSE(h.cpu(0).apic().state().isr().test(kPostedIntrVector));
}

TEST_CASE("vmx_posted_interrupts_test: posted-interrupt processing runs with guest IF = 0, delivery waits for IF",
          "[cpu][pi]") {
    Harness h("spr", 2);
    std::vector<Seen> seen;
    TestVcpu& v = make_target(h, seen, {0x48});
    v.rflags = kRflagsFixed;  // IF = 0
    bool ready = false;
    struct BeforeSti {
        PidSnapshot pid;
        bool virr = false;
        std::uint8_t rvi = 0;
        std::size_t delivered = 99;
    } before_sti;
    v.program([&](GuestCpu& g) {
        ready = true;
        g.spin_until([&] { return h.platform().stats().value("pi.processed") == 1; });
        g.compute(500);
        before_sti.pid = v.pid_state();
        before_sti.virr = v.virr(0x48);
        before_sti.rvi = v.rvi();
        before_sti.delivered = seen.size();
        g.sti();
        g.compute(1);
        g.compute(1);
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return ready; });
        post(p, v, 0x48);
    });
    REQUIRE(h.run() == "");
    CHECK(v.exits.empty());  // external-interrupt exiting: IF does not block the notification
    CHECK_FALSE(before_sti.pid.info.on());
    CHECK(before_sti.pid.pir.empty());
    CHECK(before_sti.virr);         // PIR -> VIRR
    CHECK(before_sti.rvi == 0x48);  // RVI := max(RVI, highest PIR vector)
    CHECK(before_sti.delivered == 0);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].vector == 0x48);
}

TEST_CASE("vmx_posted_interrupts_test: a non-notification vector in HLT exits with the HLT activity state saved",
          "[cpu][pi][hlt]") {
    Harness h("spr", 2);
    std::vector<Seen> seen;
    TestVcpu& v = make_target(h, seen, {0x34});
    std::uint64_t rip_at_hlt = 0;
    v.on_exit = [&](TestVcpu&, LogicalProcessor&, const ExitRecord&) { return false; };
    v.program([&](GuestCpu& g) {
        rip_at_hlt = v.guest_rip();
        g.hlt();
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] {
            return v.ctx.vmcs.hw_read(Field::GuestActivityState) == static_cast<std::uint64_t>(ActivityState::Hlt);
        });
        delay(p, 1000);
        p.host_send_ipi(h.cpu(0).apic().apic_id(), 0x34);
    });
    REQUIRE(h.run() == "");
    REQUIRE(v.exits.size() == 1);
    const ExitRecord& e = v.exits[0];
    CHECK(e.reason == reason(ExitReason::ExternalInterrupt));
    CHECK(vmcs::interruption_vector(e.intr_info) == 0x34);
    CHECK(e.activity == static_cast<std::uint32_t>(ActivityState::Hlt));  // the state before the exit
    CHECK(e.guest_rip == rip_at_hlt + kLenHlt);                          // the instruction after HLT
    CHECK(seen.empty());
}

namespace {
// A VM entry with blocking by STI while an interrupt is pending at the physical APIC: the
// interrupt is held for one instruction (SDM 26.2: blocking by STI and by MOV SS apply to
// external interrupts also when they cause VM exits), then taken.
struct StiShadowAtEntry {
    Harness h{"spr", 2};
    std::vector<Seen> seen;
    TestVcpu* v = nullptr;
    std::uint64_t pi_before_first_instruction = 99;
    explicit StiShadowAtEntry(std::uint8_t vector, bool posted) {
        v = &make_target(h, seen, {0x41});
        v->interruptibility = vmcs::kBlockingBySti;
        h.cpu(0).set_host_handler(vector, [](std::uint8_t) {});
        v->before_entry = [this, vector](TestVcpu& t, LogicalProcessor& p) {
            if (t.entries > 0) return;
            // The interrupt is pending before the first entry.
            wait_until(p, [&] { return p.apic().intr_pending(); });
            (void)vector;
        };
        v->on_exit = [](TestVcpu&, LogicalProcessor&, const ExitRecord&) { return true; };
        v->program([this](GuestCpu& g) {
            // The first boundary has been evaluated when the program starts.
            pi_before_first_instruction = h.platform().stats().value("pi.processed");
            g.compute(1);
            g.compute(1);
            g.compute(1);
        });
        h.software(1, [this, vector, posted](LogicalProcessor& p) {
            if (posted)
                post(p, *v, 0x41);
            else
                p.host_send_ipi(h.cpu(0).apic().apic_id(), vector);
        });
    }
};
}  // namespace

TEST_CASE("an external interrupt pending at a VM entry with blocking by STI exits after one instruction",
          "[cpu][sti]") {
    StiShadowAtEntry t(0x33, /*posted=*/false);
    REQUIRE(t.h.run() == "");
    REQUIRE(t.v->exits.size() >= 1);
    CHECK(t.v->exits[0].reason == reason(ExitReason::ExternalInterrupt));
    CHECK(t.v->exits[0].guest_instructions == 1);
}

TEST_CASE("posted-interrupt processing at a VM entry with blocking by STI waits one instruction",
          "[cpu][sti][pi]") {
    StiShadowAtEntry t(kPostedIntrVector, /*posted=*/true);
    REQUIRE(t.h.run() == "");
    REQUIRE(t.seen.size() == 1);
    CHECK(t.v->exits.empty());
    // Processed and delivered at the boundary after the first instruction, not before it.
    CHECK(t.pi_before_first_instruction == 0);
    CHECK(t.seen[0].instructions == 1);
    CHECK(t.h.platform().stats().value("pi.processed") == 1);
}
