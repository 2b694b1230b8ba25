// Nested VMX: INIT and SIPI for L2 (KVM commit bf0cd88ce363 "emulate wait-for-SIPI and
// SIPI-VMExit" and the 2022 fall-through fix; kvm-reference.md 5, vtx-semantics.md 8.4-8.6).
//
// First the order of vmx_check_nested_events as a plain function, then scenarios on the
// KVM-like VMM with a small L1 hypervisor written here against the guest API: it does not
// monitor the local APIC (no external-interrupt exiting, an MSR bitmap of zeros), so L0
// traps L2's ICR writes and turns INIT/SIPI for a vCPU in L2 into VM exits to L1.
//
// Assertions are in the test bodies after the simulation: guest threads only record.
#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <systemc>

#include "apic/registers.hpp"
#include "cpu/guest.hpp"
#include "cpu/platform.hpp"
#include "model/profile.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/exit_info.hpp"
#include "vmm/kvm.hpp"
#include "vmm/nested.hpp"

namespace {

using vtx::vmcs::ActivityState;
using vtx::vmcs::ExitReason;
using vtx::vmcs::Field;
using vtx::vmm::NestedEventAction;
using vtx::vmm::NestedEventDecision;
using vtx::vmm::NestedEventInput;
namespace cpu = vtx::cpu;
namespace vmm = vtx::vmm;
namespace vmcs = vtx::vmcs;
namespace model = vtx::model;

constexpr std::uint16_t kInit = static_cast<std::uint16_t>(ExitReason::InitSignal);
constexpr std::uint16_t kSipi = static_cast<std::uint16_t>(ExitReason::Sipi);
constexpr std::uint16_t kVmcall = static_cast<std::uint16_t>(ExitReason::Vmcall);
constexpr std::uint8_t kVector = 0x9A;  // SIPI vector: L2 AP code at 0x9A000

// ---- vmx_check_nested_events, INIT/SIPI part -------------------------------------------
NestedEventDecision decide(bool init, bool sipi, bool init_received, bool blocked = false,
                           std::uint8_t vector = kVector) {
    NestedEventInput in;
    in.init_pending = init;
    in.sipi_pending = sipi;
    in.sipi_vector = vector;
    in.init_received = init_received;
    in.block_nested_events = blocked;
    return vtx::vmm::vmx_check_nested_events(in);
}

}  // namespace

TEST_CASE("nested events: INIT outside wait-for-SIPI is an INIT VM exit", "[nested][events]") {
    const auto d = decide(true, false, false);
    CHECK(d.action == NestedEventAction::InitVmExit);
    CHECK(d.clear_init);
    CHECK_FALSE(d.clear_sipi);
    CHECK(d.exit_qualification == 0);
    CHECK_FALSE(d.falls_through);
}

TEST_CASE("nested events: INIT in wait-for-SIPI is consumed without an exit", "[nested][events]") {
    const auto d = decide(true, false, true);
    CHECK(d.action == NestedEventAction::InitInWaitForSipi);
    CHECK(d.clear_init);
    CHECK_FALSE(d.falls_through);
}

TEST_CASE("nested events: INIT ranks above SIPI and leaves it pending", "[nested][events]") {
    for (bool wfs : {false, true}) {
        const auto d = decide(true, true, wfs);
        CHECK(d.clear_init);
        CHECK_FALSE(d.clear_sipi);
        CHECK(d.action == (wfs ? NestedEventAction::InitInWaitForSipi : NestedEventAction::InitVmExit));
    }
}

TEST_CASE("nested events: SIPI in wait-for-SIPI exits with the vector as qualification", "[nested][events]") {
    const auto d = decide(false, true, true, false, 0x9A);
    CHECK(d.action == NestedEventAction::SipiVmExit);
    CHECK(d.clear_sipi);
    CHECK(d.exit_qualification == 0x9A);
    CHECK_FALSE(d.falls_through);
    CHECK(decide(false, true, true, false, 0x01).exit_qualification == 0x01);
    CHECK(decide(false, true, true, false, 0xFF).exit_qualification == 0xFF);
}

TEST_CASE("nested events: SIPI outside wait-for-SIPI is ignored and falls through", "[nested][events]") {
    const auto d = decide(false, true, false);
    CHECK(d.action == NestedEventAction::SipiIgnored);
    CHECK(d.clear_sipi);  // consumed: it does not come back
    CHECK(d.falls_through);
    CHECK(d.exit_qualification == 0);
}

