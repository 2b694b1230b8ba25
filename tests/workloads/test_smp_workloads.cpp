// ap_boot, multicast, broadcast, the long randomized vector_storm runs, and random_ipi /
// overcommit (Linux-shaped cross-CPU calls) up to 4096 vCPUs.
#include <map>

#include <catch2/catch.hpp>

#include "cpu/virtual_apic.hpp"
#include "model/error.hpp"
#include "vmcs/exit_info.hpp"
#include "workloads/workload_rig.hpp"

using namespace vtx;
using test::config;
using test::kvm_params;
using test::run_workload;
using test::r;
using vmcs::ExitReason;

TEST_CASE("ap_boot in x2APIC mode with IPIv: INIT-SIPI-SIPI brings every AP online exactly once") {
    auto run = run_workload("ap_boot", config(4, true), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.iterations == 3);
    CHECK(run.result.cycles_per_iteration > 0);
    // INIT and SIPI are not virtualized: each of the 9 ICR writes exits (APIC-write, 0x300).
    CHECK(run.rig->vcpu(0).exits(r(ExitReason::ApicWrite)) == 9);
    for (unsigned i = 1; i < 4; ++i) {
        INFO("AP " << i);
        // Parked with interrupts off; the second SIPI woke it once, it halted again.
        CHECK(run.rig->vcpu(i).mp_state() == vmm::MpState::Halted);
        CHECK(run.rig->vcpu(i).context().vmcs.hw_read(vmcs::Field::GuestCsBase) ==
              std::uint64_t{workloads::kApTrampolineVector} << 12);
    }
}

