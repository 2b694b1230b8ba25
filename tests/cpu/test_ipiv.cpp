// IPI virtualization (new SDM 30.1.6, 30.4.3.2, 30.5; reference vtx-semantics.md 5, 7.1)
// on the spr profile: the sender's ICR write posts into the target's PID through the
// PID-pointer table and notifies NDST's processor, whose posted-interrupt processing
// delivers the virtual interrupt; ICR values IPIv does not handle end in an APIC-write
// exit with qualification 300H.
#include <catch2/catch.hpp>

#include <sstream>
#include <vector>

#include "cpu/harness.hpp"

using namespace vtx::cpu;
using namespace vtx::cpu::test;
namespace pid = vtx::pid;
namespace vmcs = vtx::vmcs;

namespace {

constexpr std::uint64_t x2apic_icr(std::uint32_t dest, std::uint32_t lo) {
    return (std::uint64_t{dest} << 32) | lo;
}

// Two vCPUs of one VM: vCPU 0 (APIC ID 0) on processor 0 sends, vCPU 1 (APIC ID 1) on
// processor 1 receives. PID-pointer table entries 0 and 1 point at their PIDs.
struct IpivPair {
    Harness h{"spr", 2};
    TestVcpu& sender = h.add_vcpu(0);
    TestVcpu& target = h.add_vcpu(1);
    std::uint64_t table = h.make_pid_table(8);
    std::uint64_t flag_gpa = 0x100;  // guest memory: "target is ready"
    std::vector<std::uint8_t> received;
    std::vector<double> received_at;

    explicit IpivPair(bool x2apic) {
        h.set_pid_table_entry(table, 0, pid::PidTableEntry::for_descriptor(sender.pid_address).raw);
        h.set_pid_table_entry(table, 1, pid::PidTableEntry::for_descriptor(target.pid_address).raw);
        for (TestVcpu* v : {&sender, &target}) {
            v->controls = Controls::apicv(x2apic).with_ipiv();
            if (x2apic) v->passthrough_x2apic_msrs(true);
            v->pid_table = table;
            v->last_pid_index = 1;
        }
        target.rflags = kRflagsFixed | kRflagsIf;
    }
    void target_handles(std::uint8_t vector, bool x2apic) {
        target.handler(vector, [this, x2apic](GuestCpu& g, std::uint8_t got) {
            received.push_back(got);
            received_at.push_back(g.cpu().now_cycles());
            if (x2apic)
                g.wrmsr(kMsrEoi, 0);
            else
                g.mmio_write32(kGuestApicBase + kVapicEoi, 0);
        });
    }
    // The target: says it is ready, then idles until `until()`.
    void target_waits(std::function<bool()> until) {
        target.program([this, until](GuestCpu& g) {
            g.store64(flag_gpa, 1);
            g.spin_until(until);
        });
    }
    void sender_waits_for_target(GuestCpu& g) {
        g.spin_until([&] { return g.load64(flag_gpa) == 1; }, flag_gpa);
    }
};

}  // namespace

