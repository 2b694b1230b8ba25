// User interrupts (SDM vol. 2 SENDUIPI, STUI/CLUI/UIRET; vol. 3 "User Interrupts";
// vtx-semantics.md 5.8) on the spr profile: SENDUIPI posts into the receiver's UPID and
// sends the notification, which in VMX non-root operation is a virtualized ICR write (IPI
// virtualization, or an APIC-write exit with qualification 300H); the receiving vCPU's
// virtual-interrupt delivery of UINV runs notification processing (UPID.ON cleared, PIR
// into UIRR), and the user interrupt is delivered at CPL 3 with UIF = 1.
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "cpu/flow_encodings.hpp"
#include "cpu/harness.hpp"
#include "model/x86.hpp"
#include "pid/user_interrupts.hpp"

using namespace vtx::cpu;
using namespace vtx::cpu::test;
namespace pid = vtx::pid;
namespace x86 = vtx::x86;

namespace {

constexpr std::uint8_t kUinv = 0xEC;
constexpr std::uint8_t kUserVector = 5;
constexpr std::uint64_t kHandler = 0x300000;
constexpr std::uint64_t kUpidGpa = 0x2000, kUittGpa = 0x3000, kFlagGpa = 0x100, kDoneGpa = 0x140;

// Two vCPUs of one VM on processors 0 and 1: vCPU 0 sends user interrupts to vCPU 1 (APIC
// ID 1), whose UPID is at kUpidGpa; the sender's UITT (two entries) is at kUittGpa.
struct UipiPair {
    Harness h{"spr", 2};
    TestVcpu& sender = h.add_vcpu(0);
    TestVcpu& target = h.add_vcpu(1);
    std::uint64_t table = h.make_pid_table(8);
    std::vector<std::uint8_t> user_vectors;  // what the receiver's handler got
    std::vector<std::uint8_t> idt_vectors;   // ordinary interrupts the receiver took

    UipiPair(bool x2apic, bool ipiv) {
        h.set_pid_table_entry(table, 0, pid::PidTableEntry::for_descriptor(sender.pid_address).raw);
        h.set_pid_table_entry(table, 1, pid::PidTableEntry::for_descriptor(target.pid_address).raw);
        for (TestVcpu* v : {&sender, &target}) {
            v->controls = Controls::apicv(x2apic);
            if (ipiv) v->controls.with_ipiv();
            if (x2apic) v->passthrough_x2apic_msrs(ipiv);
            v->pid_table = table;
            v->last_pid_index = 1;
        }
        target.rflags = kRflagsFixed | kRflagsIf;
        // The kernels' set-up (uintr_register_handler / uintr_register_sender).
        target.ctx.uintr.handler = kHandler;
        target.ctx.uintr.pd = kUpidGpa;
        target.ctx.uintr.misc = std::uint64_t{kUinv} << 32;
        target.ctx.uintr.uif = true;
        target.ctx.user_handlers[kHandler] = [this](GuestCpu& g, std::uint8_t uv) {
            user_vectors.push_back(uv);
            g.store64(kDoneGpa, user_vectors.size());
        };
        target.handler(kUinv, [this](GuestCpu&, std::uint8_t v) { idt_vectors.push_back(v); });
        sender.ctx.uintr.tt = kUittGpa | 1;
        sender.ctx.uintr.misc = 1;  // UITTSZ 1: entries 0 and 1
        upid(pid::UpidControl::make(kUinv, pid::upid_ndst(1, x2apic)).raw);
        uitt(0, pid::UittEntry::make(kUserVector, kUpidGpa));
    }
    std::uint64_t gpa(std::uint64_t a) const { return target.ctx.memory_map.host_base + a; }
    void upid(std::uint64_t control, std::uint64_t pir = 0) {
        h.memory().poke64(gpa(kUpidGpa), control);
        h.memory().poke64(gpa(kUpidGpa + 8), pir);
    }
    pid::UpidControl upid_control() { return pid::UpidControl{h.memory().peek64(gpa(kUpidGpa))}; }
    std::uint64_t upid_pir() { return h.memory().peek64(gpa(kUpidGpa + 8)); }
    void uitt(unsigned index, pid::UittEntry e) {
        h.memory().poke64(gpa(kUittGpa + 16 * index), e.lo);
        h.memory().poke64(gpa(kUittGpa + 16 * index + 8), e.hi);
    }
    // The receiver: kernel sets CR4.UINTR, then user mode, ready, and spins until `until()`.
    void receiver_waits(std::function<bool()> until) {
        target.program([this, until](GuestCpu& g) {
            g.set_cr4_uintr(true);
            g.set_user_mode(true);
            g.store64(kFlagGpa, 1);
            g.spin_until(until);
        });
    }
    void sender_program(std::function<void(GuestCpu&)> body) {
        sender.program([this, body](GuestCpu& g) {
            g.set_cr4_uintr(true);
            g.set_user_mode(true);
            g.spin_until([&] { return g.load64(kFlagGpa) == 1; }, kFlagGpa);
            body(g);
        });
    }
};

}  // namespace

