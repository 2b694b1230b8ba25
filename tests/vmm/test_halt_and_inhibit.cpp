// A halted target under IPIv (posted, woken by the wakeup vector, delivered at VM entry),
// and the APICv inhibit that a guest's xAPIC ID change causes.
#include <algorithm>

#include <catch2/catch.hpp>

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
using vmcs::Field;

namespace {
constexpr std::uint64_t kLetTargetSleep = 50000;  // cycles between IPIs (ipi_halt waits 2000 ticks)
}  // namespace

TEST_CASE("ipi_halt with IPIv: the IPI is posted, the wakeup vector wakes the halted vCPU, VM entry delivers it") {
    constexpr unsigned kIpis = 12;
    vmm::KvmParams p;     // APICv and IPIv on
    p.halt_poll_ns = 0;   // the halted vCPU blocks (the halt-polling path: tests/sim/test_results.cpp)
    KvmRig rig(2, p, /*x2apic=*/true);
    PingLog log;
    test::add_ping(rig, kIpis, /*target_halts=*/true, log, kLetTargetSleep);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    // Posted by the processor (no exit on the sender) ...
    CHECK(rig.vcpu(0).exits(r(ExitReason::Wrmsr)) == 0);
    CHECK(rig.stat("ipiv.virtualized") == kIpis);
    // ... to a blocked vCPU whose PID names the wakeup vector: pi_wakeup_handler wakes it.
    CHECK(rig.stat("kvm.pi_wakeups") == kIpis);
    CHECK(rig.stat("kvm.pi_wakeup_handler") >= kIpis);
    // One HLT exit per IPI plus the first; the interrupt is delivered after VM entry
    // (virtual-interrupt delivery), not by an exit on the target.
    CHECK(rig.vcpu(1).exits(r(ExitReason::Hlt)) == kIpis + 1);
    CHECK(rig.vcpu(1).exits(r(ExitReason::ExternalInterrupt)) == 0);
    // At the end the target is blocked again: on CPU 1's wakeup list, NV = wakeup vector.
    const auto& list = rig.kvm().wakeup_list(1);
    CHECK(std::count(list.begin(), list.end(), &rig.vcpu(1)) == 1);
    model::DirectMemoryPort port(rig.platform().memory(), model::kDeviceAgent);
    pid::PostedInterruptDescriptor desc(port, rig.vcpu(1).pi_desc());
    CHECK(desc.nv() == vmm::kPostedIntrWakeupVector);
    CHECK(rig.vcpu(1).mp_state() == vmm::MpState::Halted);
}

TEST_CASE("ipi_halt without IPIv: KVM posts and wakes the blocked vCPU itself (no wakeup vector)") {
    constexpr unsigned kIpis = 12;
    vmm::KvmParams p;
    p.enable_ipiv = false;
    KvmRig rig(2, p, /*x2apic=*/true);
    PingLog log;
    test::add_ping(rig, kIpis, /*target_halts=*/true, log, kLetTargetSleep);
    REQUIRE(rig.run());
    CHECK(log.in_order());
    CHECK(rig.vcpu(0).exits(r(ExitReason::Wrmsr)) == kIpis);
    CHECK(rig.stat("kvm.pi_wakeups") == 0);
    CHECK(rig.vcpu(1).exits(r(ExitReason::Hlt)) == kIpis + 1);
    // vmx_needs_pi_wakeup() is false without IPIv (and without VT-d posting): vmx_vcpu_pi_put
    // leaves the blocked vCPU's PID alone, no wakeup list, no wakeup vector.
    CHECK(rig.stat("kvm.pi_wakeup_handler") == 0);
    CHECK(rig.kvm().wakeup_list(1).empty());
    model::DirectMemoryPort port(rig.platform().memory(), model::kDeviceAgent);
    pid::PostedInterruptDescriptor desc(port, rig.vcpu(1).pi_desc());
    CHECK(desc.nv() == vmm::kPostedIntrVector);
    CHECK(rig.vcpu(1).mp_state() == vmm::MpState::Halted);
}