TEST_CASE("ipiv: an eligible x2APIC WRMSR 830H posts to the target PID and notifies, with no VM exit",
          "[cpu][ipiv]") {
    IpivPair t(true);
    t.target_handles(0x45, true);
    t.target_waits([&] { return !t.received.empty(); });
    PidSnapshot after_send;
    std::uint64_t rip_before = 0, rip_after = 0, notifications_after_send = 0;
    double sent_at = 0;
    t.sender.program([&](GuestCpu& g) {
        t.sender_waits_for_target(g);
        rip_before = t.sender.guest_rip();
        g.wrmsr(kMsrIcr, x2apic_icr(1, 0x45));
        rip_after = t.sender.guest_rip();
        sent_at = g.cpu().now_cycles();
        after_send = t.target.pid_state();
        notifications_after_send = t.h.cpu(0).notifications_sent();
    });
    REQUIRE(t.h.run() == "");
    CHECK(t.sender.vmx_errors.empty());
    CHECK(t.target.vmx_errors.empty());
    CHECK(t.sender.exits.empty());  // no exit on the sender
    CHECK(t.target.exits.empty());  // and none on the target
    CHECK(rip_after == rip_before + kLenWrmsr);
    // Steps 5-7: PIR bit, ON, one notification.
    CHECK(after_send.pir.test(0x45));
    CHECK(after_send.pir.count() == 1);
    CHECK(after_send.info.on());
    CHECK(notifications_after_send == 1);
    // The notification went to NDST's processor and was processed there.
    CHECK(t.h.cpu(1).apic().accepted_count(kPostedIntrVector) == 1);
    REQUIRE(t.received == std::vector<std::uint8_t>{0x45});
    CHECK(t.received_at[0] > sent_at);
    const PidSnapshot end = t.target.pid_state();
    CHECK(end.pir.empty());
    CHECK_FALSE(end.info.on());
    // The sender's own virtual APIC got the 64-bit ICR value and nothing else.
    CHECK(t.sender.vapic64(kVapicIcrLo) == x2apic_icr(1, 0x45));
    CHECK(t.sender.rvi() == 0);
    CHECK_FALSE(t.sender.virr(0x45));
    CHECK(t.sender.pid_state().pir.empty());
    CHECK(t.h.cpu(0).notifications_sent() == 1);
    CHECK(t.h.cpu(1).notifications_sent() == 0);
}

TEST_CASE("ipiv: an eligible xAPIC ICR write (ICR2 then ICR) posts and notifies, with no VM exit",
          "[cpu][ipiv]") {
    IpivPair t(false);
    t.target_handles(0x46, false);
    t.target_waits([&] { return !t.received.empty(); });
    PidSnapshot after_send;
    std::uint64_t notifications_after_send = 0;
    t.sender.program([&](GuestCpu& g) {
        t.sender_waits_for_target(g);
        g.mmio_write32(kGuestApicBase + kVapicIcrHi, 1u << 24);
        g.mmio_write32(kGuestApicBase + kVapicIcrLo, 0x46);
        after_send = t.target.pid_state();
        notifications_after_send = t.h.cpu(0).notifications_sent();
    });
    REQUIRE(t.h.run() == "");
    CHECK(t.sender.vmx_errors.empty());
    CHECK(t.sender.exits.empty());
    CHECK(t.target.exits.empty());
    CHECK(after_send.pir.test(0x46));
    CHECK(after_send.info.on());
    CHECK(notifications_after_send == 1);
    CHECK(t.received == std::vector<std::uint8_t>{0x46});
    CHECK(t.sender.vapic32(kVapicIcrHi) == 1u << 24);
    CHECK(t.sender.vapic32(kVapicIcrLo) == 0x46);
    CHECK(t.target.pid_state().pir.empty());
    CHECK_FALSE(t.target.pid_state().info.on());
}

namespace {
// ICR values IPIv declines (reference 5.3 steps 1-4 and the qualifying test of 5.6).
struct Decline {
    const char* what;
    std::uint32_t dest;
    std::uint32_t lo;
};
// Table: 0 sender, 1 target, 2 entry without the valid bit, 3 entry with reserved bit 1,
// 4 entry with an address bit at the physical-address width; last PID-pointer index 4.
const Decline kX2apicDeclines[] = {
    {"APIC ID beyond the last PID-pointer index", 5, 0x45},
    {"APIC ID far beyond the last PID-pointer index", 0x10000, 0x45},
    {"entry not valid", 2, 0x45},
    {"entry with reserved bits 5:1 set", 3, 0x45},
    {"entry beyond the physical-address width", 4, 0x45},
    {"vector < 16", 1, 0x0F},
    {"vector 0", 1, 0x00},
    {"logical destination mode", 1, kIcrLogical | 0x45},
    {"shorthand self", 0, kIcrShorthandSelf | 0x45},
    {"shorthand all including self", 0, kIcrShorthandAll | 0x45},
    {"shorthand all excluding self", 0, kIcrShorthandOthers | 0x45},
    {"broadcast destination FFFFFFFFH", 0xFFFFFFFF, 0x45},
    {"lowest-priority delivery", 1, 0x100 | 0x45},
    {"SMI delivery", 1, 0x200},
    {"NMI delivery", 1, kIcrNmi},
    {"INIT delivery", 1, kIcrInit | kIcrLevelAssert},
    {"SIPI delivery", 1, kIcrStartup | 0x12},
    {"level-triggered", 1, kIcrTriggerLevel | kIcrLevelAssert | 0x45},
    {"bit 12 set", 1, 0x1000 | 0x45},
};
}  // namespace

