#pragma once
// The KVM-like VMM: software that runs on the simulated logical processors in VMX root
// operation, following KVM's paths (kvm-reference.md): vcpu_enter_guest, the exit
// handlers and the x2APIC ICR fastpath, kvm_apic_send_ipi -> __apic_accept_irq ->
// vmx_deliver_posted_interrupt, vmx_sync_pir_to_irr, the posted-interrupt wakeup list,
// IPIv set-up (PID-pointer table, tertiary controls) and APICv inhibits. It reaches the
// hardware only through the processor's root-mode API; each path charges named costs.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <systemc>

#include "cpu/guest.hpp"
#include "cpu/guest_context.hpp"
#include "cpu/platform.hpp"
#include "model/stats.hpp"
#include "vmm/nested.hpp"
#include "vmm/scheduler.hpp"

namespace vtx::vmm {

// Host vectors (arch/x86/include/asm/irq_vectors.h).
inline constexpr std::uint8_t kPostedIntrVector = 0xF2;
inline constexpr std::uint8_t kPostedIntrWakeupVector = 0xF1;
inline constexpr std::uint8_t kRescheduleVector = 0xFD;
inline constexpr std::uint8_t kCallFunctionSingleVector = 0xFB;  // CALL_FUNCTION_SINGLE_VECTOR

enum class HostIdle { Poll, C1, C1e };
// The host kernel whose VM-entry/exit mitigation code runs (kvm.host_kernel): what
// changed on that path, by the release that changed it (docs/vmm.md "Mitigations").
enum class HostKernel {
    V5_13,  // the IPIv series' training runs: the SPEC_CTRL switch only
    V6_0,   // + LFENCE after the SPEC_CTRL restore (5.19) and the PBRSB guard (6.0)
    V6_9,   // + BHI: BHI_DIS_S in the host's SPEC_CTRL, or clear_bhb_loop after VM exit
};
// A bug put into the VMM on purpose (kvm.inject_bug), for the protocol checker's tests: each
// is a step of KVM's posted-interrupt protocol left out (docs/vmm.md "Protocol checker").
enum class InjectedBug {
    None,
    NoWakeupVector,  // pi_enable_wakeup_handler: NV stays the posted-interrupt vector, no wakeup list
    NoOnRecheck,     // pi_enable_wakeup_handler: no ON re-check after the NV switch
    NoPirSync,       // vcpu_enter_guest: no sync_pir_to_irr before VM entry
    StalePhysMap,    // kvm_irq_delivery_to_apic_fast: the optimized map's physical entry of the next APIC ID
    NoSnOnPreempt,   // vmx_vcpu_pi_put: SN not set for a preempted vCPU
    PidBeforeInit,   // vmx_vcpu_create: the PID-pointer table entry installed before __vmx_vcpu_reset set NV and SN
    IpivAfterIdChange,  // an xAPIC ID change inhibits APICv but leaves IPI virtualization on
    StaleNdst,          // vmx_vcpu_pi_load does not update NDST (a migrated vCPU's notifications go to its old CPU)
};

// IA32_SPEC_CTRL bits (SDM vol. 4, MSR 48H).
inline constexpr std::uint64_t kSpecCtrlIbrs = 1u << 0;
inline constexpr std::uint64_t kSpecCtrlBhiDisS = 1u << 10;

// Module-parameter-like knobs, settable by name (`--set kvm.NAME=VALUE`).
struct KvmParams {
    bool enable_apicv = true;         // kvm_intel.enable_apicv
    bool enable_ipiv = true;          // kvm_intel.enable_ipiv (needs a CPU with IPIv)
    bool x2apic_icr_fastpath = true;  // handle_fastpath_set_x2apic_icr_irqoff (off: pre-2019 path)
    std::uint32_t max_vcpu_ids = 4096;  // KVM_CAP_MAX_VCPU_ID
    std::uint64_t sched_slice_cycles = 2000000;  // host scheduler time slice (overcommit)
    bool host_x2apic = true;  // the host kernel's local APIC mode (off: booted with nox2apic)
    // What an idle host CPU does (cpuidle): poll (idle=poll: the idle loop polls
    // TIF_NEED_RESCHED, a remote wakeup is a store it sees), or MWAIT in C1 / C1E (a remote
    // wakeup is a reschedule IPI, and any interrupt first pays the state's exit latency).
    HostIdle host_idle = HostIdle::C1;
    // KVM's halt polling (kvm_main.c kvm_vcpu_halt): a halting vCPU polls for events for up
    // to its own halt_poll_ns before it blocks; that grows (x halt_poll_ns_grow, from
    // halt_poll_ns_grow_start) after short halts, up to this maximum, and is reset after
    // long ones (halt_poll_ns_shrink 0). 0 disables polling. KVM_HALT_POLL_NS_DEFAULT (x86).
    std::uint64_t halt_poll_ns = 200000;
    // The host kernel's speculative-execution mitigations: on (mitigations=auto, the
    // default boot; eIBRS parts: host SPEC_CTRL = IBRS, IBPB on vCPU switch) or off
    // (mitigations=off), in the code of host_kernel. The defaults are the setting of the
    // training measurements (profiles/training: a 5.13-era kvm/queue, default boot).
    bool mitigations = true;
    HostKernel host_kernel = HostKernel::V5_13;
    InjectedBug inject_bug = InjectedBug::None;
    // A host-side stressor (0: off): every this many cycles the VMM's userspace moves a
    // vCPU thread, drawn from a fixed seeded stream, to another CPU (sched_setaffinity).
    std::uint64_t migrate_every = 0;
    // Sets one knob from text; throws model::ConfigError naming `where` and the knob.
    void set(const std::string& name, const std::string& value, const std::string& where);
    // name, value, description of every knob.
    std::vector<std::array<std::string, 3>> describe() const;
};

enum class VcpuMode { OutsideGuestMode, InGuestMode };
// include/uapi/linux/kvm.h
enum class MpState { Runnable = 0, Uninitialized = 1, InitReceived = 2, Halted = 3 };

class Kvm;
class Vm;

class Vcpu {
public:
    Vcpu(Vm& vm, unsigned id, unsigned pcpu);
    unsigned id() const { return m_id; }
    unsigned pcpu() const { return m_pcpu; }
    Vm& vm() { return m_vm; }
    cpu::GuestContext& context() { return m_ctx; }
    std::uint64_t pi_desc() const { return m_pi_desc; }
    std::uint64_t vapic_page() const { return m_vapic; }
    MpState mp_state() const { return m_mp_state; }
    // vcpu->preempted: the thread was preempted while runnable (kvm_sched_out), until it is
    // loaded again; and when, in its CPU's cycles.
    bool preempted() const { return m_preempted; }
    double preempted_at() const { return m_preempted_at; }
    VcpuMode mode() const { return m_mode; }
    bool apicv_active() const;
    bool ipiv_active() const;  // kvm_vcpu_ipiv_active: enable_ipiv && APICv active
    std::uint32_t apic_id() const;
    // The APIC ID KVM's map has for the vCPU (kvm_recalculate_apic_map): a guest's xAPIC
    // ID write takes effect there when KVM handles its APIC-write exit, after the page.
    std::uint32_t map_apic_id() const { return m_map_apic_id; }
    std::uint64_t exits(std::uint16_t reason) const;
    // Where the vCPU starts (linear address of its program) when it starts RUNNABLE.
    void set_entry_point(std::uint64_t linear) { m_entry = linear; }
    // Nested VMX (vmm/nested.cpp): null until L1 executes VMXON.
    const NestedVmx* nested() const { return m_nested.get(); }
    bool guest_mode() const { return m_nested && m_nested->guest_mode; }  // is_guest_mode()
    // The VMCS KVM runs this vCPU on (loaded_vmcs): vmcs02 while L2 is active, else vmcs01.
    cpu::GuestContext& loaded_context() { return guest_mode() ? m_nested->vmcs02 : m_ctx; }

private:
    friend class Kvm;
    friend class Vm;
    Vm& m_vm;
    unsigned m_id;
    unsigned m_pcpu;
    cpu::GuestContext m_ctx;
    std::uint64_t m_vapic = 0;    // KVM's lapic register page = the virtual-APIC page
    std::uint64_t m_pi_desc = 0;  // struct pi_desc
    std::uint64_t m_entry = 0;
    VcpuMode m_mode = VcpuMode::OutsideGuestMode;
    MpState m_mp_state = MpState::Runnable;
    bool m_launched = false;
    bool m_blocked = false;         // waitable in kvm_vcpu_block (prepare_to_rcuwait .. finish_rcuwait)
    bool m_woken = false;           // a wake-up since the vCPU thread became waitable (TASK_RUNNING again)
    bool m_polling = false;         // in kvm_vcpu_halt's poll loop
    double m_halt_poll_ns = 0;      // vcpu->halt_poll_ns
    std::unique_ptr<sc_core::sc_event_or_list> m_poll_wake;  // a wakeup or a host interrupt
    bool m_pending_init = false;
    // Work a userspace thread asked this vCPU thread to do (QEMU's run_on_cpu, a signal):
    // KVM_RUN returns to userspace, runs it, and is called again.
    std::vector<std::function<void(Vcpu&)>> m_userspace_work;
    // kvm.migrate_every: the CPU a pending migration moves the thread to. sched_setaffinity
    // replaces the mask, so a thread asked to move again before it moved moves once, to the
    // latest CPU (queuing each move made a thread that waited for its turn on one CPU wait
    // again on every CPU it was sent through).
    std::optional<unsigned> m_migrate_to;
    bool m_pending_gp = false;      // a #GP queued by kvm_inject_gp
    bool m_preempted = false;
    std::uint32_t m_map_apic_id = 0;
    double m_preempted_at = 0;
    unsigned m_nmi_pending = 0;     // arch.nmi_pending (at most 2: one can wait behind one in service)
    bool m_pending_sipi = false;
    std::uint8_t m_sipi_vector = 0;
    bool m_req_event = false;       // KVM_REQ_EVENT
    bool m_apicv_refresh = false;   // KVM_REQ_APICV_UPDATE
    sc_core::sc_event m_wake_event;
    sc_core::sc_event m_left_guest_mode;  // notified when m_mode leaves IN_GUEST_MODE ...
    unsigned m_guest_mode_waiters = 0;    // ... while someone waits for it
    std::uint64_t m_guest_mode_exits = 0;  // times m_mode left IN_GUEST_MODE (a kick's waiter compares it)
    std::map<std::uint16_t, std::uint64_t> m_exits;
    std::unique_ptr<NestedVmx> m_nested;
};

class Vm {
public:
    Vm(Kvm& kvm, unsigned index, bool x2apic, std::uint64_t memory_bytes);
    Kvm& kvm() { return m_kvm; }
    bool x2apic() const { return m_x2apic; }
    // vCPU creation (kvm_arch_vcpu_precreate + vmx_vcpu_create): refuses an ID at or
    // above max_vcpu_ids with model::ConfigError. `bsp` starts RUNNABLE at `entry`;
    // others wait for INIT/SIPI (UNINITIALIZED), unless `start_runnable`.
    Vcpu& create_vcpu(unsigned id, unsigned pcpu, bool start_runnable = true);
    std::vector<std::unique_ptr<Vcpu>>& vcpus() { return m_vcpus; }
    // The optimized map's physical lookup (kvm_apic_map phys_map): O(1) at any size.
    Vcpu* vcpu_by_apic_id(std::uint32_t apic_id) const {
        return apic_id < m_phys_map.size() ? m_phys_map[apic_id] : nullptr;
    }
    // The optimized map's logical lookup (kvm_apic_map_get_logical_dest): the vCPUs a
    // fixed logical-destination message names, by cluster and member bit, in O(members).
    // False when KVM would take the slow path: the map is disabled (vCPUs in different
    // logical models, a logical ID with several bits set, two vCPUs with one logical ID)
    // or the destination is xAPIC cluster 15 (all clusters).
    bool logical_destinations(const apic::InterruptMessage& msg, std::vector<Vcpu*>& out);
    // An LDR, DFR or APIC ID changed: recalculate the logical map before its next use.
    void logical_map_changed() { m_logical_dirty = true; }
    // The VM's code: guest programs registered at linear addresses.
    void add_code(std::uint64_t linear, cpu::GuestProgram program) { m_code[linear] = std::move(program); }
    // Guest-physical allocations (data the workloads share).
    std::uint64_t alloc_guest(std::uint64_t bytes, std::uint64_t align = 64);
    std::uint64_t gpa_to_hpa(std::uint64_t gpa) const { return m_memory.host_base + gpa; }
    std::uint64_t pid_table() const { return m_pid_table; }
    bool apicv_inhibited() const { return m_apicv_inhibited; }
    // kvm_set_apicv_inhibit(APIC_ID_MODIFIED): APICv off for every vCPU of the VM.
    void inhibit_apicv(const char* reason);
    // The IA32_SPEC_CTRL value the guest kernel runs with: 0 for a guest that never writes
    // it (kvm-unit-tests); a Linux guest that sees eIBRS writes IBRS at boot, after which
    // KVM passes its writes through and reads the MSR back after every VM exit.
    void set_guest_spec_ctrl(std::uint64_t value) { m_guest_spec_ctrl = value; }
    std::uint64_t guest_spec_ctrl() const { return m_guest_spec_ctrl; }

private:
    friend class Kvm;
    friend class Vcpu;
    Kvm& m_kvm;
    unsigned m_index;
    bool m_x2apic;
    cpu::GuestMemoryMap m_memory;
    std::uint64_t m_next_gpa = 0x10000;
    std::uint64_t m_apic_access_page = 0;
    std::uint64_t m_pid_table = 0;
    bool m_apicv_inhibited = false;
    std::uint64_t m_guest_spec_ctrl = 0;
    std::vector<std::unique_ptr<Vcpu>> m_vcpus;
    std::vector<Vcpu*> m_by_id;      // by vCPU ID
    std::vector<Vcpu*> m_phys_map;   // by APIC ID: the first vCPU (in creation order) with it
    // kvm_recalculate_apic_map: after a vCPU is created or changes its APIC ID.
    void recalculate_apic_map();
    void recalculate_logical_map();
    enum class LogicalModel { None, X2apicCluster, XapicFlat, XapicCluster };
    bool m_logical_dirty = true;
    bool m_logical_usable = false;
    LogicalModel m_logical_model = LogicalModel::None;
    std::vector<std::array<Vcpu*, 16>> m_logical_map;  // by cluster, then member bit
    std::map<std::uint64_t, cpu::GuestProgram> m_code;
};

class Kvm {
public:
    // Throws model::ConfigError if a knob asks for what the CPU profile lacks.
    Kvm(cpu::Platform& platform, KvmParams params);
    cpu::Platform& platform() { return m_platform; }
    const KvmParams& params() const { return m_params; }
    Vm& create_vm(bool x2apic, std::uint64_t memory_bytes = 16u << 20);
    std::vector<std::unique_ptr<Vm>>& vms() { return m_vms; }