TEST_CASE("nested events: blocked nested events return busy and clear nothing", "[nested][events]") {
    for (bool init : {false, true})
        for (bool wfs : {false, true}) {
            const auto d = decide(init, !init, wfs, true);
            CHECK(d.action == NestedEventAction::Busy);
            CHECK_FALSE(d.clear_init);
            CHECK_FALSE(d.clear_sipi);
            CHECK_FALSE(d.falls_through);
        }
}

TEST_CASE("nested events: nothing pending falls through", "[nested][events]") {
    for (bool wfs : {false, true}) {
        const auto d = decide(false, false, wfs);
        CHECK(d.action == NestedEventAction::None);
        CHECK(d.falls_through);
        CHECK_FALSE(d.clear_init);
        CHECK_FALSE(d.clear_sipi);
    }
}

TEST_CASE("nested events: INIT is blocked only in L1 VMX root operation", "[nested][events]") {
    CHECK(vtx::vmm::vmx_apic_init_signal_blocked(true, false));
    CHECK_FALSE(vtx::vmm::vmx_apic_init_signal_blocked(true, true));
    CHECK_FALSE(vtx::vmm::vmx_apic_init_signal_blocked(false, false));
}

// ---- scenarios on the VMM ----------------------------------------------------------------
namespace {

constexpr std::uint64_t kL1Entry = 0x100000;
constexpr std::uint64_t kL2BspEntry = 0x200000;
constexpr std::uint64_t kL2ParkEntry = 0x201000;
constexpr std::uint64_t kL2ActiveApEntry = 0x202000;
constexpr std::uint32_t kIcrInit = 0x4500;     // INIT, level assert, physical
constexpr std::uint32_t kIcrStartup = 0x0600;  // STARTUP
constexpr std::uint32_t kMsrIcr = 0x830, kMsrApicId = 0x802;
constexpr std::uint64_t kSipiDelay = 100000;

struct L1Seen {
    std::uint64_t reason = 0, qualification = 0, activity = 0;
};

// A platform, the VMM, one VM with `n` vCPUs on `n` CPUs, and the L1 hypervisor program.
class NestedBed {
public:
    NestedBed(unsigned n, bool x2apic = true)
        : m_n(n), m_x2apic(x2apic),
          m_profile(model::CpuProfile::load(std::string(VTX_SOURCE_DIR) + "/profiles/spr.json")) {
        sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
        platform = std::make_unique<cpu::Platform>("platform", m_profile, n);
        platform->bring_up_host_apics();
        kvm = std::make_unique<vmm::Kvm>(*platform, vmm::KvmParams{});
        vm = &kvm->create_vm(x2apic);
        m_lines = vm->alloc_guest(64 * 8 * n, 64);
        seen.assign(n, {});
        l2_start.assign(n, kL2ParkEntry);
        l2_activity.assign(n, ActivityState::Hlt);
        l2_start[0] = kL2BspEntry;
        l2_activity[0] = ActivityState::Active;
        before_launch.assign(n, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            m_vmxon.push_back(vm->alloc_guest(model::kPageSize, model::kPageSize));
            m_vmcs12.push_back(vm->alloc_guest(model::kPageSize, model::kPageSize));
            m_bitmap.push_back(vm->alloc_guest(model::kPageSize, model::kPageSize));
            vmm::Vcpu& v = vm->create_vcpu(i, i);
            v.set_entry_point(kL1Entry + 0x1000 * i);
            vm->add_code(kL1Entry + 0x1000 * i, [this, i](cpu::GuestCpu& g) { l1(g, i); });
        }
        vm->add_code(kL2ParkEntry, [](cpu::GuestCpu& g) {
            for (;;) g.hlt();
        });
        kvm->on_guest_finished = [this](vmm::Vcpu& v) {
            if (v.id() == 0) {
                finished = true;
                sc_core::sc_stop();
            }
        };
    }