TEST_CASE("ipiv: the notification wakes a target halted in non-root operation (HLT exiting = 0)",
          "[cpu][ipiv][hlt]") {
    IpivPair t(true);
    t.target_handles(0x49, true);
    t.target.rflags = kRflagsFixed;
    std::size_t received_when_hlt_returned = 99;
    t.target.program([&](GuestCpu& g) {
        g.store64(t.flag_gpa, 1);
        g.sti_hlt();
        received_when_hlt_returned = t.received.size();
    });
    t.sender.program([&](GuestCpu& g) {
        t.sender_waits_for_target(g);
        g.spin_until([&] {
            return t.target.ctx.vmcs.hw_read(Field::GuestActivityState) ==
                   static_cast<std::uint64_t>(ActivityState::Hlt);
        });
        g.wrmsr(kMsrIcr, x2apic_icr(1, 0x49));
    });
    REQUIRE(t.h.run() == "");
    CHECK(t.sender.exits.empty());
    CHECK(t.target.exits.empty());
    CHECK(t.received == std::vector<std::uint8_t>{0x49});
    CHECK(received_when_hlt_returned == 1);
    CHECK(t.h.cpu(0).notifications_sent() == 1);
    CHECK(t.target.pid_state().pir.empty());
}

TEST_CASE("ipiv: x2APIC ICR values IPIv does not virtualize cause APIC-write exits with qualification 300H",
          "[cpu][ipiv]") {
    Harness h("spr", 2);
    TestVcpu& s = h.add_vcpu(0);
    const std::uint64_t target_pid = h.make_pid(kPostedIntrVector, 1);
    const std::uint64_t table = h.make_pid_table(8);
    h.set_pid_table_entry(table, 0, pid::PidTableEntry::for_descriptor(s.pid_address).raw);
    h.set_pid_table_entry(table, 1, pid::PidTableEntry::for_descriptor(target_pid).raw);
    h.set_pid_table_entry(table, 2, target_pid);                                 // valid bit 0
    h.set_pid_table_entry(table, 3, target_pid | pid::kPidTableEntryValid | 0x2);  // reserved bit 1
    const unsigned width = h.features().physical_address_width;
    h.set_pid_table_entry(table, 4, target_pid | pid::kPidTableEntryValid | std::uint64_t{1} << width);
    s.controls = Controls::apicv_x2apic().with_ipiv();
    s.passthrough_x2apic_msrs(true);
    s.pid_table = table;
    s.last_pid_index = 4;
    constexpr std::size_t n = sizeof kX2apicDeclines / sizeof kX2apicDeclines[0];
    std::vector<std::uint64_t> rip_before(n), vicr_at_exit;
    s.on_exit = [&](TestVcpu& v, LogicalProcessor&, const ExitRecord&) {
        vicr_at_exit.push_back(v.vapic64(kVapicIcrLo));
        return true;  // trap-like: resume after the WRMSR
    };
    s.program([&](GuestCpu& g) {
        for (std::size_t i = 0; i < n; ++i) {
            s.tag = static_cast<int>(i);
            rip_before[i] = s.guest_rip();
            g.wrmsr(kMsrIcr, x2apic_icr(kX2apicDeclines[i].dest, kX2apicDeclines[i].lo));
        }
    });
    REQUIRE(h.run() == "");
    CHECK(s.vmx_errors.empty());
    REQUIRE(s.exits.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
        INFO(kX2apicDeclines[i].what);
        const ExitRecord& e = s.exits[i];
        CHECK(e.tag == static_cast<int>(i));
        CHECK(e.reason == reason(ExitReason::ApicWrite));
        CHECK(e.qualification == 0x300);
        CHECK(e.guest_rip == rip_before[i] + kLenWrmsr);  // trap-like
        // The whole 64-bit value at 300H of the virtual-APIC page (not split into 300H/310H).
        CHECK(vicr_at_exit[i] == x2apic_icr(kX2apicDeclines[i].dest, kX2apicDeclines[i].lo));
    }
    const PidSnapshot tp = h.pid_state(target_pid);
    CHECK(tp.pir.empty());
    CHECK_FALSE(tp.info.on());
    CHECK(s.pid_state().pir.empty());
    CHECK(h.cpu(0).notifications_sent() == 0);
    CHECK(h.cpu(1).apic().accepted_count(kPostedIntrVector) == 0);
}

