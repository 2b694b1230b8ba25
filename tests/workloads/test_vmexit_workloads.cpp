// The single-vCPU kvm-unit-tests vmexit.c workloads: cpuid, vmcall and the self-IPI
// variants, each checked by its own behavioural check and by the exits per iteration the
// configuration must produce.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "model/error.hpp"
#include "vmcs/exit_info.hpp"
#include "workloads/workload_rig.hpp"

using namespace vtx;
using test::config;
using test::kvm_params;
using test::run_workload;
using test::r;
using vmcs::ExitReason;

TEST_CASE("the vmexit and SMP workloads are registered") {
    for (const char* name : {"cpuid", "vmcall", "self_ipi_sti_nop", "self_ipi_sti_hlt", "self_ipi_tpr",
                             "self_ipi_tpr_sti_nop", "self_ipi_tpr_sti_hlt", "x2apic_self_ipi_sti_nop",
                             "x2apic_self_ipi_sti_hlt", "x2apic_self_ipi_tpr", "x2apic_self_ipi_tpr_sti_nop",
                             "x2apic_self_ipi_tpr_sti_hlt", "ap_boot", "multicast", "broadcast", "random_ipi"}) {
        INFO(name);
        const auto* info = workloads::find_workload(name);
        REQUIRE(info != nullptr);
        CHECK_FALSE(info->description.empty());
    }
}

TEST_CASE("cpuid: one CPUID exit per iteration, cycles from the guest's RDTSC") {
    auto run = run_workload("cpuid", config(1, true), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.result.iterations >= 64);
    CHECK(run.result.cycles_per_iteration > 0);
    CHECK(run.rig->kvm().exits(r(ExitReason::Cpuid)) == run.result.total_iterations);
}

TEST_CASE("vmcall: one VMCALL exit per iteration") {
    auto run = run_workload("vmcall", config(1, false), kvm_params(true, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->kvm().exits(r(ExitReason::Vmcall)) == run.result.total_iterations);
    CHECK(run.result.cycles_per_iteration > 0);
}

TEST_CASE("cpuid refuses more than one vCPU") {
    CHECK_THROWS_AS(run_workload("cpuid", config(2, true), kvm_params(true, true)), model::ConfigError);
}

TEST_CASE("self_ipi_sti_nop in xAPIC mode with APICv: self-IPI virtualization, no VM exit") {
    auto run = run_workload("self_ipi_sti_nop", config(1, false), kvm_params(true, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->vcpu(0).context().delivered_interrupts == run.result.total_iterations);
    CHECK(run.rig->kvm().exits(r(ExitReason::ApicWrite)) == 0);
    CHECK(run.rig->kvm().exits(r(ExitReason::ApicAccess)) == 0);
    CHECK(run.result.values.at("ipi_cycles") > 0);
    CHECK(run.result.values.at("eoi_cycles") > 0);
}

TEST_CASE("self_ipi_sti_hlt in x2APIC mode without IPIv: an ICR WRMSR exit (slow path) and a HLT exit per iteration") {
    auto run = run_workload("self_ipi_sti_hlt", config(1, true), kvm_params(true, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    const auto n = run.result.total_iterations;
    CHECK(run.rig->kvm().exits(r(ExitReason::Wrmsr)) == n);
    CHECK(run.rig->kvm().exits(r(ExitReason::Hlt)) == n);
    CHECK(run.rig->stat("kvm.x2apic_icr_fastpath") == 0);  // the self shorthand does not qualify
}

TEST_CASE("self_ipi_tpr_sti_nop in x2APIC mode with IPIv: the self shorthand is not virtualized (APIC-write exit)") {
    auto run = run_workload("self_ipi_tpr_sti_nop", config(1, true), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->kvm().exits(r(ExitReason::ApicWrite)) == run.result.total_iterations);
    CHECK(run.rig->kvm().exits(r(ExitReason::Wrmsr)) == 0);  // TPR and EOI are not intercepted
}

TEST_CASE("self_ipi_tpr in xAPIC mode with APICv off: delivered after the TPR drops (TPR-below-threshold exit)") {
    auto run = run_workload("self_ipi_tpr", config(1, false), kvm_params(false, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    const auto n = run.result.total_iterations;
    CHECK(run.rig->kvm().exits(r(ExitReason::TprBelowThreshold)) == n);
    CHECK(run.rig->stat("kvm.interrupts_injected") == n);
}

TEST_CASE("self_ipi_tpr_sti_hlt in xAPIC mode with IPIv: virtualized send, one HLT exit per iteration") {
    auto run = run_workload("self_ipi_tpr_sti_hlt", config(1, false), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->kvm().exits(r(ExitReason::Hlt)) == run.result.total_iterations);
    CHECK(run.rig->kvm().exits(r(ExitReason::ApicWrite)) == 0);
}

TEST_CASE("x2apic_self_ipi_sti_nop with APICv: WRMSR 0x83F virtualized, no VM exit") {
    auto run = run_workload("x2apic_self_ipi_sti_nop", config(1, true), kvm_params(true, true));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    CHECK(run.rig->kvm().exits(r(ExitReason::Wrmsr)) == 0);
    CHECK(run.rig->vcpu(0).context().delivered_interrupts == run.result.total_iterations);
}

TEST_CASE("x2apic_self_ipi_tpr_sti_hlt with APICv off: SELF IPI and EOI exit, interrupt injected") {
    auto run = run_workload("x2apic_self_ipi_tpr_sti_hlt", config(1, true), kvm_params(false, false));
    INFO(run.error);
    REQUIRE(run.finished);
    INFO(run.result.check);
    CHECK(run.result.ok);
    const auto n = run.result.total_iterations;
    CHECK(run.rig->kvm().exits(r(ExitReason::Wrmsr)) == 2 * n);  // SELF IPI, EOI
    CHECK(run.rig->kvm().exits(r(ExitReason::Hlt)) == n);
    CHECK(run.rig->stat("kvm.interrupts_injected") == n);
}

TEST_CASE("x2apic_self_ipi_tpr needs x2APIC mode: a ConfigError in xAPIC mode") {
    CHECK_THROWS_WITH(run_workload("x2apic_self_ipi_tpr", config(1, false), kvm_params(true, true)),
                      Catch::Contains("x2APIC"));
}

TEST_CASE("the vmexit workloads refuse unknown parameters") {
    auto cfg = config(1, true);
    cfg.params["bogus"] = "1";
    CHECK_THROWS_WITH(run_workload("self_ipi_sti_nop", cfg, kvm_params(true, true)), Catch::Contains("bogus"));
}
