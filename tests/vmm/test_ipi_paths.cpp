// The VMM's IPI paths, each checked by the exits it takes and by who receives which vector
// when (tests/vmm/ping.hpp: vCPU 0 sends 0x40 + i % 16 to vCPU 1 and waits for each).
#include <catch2/catch.hpp>

#include "cpu/guest_context.hpp"
#include "model/memory.hpp"
#include "pid/descriptor.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/exit_info.hpp"
#include "vmm/ping.hpp"

using namespace vtx;
using test::KvmRig;
using test::PingLog;
using test::r;
using vmcs::ExitReason;

namespace {
constexpr unsigned kIpis = 40;
vmm::KvmParams params(bool apicv, bool ipiv, bool fastpath = true) {
    vmm::KvmParams p;
    p.enable_apicv = apicv;
    p.enable_ipiv = ipiv;
    p.x2apic_icr_fastpath = fastpath;
    return p;
}
}  // namespace

TEST_CASE("x2APIC without IPIv: one WRMSR exit per IPI on the sender, through the fastpath, no APIC-write exit") {
    KvmRig rig(2, params(true, false), /*x2apic=*/true);
    PingLog log;
    test::add_ping(rig, kIpis, false, log);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK(rig.vcpu(0).exits(r(ExitReason::Wrmsr)) == kIpis);
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicWrite)) == 0);
    CHECK(rig.stat("kvm.x2apic_icr_fastpath") == kIpis);
    // KVM posts each IPI and notifies the running target: no exit on the target.
    CHECK(rig.stat("kvm.notifications_sent") == kIpis);
    CHECK(rig.vcpu(1).exits(r(ExitReason::ExternalInterrupt)) == 0);
    CHECK(rig.vcpu(1).exits(r(ExitReason::Wrmsr)) == 0);  // EOI virtualized
}

TEST_CASE("xAPIC without IPIv: one APIC-write exit per IPI on the sender, ICR2 virtualized") {
    KvmRig rig(2, params(true, false), /*x2apic=*/false);
    PingLog log;
    test::add_ping(rig, kIpis, false, log);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicWrite)) == kIpis);
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicAccess)) == 0);
    CHECK(rig.stat("kvm.notifications_sent") == kIpis);
    CHECK(rig.vcpu(1).exits(r(ExitReason::ApicAccess)) == 0);  // EOI virtualized
    CHECK(rig.vcpu(1).exits(r(ExitReason::ExternalInterrupt)) == 0);
}

TEST_CASE("IPIv in x2APIC mode: the sender takes no VM exit, the processor posts and notifies") {
    KvmRig rig(2, params(true, true), /*x2apic=*/true);
    PingLog log;
    test::add_ping(rig, kIpis, false, log);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK(rig.vcpu(0).exits(r(ExitReason::Wrmsr)) == 0);
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicWrite)) == 0);
    CHECK(rig.stat("ipiv.virtualized") == kIpis);
    CHECK(rig.stat("notifications.sent") == kIpis);
    CHECK(rig.stat("kvm.ipis_sent") == 0);
    CHECK(rig.vcpu(1).exits(r(ExitReason::ExternalInterrupt)) == 0);
}

TEST_CASE("IPIv in xAPIC mode: the sender takes no VM exit") {
    KvmRig rig(2, params(true, true), /*x2apic=*/false);
    PingLog log;
    test::add_ping(rig, kIpis, false, log);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicWrite)) == 0);
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicAccess)) == 0);
    CHECK(rig.stat("ipiv.virtualized") == kIpis);
    CHECK(rig.stat("kvm.ipis_sent") == 0);
}

TEST_CASE("x2APIC ICR fastpath off: IPIs still delivered through the slow WRMSR path") {
    KvmRig rig(2, params(true, false, /*fastpath=*/false), /*x2apic=*/true);
    PingLog log;
    test::add_ping(rig, kIpis, false, log);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK(rig.vcpu(0).exits(r(ExitReason::Wrmsr)) == kIpis);
    CHECK(rig.stat("kvm.x2apic_icr_fastpath") == 0);
    CHECK(rig.stat("kvm.ipis_sent") == kIpis);
}