TEST_CASE("a vCPU that halts with interrupts disabled is not put on the wakeup list") {
    // vmx_vcpu_pi_put arms the wakeup handler only "if (kvm_vcpu_is_blocking(vcpu) &&
    // !vmx_interrupt_blocked(vcpu))": a CLI; HLT vCPU cannot be woken by an interrupt.
    vmm::KvmParams p;  // APICv and IPIv on
    KvmRig rig(2, p, /*x2apic=*/true);
    const std::uint64_t parked = rig.alloc_line();
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(parked) != 0; }, parked);
        g.compute(20000);  // vCPU 1 is blocked by now
    });
    rig.add_vcpu(1, 1, [&](cpu::GuestCpu& g) {
        g.cli();
        g.store64(parked, 1);
        for (;;) g.hlt();
    });
    REQUIRE(rig.run());
    CHECK(rig.vcpu(1).mp_state() == vmm::MpState::Halted);
    CHECK(rig.kvm().wakeup_list(1).empty());
    model::DirectMemoryPort port(rig.platform().memory(), model::kDeviceAgent);
    pid::PostedInterruptDescriptor desc(port, rig.vcpu(1).pi_desc());
    CHECK(desc.nv() == vmm::kPostedIntrVector);
}

TEST_CASE("with IPIv on and APICv inhibited a blocking vCPU still gets the wakeup vector") {
    // vmx_needs_pi_wakeup() = vmx_can_use_ipiv() (IPIv enabled for KVM, whatever APICv's
    // state in this VM) || VT-d posting: a sender whose VMCS still has IPIv may post.
    vmm::KvmParams p;  // APICv and IPIv on
    KvmRig rig(2, p, /*x2apic=*/false);
    const std::uint64_t parked = rig.alloc_line();
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) {
        // A new xAPIC ID inhibits APICv for the whole VM.
        const std::uint32_t id = g.mmio_read32(cpu::kGuestApicBase + test::kApicIdOffset);
        g.mmio_write32(cpu::kGuestApicBase + test::kApicIdOffset, id + (0x10u << 24));
        g.store64(parked, 1);
        g.compute(40000);
    });
    rig.add_vcpu(1, 1, [&](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(parked) != 0; }, parked);
        g.sti();
        for (;;) g.hlt();
    });
    REQUIRE(rig.run());
    CHECK(rig.stat("kvm.apicv_inhibit.apic_id_modified") == 1);
    CHECK(rig.vcpu(1).mp_state() == vmm::MpState::Halted);
    const auto& list = rig.kvm().wakeup_list(1);
    CHECK(std::count(list.begin(), list.end(), &rig.vcpu(1)) == 1);
    model::DirectMemoryPort port(rig.platform().memory(), model::kDeviceAgent);
    pid::PostedInterruptDescriptor desc(port, rig.vcpu(1).pi_desc());
    CHECK(desc.nv() == vmm::kPostedIntrWakeupVector);
}