// (SystemC runs one simulation per process: one harness per test case.)
void senduipi_with_ipiv(bool x2apic) {
    {
        UipiPair t(x2apic, true);
        t.receiver_waits([&] { return !t.user_vectors.empty(); });
        pid::UpidControl after_send;
        std::uint64_t pir_after_send = 0, rip_before = 0, rip_after = 0;
        t.sender_program([&](GuestCpu& g) {
            rip_before = t.sender.guest_rip();
            g.senduipi(0);
            rip_after = t.sender.guest_rip();
            after_send = t.upid_control();
            pir_after_send = t.upid_pir();
        });
        REQUIRE(t.h.run() == "");
        CHECK(t.sender.exits.empty());
        CHECK(t.target.exits.empty());
        CHECK(rip_after == rip_before + kLenSenduipi);
        // SENDUIPI: PIR[UV] and ON in the UPID.
        CHECK(pir_after_send == std::uint64_t{1} << kUserVector);
        CHECK(after_send.on());
        // The notification (NV = UINV) went through IPI virtualization into the receiver's
        // VMX PID, and posted-interrupt processing there made it a virtual interrupt.
        CHECK(t.h.cpu(0).notifications_sent() == 1);
        CHECK(t.h.cpu(1).apic().accepted_count(kPostedIntrVector) == 1);
        // Virtual-interrupt delivery of UINV ran notification processing, not the IDT.
        CHECK(t.idt_vectors.empty());
        CHECK_FALSE(t.upid_control().on());
        CHECK(t.upid_pir() == 0);
        REQUIRE(t.user_vectors == std::vector<std::uint8_t>{kUserVector});
        CHECK(t.target.ctx.uintr.rr == 0);   // UIRR[UV] cleared by the delivery
        CHECK(t.target.ctx.uintr.uif);       // set again by UIRET
        CHECK_FALSE(t.target.visr(kUinv));   // the notification's virtual EOI
        CHECK(t.target.svi() == 0);
    }
}
TEST_CASE("senduipi: with IPIv (x2APIC) the notification is posted to the receiver's PID, no VM exit, and its handler runs",
          "[cpu][uintr]") {
    senduipi_with_ipiv(true);
}
TEST_CASE("senduipi: with IPIv (xAPIC) the notification is posted to the receiver's PID, no VM exit, and its handler runs",
          "[cpu][uintr]") {
    senduipi_with_ipiv(false);
}

void senduipi_without_ipiv(bool x2apic) {
    {
        UipiPair t(x2apic, false);
        t.receiver_waits([] { return true; });
        std::uint64_t rip_before = 0;
        t.sender_program([&](GuestCpu& g) {
            rip_before = t.sender.guest_rip();
            g.senduipi(0);
        });
        REQUIRE(t.h.run() == "");
        REQUIRE(t.sender.exits.size() == 1);
        const ExitRecord& e = t.sender.exits[0];
        CHECK(e.reason == reason(ExitReason::ApicWrite));
        CHECK(e.qualification == kVapicIcrLo);
        CHECK(e.guest_rip == rip_before + kLenSenduipi);  // trap-like: after SENDUIPI
        if (x2apic) {
            CHECK(t.sender.vapic64(kVapicIcrLo) == ((std::uint64_t{1} << 32) | kUinv));
        } else {
            CHECK(t.sender.vapic32(kVapicIcrHi) == 1u << 24);
            CHECK(t.sender.vapic32(kVapicIcrLo) == kUinv);
        }
        CHECK(t.upid_control().on());
        CHECK(t.upid_pir() == std::uint64_t{1} << kUserVector);
        CHECK(t.h.cpu(0).notifications_sent() == 0);
    }
}
TEST_CASE("senduipi: without IPIv (x2APIC) the notification is an APIC-write exit (300H) with NDST:NV in vICR, trap-like",
          "[cpu][uintr]") {
    senduipi_without_ipiv(true);
}
TEST_CASE("senduipi: without IPIv (xAPIC) the notification is an APIC-write exit (300H) with NDST[15:8] and NV in vICR",
          "[cpu][uintr]") {
    senduipi_without_ipiv(false);
}