TEST_CASE("APICv off in x2APIC mode: IPIs through WRMSR exits, delivered by interrupt injection") {
    KvmRig rig(2, params(false, false), /*x2apic=*/true);
    PingLog log;
    test::add_ping(rig, kIpis, false, log);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK(rig.vcpu(0).exits(r(ExitReason::Wrmsr)) == kIpis);
    CHECK(rig.vcpu(1).exits(r(ExitReason::Wrmsr)) == kIpis);  // the EOI MSR is intercepted
    CHECK(rig.stat("kvm.interrupts_injected") == kIpis);
    CHECK(rig.stat("kvm.notifications_sent") == 0);
    const auto& vmcs = rig.vcpu(1).context().vmcs;
    CHECK((vmcs.hw_read(vmcs::Field::PinBasedVmExecControl) & vmcs::kPinProcessPostedInterrupts) == 0);
    CHECK((vmcs.hw_read(vmcs::Field::SecondaryVmExecControl) & vmcs::kSecondaryVirtualInterruptDelivery) == 0);
}

TEST_CASE("APICv off in xAPIC mode: IPIs through APIC-access exits, delivered by interrupt injection") {
    KvmRig rig(2, params(false, false), /*x2apic=*/false);
    PingLog log;
    test::add_ping(rig, kIpis, false, log);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicAccess)) == 2 * kIpis);  // ICR2 and ICR writes
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicWrite)) == 0);
    CHECK(rig.vcpu(1).exits(r(ExitReason::ApicAccess)) == kIpis);  // EOI writes
    CHECK(rig.stat("kvm.interrupts_injected") == kIpis);
}

TEST_CASE("APICv off: an IPI masked by the target's TPR waits for the TPR to drop (TPR threshold)") {
    // vCPU 1 raises its TPR above the IPI's class, vCPU 0 sends, vCPU 1 lowers the TPR
    // later: the interrupt must arrive only after that (TPR-below-threshold exit, 43).
    vmm::KvmParams p = params(false, false);
    KvmRig rig(2, p, /*x2apic=*/true);
    const std::uint64_t flags = rig.alloc_line();
    std::uint64_t lowered_at = 0, received_at = 0;
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(flags) == 1; }, flags);
        test::send_ipi(g, true, test::kIcrAssert | 0x50, 1);
        g.store64(flags, 2);
        g.spin_until([&] { return g.load64(flags) == 3; }, flags);
    });
    rig.add_vcpu(1, 1, [&](cpu::GuestCpu& g) {
        g.set_handler(0x50, [&](cpu::GuestCpu& c, std::uint8_t) {
            received_at = c.rdtsc();
            test::send_eoi(c, true);
            c.store64(flags, 3);
        });
        g.wrmsr(0x808, 0x60);  // TPR class 6 masks vector 0x50
        g.sti();
        g.store64(flags, 1);
        g.spin_until([&] { return g.load64(flags) == 2; }, flags);
        g.compute(20000);
        lowered_at = g.rdtsc();
        g.wrmsr(0x808, 0);
        g.idle_loop();
    });
    REQUIRE(rig.run());
    CHECK(received_at > lowered_at);
    CHECK(rig.vcpu(1).exits(r(ExitReason::TprBelowThreshold)) == 1);
    CHECK(rig.stat("kvm.interrupts_injected") == 1);
}

TEST_CASE("an interrupt taken just before a WRMSR does not change the WRMSR's operands (the handler's own WRMSR EOI)") {
    // vCPU 0 has an IPI pending when it reaches WRMSR(ICR): the interrupt is delivered at
    // that boundary, its handler writes the EOI MSR, and the ICR write must still be one.
    KvmRig rig(2, params(true, false), /*x2apic=*/true);
    const std::uint64_t flags = rig.alloc_line();
    bool got0 = false, got1 = false;
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) {
        g.set_handler(0x60, [&](cpu::GuestCpu& c, std::uint8_t) {
            got0 = true;
            test::send_eoi(c, true);
        });
        g.store64(flags, 1);
        g.spin_until([&] { return g.load64(flags) == 2; }, flags);  // IF = 0: 0x60 stays pending
        g.sti();
        g.compute(1);  // ends the STI shadow: 0x60 is taken at the next boundary
        test::send_ipi(g, true, test::kIcrAssert | 0x61, 1);
        g.spin_until([&] { return g.load64(flags) == 3; }, flags);
    });
    rig.add_vcpu(1, 1, [&](cpu::GuestCpu& g) {
        g.set_handler(0x61, [&](cpu::GuestCpu& c, std::uint8_t) {
            got1 = true;
            test::send_eoi(c, true);
            c.store64(flags, 3);
        });
        g.sti();
        g.spin_until([&] { return g.load64(flags) == 1; }, flags);
        test::send_ipi(g, true, test::kIcrAssert | 0x60, 0);
        g.compute(5000);
        g.store64(flags, 2);
        g.idle_loop();
    });
    REQUIRE(rig.run());
    CHECK(got0);
    CHECK(got1);
    CHECK(rig.vcpu(0).exits(r(ExitReason::Wrmsr)) == 1);  // the ICR write
}