TEST_CASE("ap_boot in xAPIC mode with APICv off, 6 vCPUs on 3 CPUs") {
    auto cfg = config(6, false);
    cfg.pcpus = 3;
    auto run = run_workload("ap_boot", cfg, kvm_params(false, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.iterations == 5);
}

TEST_CASE("ap_boot with back-to-back SIPIs (no delay) still starts each AP once") {
    auto cfg = config(3, true);
    cfg.params["sipi_delay"] = "0";
    auto run = run_workload("ap_boot", cfg, kvm_params(true, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
}

TEST_CASE("multicast in xAPIC flat logical mode with IPIv: each target gets each IPI once, every send exits") {
    auto run = run_workload("multicast", config(4, false), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    // Logical destinations are not virtualized: one APIC-write exit per IPI (plus the
    // targets' LDR and DFR writes, 2 each).
    CHECK(run.rig->kvm().exits(r(ExitReason::ApicWrite)) == run.result.total_iterations + 2 * 3);
    CHECK(run.rig->stat("ipiv.virtualized") == 0);
    // KVM finds the targets in its optimized map's logical part (flat model), not by
    // matching every vCPU.
    CHECK(run.rig->stat("kvm.ipis_logical_map") == run.result.total_iterations);
    CHECK(run.rig->stat("kvm.ipis_slow_path") == 0);
}

TEST_CASE("multicast in x2APIC cluster mode without IPIv: the slow WRMSR path (no fastpath)") {
    auto run = run_workload("multicast", config(5, true), kvm_params(true, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->vcpu(0).exits(r(ExitReason::Wrmsr)) == run.result.total_iterations);
    CHECK(run.rig->stat("kvm.x2apic_icr_fastpath") == 0);
}

TEST_CASE("multicast beyond the 8 vCPUs of the xAPIC flat model uses the cluster model") {
    auto run = run_workload("multicast", config(9, false), kvm_params(true, true));
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    cpu::VirtualApicPage page(run.rig->platform().memory(), run.rig->vcpu(8).vapic_page());
    CHECK((page.read32(cpu::kVapicDfr) >> 28) == 0);  // cluster model
    CHECK(page.read32(cpu::kVapicLdr) == ((2u << 4 | 1u) << 24));  // vCPU 8: cluster 2, bit 0
}

TEST_CASE("broadcast in x2APIC mode with IPIv: every other vCPU gets each IPI once") {
    auto run = run_workload("broadcast", config(4, true), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->vcpu(0).exits(r(ExitReason::ApicWrite)) == run.result.total_iterations);
    CHECK(run.rig->stat("kvm.ipis_slow_path") == run.result.total_iterations);  // a shorthand: every vCPU matched
    for (unsigned i = 1; i < 4; ++i) CHECK(run.rig->vcpu(i).context().delivered_interrupts == run.result.total_iterations);
    CHECK(run.rig->vcpu(0).context().delivered_interrupts == 0);  // all excluding self
}

TEST_CASE("broadcast in xAPIC mode with APICv off: delivered by injection to every other vCPU") {
    auto run = run_workload("broadcast", config(4, false), kvm_params(false, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->stat("kvm.interrupts_injected") == 3 * run.result.total_iterations);
}

// The long randomized raw-vector runs: 4 vCPUs, random targets, bursts and halts, seeded.
namespace {
test::WorkloadRun random_run(bool x2apic, bool apicv, bool ipiv, unsigned burst, std::uint64_t seed,
                             unsigned ipis_per_vcpu = 500) {
    auto cfg = config(4, x2apic);
    cfg.seed = seed;
    cfg.params["ipis"] = std::to_string(ipis_per_vcpu);
    cfg.params["burst"] = std::to_string(burst);
    cfg.params["halt_percent"] = "30";
    return run_workload("vector_storm", cfg, kvm_params(apicv, ipiv), 5.0);
}
}  // namespace

TEST_CASE("vector_storm, APICv off, bursts: every IPI delivered once except same-vector coalescing, which KVM counts") {
    auto run = random_run(true, false, false, 3, 7, 2000);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("missing") == run.result.values.at("coalesced"));
    CHECK(run.result.values.at("coalesced") > 0);  // the bursts did coalesce
    CHECK(run.result.values.at("halts") > 0);
    CHECK(run.result.values.at("wakes") > 0);
}

TEST_CASE("vector_storm, xAPIC, APICv off, bursts, another seed: missing = coalesced") {
    auto run = random_run(false, false, false, 2, 11);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("missing") == run.result.values.at("coalesced"));
}

TEST_CASE("vector_storm with IPIv and halts, one IPI outstanding per pair: every IPI delivered exactly once") {
    auto run = random_run(true, true, true, 1, 3, 2000);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("missing") == 0);
    CHECK(run.result.values.at("coalesced") == 0);
    CHECK(run.result.values.at("halts") > 0);
    CHECK(run.rig->stat("kvm.pi_wakeups") > 0);  // halted targets woken through the wakeup vector
}

TEST_CASE("vector_storm in xAPIC mode with APICv, no IPIv, one outstanding per pair: exactly once") {
    auto run = random_run(false, true, false, 1, 5);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("missing") == 0);
}

TEST_CASE("vector_storm with APICv and bursts: missing IPIs are at least those KVM saw coalesce") {
    auto run = random_run(true, true, false, 3, 9);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("missing") >= run.result.values.at("coalesced"));
}

TEST_CASE("broadcast runs beyond 255 vCPUs in x2APIC mode: every vCPU gets every IPI once") {
    auto run = run_workload("broadcast", config(300, true, 50000), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
}

TEST_CASE("ap_boot brings 299 APs online in x2APIC mode") {
    auto run = run_workload("ap_boot", config(300, true), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.iterations == 299);
}

TEST_CASE("an xAPIC VM of more than 255 vCPUs is refused with the architectural reason") {
    for (const char* w : {"broadcast", "ap_boot", "random_ipi", "overcommit"}) {
        INFO(w);
        const workloads::WorkloadInfo* info = workloads::find_workload(w);
        REQUIRE(info);
        auto workload = info->make();
        static test::KvmRig rig(1, kvm_params(true, true), /*x2apic=*/false);  // one elaboration
        try {
            workload->setup(rig.kvm(), rig.vm(), config(256, false));
            FAIL("no ConfigError");
        } catch (const model::ConfigError& e) {
            CHECK(std::string(e.what()).find("at most 255") != std::string::npos);
            CHECK(std::string(e.what()).find("8 bits") != std::string::npos);
        }
    }
}

TEST_CASE("multicast in the xAPIC cluster model (40 vCPUs): each target gets each IPI once") {
    auto run = run_workload("multicast", config(40, false, 50000), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    // Cluster model: DFR 0000b, LDR = cluster << 28 | member bit << 24.
    cpu::VirtualApicPage page(run.rig->platform().memory(), run.rig->vcpu(13).vapic_page());
    CHECK(page.read32(cpu::kVapicLdr) == ((3u << 4 | 1u << 1) << 24));  // vCPU 13: cluster 3, bit 1
    CHECK((page.read32(cpu::kVapicDfr) >> 28) == 0);
    CHECK(run.rig->stat("kvm.ipis_logical_map") > 0);  // the cluster model's map
    CHECK(run.rig->stat("kvm.ipis_slow_path") == 0);
}

TEST_CASE("multicast across x2APIC clusters (100 vCPUs): each target gets each IPI once") {
    auto run = run_workload("multicast", config(100, true, 50000), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->stat("kvm.ipis_logical_map") > 0);
    CHECK(run.rig->stat("kvm.ipis_slow_path") == 0);
}

TEST_CASE("multicast refuses more xAPIC vCPUs than logical destinations can address") {
    static test::KvmRig rig(1, kvm_params(true, true), /*x2apic=*/false);
    auto workload = workloads::find_workload("multicast")->make();
    try {
        workload->setup(rig.kvm(), rig.vm(), config(61, false));
        FAIL("no ConfigError");
    } catch (const model::ConfigError& e) {
        CHECK(std::string(e.what()).find("at most 60") != std::string::npos);
    }
}

// ---- random_ipi / overcommit: Linux's call-single queue (workloads/linux_smp.hpp).
namespace {
test::WorkloadRun calls_run(const char* name, unsigned vcpus, bool x2apic, bool apicv, bool ipiv,
                            std::map<std::string, std::string> params, std::uint64_t seed = 1, unsigned pcpus = 0) {
    auto cfg = config(vcpus, x2apic);
    cfg.seed = seed;
    if (pcpus) cfg.pcpus = pcpus;
    cfg.params = std::move(params);
    return run_workload(name, cfg, kvm_params(apicv, ipiv), 5.0);
}
}  // namespace

TEST_CASE("random_ipi at 4096 vCPUs (x2APIC, IPIv): every call runs exactly once, no call IPI is lost") {
    auto run = calls_run("random_ipi", 4096, true, true, true, {{"ipis", "2"}, {"halt_percent", "10"}});
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("calls") == 2 * 4096);
    // Vector 0xFB (CALL_FUNCTION_SINGLE_VECTOR) reached vCPUs whose APIC IDs need the x2APIC's
    // 32-bit destination, through IPI virtualization (no APIC-write exits for them).
    CHECK(run.rig->vcpu(0).exits(r(ExitReason::ApicWrite)) == 0);
    CHECK(run.rig->stat("kvm.pi_wakeups") > 0);  // sleepers woken by reschedule IPIs
}

TEST_CASE("random_ipi with waiting calls: an IPI per call, as the target's queue is always empty") {
    auto run = calls_run("random_ipi", 6, true, true, true, {{"ipis", "50"}, {"halt_percent", "0"}});
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    // One caller waits for its call; concurrent callers to one target may find its queue
    // non-empty and send no IPI: IPIs <= calls, never more.
    CHECK(run.result.values.at("ipis") <= run.result.values.at("calls"));
    CHECK(run.result.values.at("ipis") > 0.5 * run.result.values.at("calls"));
    CHECK(run.result.values.at("halts") == 0);
    CHECK(run.result.values.at("reschedule_ipis") <= 1);  // at most the last finisher's wake of vCPU 0
}

TEST_CASE("random_ipi with bursts of non-waiting calls: queued calls share one IPI") {
    auto run = calls_run("random_ipi", 4, true, true, true, {{"ipis", "100"}, {"burst", "4"}, {"halt_percent", "0"}});
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("ipis") < run.result.values.at("calls"));
}

TEST_CASE("random_ipi, APICv off, halts and bursts: KVM sees every reschedule IPI that coalesced") {
    auto run = calls_run("random_ipi", 8, false, false, false, {{"ipis", "200"}, {"burst", "3"}, {"halt_percent", "40"}}, 3);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);  // includes: coalesced by KVM == reschedule IPIs sent - handled
    CHECK(run.result.values.at("halts") > 0);
    CHECK(run.rig->kvm().exits(r(ExitReason::Hlt)) > 0);
}