TEST_CASE("ipiv: xAPIC ICR values IPIv does not virtualize exit 56, a self-IPI is self-IPI-virtualized",
          "[cpu][ipiv]") {
    Harness h("spr", 2);
    TestVcpu& s = h.add_vcpu(0);
    const std::uint64_t target_pid = h.make_pid(kPostedIntrVector, 1);
    const std::uint64_t table = h.make_pid_table(8);
    h.set_pid_table_entry(table, 1, pid::PidTableEntry::for_descriptor(target_pid).raw);
    s.controls = Controls::apicv_xapic().with_ipiv();
    s.pid_table = table;
    s.last_pid_index = 1;
    struct X {
        const char* what;
        std::uint32_t icr_hi, icr_lo;
        bool exits;
    };
    const X rows[] = {
        {"APIC ID beyond the last index", 5u << 24, 0x45, true},
        {"broadcast FFH", 0xFFu << 24, 0x45, true},
        {"vector < 16", 1u << 24, 0x0E, true},
        {"logical", 1u << 24, kIcrLogical | 0x45, true},
        {"NMI", 1u << 24, kIcrNmi, true},
        {"INIT", 1u << 24, kIcrInit | kIcrLevelAssert, true},
        {"SIPI", 1u << 24, kIcrStartup | 0x12, true},
        {"all excluding self", 0, kIcrShorthandOthers | 0x45, true},
        {"all including self", 0, kIcrShorthandAll | 0x45, true},
        {"lowest priority", 1u << 24, 0x100 | 0x45, true},
        {"level-triggered", 1u << 24, kIcrTriggerLevel | kIcrLevelAssert | 0x45, true},
        {"delivery status (bit 12) set", 1u << 24, 0x1000 | 0x45, true},
        {"reserved bits 17:16", 1u << 24, (0x3u << 16) | 0x45, true},
        {"reserved bit 13", 1u << 24, (1u << 13) | 0x45, true},
        {"reserved bits 31:20", 1u << 24, 0x00100000u | 0x45, true},
        {"self-IPI (VID)", 0, kIcrShorthandSelf | 0x52, false},
    };
    constexpr std::size_t n = sizeof rows / sizeof rows[0];
    std::vector<std::uint64_t> rip_before(n);
    std::vector<std::pair<std::uint32_t, std::uint32_t>> vicr_at_exit;
    s.on_exit = [&](TestVcpu& v, LogicalProcessor&, const ExitRecord&) {
        vicr_at_exit.emplace_back(v.vapic32(kVapicIcrLo), v.vapic32(kVapicIcrHi));
        return true;
    };
    s.program([&](GuestCpu& g) {
        for (std::size_t i = 0; i < n; ++i) {
            s.tag = static_cast<int>(i);
            g.mmio_write32(kGuestApicBase + kVapicIcrHi, rows[i].icr_hi);
            rip_before[i] = s.guest_rip();
            g.mmio_write32(kGuestApicBase + kVapicIcrLo, rows[i].icr_lo);
        }
    });
    REQUIRE(h.run() == "");
    CHECK(s.vmx_errors.empty());
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {
        INFO(rows[i].what);
        if (!rows[i].exits) continue;
        REQUIRE(k < s.exits.size());
        const ExitRecord& e = s.exits[k];
        CHECK(e.tag == static_cast<int>(i));
        CHECK(e.reason == reason(ExitReason::ApicWrite));
        CHECK(e.qualification == 0x300);
        CHECK(e.guest_rip == rip_before[i] + kLenMovMmio);
        CHECK(vicr_at_exit[k].first == rows[i].icr_lo);
        CHECK(vicr_at_exit[k].second == rows[i].icr_hi);
        ++k;
    }
    CHECK(s.exits.size() == k);  // the self-IPI caused none
    CHECK(s.virr(0x52));
    CHECK(s.rvi() == 0x52);
    CHECK(h.pid_state(target_pid).pir.empty());
    CHECK(h.cpu(0).notifications_sent() == 0);
}

