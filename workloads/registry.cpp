#include "workloads/workload.hpp"

namespace vtx::workloads {

std::unique_ptr<Workload> make_ipi();
std::unique_ptr<Workload> make_ipi_halt();
std::unique_ptr<Workload> make_overcommit();
std::unique_ptr<Workload> make_nested_ap_boot();

const std::vector<WorkloadInfo>& workload_registry() {
    static const std::vector<WorkloadInfo> kWorkloads = {
        {"ipi", "kvm-unit-tests vmexit ipi: unicast IPI to a busy-idling vCPU (the IPIv series' setup)", 2, make_ipi},
        {"ipi_halt", "kvm-unit-tests vmexit ipi_halt: unicast IPI to a halted vCPU, then 2000 TSC ticks", 2, make_ipi_halt},
        {"overcommit", "random IPIs among more vCPUs than CPUs (use --pcpus); checks none is lost", 4, make_overcommit},
        {"nested_ap_boot", "an L1 hypervisor that does not monitor the APIC starts its L2 guest's APs with INIT-SIPI-SIPI (nested INIT/SIPI VM exits, wait-for-SIPI)", 4, make_nested_ap_boot},
    };
    return kWorkloads;
}

const WorkloadInfo* find_workload(const std::string& name) {
    for (const auto& w : workload_registry())
        if (w.name == name) return &w;
    return nullptr;
}

}  // namespace vtx::workloads
