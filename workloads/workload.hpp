#pragma once
// Guest workloads: programs written only against the guest API (cpu/guest.hpp), plus the
// set-up that creates their VM and vCPUs on the KVM-like VMM.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vmm/kvm.hpp"

namespace vtx::workloads {

struct WorkloadConfig {
    bool x2apic = true;
    unsigned vcpus = 2;
    unsigned pcpus = 2;
    std::uint64_t goal = std::uint64_t{1} << 22;  // TSC ticks a measurement pass must reach
    std::map<std::string, std::string> params;     // workload-specific `--set workload.NAME=V`
    std::uint64_t seed = 1;                        // for workloads that draw random choices
};

// What a workload measured. Cycle figures come from the guest's own RDTSC readings.
struct WorkloadResult {
    double cycles_per_iteration = 0;  // (t2 - t1) / iterations of the last pass
    std::uint64_t iterations = 0;     // iterations of the last (reported) pass
    std::uint64_t total_iterations = 0;
    bool ok = true;                   // the workload's own behavioural check
    std::string check;                // what was checked (and what failed)
    std::map<std::string, double> values;  // other named observations
    std::string explanation;               // vtxsim explain: the run step by step
    std::map<std::string, double> step_cycles;  // vtxsim explain: cycles per step
};

class Workload {
public:
    virtual ~Workload() = default;
    // Creates vCPUs and registers guest code in `vm`.
    virtual void setup(vmm::Kvm& kvm, vmm::Vm& vm, const WorkloadConfig& cfg) = 0;
    // Called after the simulation stopped.
    virtual WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) = 0;
    // Whether the simulation ends when vCPU 0's program returns (default) .
    virtual bool stop_when_bsp_finishes() const { return true; }
};

struct WorkloadInfo {
    std::string name;
    std::string description;
    unsigned default_vcpus;
    std::function<std::unique_ptr<Workload>()> make;
    // What cycles_per_iteration measures, for `compare` (lower is better).
    std::string metric = "cycles per iteration";
};

const std::vector<WorkloadInfo>& workload_registry();

// A workload parameter (`--set workload.KEY=VALUE`) that must be an integer in
// [min, max]; throws model::ConfigError naming the workload, key and range.
std::uint64_t parse_param(const std::string& workload, const std::string& key, const std::string& value,
                          std::uint64_t min = 0, std::uint64_t max = ~std::uint64_t{0});
// The most vCPUs a VM can address in an APIC mode: xAPIC physical APIC IDs are 8 bits and
// FFH is the broadcast address (SDM 11.6.2.1), so 255; x2APIC IDs are 32 bits and KVM allows
// KVM_MAX_VCPU_IDS = 4096 (kvm.max_vcpu_ids may lower it; KVM refuses a vCPU at or above it).
inline constexpr unsigned kXapicMaxVcpus = 255;
inline constexpr unsigned kX2apicMaxVcpus = 4096;
// Refuses a vCPU count below `min` or above the APIC mode's limit, with the reason.
void check_vcpus(const std::string& workload, const WorkloadConfig& cfg, unsigned min = 2);
// Refuses any parameter but `known` (comma-separated list for the message).
void check_params(const std::string& workload, const WorkloadConfig& cfg, const std::vector<std::string>& known);
const WorkloadInfo* find_workload(const std::string& name);

// Guest address of the code of vCPU programs (any distinct linear addresses will do).
inline constexpr std::uint64_t kBspEntry = 0x100000;
// Creates vCPUs 0..cfg.vcpus-1, vCPU i on physical CPU i mod cfg.pcpus, each starting at
// its own entry point (kBspEntry + 4 KiB x i) in `program(guest, i)`.
void create_vcpus(vmm::Vm& vm, const WorkloadConfig& cfg, std::function<void(cpu::GuestCpu&, unsigned)> program);
inline constexpr std::uint64_t kApTrampolineVector = 0x9A;  // SIPI vector: AP code at 0x9A000

}  // namespace vtx::workloads