TEST_CASE("ipiv: with SN = 1 the PIR bit is set but ON stays 0 and no notification is sent",
          "[cpu][ipiv]") {
    IpivPair t(true);
    {
        vtx::model::DirectMemoryPort port(t.h.memory(), vtx::model::kDeviceAgent);
        pid::PostedInterruptDescriptor(port, t.target.pid_address).set_sn();
    }
    t.target_handles(0x45, true);
    const std::uint64_t done_gpa = 0x200;
    t.target.program([&](GuestCpu& g) {
        g.store64(t.flag_gpa, 1);
        g.spin_until([&] { return g.load64(done_gpa) == 1; }, done_gpa);
        g.compute(3000);  // time for a notification, if one had been sent
    });
    PidSnapshot after_send;
    t.sender.program([&](GuestCpu& g) {
        t.sender_waits_for_target(g);
        g.wrmsr(kMsrIcr, x2apic_icr(1, 0x45));
        after_send = t.target.pid_state();
        g.store64(done_gpa, 1);
    });
    REQUIRE(t.h.run() == "");
    CHECK(t.sender.exits.empty());
    CHECK(t.target.exits.empty());
    CHECK(after_send.pir.test(0x45));
    CHECK_FALSE(after_send.info.on());
    CHECK(after_send.info.sn());
    CHECK(t.h.cpu(0).notifications_sent() == 0);
    CHECK(t.h.cpu(1).apic().accepted_count(kPostedIntrVector) == 0);
    CHECK(t.received.empty());  // the target's handler did not run
    const PidSnapshot end = t.target.pid_state();
    CHECK(end.pir.test(0x45));  // still posted, waiting for the VMM
    CHECK_FALSE(end.info.on());
    CHECK_FALSE(t.target.virr(0x45));
}

TEST_CASE("ipiv: with ON already 1 no second notification is sent", "[cpu][ipiv]") {
    // The target is not running (its processor has no software): ON stays set after the
    // first notification, so the second IPI only adds its PIR bit.
    Harness h("spr", 2);
    TestVcpu& s = h.add_vcpu(0);
    const std::uint64_t target_pid = h.make_pid(kPostedIntrVector, 1);
    const std::uint64_t table = h.make_pid_table(8);
    h.set_pid_table_entry(table, 1, pid::PidTableEntry::for_descriptor(target_pid).raw);
    s.controls = Controls::apicv_x2apic().with_ipiv();
    s.passthrough_x2apic_msrs(true);
    s.pid_table = table;
    s.last_pid_index = 1;
    std::vector<std::uint64_t> notifications;
    std::vector<PidSnapshot> after;
    s.program([&](GuestCpu& g) {
        for (std::uint8_t vec : {0x45, 0x46, 0x45}) {
            g.wrmsr(kMsrIcr, x2apic_icr(1, vec));
            notifications.push_back(h.cpu(0).notifications_sent());
            after.push_back(h.pid_state(target_pid));
        }
    });
    REQUIRE(h.run() == "");
    CHECK(s.exits.empty());
    CHECK(notifications == std::vector<std::uint64_t>{1, 1, 1});
    REQUIRE(after.size() == 3);
    CHECK(after[0].info.on());
    CHECK(after[1].info.on());
    CHECK(after[1].pir.test(0x45));
    CHECK(after[1].pir.test(0x46));
    CHECK(after[2].pir.count() == 2);
    CHECK(h.cpu(1).apic().accepted_count(kPostedIntrVector) == 1);
}