    // ---- The VMM process's host side (scenario files' `host:` events; docs/vmm.md
    // "Host-side events"): a userspace thread pinned to a CPU, running when that CPU's
    // scheduler gives it the CPU. Each action below runs on such a thread (`h`) and charges
    // its CPU.
    struct HostThreadContext {
        unsigned pcpu = 0;
        HostThread self = nullptr;
    };
    // Spawns the thread (before or during the simulation); `body` runs holding its CPU.
    void spawn_host_thread(unsigned pcpu, const std::string& name, std::function<void(HostThreadContext&)> body);
    // The thread sleeps (its CPU goes to others) until `cycle` of simulated time, if later.
    void host_sleep_until(HostThreadContext& h, double cycle);
    // ioctl(KVM_SIGNAL_MSI): an interrupt message from the host (a device model, an
    // irqfd) through kvm_irq_delivery_to_apic, as a vCPU's ICR write would go, from the
    // host thread's CPU.
    void host_signal_msi(HostThreadContext& h, Vm& vm, const apic::InterruptMessage& msg);
    // A CPU-bound host task wakes up on `v`'s CPU and runs for `cycles` there (wakeup
    // preemption: the vCPU thread is preempted, vmx_vcpu_pi_put sets SN), then sleeps.
    void host_preempt_vcpu(HostThreadContext& h, Vcpu& v, double cycles);
    // qemu_cpu_kick / run_on_cpu: signals `v`'s thread, whose KVM_RUN returns to userspace
    // (from guest mode, from the run loop, or from kvm_vcpu_block: a pending signal ends
    // the wait), runs `work` on the vCPU thread, then calls KVM_RUN again.
    void host_run_on_vcpu(HostThreadContext& h, Vcpu& v, std::function<void(Vcpu&)> work);
    // Userspace work on a vCPU thread (inside host_run_on_vcpu's `work`):
    // the thread sleeps in userspace for `cycles` (a paused vCPU: its CPU is released).
    void userspace_sleep(Vcpu& v, double cycles);
    // sched_setaffinity of the vCPU thread to `pcpu` (userspace work): the thread moves, the
    // VMCS is cleared on the old CPU and loaded on the new one (VMLAUNCH next), NDST follows.
    void userspace_migrate(Vcpu& v, unsigned pcpu);
    // ioctl(KVM_SET_LAPIC) changing the xAPIC ID (bits 31:24 of the APIC ID register) and
    // nothing else. Throws model::ConfigError in an x2APIC VM, where KVM refuses an ID
    // other than the vCPU's own (kvm_apic_state_fixup, -EINVAL).
    void kvm_set_lapic_xapic_id(Vcpu& v, std::uint8_t id);
    // smp_call_function_single to `pcpu`: a CALL_FUNCTION_SINGLE_VECTOR IPI from the host
    // thread's CPU (a running guest there exits with an external interrupt).
    void host_call_function_single(HostThreadContext& h, unsigned pcpu);

