// `nested_ap_boot`: a lightweight L1 hypervisor that does not monitor the local APIC runs
// an L2 guest on every vCPU and starts the L2 guest's APs the way the wait-for-SIPI patch
// describes (KVM commit bf0cd88ce363; kvm-reference.md 5.1): L2's BSP writes its ICR
// (INIT, SIPI, SIPI) to each AP; L0 traps the writes and latches INIT/SIPI for the target
// vCPU, which is in L2; L0 emulates an INIT VM exit to the AP's L1, which sets
// wait-for-SIPI and resumes (L0: mp_state INIT_RECEIVED); the SIPI becomes a SIPI VM exit
// with the vector; L1 sets CS:IP from it, activity ACTIVE, resumes, and the L2 AP runs.
// Once every L2 AP is online, L2's BSP sends one more SIPI to an active AP: it must cause
// no VM exit (ignored outside wait-for-SIPI).
//
// The L1 hypervisor (one program per vCPU): VMXON, VMCLEAR/VMPTRLD of its VMCS for L2,
// VMWRITEs (no external-interrupt exiting, an MSR bitmap of zeros: the APIC is L2's),
// L2's BSP active at its entry, L2's APs parked (HLT, or wait-for-SIPI with
// workload.ap_start=wait_sipi), then VMLAUNCH/VMRESUME in a loop, handling INIT (3), SIPI
// (4) and L2's final VMCALL (18), and recording every exit it reads with VMREAD.
//
// Parameters: workload.ap_start = hlt (default) | wait_sipi; workload.sipi_delay = cycles
// L2's BSP waits after INIT and after the last SIPI (default 100000); the second SIPI
// follows the first after a tenth of it (the MP protocol's 10 ms and 200 us, scaled).
// L2's BSP waits for its APs for at most 100 delays: a SIPI that reaches an AP whose L1
// is not back in wait-for-SIPI is lost (dropped in VMX root operation), as on hardware,
// and that AP never comes online (the check says so).
#include <memory>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/exit_info.hpp"
#include "workloads/kut.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

using vmcs::ActivityState;
using vmcs::ExitReason;
using vmcs::Field;

constexpr std::uint64_t kL1Entry = kBspEntry;           // L1 of vCPU i at kL1Entry + 0x1000 * i
constexpr std::uint64_t kL2BspEntry = 0x200000;         // L2's BSP
constexpr std::uint64_t kL2ParkEntry = 0x201000;        // where parked L2 APs would resume
constexpr std::uint64_t kDefaultSipiDelay = 100000;     // cycles
constexpr std::uint64_t kOnlineTimeout = 100;           // sipi_delays L2's BSP waits for its APs
constexpr std::uint64_t kRflagsFixed = 0x2;
// The architectural INIT state of CS:IP (SDM 10.1.4 / 9.1.1), loaded by L1 on an INIT exit.
constexpr std::uint64_t kInitRip = 0xFFF0, kInitCsSelector = 0xF000, kInitCsBase = 0xFFFF0000;
constexpr std::uint32_t kApicIdReg = 0x20;

std::uint64_t code(ExitReason r) { return static_cast<std::uint64_t>(r); }
std::uint64_t state(ActivityState s) { return static_cast<std::uint64_t>(s); }