    void run() {
        kvm->start();
        sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_SEC));
    }

    const vmm::NestedVmx& nested(unsigned i) const {
        const vmm::NestedVmx* n = vm->vcpus()[i]->nested();
        REQUIRE(n != nullptr);
        return *n;
    }
    std::uint64_t flag(std::uint64_t gpa) const { return platform->memory().peek64(vm->gpa_to_hpa(gpa)); }

    // Shared lines in guest memory.
    std::uint64_t ready(unsigned i) const { return m_lines + 64 * i; }
    std::uint64_t online(unsigned i) const { return m_lines + 64 * (m_n + i); }
    std::uint64_t l1_done(unsigned i) const { return m_lines + 64 * (2 * m_n + i); }
    std::uint64_t all_done() const { return m_lines + 64 * (3 * m_n); }
    std::uint64_t scratch(unsigned k) const { return m_lines + 64 * (4 * m_n + k); }

    // L2 helpers: the ICR (x2APIC WRMSR 0x830, or xAPIC ICR2 then ICR) and the APIC ID.
    void send_icr(cpu::GuestCpu& g, std::uint32_t icr, std::uint32_t dest) {
        if (m_x2apic) {
            g.wrmsr(kMsrIcr, (std::uint64_t{dest} << 32) | icr);
        } else {
            g.mmio_write32(cpu::kGuestApicBase + 0x310, dest << 24);
            g.mmio_write32(cpu::kGuestApicBase + 0x300, icr);
        }
    }
    std::uint32_t apic_id(cpu::GuestCpu& g) {
        if (m_x2apic) return static_cast<std::uint32_t>(g.rdmsr(kMsrApicId));
        return g.mmio_read32(cpu::kGuestApicBase + 0x20) >> 24;
    }
    // The L2 AP program at the SIPI vector: check in, wait for the end, VMCALL to L1.
    void add_l2_ap_code() {
        vm->add_code(std::uint64_t{kVector} << 12, [this](cpu::GuestCpu& g) {
            const std::uint32_t id = apic_id(g);
            if (id < m_n) g.store64(online(id), 1);
            g.spin_until([&] { return g.load64(all_done()) != 0; }, all_done());
            g.vmcall(0);
        });
    }

    std::unique_ptr<cpu::Platform> platform;
    std::unique_ptr<vmm::Kvm> kvm;
    vmm::Vm* vm = nullptr;
    bool finished = false;
    std::vector<std::vector<L1Seen>> seen;          // what each L1 read after each exit
    std::vector<std::string> l1_error = std::vector<std::string>(16);
    std::vector<std::uint64_t> l2_start;            // L2's RIP
    std::vector<ActivityState> l2_activity;         // L2's activity state at VMLAUNCH
    std::vector<std::function<void(cpu::GuestCpu&)>> before_launch;  // L1, just before VMLAUNCH
    bool stop_after_first_exit = false;             // L1 of the APs: stop after one exit

private:
    // The L1 hypervisor: does not monitor the local APIC.
    void l1(cpu::GuestCpu& g, unsigned i) {
        bool ok = g.vmxon(m_vmxon[i]) && g.vmclear(m_vmcs12[i]) && g.vmptrld(m_vmcs12[i]);
        auto w = [&](Field f, std::uint64_t value) { ok = g.vmwrite(f, value) && ok; };
        w(Field::PinBasedVmExecControl, vmcs::kPinDefault1);
        w(Field::CpuBasedVmExecControl, vmcs::kPrimaryDefault1 | vmcs::kPrimaryUseMsrBitmaps);
        w(Field::MsrBitmap, m_bitmap[i]);
        w(Field::GuestRflags, 0x2);
        w(Field::GuestCsBase, 0);
        w(Field::GuestRip, l2_start[i]);
        w(Field::GuestActivityState, static_cast<std::uint64_t>(l2_activity[i]));
        if (!ok) l1_error[i] = "VMX set-up failed";
        g.store64(ready(i), 1);
        if (i == 0)
            for (unsigned j = 1; j < m_n; ++j) g.spin_until([&] { return g.load64(ready(j)) != 0; }, ready(j));
        if (before_launch[i]) before_launch[i](g);
        bool launched = false;
        while (l1_error[i].empty()) {
            if (!(launched ? g.vmresume() : g.vmlaunch())) {
                l1_error[i] = "VM entry failed";
                break;
            }
            launched = true;
            L1Seen s;
            s.reason = g.vmread(Field::VmExitReason);
            s.qualification = g.vmread(Field::ExitQualification);
            s.activity = g.vmread(Field::GuestActivityState);
            seen[i].push_back(s);
            if (i != 0 && stop_after_first_exit) break;
            if (s.reason == kInit) {
                w(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::WaitForSipi));
            } else if (s.reason == kSipi) {
                w(Field::GuestCsSelector, (s.qualification & 0xFF) << 8);
                w(Field::GuestCsBase, (s.qualification & 0xFF) << 12);
                w(Field::GuestRip, 0);
                w(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
            } else {
                break;  // VMCALL (L2 done) or anything else: stop
            }
        }
        g.store64(l1_done(i), 1);
        if (i == 0)
            for (unsigned j = 1; j < m_n; ++j) g.spin_until([&] { return g.load64(l1_done(j)) != 0; }, l1_done(j));
    }

    unsigned m_n;
    bool m_x2apic;
    model::CpuProfile m_profile;
    std::uint64_t m_lines = 0;
    std::vector<std::uint64_t> m_vmxon, m_vmcs12, m_bitmap;
};