namespace {
// Linux's wakeup_secondary_cpu_via_init sends INIT (level assert) and then INIT level
// de-assert; KVM's __apic_accept_irq takes APIC_DM_INIT only "if (!trig_mode || level)".
void init_level_deassert_does_nothing(bool x2apic) {
    KvmRig rig(2, {}, x2apic);
    constexpr std::uint32_t kIcrInit = 5u << 8, kIcrLevelTrigger = 1u << 15;
    const std::uint64_t sent = rig.alloc_line(), alive = rig.alloc_line();
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) {
        test::send_ipi(g, x2apic, kIcrInit | kIcrLevelTrigger, 1);  // level trigger, de-assert
        g.store64(sent, 1);
        g.spin_until([&] { return g.load64(alive) >= 2; }, alive);
    });
    rig.add_vcpu(1, 1, [&](cpu::GuestCpu& g) {
        g.lock_add(alive, 1);
        g.spin_until([&] { return g.load64(sent) != 0; }, sent);
        g.compute(20000);  // an INIT would have reset the vCPU by now
        g.lock_add(alive, 1);
        g.idle_loop();
    });
    const bool finished = rig.run();
    INFO(rig.error());
    REQUIRE(finished);
    CHECK(rig.peek64(alive) == 2);
    CHECK(rig.vcpu(1).mp_state() == vmm::MpState::Runnable);
}
}  // namespace

TEST_CASE("an INIT level de-assert IPI does nothing to its target in x2APIC mode") { init_level_deassert_does_nothing(true); }

TEST_CASE("an INIT level de-assert IPI does nothing to its target in xAPIC mode") { init_level_deassert_does_nothing(false); }

namespace {
// A host whose kernel runs its local APICs in xAPIC mode (nox2apic): KVM's
// vmx_vcpu_pi_load writes NDST in the xAPIC format (the 8-bit APIC ID in bits 15:8), and the
// notifications, from IPIv or from KVM, reach the target CPU through the xAPIC ICR.
void ping_on_xapic_host(bool ipiv) {
    vmm::KvmParams p = params(true, ipiv);
    p.host_x2apic = false;
    KvmRig rig(2, p, /*x2apic=*/true);
    PingLog log;
    test::add_ping(rig, kIpis, false, log);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK_FALSE(rig.platform().cpu(1).apic().x2apic_mode());
    model::DirectMemoryPort port(rig.platform().memory(), model::kDeviceAgent);
    pid::PostedInterruptDescriptor desc(port, rig.vcpu(1).pi_desc());
    CHECK(desc.ndst() == pid::ndst_for_xapic(static_cast<std::uint8_t>(rig.platform().cpu(1).apic().apic_id())));
    CHECK(desc.ndst() == 1u << 8);
    CHECK(rig.platform().cpu(1).apic().accepted_count(vmm::kPostedIntrVector) == kIpis);
    if (ipiv)
        CHECK(rig.platform().cpu(0).notifications_sent() == kIpis);
    else
        CHECK(rig.stat("kvm.notifications_sent") == kIpis);
}
}  // namespace

TEST_CASE("a host in xAPIC mode: IPIv notifications use the xAPIC NDST format") { ping_on_xapic_host(true); }

TEST_CASE("a host in xAPIC mode: KVM's notifications reach the target CPU") { ping_on_xapic_host(false); }

namespace {
// vCPU 0 sends `count` NMI IPIs back to back to vCPU 1, whose NMI handler (vector 2) works
// `handler_cycles` before its IRET and records when it ran.
struct NmiRun {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> handled;  // TSC at entry, before IRET
    std::uint64_t nmi_window_exits = 0, injected = 0;
    unsigned mp_runnable = 0;
};
NmiRun send_nmis(bool x2apic, unsigned count, std::uint64_t handler_cycles) {
    KvmRig rig(2, {}, x2apic);
    NmiRun out;
    constexpr std::uint32_t kIcrNmi = 4u << 8;
    const std::uint64_t ready = rig.alloc_line(), handled = rig.alloc_line();
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(ready) != 0; }, ready);
        for (unsigned i = 0; i < count; ++i) test::send_ipi(g, x2apic, test::kIcrAssert | kIcrNmi, 1);
        g.spin_until([&] { return g.load64(handled) >= count; }, handled);
    });
    rig.add_vcpu(1, 1, [&](cpu::GuestCpu& g) {
        g.set_handler(vmcs::kVectorNmi, [&](cpu::GuestCpu& c, std::uint8_t) {
            const std::uint64_t at = c.rdtsc();
            c.compute(handler_cycles);
            out.handled.emplace_back(at, c.rdtsc());
            c.lock_add(handled, 1);
        });
        g.sti();
        g.store64(ready, 1);
        g.idle_loop();
    });
    REQUIRE(rig.run());
    out.nmi_window_exits = rig.vcpu(1).exits(r(ExitReason::NmiWindow));
    out.injected = rig.stat("kvm.nmis_injected");
    return out;
}
}  // namespace