TEST_CASE("ipiv: tertiary controls are ignored when primary bit 17 is 0", "[cpu][ipiv]") {
    Harness h("spr", 2);
    TestVcpu& s = h.add_vcpu(0);
    const std::uint64_t target_pid = h.make_pid(kPostedIntrVector, 1);
    const std::uint64_t table = h.make_pid_table(8);
    h.set_pid_table_entry(table, 1, pid::PidTableEntry::for_descriptor(target_pid).raw);
    s.controls = Controls::apicv_x2apic();
    s.controls.tertiary = vmcs::kTertiaryIpiVirt;  // written, but not activated
    REQUIRE_FALSE(s.controls.primary & vmcs::kPrimaryActivateTertiaryControls);
    s.passthrough_x2apic_msrs(false);  // the ICR write is intercepted, as KVM without IPIv
    s.pid_table = table;
    s.last_pid_index = 1;
    std::uint64_t rip_first = 0, tertiary_field = 0;
    s.on_exit = [&](TestVcpu& v, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason != reason(ExitReason::Wrmsr)) return false;
        tertiary_field = p.vmread(Field::TertiaryVmExecControl).value;
        v.skip(p);
        v.set_msr_intercept(kMsrIcr, false, false);  // now let it through
        return true;
    };
    s.program([&](GuestCpu& g) {
        rip_first = s.guest_rip();
        g.wrmsr(kMsrIcr, x2apic_icr(1, 0x45));  // WRMSR exit (32)
        g.wrmsr(kMsrIcr, x2apic_icr(1, 0x47));  // not intercepted, no IPIv: the physical ICR
    });
    REQUIRE(h.run() == "");
    CHECK(s.vmx_errors.empty());
    REQUIRE(s.exits.size() == 1);
    CHECK(s.exits[0].reason == reason(ExitReason::Wrmsr));
    CHECK(s.exits[0].guest_rip == rip_first);  // fault-like
    CHECK(tertiary_field == vmcs::kTertiaryIpiVirt);
    // The second write went out of processor 0's physical x2APIC as an ordinary IPI.
    CHECK(h.cpu(1).apic().accepted_count(0x47) == 1);
    CHECK(h.cpu(1).apic().accepted_count(0x45) == 0);
    CHECK(h.cpu(0).notifications_sent() == 0);
    CHECK(h.pid_state(target_pid).pir.empty());
    CHECK_FALSE(s.vapic64(kVapicIcrLo) == x2apic_icr(1, 0x47));  // no VICR write either
}

TEST_CASE("ipiv: VM entry with IPI virtualization and use TPR shadow = 0 fails with VMfailValid(7)",
          "[cpu][ipiv][entry]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls{};
    v.controls.with_ipiv();  // primary bit 17 + tertiary bit 4, no TPR shadow
    v.pid_table = h.make_pid_table(1);
    bool ran = false;
    v.program([&](GuestCpu&) { ran = true; });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::VmFailValid);
    CHECK(v.end->error == vmcs::VmInstructionError::EntryInvalidControlField);
    CHECK(v.vm_instruction_error == 7);
    CHECK(v.end->failed_check.find("ipi_virtualization_requires_tpr_shadow") != std::string::npos);
    CHECK(v.exits.empty());
    CHECK(v.entries == 1);
    CHECK_FALSE(ran);
    CHECK(v.ctx.vmcs.launch_state() == vmcs::LaunchState::Clear);
}