TEST_CASE("random_ipi in xAPIC mode runs 255 vCPUs") {
    auto run = calls_run("random_ipi", 255, false, true, false, {{"ipis", "2"}});
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
}

TEST_CASE("random_ipi refuses more than KVM_MAX_VCPU_IDS vCPUs, vector_storm more than its 16 vectors") {
    static test::KvmRig rig(1, kvm_params(true, true), /*x2apic=*/true);  // one elaboration
    const std::pair<const char*, unsigned> cases[] = {{"random_ipi", 4097}, {"overcommit", 4097}, {"vector_storm", 17}};
    for (const auto& [w, n] : cases) {
        INFO(w << " " << n);
        auto workload = workloads::find_workload(w)->make();
        try {
            workload->setup(rig.kvm(), rig.vm(), config(n, true));
            FAIL("no ConfigError");
        } catch (const model::ConfigError& e) {
            const std::string what = e.what();
            CHECK(what.find(std::to_string(n)) != std::string::npos);
            CHECK(what.find(n == 17 ? "2..16" : "KVM_MAX_VCPU_IDS") != std::string::npos);
        }
    }
}

TEST_CASE("overcommit: 64 vCPUs on 4 CPUs, preempted targets, every call runs exactly once") {
    auto run = calls_run("overcommit", 64, true, true, true, {{"ipis", "3"}}, 1, 4);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("preemptions") > 0);
    CHECK(run.result.values.at("halts") == 0);
}