void senduipi_suppressed(std::uint64_t flag) {
    {
        UipiPair t(true, false);
        t.upid(pid::UpidControl::make(kUinv, 1).raw | flag, std::uint64_t{1} << 9);
        t.receiver_waits([] { return true; });
        t.sender_program([&](GuestCpu& g) { g.senduipi(0); });
        REQUIRE(t.h.run() == "");
        CHECK(t.sender.exits.empty());  // no notification: no APIC-write exit
        CHECK(t.upid_pir() == ((std::uint64_t{1} << 9) | (std::uint64_t{1} << kUserVector)));
        CHECK(t.upid_control().raw == (pid::UpidControl::make(kUinv, 1).raw | flag));
    }
}
TEST_CASE("senduipi: ON already set: the user vector is posted, no notification", "[cpu][uintr]") {
    senduipi_suppressed(pid::UpidControl::kOn);
}
TEST_CASE("senduipi: SN set: the user vector is posted, no notification", "[cpu][uintr]") {
    senduipi_suppressed(pid::UpidControl::kSn);
}

void senduipi_gp(std::uint64_t index, const std::function<void(UipiPair&)>& arrange) {
    UipiPair t(true, true);
    arrange(t);
    const std::uint64_t upid_before = t.upid_control().raw;
    std::vector<std::uint8_t> faults;
    t.sender.handler(x86::kVectorGp, [&](GuestCpu& g, std::uint8_t v) {
        faults.push_back(v);
        g.context().return_rip += kLenSenduipi;  // the test's fixup: skip SENDUIPI
    });
    t.receiver_waits([] { return true; });
    t.sender_program([&](GuestCpu& g) { g.senduipi(index); });
    REQUIRE(t.h.run() == "");
    CHECK(faults == std::vector<std::uint8_t>{x86::kVectorGp});
    CHECK(t.upid_control().raw == upid_before);  // nothing posted
    CHECK(t.upid_pir() == 0);
    CHECK(t.h.cpu(0).notifications_sent() == 0);
}
TEST_CASE("senduipi: #GP for an index beyond UITTSZ", "[cpu][uintr]") { senduipi_gp(2, [](UipiPair&) {}); }
TEST_CASE("senduipi: #GP for a UITT entry that is not valid", "[cpu][uintr]") { senduipi_gp(1, [](UipiPair&) {}); }
TEST_CASE("senduipi: #GP for a user vector above 63", "[cpu][uintr]") {
    senduipi_gp(0, [](UipiPair& t) { t.uitt(0, pid::UittEntry::make(64, kUpidGpa)); });
}
TEST_CASE("senduipi: #GP for a reserved bit in the UITT entry", "[cpu][uintr]") {
    senduipi_gp(0, [](UipiPair& t) { t.uitt(0, pid::UittEntry{0x2 | 0x1, kUpidGpa}); });
}
TEST_CASE("senduipi: #GP for a UPID address not 64-byte aligned", "[cpu][uintr]") {
    senduipi_gp(0, [](UipiPair& t) { t.uitt(0, pid::UittEntry::make(1, kUpidGpa + 8)); });
}
TEST_CASE("senduipi: #GP for a reserved bit in the UPID, which stays as it was", "[cpu][uintr]") {
    senduipi_gp(0, [](UipiPair& t) { t.upid(pid::UpidControl::make(kUinv, 1).raw | 0x4); });
}

TEST_CASE("senduipi, stui: #UD with CR4.UINTR = 0", "[cpu][uintr]") {
    UipiPair t(true, true);
    std::vector<std::uint8_t> faults;
    t.sender.handler(x86::kVectorUd, [&](GuestCpu& g, std::uint8_t v) {
        faults.push_back(v);
        g.context().return_rip += kLenSenduipi;
    });
    t.receiver_waits([] { return true; });
    t.sender_program([&](GuestCpu& g) {
        g.set_cr4_uintr(false);
        g.senduipi(0);
        g.stui();
    });
    REQUIRE(t.h.run() == "");
    CHECK(faults == std::vector<std::uint8_t>{x86::kVectorUd, x86::kVectorUd});
    CHECK(t.upid_pir() == 0);
}

TEST_CASE("senduipi: #UD without a valid UITT (IA32_UINTR_TT[0] = 0)", "[cpu][uintr]") {
    UipiPair t(true, true);
    t.sender.ctx.uintr.tt = kUittGpa;  // bit 0 clear
    std::vector<std::uint8_t> faults;
    t.sender.handler(x86::kVectorUd, [&](GuestCpu& g, std::uint8_t v) {
        faults.push_back(v);
        g.context().return_rip += kLenSenduipi;
    });
    t.receiver_waits([] { return true; });
    t.sender_program([&](GuestCpu& g) { g.senduipi(0); });
    REQUIRE(t.h.run() == "");
    CHECK(faults == std::vector<std::uint8_t>{x86::kVectorUd});
}