// INIT-SIPI-SIPI from L2's BSP to every AP, then one more SIPI to AP 1 once all are online.
void add_bsp_init_sipi_sipi(NestedBed& bed, unsigned n) {
    bed.vm->add_code(kL2BspEntry, [&bed, n](cpu::GuestCpu& g) {
        for (unsigned j = 1; j < n; ++j) bed.send_icr(g, kIcrInit, j);
        g.compute(kSipiDelay);
        for (unsigned j = 1; j < n; ++j) bed.send_icr(g, kIcrStartup | kVector, j);
        g.compute(kSipiDelay / 10);
        for (unsigned j = 1; j < n; ++j) bed.send_icr(g, kIcrStartup | kVector, j);
        for (unsigned j = 1; j < n; ++j)
            g.spin_until([&] { return g.load64(bed.online(j)) != 0; }, bed.online(j));
        g.store64(bed.scratch(0), 1);  // all online: the extra SIPI follows
        bed.send_icr(g, kIcrStartup | kVector, 1);
        g.compute(kSipiDelay);
        g.store64(bed.all_done(), 1);
        g.vmcall(0);
    });
}

void check_bring_up(NestedBed& bed, unsigned n, bool expect_init_exit) {
    REQUIRE(bed.finished);
    for (unsigned i = 0; i < n; ++i) CHECK(bed.l1_error[i].empty());
    for (unsigned i = 1; i < n; ++i) {
        INFO("AP " << i);
        CHECK(bed.flag(bed.online(i)) == 1);  // the L2 AP came online
        const auto& l1 = bed.nested(i).l1_exits;
        std::vector<std::uint16_t> want;
        if (expect_init_exit) want.push_back(kInit);
        want.push_back(kSipi);
        want.push_back(kVmcall);
        REQUIRE(l1.size() == want.size());
        for (std::size_t k = 0; k < want.size(); ++k) CHECK(l1[k].basic() == want[k]);
        const std::size_t sipi = expect_init_exit ? 1 : 0;
        CHECK(l1[sipi].qualification == kVector);
        if (expect_init_exit) CHECK(l1[0].qualification == 0);
        // What L1 read with VMREAD agrees with what L0 reflected.
        REQUIRE(bed.seen[i].size() == want.size());
        for (std::size_t k = 0; k < want.size(); ++k) {
            CHECK(bed.seen[i][k].reason == want[k]);
            CHECK(bed.seen[i][k].qualification == l1[k].qualification);
        }
        // The activity state saved in vmcs12 is the one before the exit (SDM 27.3.4):
        // HLT for the INIT exit of a parked AP, wait-for-SIPI for the SIPI exit.
        if (expect_init_exit) CHECK(bed.seen[i][0].activity == static_cast<std::uint64_t>(ActivityState::Hlt));
        CHECK(bed.seen[i][sipi].activity == static_cast<std::uint64_t>(ActivityState::WaitForSipi));
    }
    // The extra SIPI reached AP 1 while its L2 ran: ignored, no exit.
    CHECK(bed.nested(1).sipi_ignored >= 1);
}

}  // namespace

TEST_CASE("Nested L2 AP bring-up by INIT-SIPI-SIPI (x2APIC)", "[nested][vmm]") {
    constexpr unsigned n = 3;
    NestedBed bed(n, true);
    add_bsp_init_sipi_sipi(bed, n);
    bed.add_l2_ap_code();
    bed.run();
    check_bring_up(bed, n, true);
    // The BSP's L1 saw only L2's final VMCALL.
    REQUIRE(bed.nested(0).l1_exits.size() == 1);
    CHECK(bed.nested(0).l1_exits[0].basic() == kVmcall);
}

