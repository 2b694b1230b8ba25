// ipi_bench: the 2017 guest-kernel IPI benchmark module on the model of Linux's cross-CPU
// calls (workloads/linux_smp.hpp): who runs the function, how many IPIs each mode sends,
// which exits they cost.
#include <catch2/catch.hpp>

#include "model/error.hpp"
#include "vmcs/exit_info.hpp"
#include "workloads/linux_smp.hpp"
#include "workloads/workload_rig.hpp"

using namespace vtx;
using test::config;
using test::kvm_params;
using test::r;
using test::run_workload;
using vmcs::ExitReason;

namespace {
test::WorkloadRun bench(const std::string& mode, unsigned vcpus, bool x2apic, bool ipiv, unsigned times = 200) {
    auto cfg = config(vcpus, x2apic);
    cfg.params["mode"] = mode;
    cfg.params["times"] = std::to_string(times);
    return run_workload("ipi_bench", cfg, kvm_params(true, ipiv), 5.0);
}
}  // namespace

TEST_CASE("ipi_bench normal: one CALL_FUNCTION_SINGLE IPI per iteration to vCPU 1, virtualized with IPIv") {
    auto run = bench("normal", 4, true, true);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("ipis") == 200);
    // The handler's one-way time is part of the caller's round trip.
    CHECK(run.result.values.at("ipi_cycles") > 0);
    CHECK(run.result.values.at("ipi_cycles") < run.result.cycles_per_iteration);
    CHECK(run.rig->vcpu(0).exits(r(ExitReason::Wrmsr)) == 0);
    CHECK(run.rig->vcpu(1).context().delivered_interrupts >= 200);
}

// (One simulation per test case: SystemC elaborates once per process.)
TEST_CASE("ipi_bench normal, x2APIC without IPIv: every ICR write is a WRMSR exit") {
    auto run = bench("normal", 2, true, false);
    REQUIRE(run.finished);
    CHECK(run.result.ok);
    CHECK(run.rig->vcpu(0).exits(r(ExitReason::Wrmsr)) == 200);
}

TEST_CASE("ipi_bench normal, xAPIC without IPIv: every ICR write is an APIC-write exit") {
    auto run = bench("normal", 2, false, false);
    REQUIRE(run.finished);
    CHECK(run.result.ok);
    CHECK(run.rig->vcpu(0).exits(r(ExitReason::ApicWrite)) == 200);
}

TEST_CASE("ipi_bench self: Linux runs the function locally, no IPI") {
    auto run = bench("self", 4, true, true);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("ipis") == 0);
    CHECK(run.rig->vcpu(1).context().delivered_interrupts == 0);
}

TEST_CASE("ipi_bench broadcast: an IPI to every other vCPU per iteration, each runs the function once") {
    auto run = bench("broadcast", 6, true, true, 50);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    // Waiting for all leaves every queue empty: each iteration finds them empty again.
    CHECK(run.result.values.at("ipis") == 5 * 50);
}

TEST_CASE("ipi_bench broadcast_lock at 300 vCPUs (x2APIC): the targets contend on one lock, all finish") {
    auto run = bench("broadcast_lock", 300, true, true, 2);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("ipis") == 299 * 2);
}

TEST_CASE("ipi_bench dry_run sends nothing and costs nothing but its clock reads") {
    auto run = bench("dry_run", 2, true, true);
    REQUIRE(run.finished);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("ipis") == 0);
    CHECK(run.result.cycles_per_iteration < 1.0);  // the closing RDTSC, spread over the iterations
}

TEST_CASE("ipi_bench refuses an unknown mode with the list of modes") {
    static test::KvmRig rig(1, kvm_params(true, true), true);  // one elaboration
    auto workload = workloads::find_workload("ipi_bench")->make();
    auto cfg = config(2, true);
    cfg.params["mode"] = "pingpong";
    CHECK_THROWS_WITH(workload->setup(rig.kvm(), rig.vm(), cfg),
                      Catch::Contains("pingpong") && Catch::Contains("normal, self, broadcast, broadcast_lock or dry_run"));
}

// ---- hackbench -p: wakeups of idle vCPUs are the IPIs.
namespace {
test::WorkloadRun hackbench(unsigned vcpus, bool x2apic, bool apicv, bool ipiv, unsigned loops = 5,
                            const char* datasize = "100") {
    auto cfg = config(vcpus, x2apic);
    cfg.params["groups"] = "4";
    cfg.params["fds"] = "5";
    cfg.params["loops"] = std::to_string(loops);
    cfg.params["datasize"] = datasize;
    return run_workload("hackbench", cfg, kvm_params(apicv, ipiv), 5.0);
}
}  // namespace

TEST_CASE("hackbench on 8 vCPUs with IPIv: every message read once, readers woken by reschedule IPIs") {
    auto run = hackbench(8, true, true, true);
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("messages") == 4 * 5 * 5 * 5);
    CHECK(run.result.values.at("reschedule_ipis") > 0);
    CHECK(run.result.values.at("context_switches") > 0);
    // Idle vCPUs halt (HLT exits) and are woken through the posted-interrupt wakeup vector.
    CHECK(run.rig->kvm().exits(r(ExitReason::Hlt)) > 0);
    CHECK(run.rig->stat("kvm.pi_wakeups") > 0);
}

TEST_CASE("hackbench, xAPIC with APICv off: KVM injects every reschedule IPI and sees each one that coalesced") {
    auto run = hackbench(4, false, false, false);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.ok);  // includes: coalesced by KVM == reschedule IPIs sent - handled
    // Without APICv every reschedule IPI that is not coalesced is injected by KVM.
    CHECK(run.rig->stat("kvm.interrupts_injected") > 0);
    CHECK(run.rig->stat("kvm.interrupts_injected") <= run.result.values.at("reschedule_ipis"));
}

TEST_CASE("hackbench on one vCPU: no IPI at all, only context switches") {
    auto run = hackbench(1, true, true, true);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.values.at("reschedule_ipis") == 0);
    CHECK(run.result.values.at("context_switches") >= 40);  // each of the 40 tasks runs at least once
}

TEST_CASE("hackbench with messages larger than a line and pipes that fill: writers wait and are woken") {
    auto run = hackbench(3, true, true, true, 200, "1000");
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);  // digests: 5 x 200 x 1000-byte messages per pipe through a 64 KiB ring
}

TEST_CASE("hackbench refuses bad parameters with the range") {
    static test::KvmRig rig(1, kvm_params(true, true), true);  // one elaboration
    auto workload = workloads::find_workload("hackbench")->make();
    auto cfg = config(2, true);
    cfg.params["datasize"] = "0";
    CHECK_THROWS_WITH(workload->setup(rig.kvm(), rig.vm(), cfg), Catch::Contains("workload.datasize") && Catch::Contains("1..65536"));
}
