// ap_boot, multicast, broadcast and the long randomized random_ipi run.
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

// The long randomized runs: 4 vCPUs, random targets, bursts and halts, seeded.
namespace {
test::WorkloadRun random_run(bool x2apic, bool apicv, bool ipiv, unsigned burst, std::uint64_t seed,
                             unsigned ipis_per_vcpu = 500) {
    auto cfg = config(4, x2apic);
    cfg.seed = seed;
    cfg.params["ipis"] = std::to_string(ipis_per_vcpu);
    cfg.params["burst"] = std::to_string(burst);
    cfg.params["halt_percent"] = "30";
    return run_workload("random_ipi", cfg, kvm_params(apicv, ipiv), 5.0);
}
}  // namespace

TEST_CASE("random_ipi, APICv off, bursts: every IPI delivered once except same-vector coalescing, which KVM counts") {
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

TEST_CASE("random_ipi, xAPIC, APICv off, bursts, another seed: missing = coalesced") {
    auto run = random_run(false, false, false, 2, 11);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("missing") == run.result.values.at("coalesced"));
}

TEST_CASE("random_ipi with IPIv and halts, one IPI outstanding per pair: every IPI delivered exactly once") {
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

TEST_CASE("random_ipi in xAPIC mode with APICv, no IPIv, one outstanding per pair: exactly once") {
    auto run = random_run(false, true, false, 1, 5);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("missing") == 0);
}

TEST_CASE("random_ipi with APICv and bursts: missing IPIs are at least those KVM saw coalesce") {
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
    for (const char* w : {"broadcast", "ap_boot"}) {
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
}

TEST_CASE("multicast across x2APIC clusters (100 vCPUs): each target gets each IPI once") {
    auto run = run_workload("multicast", config(100, true, 50000), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
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