TEST_CASE("an NMI IPI is injected into its target and handled once (x2APIC)") {
    const NmiRun n = send_nmis(true, 1, 100);
    CHECK(n.handled.size() == 1);
    CHECK(n.injected == 1);
    CHECK(n.nmi_window_exits == 0);
}

TEST_CASE("an NMI IPI is injected into its target and handled once (xAPIC)") {
    const NmiRun n = send_nmis(false, 1, 100);
    CHECK(n.handled.size() == 1);
    CHECK(n.injected == 1);
}

TEST_CASE("a second NMI waits for the NMI window that the first handler's IRET opens") {
    // The second NMI IPI arrives while the first handler runs (virtual-NMI blocking): KVM
    // asks for an NMI-window exit and injects it after the IRET, never nested.
    const NmiRun n = send_nmis(true, 2, 20000);
    REQUIRE(n.handled.size() == 2);
    CHECK(n.injected == 2);
    CHECK(n.nmi_window_exits == 1);
    CHECK(n.handled[1].first > n.handled[0].second);  // after the first handler's end
}

namespace {
// Two VMs side by side, two vCPUs each on their own CPUs: vCPU 0 of each VM sends IPIs to
// APIC ID 1, which each VM has. Every IPI must reach its own VM's vCPU 1 only.
void two_vms(bool ipiv) {
    vmm::KvmParams p = params(true, ipiv);
    const auto profile = test::load_profile("spr");
    sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
    cpu::Platform platform("platform", profile, 4);
    platform.bring_up_host_apics();
    vmm::Kvm kvm(platform, p);
    constexpr unsigned kSends[2] = {5, 9};  // different counts, to tell the VMs apart
    std::uint64_t received[2] = {0, 0}, done_flags[2] = {0, 0};
    vmm::Vm* vms[2] = {&kvm.create_vm(true), &kvm.create_vm(true)};
    for (unsigned k = 0; k < 2; ++k) {
        vmm::Vm& vm = *vms[k];
        const std::uint64_t ready = vm.alloc_guest(64, 64), count = vm.alloc_guest(64, 64);
        done_flags[k] = count;
        vmm::Vcpu& s = vm.create_vcpu(0, 2 * k);
        vmm::Vcpu& t = vm.create_vcpu(1, 2 * k + 1);
        s.set_entry_point(test::rig_entry(0));
        t.set_entry_point(test::rig_entry(1));
        vm.add_code(test::rig_entry(0), [=](cpu::GuestCpu& g) {
            g.spin_until([&] { return g.load64(ready) != 0; }, ready);
            for (unsigned i = 0; i < kSends[k]; ++i) {
                test::send_ipi(g, true, test::kIcrAssert | test::kPingVector, 1);
                g.spin_until([&] { return g.load64(count) >= i + 1; }, count);
            }
            g.compute(20000);  // an IPI gone astray would have arrived by now
        });
        vm.add_code(test::rig_entry(1), [=, &received](cpu::GuestCpu& g) {
            g.set_handler(test::kPingVector, [=, &received](cpu::GuestCpu& c, std::uint8_t) {
                ++received[k];
                c.lock_add(count, 1);
                test::send_eoi(c, true);
            });
            g.sti();
            g.store64(ready, 1);
            g.idle_loop();
        });
    }
    unsigned finished = 0;
    kvm.on_guest_finished = [&](vmm::Vcpu& v) {
        if (v.id() == 0 && ++finished == 2) sc_core::sc_stop();
    };
    kvm.start();
    sc_core::sc_start(sc_core::sc_time(0.1, sc_core::SC_SEC));
    REQUIRE(finished == 2);
    CHECK(received[0] == kSends[0]);
    CHECK(received[1] == kSends[1]);
    for (unsigned k = 0; k < 2; ++k) CHECK(platform.memory().peek64(vms[k]->gpa_to_hpa(done_flags[k])) == kSends[k]);
}
}  // namespace

TEST_CASE("two VMs side by side: a guest's IPIs never reach the other VM (IPIv)") { two_vms(true); }

TEST_CASE("two VMs side by side: a guest's IPIs never reach the other VM (KVM's delivery)") { two_vms(false); }