TEST_CASE("senduipi: #UD on a CPU without user interrupts (icx)", "[cpu][uintr]") {
    Harness h{"icx", 1};
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv(true);
    v.ctx.uintr.tt = kUittGpa | 1;
    std::vector<std::uint8_t> faults;
    v.handler(x86::kVectorUd, [&](GuestCpu& g, std::uint8_t vec) {
        faults.push_back(vec);
        g.context().return_rip += kLenSenduipi;
    });
    v.program([&](GuestCpu& g) {
        g.set_cr4_uintr(true);
        g.senduipi(0);
    });
    REQUIRE(h.run() == "");
    CHECK(faults == std::vector<std::uint8_t>{x86::kVectorUd});
}

TEST_CASE("a user interrupt waits for UIF = 1 and CPL 3, and ranks below ordinary interrupts", "[cpu][uintr]") {
    UipiPair t(true, true);
    std::vector<std::string> order;
    t.target.ctx.user_handlers[kHandler] = [&](GuestCpu&, std::uint8_t uv) { order.push_back("user " + std::to_string(uv)); };
    t.target.handler(0x40, [&](GuestCpu& g, std::uint8_t) {
        order.push_back("interrupt 0x40");
        g.wrmsr(kMsrEoi, 0);
    });
    t.target.passthrough_x2apic_msrs(true);
    t.target.program([&](GuestCpu& g) {
        g.set_cr4_uintr(true);
        g.context().uintr.rr = std::uint64_t{1} << 7;  // requested
        g.clui();
        g.set_user_mode(true);
        g.compute(100);  // UIF = 0: nothing
        order.push_back("after clui");
        g.set_user_mode(false);
        g.stui();
        g.compute(100);  // CPL 0: nothing
        order.push_back("kernel mode");
        // A self-IPI and the user interrupt both pending at CPL 3: the ordinary one first.
        g.wrmsr(kMsrSelfIpi, 0x40);
        g.set_user_mode(true);
        g.compute(100);
        order.push_back("end");
    });
    t.sender.program([](GuestCpu&) {});
    REQUIRE(t.h.run() == "");
    CHECK(order == std::vector<std::string>{"after clui", "kernel mode", "interrupt 0x40", "user 7", "end"});
    CHECK(t.target.ctx.uintr.rr == 0);
}

TEST_CASE("uintr MSRs: a guest's writes reach its UINTR state, reserved bits #GP", "[cpu][uintr]") {
    UipiPair t(true, true);
    for (std::uint32_t msr = x86::kMsrUintrRr; msr <= x86::kMsrUintrTt; ++msr) t.target.set_msr_intercept(msr, false, false);
    std::vector<std::uint8_t> faults;
    t.target.handler(x86::kVectorGp, [&](GuestCpu& g, std::uint8_t v) {
        faults.push_back(v);
        g.context().return_rip += vtx::cpu::kLenWrmsr;
    });
    std::uint64_t misc_read = 0;
    t.target.program([&](GuestCpu& g) {
        g.wrmsr(x86::kMsrUintrMisc, (std::uint64_t{0xED} << 32) | 3);
        misc_read = g.rdmsr(x86::kMsrUintrMisc);
        g.wrmsr(x86::kMsrUintrTt, 0x5000 | 1);
        g.wrmsr(x86::kMsrUintrPd, 0x4010);                 // not 64-byte aligned: #GP
        g.wrmsr(x86::kMsrUintrMisc, std::uint64_t{1} << 40);  // reserved: #GP
        g.wrmsr(x86::kMsrUintrTt, 0x5000 | 2);             // reserved bit 1: #GP
    });
    t.sender.program([](GuestCpu&) {});
    REQUIRE(t.h.run() == "");
    CHECK(t.target.exits.empty());  // not intercepted
    CHECK(misc_read == ((std::uint64_t{0xED} << 32) | 3));
    CHECK(t.target.ctx.uintr.uinv() == 0xED);
    CHECK(t.target.ctx.uintr.uittsz() == 3);
    CHECK(t.target.ctx.uintr.tt == (0x5000 | 1));
    CHECK(faults == std::vector<std::uint8_t>{x86::kVectorGp, x86::kVectorGp, x86::kVectorGp});
}

TEST_CASE("UINV with CR4.UINTR = 0 is an ordinary interrupt through the IDT", "[cpu][uintr]") {
    UipiPair t(true, true);
    t.target.program([&](GuestCpu& g) {
        g.store64(kFlagGpa, 1);
        g.spin_until([&] { return !t.idt_vectors.empty(); });
    });
    t.sender.program([&](GuestCpu& g) {
        g.spin_until([&] { return g.load64(kFlagGpa) == 1; }, kFlagGpa);
        g.wrmsr(kMsrIcr, (std::uint64_t{1} << 32) | kUinv);  // an ordinary IPI with vector UINV
    });
    t.sender.passthrough_x2apic_msrs(true);
    REQUIRE(t.h.run() == "");
    CHECK(t.idt_vectors == std::vector<std::uint8_t>{kUinv});
    CHECK(t.user_vectors.empty());
}