    // Starts the host: an idle task on every physical CPU and one thread per vCPU, pinned
    // to its CPU; vCPUs sharing a CPU take turns in time slices (HostScheduler).
    void start();
    HostScheduler& scheduler(unsigned pcpu) { return *m_sched.at(pcpu); }
    // VMCS values a user sets by name, VMWRITTEN after KVM's own set-up of every vCPU.
    void set_vmcs_overrides(std::vector<std::pair<vmcs::Field, std::uint64_t>> o) { m_vmcs_overrides = std::move(o); }
    // Called when a vCPU's guest program returns.
    std::function<void(Vcpu&)> on_guest_finished;

    // Statistics.
    std::uint64_t exits(std::uint16_t reason) const;
    // Interrupts absorbed by one already pending with the same vector on KVM's paths: the
    // PIR bit was set when KVM posted, the IRR bit was set when KVM set it (no APICv), or
    // a PIR bit KVM synced was already in the IRR. Coalescing done by the processor
    // (IPIv, posted-interrupt processing) is not visible to KVM (docs/vmm.md).
    std::uint64_t coalesced_interrupts() const { return m_coalesced; }
    // wakeup_vcpus_on_cpu of a physical CPU: vCPUs blocked with NV = the wakeup vector.
    const std::vector<Vcpu*>& wakeup_list(unsigned pcpu) const { return m_wakeup_list.at(pcpu); }

private:
    friend class Vcpu;
    friend class Vm;
    // vCPU thread and run loop (x86.c vcpu_run / vcpu_enter_guest).
    void vcpu_thread(Vcpu& v);
    void hardware_enable(unsigned pcpu);  // VMXON on the CPU, once
    void migration_stressor(HostThreadContext& h);  // kvm.migrate_every
    int vcpu_enter_guest(Vcpu& v);
    // The mitigation steps around VMRESUME in vmx_vcpu_run (both for L1 and for L2).
    std::uint64_t host_spec_ctrl() const;
    void spec_ctrl_before_entry(Vcpu& v);
    void spec_ctrl_after_exit(Vcpu& v);
    void init_vmcs(Vcpu& v);
    void refresh_apicv_exec_ctrl(Vcpu& v);
    void update_msr_bitmap_x2apic(Vcpu& v);
    void kvm_vcpu_block(Vcpu& v);
    // try_to_wake_up of a waitable vCPU thread: runnable from `delay` on.
    static void wake_thread(Vcpu& v, const sc_core::sc_time& delay) {
        v.m_woken = true;
        v.m_wake_event.notify(delay);
    }
    bool kvm_vcpu_has_events(Vcpu& v);
    void kvm_apic_accept_events(Vcpu& v);
    // An INIT's reset of the vCPU and its local APIC (kvm_lapic_reset, kvm_vcpu_reset with
    // init_event, vmx_apicv_post_state_restore).
    void kvm_vcpu_reset_on_init(Vcpu& v);
    // Exit handling (vmx.c).
    bool handle_exit_irqoff_and_fastpath(Vcpu& v, const cpu::VmExit& e);
    void handle_exit(Vcpu& v, const cpu::VmExit& e);
    void skip_emulated_instruction(Vcpu& v);
    // kvm_emulate_instruction of the decoded MMIO access to the APIC page, then skip it.
    void emulate_apic_mmio(Vcpu& v, const char* step_name);
    // The WRMSR/RDMSR emulation of an x2APIC MSR (kvm_x2apic_msr_write/read), then skip it.
    void emulate_x2apic_msr(Vcpu& v, bool write, const char* step_name);
    // Local APIC emulation (lapic.c).
    // False where KVM's returns 1: a register x2APIC mode makes read-only or absent, or one
    // that is read-only or reserved (a WRMSR gets #GP; an MMIO write is dropped).
    bool kvm_lapic_reg_write(Vcpu& v, std::uint32_t offset, std::uint32_t value);
    // kvm_lapic_readable_reg_mask in x2APIC mode (RDMSR of another one: #GP).
    static bool x2apic_register_readable(std::uint32_t offset);
    // kvm_inject_gp: a #GP queued for the next VM entry (the instruction not skipped).
    void kvm_inject_gp(Vcpu& v);
    // kvm_check_and_inject_events, exception part: the queued #GP through VM entry.
    void inject_pending_exception(Vcpu& v);
    std::uint32_t kvm_lapic_reg_read(Vcpu& v, std::uint32_t offset);
    void kvm_x2apic_icr_write(Vcpu& v, std::uint64_t icr);
    // Who runs one of KVM's interrupt-delivery paths: a vCPU thread (its ICR write,
    // emulated) or a host thread (KVM_SIGNAL_MSI, a signal); its CPU pays for the path.
    struct IrqSource {
        cpu::LogicalProcessor& cpu;
        unsigned pcpu;
        const Vcpu* vcpu;  // null: a host thread
    };
    IrqSource source(Vcpu& v) { return {lp(v), v.m_pcpu, &v}; }
    IrqSource source(HostThreadContext& h) { return {m_platform.cpu(h.pcpu), h.pcpu, nullptr}; }
    void kvm_apic_send_ipi(Vcpu& src, std::uint32_t icr_lo, std::uint32_t dest);
    // kvm_irq_delivery_to_apic: the optimized map, else every vCPU matched.
    void kvm_irq_delivery_to_apic(const IrqSource& src, Vm& vm, const apic::InterruptMessage& msg);
    void apic_accept_irq(const IrqSource& src, Vcpu& target, const apic::InterruptMessage& msg);
    void deliver_posted_interrupt(const IrqSource& src, Vcpu& target, std::uint8_t vector);
    void kvm_vcpu_kick(const IrqSource& src, Vcpu& target);
    void kvm_vcpu_wake_up(const IrqSource& src, Vcpu& target);
    // kvm_lapic_reg_write(APIC_ID) and KVM_SET_LAPIC in xAPIC mode: the new ID, the map,
    // and the APICv inhibit when it differs from the vCPU ID.
    void kvm_apic_set_xapic_id(Vcpu& v, std::uint8_t id);
    // KVM_RUN returns to userspace for a pending signal: the queued work, then KVM_RUN again.
    void exit_to_userspace(Vcpu& v);
    bool sync_pir_to_irr(Vcpu& v);  // true: a posted interrupt arrived in the IRR
    // ON set: clear it, move the PIR into the IRR (__kvm_apic_update_irr) through `port`.
    bool pir_to_irr(Vcpu& v, model::MemoryPort& port);
    bool pir_to_irr_while_blocked(Vcpu& v);  // the same, untimed (kvm_vcpu_has_events)
    std::uint8_t apic_ppr(Vcpu& v);  // __apic_update_ppr, from the lapic page
    void inject_pending_interrupt(Vcpu& v);
    // kvm_check_and_inject_events, NMI part: inject a pending NMI through VM entry when
    // NMIs are not blocked, else ask for an NMI-window exit. True if one was injected.
    bool inject_pending_nmi(Vcpu& v);
    // vmx_nmi_allowed: no NMI (virtual-NMI) blocking, no blocking by STI or MOV SS.
    static bool vmx_nmi_allowed(const vmcs::Vmcs& vmcs);
    // posted_intr.c
    void vmx_vcpu_pi_load(Vcpu& v);
    void vmx_vcpu_pi_put(Vcpu& v, bool preempted);
    void vcpu_load(Vcpu& v);
    void pi_enable_wakeup_handler(Vcpu& v);
    // posted_intr.c vmx_needs_pi_wakeup(): a vCPU that does not run can be the target of
    // posted interrupts (its notifications need the wakeup vector, SN on preemption).
    bool vmx_needs_pi_wakeup(const Vcpu& v) const;
    // A VM entry KVM cannot recover from: ConfigError if the user set VMCS values, else
    // SimulationError.
    [[noreturn]] void entry_failed(const Vcpu& v, const std::string& what) const;
    // The wait of a KVM_REQUEST_WAIT request: until `target` has left guest mode.
    // After a VM exit: OUTSIDE_GUEST_MODE, counted, and a kick's waiter told.
    void leave_guest_mode(Vcpu& v);
    // Waits until `target` has left guest mode since the kick that saw it there
    // (`exits_at_kick`: its m_guest_mode_exits then).
    void wait_out_of_guest_mode(Vcpu& waiter, Vcpu& target, std::uint64_t exits_at_kick);
    // vmx.c __vmx_interrupt_blocked() on the vCPU's loaded VMCS.
    static bool vmx_interrupt_blocked(const vmcs::Vmcs& vmcs);
    void pi_wakeup_handler(unsigned pcpu);
    void scheduler_ipi(unsigned pcpu);  // RESCHEDULE_VECTOR: threads woken from another CPU run
    void kvm_vcpu_halt(Vcpu& v);        // halt polling, then kvm_vcpu_block
    // Nested VMX (vmm/nested.cpp; KVM's vmx/nested.c).
    void handle_vmx_instruction(Vcpu& v, const cpu::VmExit& e);  // L1 exits 19-27
    void nested_vmx_run(Vcpu& v, bool launch);
    void prepare_vmcs02(Vcpu& v);
    void nested_vmx_vmexit(Vcpu& v, std::uint32_t reason, std::uint64_t qualification,
                           std::uint32_t intr_info = 0, std::uint32_t instruction_length = 0);
    int nested_vcpu_run_l2(Vcpu& v);  // vcpu_enter_guest's entry and exit part for L2
    void nested_handle_l2_exit(Vcpu& v, const cpu::VmExit& e);
    bool nested_exit_handled_msr(Vcpu& v, std::uint32_t msr, bool write);
    bool kvm_check_nested_events(Vcpu& v);      // false: -EBUSY
    bool nested_apic_accept_events(Vcpu& v);    // true: nested VMX decided this call
    bool nested_init_blocked(const Vcpu& v) const;
    cpu::LogicalProcessor& lp(Vcpu& v) { return m_platform.cpu(v.m_pcpu); }