// ---- KVM's optimized map, logical part (kvm_recalculate_logical_map): usable only when
// every software-enabled APIC with a logical ID uses one model and one bit of its cluster.
namespace {
constexpr std::uint32_t kApicLdr = 0xD0, kApicDfr = 0xE0, kIcrLogical = 1u << 11;
constexpr std::uint32_t kDfrFlat = 0xFFFFFFFF, kDfrCluster = 0x0FFFFFFF;
constexpr std::uint8_t kLogicalVector = 0x61;
// xAPIC, APICv on, IPIv off: vCPUs 1 and 2 set DFR and LDR as given, then vCPU 0 sends
// `count` fixed logical IPIs to `dest`, each after its `receivers` counted the previous.
struct LogicalRun {
    std::uint64_t got[3] = {0, 0, 0};
};
void logical_ipis(KvmRig& rig, const std::uint32_t dfr[3], const std::uint32_t ldr[3], std::uint32_t dest,
                  unsigned count, unsigned receivers, LogicalRun& out) {
    const std::uint64_t ready = rig.alloc_line(), counter = rig.alloc_line();
    for (unsigned i = 1; i < 3; ++i)
        rig.add_vcpu(i, i, [=, &out](cpu::GuestCpu& g) {
            g.set_handler(kLogicalVector, [=, &out](cpu::GuestCpu& c, std::uint8_t) {
                ++out.got[i];
                c.lock_add(counter, 1);
                test::send_eoi(c, false);
            });
            g.mmio_write32(cpu::kGuestApicBase + kApicDfr, dfr[i]);
            g.mmio_write32(cpu::kGuestApicBase + kApicLdr, ldr[i]);
            g.sti();
            g.lock_add(ready, 1);
            g.idle_loop();
        });
    rig.add_vcpu(0, 0, [=](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(ready) == 2; }, ready);
        std::uint64_t want = 0;
        for (unsigned k = 0; k < count; ++k) {
            test::send_ipi(g, false, kIcrLogical | test::kIcrAssert | kLogicalVector, dest);
            want += receivers;
            g.spin_until([&] { return g.load64(counter) >= want; }, counter);
        }
    });
}
}  // namespace

TEST_CASE("xAPIC logical IPIs through KVM's map: the flat model's members, no per-vCPU matching") {
    KvmRig rig(3, params(true, false), /*x2apic=*/false);
    const std::uint32_t dfr[3] = {kDfrFlat, kDfrFlat, kDfrFlat}, ldr[3] = {0, 0x02u << 24, 0x04u << 24};
    LogicalRun run;
    logical_ipis(rig, dfr, ldr, 0x06, 10, 2, run);  // both targets
    REQUIRE(rig.run());
    CHECK(run.got[1] == 10);
    CHECK(run.got[2] == 10);
    CHECK(rig.stat("kvm.ipis_logical_map") == 10);
    CHECK(rig.stat("kvm.ipis_slow_path") == 0);
}

TEST_CASE("xAPIC logical IPIs with the map disabled (flat and cluster models mixed): KVM's slow path") {
    KvmRig rig(3, params(true, false), /*x2apic=*/false);
    // vCPU 1 flat with logical ID 0x02; vCPU 2 cluster model, cluster 0, member bit 2.
    const std::uint32_t dfr[3] = {kDfrFlat, kDfrFlat, kDfrCluster}, ldr[3] = {0, 0x02u << 24, 0x04u << 24};
    LogicalRun run;
    logical_ipis(rig, dfr, ldr, 0x02, 10, 1, run);
    REQUIRE(rig.run());
    CHECK(rig.stat("kvm.ipis_logical_map") == 0);
    CHECK(rig.stat("kvm.ipis_slow_path") == 10);
    // Each APIC matches by its own model (SDM 11.6.2.2): 0x02 names vCPU 1 (flat, bit 1);
    // for vCPU 2 (cluster 0, bit 2) it is cluster 0, bit 1: not it.
    CHECK(run.got[1] == 10);
    CHECK(run.got[2] == 0);
}

TEST_CASE("xAPIC logical IPIs with two vCPUs of one logical ID: the map is disabled, both receive") {
    KvmRig rig(3, params(true, false), /*x2apic=*/false);
    const std::uint32_t dfr[3] = {kDfrFlat, kDfrFlat, kDfrFlat}, ldr[3] = {0, 0x02u << 24, 0x02u << 24};
    LogicalRun run;
    logical_ipis(rig, dfr, ldr, 0x02, 5, 2, run);
    REQUIRE(rig.run());
    CHECK(rig.stat("kvm.ipis_slow_path") == 5);
    CHECK(run.got[1] == 5);
    CHECK(run.got[2] == 5);
}