class NestedApBoot : public Workload {
public:
    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        m_n = cfg.vcpus;
        if (m_n < 2 || m_n > 64) throw model::ConfigError("nested_ap_boot: --vcpus must be 2..64");
        m_x2apic = cfg.x2apic;
        for (const auto& [key, value] : cfg.params) {
            if (key == "ap_start") {
                if (value == "hlt")
                    m_ap_start = ActivityState::Hlt;
                else if (value == "wait_sipi")
                    m_ap_start = ActivityState::WaitForSipi;
                else
                    throw model::ConfigError("nested_ap_boot: workload.ap_start must be hlt or wait_sipi");
            } else if (key == "sipi_delay") {
                m_sipi_delay = parse_param("nested_ap_boot", key, value, 10);
            } else {
                throw model::ConfigError("nested_ap_boot: unknown parameter workload." + key +
                                         " (known: ap_start, sipi_delay)");
            }
        }
        m_lines = vm.alloc_guest(64 * (3 * m_n + 1), 64);
        for (unsigned i = 0; i < m_n; ++i) {
            m_vmxon.push_back(vm.alloc_guest(model::kPageSize, model::kPageSize));
            m_vmcs12.push_back(vm.alloc_guest(model::kPageSize, model::kPageSize));
            m_msr_bitmap.push_back(vm.alloc_guest(model::kPageSize, model::kPageSize));  // zeros
        }
        m_log.assign(m_n, {});
        for (unsigned i = 0; i < m_n; ++i) {
            vmm::Vcpu& v = vm.create_vcpu(i, i % cfg.pcpus);  // L1 runs on every vCPU
            v.set_entry_point(kL1Entry + 0x1000 * i);
            vm.add_code(kL1Entry + 0x1000 * i, [this, i](cpu::GuestCpu& g) { l1_main(g, i); });
        }
        vm.add_code(kL2BspEntry, [this](cpu::GuestCpu& g) { l2_bsp(g); });
        vm.add_code(kL2ParkEntry, [](cpu::GuestCpu& g) {
            for (;;) g.hlt();
        });
        vm.add_code(kApTrampolineVector << 12, [this](cpu::GuestCpu& g) { l2_ap(g); });
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        const bool expect_init_exit = m_ap_start != ActivityState::WaitForSipi;
        unsigned good_aps = 0, online = 0;
        std::uint64_t extra_sipi_exits = 0, ignored = 0, init_consumed = 0;
        std::string problems;
        for (unsigned i = 1; i < m_n; ++i) {
            const Log& log = m_log[i];
            std::vector<std::uint64_t> want;
            if (expect_init_exit) want.push_back(code(ExitReason::InitSignal));
            want.push_back(code(ExitReason::Sipi));
            bool good = log.error.empty() && log.exits.size() >= want.size();
            for (std::size_t k = 0; good && k < want.size(); ++k) good = log.exits[k].reason == want[k];
            if (good) good = (log.exits[want.size() - 1].qualification & 0xFF) == kApTrampolineVector;
            std::uint64_t sipi_exits = 0;
            for (const auto& e : log.exits) sipi_exits += e.reason == code(ExitReason::Sipi);
            extra_sipi_exits += sipi_exits > 0 ? sipi_exits - 1 : 0;
            good = good && sipi_exits == 1;
            if (good) ++good_aps;
            else if (problems.empty())
                problems = "; AP " + std::to_string(i) + " L1 saw " + describe(log);
            if (kvm.platform().memory().peek64(vm.gpa_to_hpa(online_flag(i))) != 0) ++online;
            if (const vmm::NestedVmx* n = vm.vcpus()[i]->nested()) {
                ignored += n->sipi_ignored + n->sipi_dropped_in_root;
                init_consumed += n->init_in_wait_for_sipi;
            }
        }
        const unsigned aps = m_n - 1;
        if (online < aps)
            problems += "; SIPIs that reach an AP before its L1 is back in wait-for-SIPI are lost: "
                        "raise workload.sipi_delay (above the host time slice when vCPUs share CPUs)";
        r.ok = good_aps == aps && online == aps && extra_sipi_exits == 0 && m_log[0].error.empty();
        r.check = std::string("L1 saw ") + (expect_init_exit ? "INIT (3) then SIPI (4, vector 0x9a)"
                                                             : "SIPI (4, vector 0x9a) and no INIT exit") +
                  " at " + std::to_string(good_aps) + "/" + std::to_string(aps) + " APs; " +
                  std::to_string(online) + "/" + std::to_string(aps) + " L2 APs online; SIPI exits beyond the first: " +
                  std::to_string(extra_sipi_exits) + problems + (m_log[0].error.empty() ? "" : "; BSP: " + m_log[0].error);
        r.iterations = aps;
        r.total_iterations = aps;
        r.values["aps_online"] = online;
        r.values["sipis_without_exit"] = static_cast<double>(ignored);
        r.values["inits_in_wait_for_sipi"] = static_cast<double>(init_consumed);
        if (online == aps) r.values["bringup_tsc"] = static_cast<double>(m_bringup_tsc);
        return r;
    }

