#pragma once
// Runs one registered workload on a KvmRig (tests/common/kvm_rig.hpp), the way
// sim/experiment.cpp run_in_process does (without the per-run cost variation), and keeps
// the rig for the test to inspect exits and statistics afterwards.
#include <memory>
#include <string>

#include "common/kvm_rig.hpp"
#include "workloads/workload.hpp"

namespace vtx::test {

struct WorkloadRun {
    std::unique_ptr<KvmRig> rig;
    bool finished = false;
    std::string error;
    workloads::WorkloadResult result;
    std::uint64_t exits_per(std::uint16_t reason, std::uint64_t per) const {
        return per ? rig->kvm().exits(reason) / per : 0;
    }
};

inline workloads::WorkloadConfig config(unsigned vcpus, bool x2apic, std::uint64_t goal = 100000) {
    workloads::WorkloadConfig c;
    c.vcpus = vcpus;
    c.pcpus = vcpus;
    c.x2apic = x2apic;
    c.goal = goal;
    return c;
}

inline vmm::KvmParams kvm_params(bool apicv, bool ipiv) {
    vmm::KvmParams p;
    p.enable_apicv = apicv;
    p.enable_ipiv = ipiv;
    return p;
}

// Throws what the workload's setup throws (model::ConfigError for bad parameters).
inline WorkloadRun run_workload(const std::string& name, const workloads::WorkloadConfig& cfg,
                                const vmm::KvmParams& params, double max_seconds = 0.5) {
    WorkloadRun run;
    const workloads::WorkloadInfo* info = workloads::find_workload(name);
    if (!info) {
        run.error = "no workload " + name;
        return run;
    }
    run.rig = std::make_unique<KvmRig>(cfg.pcpus, params, cfg.x2apic);
    std::unique_ptr<workloads::Workload> w = info->make();
    w->setup(run.rig->kvm(), run.rig->vm(), cfg);
    run.finished = run.rig->run(max_seconds);
    run.error = run.rig->error();
    if (run.finished) run.result = w->result(run.rig->kvm(), run.rig->vm());
    return run;
}

}  // namespace vtx::test