TEST_CASE("Nested L2 AP bring-up by INIT-SIPI-SIPI (xAPIC MMIO ICR)", "[nested][vmm]") {
    constexpr unsigned n = 3;
    NestedBed bed(n, false);
    add_bsp_init_sipi_sipi(bed, n);
    bed.add_l2_ap_code();
    bed.run();
    check_bring_up(bed, n, true);
}

TEST_CASE("Nested: an INIT to an L2 in wait-for-SIPI is consumed without exit", "[nested][vmm]") {
    constexpr unsigned n = 2;
    NestedBed bed(n, true);
    bed.l2_activity[1] = ActivityState::WaitForSipi;  // L1 starts its AP's L2 in wait-for-SIPI
    add_bsp_init_sipi_sipi(bed, n);
    bed.add_l2_ap_code();
    bed.run();
    check_bring_up(bed, n, false);
    CHECK(bed.nested(1).init_in_wait_for_sipi == 1);
}

TEST_CASE("Nested: a SIPI to an L2 vCPU not in wait-for-SIPI falls through (ignored)", "[nested][vmm]") {
    constexpr unsigned n = 2;
    NestedBed bed(n, true);
    // AP 1's L2 is active from the start, counting loop iterations until the end.
    bed.l2_start[1] = kL2ActiveApEntry;
    bed.l2_activity[1] = ActivityState::Active;
    bed.vm->add_code(kL2ActiveApEntry, [&bed](cpu::GuestCpu& g) {
        g.store64(bed.online(1), 1);
        g.spin_until([&] { return g.load64(bed.all_done()) != 0; }, bed.all_done());
        g.store64(bed.scratch(1), 1);  // L2 went on running after the SIPI
        g.vmcall(0);
    });
    bed.vm->add_code(kL2BspEntry, [&bed](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(bed.online(1)) != 0; }, bed.online(1));
        bed.send_icr(g, kIcrStartup | kVector, 1);  // no INIT before it
        g.compute(kSipiDelay);
        bed.send_icr(g, kIcrStartup | kVector, 1);
        g.compute(kSipiDelay);
        g.store64(bed.all_done(), 1);
        g.vmcall(0);
    });
    bed.run();
    REQUIRE(bed.finished);
    const auto& ap = bed.nested(1);
    CHECK(ap.sipi_ignored == 2);
    REQUIRE(ap.l1_exits.size() == 1);  // only L2's final VMCALL: no SIPI exit
    CHECK(ap.l1_exits[0].basic() == kVmcall);
    CHECK(bed.flag(bed.scratch(1)) == 1);
    // L0 did see the ICR writes (WRMSR exits from L2) and kicked the target (an external-
    // interrupt exit to L0 each time, handled there).
    CHECK(bed.vm->vcpus()[0]->exits(static_cast<std::uint16_t>(ExitReason::Wrmsr)) == 2);
    CHECK(bed.vm->vcpus()[1]->exits(static_cast<std::uint16_t>(ExitReason::ExternalInterrupt)) >= 2);
}

TEST_CASE("Nested: INIT is blocked in L1 VMX root operation until L1 enters L2", "[nested][vmm]") {
    constexpr unsigned n = 2;
    NestedBed bed(n, true);
    bed.stop_after_first_exit = true;
    bed.l2_start[1] = kL2ActiveApEntry;
    bed.l2_activity[1] = ActivityState::Active;
    bool l1_ran_after_init = false;
    // AP 1's L1 waits in VMX root operation until L2's BSP has sent the INIT, then runs on
    // for a while, then enters its L2.
    bed.before_launch[1] = [&bed, &l1_ran_after_init](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(bed.scratch(0)) != 0; }, bed.scratch(0));
        g.compute(kSipiDelay);
        l1_ran_after_init = true;
    };
    bed.vm->add_code(kL2ActiveApEntry, [](cpu::GuestCpu& g) { g.idle_loop(); });
    bed.vm->add_code(kL2BspEntry, [&bed](cpu::GuestCpu& g) {
        bed.send_icr(g, kIcrInit, 1);
        g.store64(bed.scratch(0), 1);
        g.spin_until([&] { return g.load64(bed.l1_done(1)) != 0; }, bed.l1_done(1));
        g.store64(bed.all_done(), 1);
        g.vmcall(0);
    });
    bed.run();
    REQUIRE(bed.finished);
    CHECK(l1_ran_after_init);  // INIT did nothing to L1 in VMX root operation
    const auto& ap = bed.nested(1);
    REQUIRE(ap.l1_exits.size() == 1);
    CHECK(ap.l1_exits[0].basic() == kInit);  // the latched INIT exits at the entry into L2
    CHECK(bed.seen[1].at(0).activity == static_cast<std::uint64_t>(ActivityState::Active));
    // The entry was pending when the INIT was checked (block_nested_events: -EBUSY), so L0
    // entered L2 with an immediate exit requested by a self-IPI; the INIT exit followed
    // the external-interrupt exit to L0. (With that self-IPI L2 may retire a few
    // instructions first; docs/nested.md.)
    CHECK(ap.events_busy >= 1);
    CHECK(bed.vm->vcpus()[1]->exits(static_cast<std::uint16_t>(ExitReason::ExternalInterrupt)) >= 2);
}