    cpu::Platform& m_platform;
    KvmParams m_params;
    std::vector<std::unique_ptr<Vm>> m_vms;
    std::vector<std::vector<Vcpu*>> m_wakeup_list;  // per pCPU (wakeup_vcpus_on_cpu)
    std::vector<std::vector<Vcpu*>> m_remote_wakeups;  // per pCPU: threads a reschedule IPI is bringing
    std::vector<std::unique_ptr<HostScheduler>> m_sched;  // per pCPU
    std::vector<bool> m_vmxon;                             // per pCPU: VMXON done
    std::vector<unsigned> m_pinned;                        // per pCPU: vCPU threads pinned there
    std::vector<std::pair<vmcs::Field, std::uint64_t>> m_vmcs_overrides;
    std::uint64_t m_coalesced = 0;
    std::vector<std::unique_ptr<char>> m_host_threads;  // what names each host thread (HostThread)

    // Statistics (registered once; stats.txt names).
    model::StatCounter m_stat_ipis_sent{m_platform.stats(), "kvm.ipis_sent", "IPIs KVM delivered for a guest"};
    model::StatCounter m_stat_ipis_logical_map{m_platform.stats(), "kvm.ipis_logical_map",
                                               "IPIs delivered through the optimized map's logical part"};
    model::StatCounter m_stat_ipis_slow_path{m_platform.stats(), "kvm.ipis_slow_path",
                                             "IPIs delivered by matching every vCPU (broadcast, shorthand, map disabled)"};
    model::StatCounter m_stat_x2apic_icr_fastpath{m_platform.stats(), "kvm.x2apic_icr_fastpath",
                                                  "x2APIC ICR writes handled in the IRQs-off fastpath"};
    model::StatCounter m_stat_notifications_sent{m_platform.stats(), "kvm.notifications_sent",
                                                 "posted-interrupt notification IPIs sent by KVM"};
    model::StatCounter m_stat_interrupts_injected{m_platform.stats(), "kvm.interrupts_injected",
                                                  "interrupts KVM injected through VM entry (APICv inactive)"};
    model::StatCounter m_stat_pi_wakeup_handler{m_platform.stats(), "kvm.pi_wakeup_handler",
                                                "POSTED_INTR_WAKEUP_VECTOR interrupts handled (pi_wakeup_handler)"};
    model::StatCounter m_stat_msis_signalled{m_platform.stats(), "kvm.msis_signalled",
                                             "interrupt messages from the host (KVM_SIGNAL_MSI)"};
    model::StatCounter m_stat_migrations{m_platform.stats(), "kvm.vcpu_migrations",
                                         "vCPU threads moved to another CPU (sched_setaffinity from userspace)"};
    model::StatCounter m_stat_userspace_exits{m_platform.stats(), "kvm.userspace_exits",
                                              "KVM_RUN returns to userspace for a signal (host-side work on a vCPU thread)"};
    model::StatCounter m_stat_task_wakeups{m_platform.stats(), "host.task_wakeups",
                                           "host tasks woken onto a vCPU's CPU (they preempt what runs there)"};
    model::StatCounter m_stat_gp_injected{m_platform.stats(), "kvm.gp_injected",
                                          "#GP exceptions KVM injected (x2APIC MSR accesses it refused)"};
    model::StatCounter m_stat_nmis_injected{m_platform.stats(), "kvm.nmis_injected",
                                            "NMIs KVM injected through VM entry"};
    model::StatCounter m_stat_halt_polls{m_platform.stats(), "kvm.halt_polls", "halts that polled before blocking"};
    model::StatCounter m_stat_halt_poll_successes{m_platform.stats(), "kvm.halt_poll_successes",
                                                  "halts that ended while polling (no block, no wakeup)"};
    model::StatCounter m_stat_wakeups_rescheduled{m_platform.stats(), "host.wakeups_reschedule_ipi",
                                                  "vCPU threads woken on an idle CPU by a reschedule IPI"};
    model::StatCounter m_stat_wakeups_polling{m_platform.stats(), "host.wakeups_polling",
                                              "vCPU threads woken on a polling idle CPU (no IPI)"};
    model::StatCounter m_stat_pi_wakeups{m_platform.stats(), "kvm.pi_wakeups",
                                         "blocked vCPUs woken by pi_wakeup_handler (PID.ON set)"};
    // The mitigation steps (kvm.mitigations, kvm.host_kernel).
    model::StatCounter m_stat_spec_ctrl_wrmsrs{m_platform.stats(), "host.spec_ctrl_wrmsrs",
                                               "WRMSRs of IA32_SPEC_CTRL around VM entry and exit (guest and host values differ)"};
    model::StatCounter m_stat_spec_ctrl_rdmsrs{m_platform.stats(), "host.spec_ctrl_rdmsrs",
                                               "RDMSRs of IA32_SPEC_CTRL after VM exit (a guest whose writes pass through)"};
    model::StatCounter m_stat_pbrsb_guards{m_platform.stats(), "host.pbrsb_guards", "PBRSB guards after VM exit (6.0+)"};
    model::StatCounter m_stat_bhb_clears{m_platform.stats(), "host.bhb_clears",
                                         "clear_bhb_loop runs after VM exit (6.9+, CPUs without BHI_CTRL)"};
    model::StatCounter m_stat_ibpbs{m_platform.stats(), "host.ibpbs", "IBPBs when a CPU loads another vCPU's VMCS"};
};

}  // namespace vtx::vmm