TEST_CASE("ipiv: the icx profile has no tertiary controls", "[cpu][ipiv][entry]") {
    Harness h("icx", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.controls.primary |= vmcs::kPrimaryActivateTertiaryControls;
    vmcs::VmxResult tertiary_write;
    v.after_setup = [&](TestVcpu&, LogicalProcessor& p) {
        tertiary_write = p.vmwrite(Field::TertiaryVmExecControl, vmcs::kTertiaryIpiVirt);
    };
    bool ran = false;
    v.program([&](GuestCpu&) { ran = true; });
    REQUIRE(h.run() == "");
    CHECK(tertiary_write.failed_valid_with(vmcs::VmInstructionError::UnsupportedVmcsComponent));
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::VmFailValid);
    CHECK(v.vm_instruction_error == 7);
    CHECK(v.end->failed_check.find("primary_reserved_bits") != std::string::npos);
    CHECK_FALSE(ran);
}

TEST_CASE("ipiv: WRMSR 830H with reserved bits set raises #GP, sends nothing and takes no VM exit",
          "[cpu][ipiv][gp]") {
    // New SDM 30.5: with "virtualize x2APIC mode" and IPIv, WRMSR 830H checks the reserved
    // bits (31:20, 17:16, 13) before anything else and faults.
    IpivPair t(true);
    struct Row {
        const char* what;
        std::uint32_t lo;
    };
    const Row rows[] = {{"bit 13", (1u << 13) | 0x45}, {"bits 17:16", (0x3u << 16) | 0x45},
                        {"bit 20", (1u << 20) | 0x45}, {"bit 31", (1u << 31) | 0x45}};
    std::vector<std::uint64_t> gp_rip;
    t.sender.handler(13, [&](GuestCpu&, std::uint8_t) {
        gp_rip.push_back(t.sender.ctx.return_rip);
        t.sender.ctx.return_rip += kLenWrmsr;  // the handler skips the faulting WRMSR
    });
    std::vector<std::uint64_t> rip_before;
    t.target_waits([] { return true; });
    t.sender.program([&](GuestCpu& g) {
        for (const Row& r : rows) {
            rip_before.push_back(t.sender.guest_rip());
            g.wrmsr(kMsrIcr, x2apic_icr(1, r.lo));
        }
    });
    REQUIRE(t.h.run() == "");
    CHECK(t.sender.exits.empty());
    REQUIRE(gp_rip.size() == std::size(rows));
    for (std::size_t i = 0; i < std::size(rows); ++i) {
        INFO(rows[i].what);
        CHECK(gp_rip[i] == rip_before[i]);  // fault-like: the WRMSR did not retire
    }
    CHECK(t.target.pid_state().pir.empty());
    CHECK(t.h.cpu(0).notifications_sent() == 0);
    CHECK(t.sender.vapic64(kVapicIcrLo) == 0);  // the value never reached VICR
}

TEST_CASE("ipiv: APIC ID 4095, the last index of a 4096-entry PID-pointer table, is virtualized",
          "[cpu][ipiv]") {
    // KVM's kvm.max_vcpu_ids limit: x2APIC IDs up to 4095, one 8-byte entry each.
    constexpr std::uint32_t kLastId = 4095;
    IpivPair t(true);
    const std::uint64_t big = t.h.make_pid_table(kLastId + 1);
    t.h.set_pid_table_entry(big, kLastId, pid::PidTableEntry::for_descriptor(t.target.pid_address).raw);
    for (TestVcpu* v : {&t.sender, &t.target}) {
        v->pid_table = big;
        v->last_pid_index = kLastId;
    }
    t.target_handles(0x45, true);
    t.target_waits([&] { return !t.received.empty(); });
    t.sender.program([&](GuestCpu& g) {
        t.sender_waits_for_target(g);
        g.wrmsr(kMsrIcr, x2apic_icr(kLastId, 0x45));
    });
    REQUIRE(t.h.run() == "");
    CHECK(t.sender.exits.empty());
    CHECK(t.h.cpu(0).notifications_sent() == 1);
    CHECK(t.received == std::vector<std::uint8_t>{0x45});
}

