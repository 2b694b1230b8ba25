#include "workloads/workload.hpp"

#include <algorithm>

#include "model/error.hpp"
#include "model/parse.hpp"

namespace vtx::workloads {

std::unique_ptr<Workload> make_ipi();
std::unique_ptr<Workload> make_ipi_halt();
std::unique_ptr<Workload> make_overcommit();
std::unique_ptr<Workload> make_cpuid();
std::unique_ptr<Workload> make_vmcall();
std::unique_ptr<Workload> make_self_ipi_sti_nop();
std::unique_ptr<Workload> make_self_ipi_sti_hlt();
std::unique_ptr<Workload> make_self_ipi_tpr();
std::unique_ptr<Workload> make_self_ipi_tpr_sti_nop();
std::unique_ptr<Workload> make_self_ipi_tpr_sti_hlt();
std::unique_ptr<Workload> make_x2apic_self_ipi_sti_nop();
std::unique_ptr<Workload> make_x2apic_self_ipi_sti_hlt();
std::unique_ptr<Workload> make_x2apic_self_ipi_tpr();
std::unique_ptr<Workload> make_x2apic_self_ipi_tpr_sti_nop();
std::unique_ptr<Workload> make_x2apic_self_ipi_tpr_sti_hlt();
std::unique_ptr<Workload> make_ap_boot();
std::unique_ptr<Workload> make_multicast();
std::unique_ptr<Workload> make_broadcast();
std::unique_ptr<Workload> make_random_ipi();
std::unique_ptr<Workload> make_vector_storm();
std::unique_ptr<Workload> make_apic_fuzz();
std::unique_ptr<Workload> make_ipi_bench();
std::unique_ptr<Workload> make_hackbench();
std::unique_ptr<Workload> make_nested_ap_boot();
std::unique_ptr<Workload> make_uipi();

const std::vector<WorkloadInfo>& workload_registry() {
    static const std::vector<WorkloadInfo> kWorkloads = {
        {"ipi", "kvm-unit-tests vmexit ipi: unicast IPI to a busy-idling vCPU (the IPIv series' setup)", 2, make_ipi,
         "cycles per IPI (sender's ICR write to the handler's completion)"},
        {"ipi_halt", "kvm-unit-tests vmexit ipi_halt: unicast IPI to a halted vCPU, then 2000 TSC ticks", 2, make_ipi_halt},
        {"uipi", "user-interrupt round trip (SENDUIPI) between two guest threads, as the Linux UINTR RFC's uipi_sample; needs a profile with user interrupts", 2, make_uipi,
         "cycles per user IPI (SENDUIPI to the receiver's handler's acknowledgment)"},
        {"overcommit", "random waiting cross-CPU calls (Linux smp_call_function_single) among more vCPUs than CPUs (use --pcpus); checks each runs once", 4, make_overcommit,
         "cycles until every vCPU is done, per step of a vCPU's plan"},
        {"cpuid", "kvm-unit-tests vmexit cpuid: a CPUID (VM exit 10) per iteration", 1, make_cpuid},
        {"vmcall", "kvm-unit-tests vmexit vmcall: a VMCALL (VM exit 18) per iteration", 1, make_vmcall},
        {"self_ipi_sti_nop", "vmexit self_ipi_sti_nop: CLI, self IPI 0xB0 through the ICR (self shorthand), STI; NOP", 1, make_self_ipi_sti_nop},
        {"self_ipi_sti_hlt", "vmexit self_ipi_sti_hlt: CLI, self IPI 0xB0 through the ICR, STI; HLT", 1, make_self_ipi_sti_hlt},
        {"self_ipi_tpr", "vmexit self_ipi_tpr: TPR 0xF0, self IPI 0xB0 through the ICR, TPR 0, NOP", 1, make_self_ipi_tpr},
        {"self_ipi_tpr_sti_nop", "vmexit self_ipi_tpr_sti_nop: CLI, TPR 0xF0, self IPI through the ICR, TPR 0, STI; NOP", 1, make_self_ipi_tpr_sti_nop},
        {"self_ipi_tpr_sti_hlt", "vmexit self_ipi_tpr_sti_hlt: CLI, TPR 0xF0, self IPI through the ICR, TPR 0, STI; HLT", 1, make_self_ipi_tpr_sti_hlt},
        {"x2apic_self_ipi_sti_nop", "vmexit x2apic_self_ipi_sti_nop: CLI, WRMSR 0x83F (x2APIC SELF IPI) 0xB0, STI; NOP", 1, make_x2apic_self_ipi_sti_nop},
        {"x2apic_self_ipi_sti_hlt", "vmexit x2apic_self_ipi_sti_hlt: CLI, WRMSR 0x83F 0xB0, STI; HLT", 1, make_x2apic_self_ipi_sti_hlt},
        {"x2apic_self_ipi_tpr", "vmexit x2apic_self_ipi_tpr: TPR 0xF0, WRMSR 0x83F 0xB0, TPR 0, NOP", 1, make_x2apic_self_ipi_tpr},
        {"x2apic_self_ipi_tpr_sti_nop", "vmexit x2apic_self_ipi_tpr_sti_nop: CLI, TPR 0xF0, WRMSR 0x83F, TPR 0, STI; NOP", 1, make_x2apic_self_ipi_tpr_sti_nop},
        {"x2apic_self_ipi_tpr_sti_hlt", "vmexit x2apic_self_ipi_tpr_sti_hlt: CLI, TPR 0xF0, WRMSR 0x83F, TPR 0, STI; HLT", 1, make_x2apic_self_ipi_tpr_sti_hlt},
        {"ipi_bench", "the 2017 guest-kernel IPI benchmark module (Linux smp_call_function_single/_many; workload.mode=normal|self|broadcast|broadcast_lock|dry_run), cycles per iteration; targets in idle=poll", 4, make_ipi_bench,
         "cycles per iteration of the module's loop (send_ipi and its wait; mode-dependent)"},
        {"hackbench", "hackbench -p (rt-tests): groups of sender and receiver tasks passing messages through pipes; wakeups of idle vCPUs are reschedule IPIs", 8, make_hackbench,
         "simulated cycles until every task is done"},
        {"ap_boot", "the BSP starts N-1 APs (UNINITIALIZED) with INIT-SIPI-SIPI; checks each comes online exactly once", 4, make_ap_boot},
        {"multicast", "logical-destination fixed IPIs to random sets of the other vCPUs; checks each target gets each once", 4, make_multicast},
        {"broadcast", "all-excluding-self fixed IPIs; checks every other vCPU gets each once", 4, make_broadcast},
        {"random_ipi", "seeded random cross-CPU calls as a Linux guest sends them (call-single queue, IPI when it was empty), any size, random idling; checks each call runs once and no IPI is lost", 4, make_random_ipi,
         "cycles until every vCPU is done, per step of a vCPU's plan"},
        {"vector_storm", "seeded random raw IPIs, a vector per sender (up to 16 vCPUs), bursts and halts; checks delivery exactly once but for counted coalescing", 4, make_vector_storm,
         "cycles per step of vCPU 0"},
        {"apic_fuzz", "seeded random guest APIC writes and reads (ICR with random fields, registers, x2APIC MSRs 800H-8FFH), every vector handled; for fuzzing: no simulation error, #GP counts the same with IPIv on and off", 4, make_apic_fuzz,
         "none: a fuzzing workload (see its check)"},
        {"nested_ap_boot", "an L1 hypervisor that does not monitor the APIC starts its L2 guest's APs with INIT-SIPI-SIPI (nested INIT/SIPI VM exits, wait-for-SIPI)", 4, make_nested_ap_boot},
    };
    return kWorkloads;
}

std::uint64_t parse_param(const std::string& workload, const std::string& key, const std::string& value,
                          std::uint64_t min, std::uint64_t max) {
    const auto parsed = model::parse_u64(value);
    const std::uint64_t n = parsed.value_or(0);
    if (!parsed || n < min || n > max)
        throw model::ConfigError(workload + ": workload." + key + " = \"" + value + "\": expected an integer " +
                                 std::to_string(min) + ".." + std::to_string(max));
    return n;
}

void check_vcpus(const std::string& workload, const WorkloadConfig& cfg, unsigned min) {
    if (cfg.vcpus < min)
        throw model::ConfigError(workload + ": --vcpus " + std::to_string(cfg.vcpus) + " is below " +
                                 std::to_string(min) + ", the fewest this workload runs on");
    if (!cfg.x2apic && cfg.vcpus > kXapicMaxVcpus)
        throw model::ConfigError(workload + ": --vcpus " + std::to_string(cfg.vcpus) +
                                 " in xAPIC mode: xAPIC APIC IDs are 8 bits and FFH is the broadcast address, so a VM "
                                 "has at most " + std::to_string(kXapicMaxVcpus) + " (use --apic x2apic)");
    if (cfg.x2apic && cfg.vcpus > kX2apicMaxVcpus)
        throw model::ConfigError(workload + ": --vcpus " + std::to_string(cfg.vcpus) +
                                 " is above KVM_MAX_VCPU_IDS (" + std::to_string(kX2apicMaxVcpus) + ")");
}

void check_params(const std::string& workload, const WorkloadConfig& cfg, const std::vector<std::string>& known) {
    for (const auto& [key, value] : cfg.params)
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            std::string list;
            for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
            throw model::ConfigError(workload + ": unknown parameter workload." + key +
                                     (list.empty() ? " (it has none besides workload.goal)" : " (known: " + list + ")"));
        }
}

void create_vcpus(vmm::Vm& vm, const WorkloadConfig& cfg, std::function<void(cpu::GuestCpu&, unsigned)> program) {
    auto shared = std::make_shared<std::function<void(cpu::GuestCpu&, unsigned)>>(std::move(program));
    for (unsigned i = 0; i < cfg.vcpus; ++i) {
        vmm::Vcpu& v = vm.create_vcpu(i, i % cfg.pcpus);
        v.set_entry_point(kBspEntry + 0x1000 * i);
        vm.add_code(kBspEntry + 0x1000 * i, [shared, i](cpu::GuestCpu& g) { (*shared)(g, i); });
    }
}

const WorkloadInfo* find_workload(const std::string& name) {
    for (const auto& w : workload_registry())
        if (w.name == name) return &w;
    return nullptr;
}

}  // namespace vtx::workloads