TEST_CASE("xAPIC ID change: APICv inhibited VM-wide, IPIv cleared in every VMCS, IPIs follow the new ID") {
    constexpr unsigned kIpis = 10;
    constexpr std::uint32_t kNewId = 5;
    vmm::KvmParams p;  // APICv and IPIv on
    KvmRig rig(3, p, /*x2apic=*/false);
    const std::uint64_t flag = rig.alloc_line(), counter = rig.alloc_line();
    std::vector<std::uint8_t> got1, got2;
    bool ipiv_before = false;
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) {
        ipiv_before = (g.context().vmcs.hw_read(Field::TertiaryVmExecControl) & vmcs::kTertiaryIpiVirt) != 0;
        g.spin_until([&] { return g.load64(flag) != 0; }, flag);
        g.compute(20000);
        // An IPI to the old ID reaches nobody; the new ID reaches vCPU 1.
        test::send_ipi(g, false, test::kIcrAssert | 0x41, 1);
        for (unsigned i = 0; i < kIpis; ++i) {
            test::send_ipi(g, false, test::kIcrAssert | 0x40, kNewId);
            g.spin_until([&] { return g.load64(counter) >= i + 1; }, counter);
        }
    });
    auto target = [&](std::vector<std::uint8_t>& got, bool change_id) {
        return [&, change_id](cpu::GuestCpu& g) {
            for (std::uint8_t v : {0x40, 0x41})
                g.set_handler(v, [&](cpu::GuestCpu& c, std::uint8_t vec) {
                    got.push_back(vec);
                    c.lock_add(counter, 1);
                    test::send_eoi(c, false);
                });
            if (change_id) {
                g.mmio_write32(cpu::kGuestApicBase + test::kApicIdOffset, kNewId << 24);
                g.store64(flag, 1);
            }
            g.sti();
            g.idle_loop();
        };
    };
    rig.add_vcpu(1, 1, target(got1, true));
    rig.add_vcpu(2, 2, target(got2, false));
    REQUIRE(rig.run());
    CHECK(ipiv_before);
    CHECK(rig.vm().apicv_inhibited());
    CHECK(rig.stat("kvm.apicv_inhibit.apic_id_modified") == 1);
    CHECK(rig.vcpu(1).apic_id() == kNewId);
    for (unsigned i = 0; i < 3; ++i) {
        INFO("vCPU " << i);
        const auto& v = rig.vcpu(i).context().vmcs;
        CHECK((v.hw_read(Field::TertiaryVmExecControl) & vmcs::kTertiaryIpiVirt) == 0);
        CHECK((v.hw_read(Field::SecondaryVmExecControl) & vmcs::kSecondaryApicRegisterVirtualization) == 0);
        CHECK((v.hw_read(Field::PinBasedVmExecControl) & vmcs::kPinProcessPostedInterrupts) == 0);
    }
    CHECK(got1 == std::vector<std::uint8_t>(kIpis, 0x40));
    CHECK(got2.empty());
    // The writes of the new ID: an APIC-write exit (offset 0x20); IPIs afterwards exit
    // (APIC-access: no APIC-register virtualization) and none is virtualized.
    CHECK(rig.vcpu(1).exits(r(ExitReason::ApicWrite)) == 1);
    CHECK(rig.vcpu(0).exits(r(ExitReason::ApicAccess)) == 2 * (kIpis + 1));
    CHECK(rig.stat("ipiv.virtualized") == 0);
}

TEST_CASE("writing the xAPIC ID with the vCPU's own ID inhibits nothing") {
    vmm::KvmParams p;
    KvmRig rig(2, p, /*x2apic=*/false);
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) { g.mmio_write32(cpu::kGuestApicBase + test::kApicIdOffset, 0); });
    rig.add_vcpu(1, 1, [&](cpu::GuestCpu& g) { g.idle_loop(); });
    REQUIRE(rig.run());
    CHECK_FALSE(rig.vm().apicv_inhibited());
}

TEST_CASE("the APICv inhibit waits until the kicked vCPUs have left guest mode") {
    // kvm_make_all_cpus_request(KVM_REQ_APICV_UPDATE) is a KVM_REQUEST_WAIT request: the
    // inhibiting vCPU kicks every vCPU in guest mode and waits for the kicks to be taken,
    // so no vCPU keeps running with IPIv once the ID write has completed.
    vmm::KvmParams p;  // APICv and IPIv on
    KvmRig rig(2, p, /*x2apic=*/false);
    const std::uint64_t running = rig.alloc_line(), done = rig.alloc_line();
    std::uint64_t target_exits_when_write_done = 99;
    rig.add_vcpu(0, 0, [&](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(running) != 0; }, running);
        g.compute(5000);
        const std::uint32_t id = g.mmio_read32(cpu::kGuestApicBase + test::kApicIdOffset);
        g.mmio_write32(cpu::kGuestApicBase + test::kApicIdOffset, id + (0x10u << 24));
        target_exits_when_write_done = rig.vcpu(1).exits(r(ExitReason::ExternalInterrupt));
        g.store64(done, 1);
    });
    rig.add_vcpu(1, 1, [&](cpu::GuestCpu& g) {
        g.store64(running, 1);
        g.spin_until([&] { return g.load64(done) != 0; }, done);  // in guest mode all along
        g.idle_loop();
    });
    REQUIRE(rig.run());
    CHECK(rig.stat("kvm.apicv_inhibit.apic_id_modified") == 1);
    CHECK(target_exits_when_write_done >= 1);
}