TEST_CASE("vmx_init_signal_test: an INIT latched in VMX root operation takes effect at VMXOFF", "[nested][vmm]") {
    // kvm-unit-tests vmx_init_signal_test: INIT is blocked while the target is in (L1's) VMX
    // root operation; KVM requests event processing on VMXOFF, so the latched INIT then
    // resets the vCPU into wait-for-SIPI (KVM_MP_STATE_INIT_RECEIVED) and a SIPI restarts it.
    constexpr std::uint8_t kRestartVector = 0x9B;
    sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
    const auto profile = model::CpuProfile::load(std::string(VTX_SOURCE_DIR) + "/profiles/spr.json");
    cpu::Platform platform("platform", profile, 2);
    platform.bring_up_host_apics();
    vmm::Kvm kvm(platform, vmm::KvmParams{});
    vmm::Vm& vm = kvm.create_vm(true);
    const std::uint64_t lines = vm.alloc_guest(64 * 4, 64);
    const std::uint64_t in_vmx = lines, leave = lines + 64, progress = lines + 128, restarted = lines + 192;
    const std::uint64_t vmxon_region = vm.alloc_guest(model::kPageSize, model::kPageSize);
    bool ran_after_vmxoff = false, vmxon_ok = false;
    std::uint64_t progress_when_init_sent = 0, progress_later = 0;
    vmm::MpState state_before_sipi = vmm::MpState::Runnable;
    vmm::Vcpu& bsp = vm.create_vcpu(0, 0);
    vmm::Vcpu& ap = vm.create_vcpu(1, 1);
    bsp.set_entry_point(kL1Entry);
    ap.set_entry_point(kL1Entry + 0x1000);
    vm.add_code(kL1Entry, [&](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(in_vmx) != 0; }, in_vmx);
        g.wrmsr(kMsrIcr, (std::uint64_t{1} << 32) | kIcrInit);  // blocked: the AP is in VMX root
        progress_when_init_sent = g.load64(progress);
        g.compute(50000);
        progress_later = g.load64(progress);
        g.store64(leave, 1);  // the AP executes VMXOFF: the INIT is taken then
        g.compute(50000);
        g.load64(leave);  // an instruction boundary: this vCPU's time is now
        state_before_sipi = ap.mp_state();
        g.wrmsr(kMsrIcr, (std::uint64_t{1} << 32) | kIcrStartup | kRestartVector);
        g.spin_until([&] { return g.load64(restarted) != 0; }, restarted);
    });
    vm.add_code(kL1Entry + 0x1000, [&](cpu::GuestCpu& g) {
        vmxon_ok = g.vmxon(vmxon_region);
        g.store64(in_vmx, 1);
        while (g.load64(leave) == 0) {  // VMX root operation, running
            g.lock_add(progress, 1);
            g.compute(1000);
        }
        g.vmxoff();
        ran_after_vmxoff = true;  // never: the INIT resets the vCPU at the VMXOFF
        for (;;) g.hlt();
    });
    vm.add_code(std::uint64_t{kRestartVector} << 12, [&](cpu::GuestCpu& g) {
        g.store64(restarted, 1);
        for (;;) g.hlt();
    });
    bool finished = false;
    kvm.on_guest_finished = [&](vmm::Vcpu& v) {
        if (v.id() == 0) {
            finished = true;
            sc_core::sc_stop();
        }
    };
    kvm.start();
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_SEC));
    REQUIRE(finished);
    CHECK(vmxon_ok);
    CHECK(progress_later > progress_when_init_sent);  // INIT blocked: the AP kept running
    CHECK_FALSE(ran_after_vmxoff);
    CHECK(state_before_sipi == vmm::MpState::InitReceived);
    CHECK(platform.memory().peek64(vm.gpa_to_hpa(restarted)) == 1);
}