private:
    struct Exit {
        std::uint64_t reason = 0;
        std::uint64_t qualification = 0;
    };
    struct Log {
        std::vector<Exit> exits;
        std::string error;
    };

    std::uint64_t ready(unsigned i) const { return m_lines + 64 * i; }
    std::uint64_t online_flag(unsigned i) const { return m_lines + 64 * (m_n + i); }
    std::uint64_t l1_done(unsigned i) const { return m_lines + 64 * (2 * m_n + i); }
    std::uint64_t all_done() const { return m_lines + 64 * (3 * m_n); }

    static std::string describe(const Log& log) {
        std::string s = "[";
        for (const auto& e : log.exits) {
            if (s.size() > 1) s += ", ";
            s += std::to_string(e.reason);
            if (e.reason == code(ExitReason::Sipi)) s += "(" + std::to_string(e.qualification) + ")";
        }
        s += "]";
        if (!log.error.empty()) s += " (" + log.error + ")";
        return s;
    }

    // ---- the L1 hypervisor ----
    void l1_main(cpu::GuestCpu& g, unsigned i) {
        Log& log = m_log[i];
        bool ok = g.vmxon(m_vmxon[i]) && g.vmclear(m_vmcs12[i]) && g.vmptrld(m_vmcs12[i]);
        auto w = [&](Field f, std::uint64_t value) { ok = g.vmwrite(f, value) && ok; };
        // It does not monitor the local APIC: no external-interrupt exiting, and an MSR
        // bitmap of zeros (the x2APIC MSRs are L2's).
        w(Field::PinBasedVmExecControl, vmcs::kPinDefault1);
        w(Field::CpuBasedVmExecControl, vmcs::kPrimaryDefault1 | vmcs::kPrimaryUseMsrBitmaps);
        w(Field::MsrBitmap, m_msr_bitmap[i]);
        w(Field::VmExitControls, vmcs::kExitDefault1 | vmcs::kExitHostAddressSpaceSize);
        w(Field::VmEntryControls, vmcs::kEntryDefault1 | vmcs::kEntryIa32eModeGuest);
        w(Field::VmcsLinkPointer, ~std::uint64_t{0});
        w(Field::GuestRflags, kRflagsFixed);
        w(Field::GuestCsSelector, 0);
        w(Field::GuestCsBase, 0);
        w(Field::GuestRip, i == 0 ? kL2BspEntry : kL2ParkEntry);
        w(Field::GuestActivityState, state(i == 0 ? ActivityState::Active : m_ap_start));
        if (!ok) log.error = "VMX set-up failed";
        g.store64(ready(i), 1);
        if (i == 0)  // the L1 BSP starts L2 once its own APs are up
            for (unsigned j = 1; j < m_n; ++j) g.spin_until([&] { return g.load64(ready(j)) != 0; }, ready(j));
        bool launched = false;
        while (log.error.empty()) {
            const bool entered = launched ? g.vmresume() : g.vmlaunch();
            launched = true;
            if (!entered) {
                log.error = "VM entry failed, VM-instruction error " +
                            std::to_string(g.vmread(Field::VmInstructionError));
                break;
            }
            const std::uint64_t reason = g.vmread(Field::VmExitReason);
            const std::uint64_t qualification = g.vmread(Field::ExitQualification);
            log.exits.push_back({reason, qualification});
            if (reason == code(ExitReason::InitSignal)) {
                // The INIT's normal actions, then wait-for-SIPI (vtx-semantics 8.4).
                w(Field::GuestRip, kInitRip);
                w(Field::GuestCsSelector, kInitCsSelector);
                w(Field::GuestCsBase, kInitCsBase);
                w(Field::GuestRflags, kRflagsFixed);
                w(Field::GuestActivityState, state(ActivityState::WaitForSipi));
            } else if (reason == code(ExitReason::Sipi)) {
                const std::uint64_t vector = qualification & vmcs::kSipiVectorMask;
                w(Field::GuestCsSelector, vector << 8);
                w(Field::GuestCsBase, vector << 12);
                w(Field::GuestRip, 0);
                w(Field::GuestActivityState, state(ActivityState::Active));
            } else if (reason == code(ExitReason::Vmcall)) {
                break;  // L2 is done
            } else {
                log.error = "unexpected VM exit " + std::to_string(reason);
            }
            if (!ok) log.error = "VMWRITE failed";
        }
        g.store64(l1_done(i), 1);
        if (i == 0)  // the APs whose L2 came online end after L2's BSP (the others never run)
            for (unsigned j = 1; j < m_n; ++j)
                if (g.load64(online_flag(j)) != 0)
                    g.spin_until([&] { return g.load64(l1_done(j)) != 0; }, l1_done(j));
    }

    // ---- L2 ----
    void l2_bsp(cpu::GuestCpu& g) {
        kut::Lib lib(g, m_x2apic);
        const std::uint64_t t0 = g.rdtsc();
        for (unsigned j = 1; j < m_n; ++j) lib.apic_icr_write(kut::kApicIntAssert | kut::kApicDmInit, j);
        g.compute(m_sipi_delay);
        for (unsigned j = 1; j < m_n; ++j) lib.apic_icr_write(kut::kApicDmStartup | kApTrampolineVector, j);
        g.compute(m_sipi_delay / 10);
        for (unsigned j = 1; j < m_n; ++j) lib.apic_icr_write(kut::kApicDmStartup | kApTrampolineVector, j);
        // Wait for the APs to check in, polling every tenth of the delay, for at most
        // kOnlineTimeout delays (an AP whose SIPIs were lost never comes).
        auto all_online = [&] {
            for (unsigned j = 1; j < m_n; ++j)
                if (g.load64(online_flag(j)) == 0) return false;
            return true;
        };
        const std::uint64_t wait_start = g.rdtsc();
        while (!all_online() && g.rdtsc() - wait_start < kOnlineTimeout * m_sipi_delay) g.compute(m_sipi_delay / 10);
        m_bringup_tsc = g.rdtsc() - t0;
        // One more SIPI, to an AP that runs: outside wait-for-SIPI it causes no VM exit.
        if (g.load64(online_flag(1)) != 0) {
            lib.apic_icr_write(kut::kApicDmStartup | kApTrampolineVector, 1);
            g.compute(m_sipi_delay);
        }
        g.store64(all_done(), 1);
        g.vmcall(0);  // to L1: L2 is done
    }

    void l2_ap(cpu::GuestCpu& g) {
        kut::Lib lib(g, m_x2apic);
        const std::uint32_t id_reg = lib.apic_read(kApicIdReg);
        const std::uint32_t id = m_x2apic ? id_reg : id_reg >> 24;
        if (id > 0 && id < m_n) g.store64(online_flag(id), 1);
        g.spin_until([&] { return g.load64(all_done()) != 0; }, all_done());
        g.vmcall(0);  // to L1: L2 is done
    }

    unsigned m_n = 0;
    bool m_x2apic = true;
    ActivityState m_ap_start = ActivityState::Hlt;
    std::uint64_t m_sipi_delay = kDefaultSipiDelay;
    std::uint64_t m_lines = 0;
    std::vector<std::uint64_t> m_vmxon, m_vmcs12, m_msr_bitmap;
    std::vector<Log> m_log;
    std::uint64_t m_bringup_tsc = 0;
};

}  // namespace

std::unique_ptr<Workload> make_nested_ap_boot() { return std::make_unique<NestedApBoot>(); }

}  // namespace vtx::workloads
