#pragma once
// A logical processor (SystemC module): VMX root and non-root operation and the VMX
// microcode flows, each a function whose steps follow the SDM and charge named costs.
//
// Two faces:
//  * the root-mode API (VMXON ... VMRESUME, physical APIC, memory, host interrupts),
//    used by the VMM, which runs on the processor's own thread;
//  * the guest API (cpu/guest.hpp), used by guest programs, which run on one SystemC
//    thread per vCPU context. A VM entry hands the processor to that thread; a VM exit
//    hands it back, and VMRESUME/VMLAUNCH return to the VMM with the exit information,
//    as control reaches HOST_RIP on hardware.
//
// Time: each processor keeps a local time offset (cycles charged since its last
// synchronization). Before anything another component could observe (memory and APIC
// accesses, instruction boundaries, VMX instructions) it calls sync_point(): in exact mode
// (quantum 0) that synchronizes with SystemC time; in decoupled mode (TLM-2.0 loosely
// timed) it synchronizes only once the offset reaches the quantum, and the offset is
// annotated on the transaction or notification instead (annotation()). Waits absorb the
// offset (wait_for); a hand-over of the CPU to another thread synchronizes (sync()).
// docs/architecture.md, "Time modes".
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "apic/local_apic.hpp"
#include "cpu/guest_context.hpp"
#include "cpu/virtual_apic.hpp"
#include "model/clock.hpp"
#include "model/costs.hpp"
#include "model/memory.hpp"
#include "model/memory_target.hpp"
#include "model/profile.hpp"
#include "model/sparse_array.hpp"
#include "model/stats.hpp"
#include "model/trace.hpp"
#include "model/x86.hpp"
#include "vmcs/capabilities.hpp"
#include "vmcs/exit_info.hpp"
#include "vmcs/vmcs.hpp"

namespace vtx::cpu {

class Platform;

// Outcome of VMLAUNCH/VMRESUME as seen by the VMM.
enum class EntryOutcome {
    VmFailInvalid,  // CF = 1
    VmFailValid,    // ZF = 1, error number in VM_INSTRUCTION_ERROR
    Exited,         // the entry succeeded (or failed during guest-state loading); a VM exit
                    // brought control back: see `exit`
    GuestFinished,  // the guest program returned (the simulated VM has nothing left to run)
};

struct VmExit {
    std::uint32_t reason = 0;  // full exit-reason field (bit 31 = entry failure)
    std::uint64_t qualification = 0;
    std::uint32_t intr_info = 0;
    std::uint32_t instruction_length = 0;
    std::uint16_t basic() const { return static_cast<std::uint16_t>(reason & 0xFFFF); }
};

struct EntryResult {
    EntryOutcome outcome = EntryOutcome::VmFailInvalid;
    vmcs::VmInstructionError error = vmcs::VmInstructionError::None;
    std::string failed_check;  // name and SDM section of a failed control check
    VmExit exit;
};

// A host (root-mode) interrupt handler, run on this processor with the vector.
using HostHandler = std::function<void(std::uint8_t vector)>;

class LogicalProcessor : public sc_core::sc_module {
public:
    tlm_utils::simple_initiator_socket<LogicalProcessor> mem_socket;

    LogicalProcessor(sc_core::sc_module_name name, int index, Platform& platform,
                     apic::InterruptBus& bus);
    ~LogicalProcessor() override;

    int index() const { return m_index; }
    apic::LocalApic& apic() { return *m_apic; }
    Platform& platform() { return m_platform; }
    const model::CostTable& costs() const { return m_costs; }
    const model::Clock& clock() const { return m_clock; }
    const vmcs::VmxCapabilities& capabilities() const;

    // ---- software that runs on this processor in root operation (the VMM) ----
    void set_software(std::function<void()> fn) { m_software = std::move(fn); }

    // ---- time ----
    void charge(model::Cost c) { m_local += m_costs[c]; }
    void charge(model::Cost c, double times) { m_local += m_costs[c] * times; }
    void charge_cycles(double cycles) { m_local += cycles; }
    // A named step of a microcode flow or VMM path: charges its cost and traces it.
    void step(model::Cost c, const char* name, const char* where, const char* flag = "vmx") {
        const double cost = m_costs[c];
        trace(flag, name, where, cost);
        m_local += cost;
    }
    // Synchronizes with SystemC time now (before handing the CPU to another thread).
    void sync();
    // Before an action another agent may observe: exact mode synchronizes; decoupled mode
    // only once the local offset has reached the quantum.
    void sync_point() {
        if (m_local >= m_quantum) sync();
    }
    // Before software on this processor reads state that another thread of the simulation
    // changes without a transaction (the VMM's per-vCPU mode and blocked flags): decoupled
    // mode synchronizes, so the read sees that state as of this processor's local time.
    // (Exact mode synchronized at the last sync point: no transaction came since.)
    void sync_for_shared_state() {
        if (decoupled()) sync();
    }
    // The CPU passes from the running thread to another (schedule()): returns when, in
    // SystemC time, it is free (decoupled: now + the local offset, which the leaving
    // thread hands over instead of waiting it out; exact mode synchronizes first), and
    // clears the offset. The thread that takes the CPU calls take_over with that time.
    sc_core::sc_time hand_over();
    void take_over(const sc_core::sc_time& free_at);
    // The delay to annotate on a transaction or notification another agent observes, so
    // that it takes effect at this processor's local time: the local offset (in exact mode
    // zero right after a sync point; a notification made without one, such as KVM's
    // wakeup of a vCPU thread, carries what was charged since).
    sc_core::sc_time annotation() const;
    // Whether the Platform set a quantum (decoupled mode) rather than 0 (exact mode).
    bool decoupled() const { return m_quantum > 0.0; }
    // Waits for an event without losing a notification: the local offset is not
    // synchronized first (that would yield between a check and the wait); the time the
    // processor was ahead is charged after waking if the event came sooner.
    void wait_for(const sc_core::sc_event& e);
    void wait_for(const sc_core::sc_event_or_list& events);
    // Waits for one of `events` or until `max_cycles` have passed (from this processor's
    // local time), whichever comes first.
    void wait_for(const sc_core::sc_event_or_list& events, double max_cycles);
    // A boundary in the trace (flag "mark"): `vtxsim explain` cuts a window between two.
    void mark(const char* what) const { trace("mark", what, "", 0); }
    double now_cycles() const { return m_clock.to_cycles(model::sim_now()) + m_local; }  // including the local offset
    std::uint64_t tsc() const;  // what RDTSC reads (TSC ticks)

    // ---- memory (timed, coherent, through the TLM socket) ----
    model::MemoryPort& memory() { return m_port; }

    // ---- root-mode API: VMX instructions ----
    vmcs::VmxResult vmxon(std::uint64_t vmxon_region);
    vmcs::VmxResult vmxoff();
    vmcs::VmxResult vmclear(std::uint64_t vmcs_address);
    vmcs::VmxResult vmptrld(std::uint64_t vmcs_address);
    vmcs::VmreadResult vmread(vmcs::Field f);
    vmcs::VmxResult vmwrite(vmcs::Field f, std::uint64_t value);
    EntryResult vmlaunch() { return vm_entry(true); }
    EntryResult vmresume() { return vm_entry(false); }
    bool in_vmx_operation() const { return m_vmx_on; }
    bool in_non_root() const { return m_non_root; }
    vmcs::Vmcs* current_vmcs() { return m_current ? &m_current->vmcs : nullptr; }
    GuestContext* current_context() { return m_current; }

    // ---- root-mode API: physical local APIC and host interrupts ----
    // The host writes its physical ICR (x2APIC MSR or xAPIC MMIO, by the APIC's mode).
    void host_send_ipi(std::uint32_t destination, std::uint8_t vector,
                       std::uint32_t icr_extra = 0);
    void set_host_handler(std::uint8_t vector, HostHandler handler);
    void local_irq_disable() { m_host_if = false; }
    // Enables host interrupts and runs the handlers of any that are pending.
    void local_irq_enable();
    bool host_irqs_enabled() const { return m_host_if; }
    // Waits (host idle, HLT in root operation with IF = 1) until an interrupt arrives or
    // `wake` is notified, then runs pending host handlers.
    void host_wait_for_interrupt(sc_core::sc_event* wake = nullptr);
    // Whether a physical interrupt the host could take is pending.
    bool host_interrupt_pending() const;
    // Runs the host handler of a vector already acknowledged (on a VM exit with
    // "acknowledge interrupt on exit"), then EOI.
    void run_host_handler(std::uint8_t vector);

    // ---- used by the guest API (cpu/guest.cpp); each runs on the guest thread ----
    // Every instruction returns whether it completed (true) or caused a VM exit after
    // which the VMM resumed the guest (false: the caller re-checks RIP).
    bool exec_simple(GuestContext& g, model::Cost c, unsigned length);
    bool exec_compute(GuestContext& g, double cycles);  // straight-line work
    bool exec_rdtsc(GuestContext& g, std::uint64_t& out);
    bool exec_cpuid(GuestContext& g);
    bool exec_vmcall(GuestContext& g);
    // A VMX instruction (VMCLEAR ... VMXON) in VMX non-root operation: a VM exit with that
    // basic reason, always (SDM 25.1.2); the VMM decodes the operands from g.regs.
    bool exec_vmx_instruction(GuestContext& g, vmcs::ExitReason reason, unsigned length);
    bool exec_hlt(GuestContext& g);
    bool exec_pause(GuestContext& g);
    bool exec_rdmsr(GuestContext& g);  // ECX in regs.rcx; result in regs.rax/rdx
    bool exec_wrmsr(GuestContext& g);  // ECX, EDX:EAX from regs
    bool exec_mmio_read(GuestContext& g, std::uint64_t gpa, unsigned size, std::uint64_t& out);
    bool exec_mmio_write(GuestContext& g, std::uint64_t gpa, unsigned size, std::uint64_t value);
    bool exec_memory(GuestContext& g, model::MemRequest& req);  // loads, stores, atomics
    void exec_sti(GuestContext& g);
    void exec_cli(GuestContext& g);
    // User interrupts (cpu/user_interrupts.cpp): SENDUIPI with the UITT index in `index`;
    // STUI (set) / CLUI (clear) of UIF.
    bool exec_senduipi(GuestContext& g, std::uint64_t index);
    bool exec_uif(GuestContext& g, bool set);
    // A loop of PAUSE (or a tight load loop) that ends when `done()` holds (checked at
    // each iteration), taking interrupts at its instruction boundaries. `watch_gpa`, if
    // set, is the location `done()` polls: the loop then sleeps until that line is
    // written. Without it the loop runs iteration by iteration, unless `done_never`
    // (an idle loop that only interrupts interrupt), when it sleeps until an interrupt.
    // `value`, if set: `done()` is one load of `size` bytes at `watch_gpa` that
    // `satisfied` accepts (GuestCpu::spin_until_value). In decoupled mode the loop then
    // waits as a MemoryTarget::ValuePoller: a store leaving the value unsatisfied does not
    // wake it.
    struct SpinValue {
        unsigned size = 8;
        std::function<bool(std::uint64_t)> satisfied;
    };
    void exec_spin(GuestContext& g, const std::function<bool()>& done,
                   std::optional<std::uint64_t> watch_gpa, bool pause, bool done_never = false,
                   const SpinValue* value = nullptr);
    // Instruction boundary: recognizes and delivers pending events (VM exits, posted-
    // interrupt processing, virtual-interrupt delivery). Returns false if a VM exit
    // happened (the guest thread was suspended and has been resumed since).
    // The common case (nothing injected, no signal from the APIC, the guest active, no
    // window exiting, no virtual interrupt requested: RVI's priority class 0) is decided
    // here, inline; anything else goes to recognize_events.
    bool event_window(GuestContext& g) {
        sync_point();
        if (g.pending_injection < 0 && !m_tpr_threshold_exit_pending && !m_apic->init_pending() &&
            !m_apic->sipi_pending() && !m_apic->nmi_pending() && !m_apic->intr_pending() &&
            static_cast<vmcs::ActivityState>(g.vmcs.hw_read(vmcs::Field::GuestActivityState)) ==
                vmcs::ActivityState::Active &&
            !(g.vmcs.hw_read(vmcs::Field::CpuBasedVmExecControl) &
              (vmcs::kPrimaryNmiWindowExiting | vmcs::kPrimaryInterruptWindowExiting)) &&
            (rvi(g.vmcs) & 0xF0) == 0 && !user_interrupt_pending(g))
            return true;
        return recognize_events(g);
    }

    // Statistics of this processor.
    std::uint64_t exits(std::uint16_t basic_reason) const;
    std::uint64_t notifications_sent() const { return m_notifications_sent; }

private:
    bool recognize_events(GuestContext& g);  // event_window's general case
    friend class Platform;
    // VMfail(ErrorNumber): VMfailValid into the current VMCS, or VMfailInvalid without one.
    vmcs::VmxResult vm_fail(vmcs::VmInstructionError e);
    class Port : public model::MemoryPort {
    public:
        explicit Port(LogicalProcessor& lp) : m_lp(lp) {}
        void access(model::MemRequest& req) override;

    private:
        LogicalProcessor& m_lp;
    };

    void run();  // SC_THREAD: runs the software

    // VM entry (SDM 26) and VM exit (SDM 27).
    EntryResult vm_entry(bool launch);
    // Performs a VM exit from non-root operation on the guest thread, hands control to
    // the VMM and suspends the guest thread until the next VM entry of this context.
    void vm_exit(GuestContext& g, std::uint32_t reason, std::uint64_t qualification,
                 std::uint32_t intr_info = 0, std::uint32_t instruction_length = 0);
    void guest_thread_body(GuestContext* g);
    void start_guest_thread(GuestContext& g);
    // Inactive activity states (HLT, wait-for-SIPI) on the guest thread: waits for an
    // event; returns when the processor is active again.
    void inactive_wait(GuestContext& g);

    // Non-root flows (SDM 29 / new SDM 30).
    bool posted_interrupt_processing(GuestContext& g, std::uint8_t vector);
    void deliver_virtual_interrupt(GuestContext& g);
    void deliver_guest_interrupt(GuestContext& g, std::uint8_t vector);
    bool virtualize_ipi(GuestContext& g, std::uint8_t vector, std::uint32_t apic_id);
    bool apic_write_emulation(GuestContext& g, std::uint32_t offset);
    bool eoi_virtualization_flow(GuestContext& g);
    // User interrupts: notification processing when virtual-interrupt delivery delivers
    // UINV; recognition and delivery at an instruction boundary; the UINTR MSRs.
    bool uintr_notification_is(const GuestContext& g, std::uint8_t vector) const;
    void uintr_notification_processing(GuestContext& g);
    static bool user_interrupt_pending(const GuestContext& g) {
        return g.uintr.rr != 0 && g.uintr.uif && g.cpl == 3;
    }
    void deliver_user_interrupt(GuestContext& g);
    static bool is_uintr_msr(std::uint32_t msr) { return msr >= x86::kMsrUintrRr && msr <= x86::kMsrUintrTt; }
    bool uintr_msr_access(GuestContext& g, std::uint32_t msr, bool write, std::uint64_t& value);
    bool raise_exception(GuestContext& g, std::uint8_t vector);
    bool tpr_virtualization_flow(GuestContext& g);
    void self_ipi_virtualization_flow(GuestContext& g, std::uint8_t vector);
    bool mmio_hole_exit(GuestContext& g, const DecodedMmio& access);
    bool apic_access_mmio(GuestContext& g, std::uint32_t offset, unsigned size, bool write,
                          std::uint64_t& value, std::uint64_t rip, unsigned length);
    bool x2apic_msr_write(GuestContext& g, std::uint32_t msr, std::uint64_t value,
                          std::uint64_t rip, unsigned length, bool& handled);
    bool x2apic_msr_read(GuestContext& g, std::uint32_t msr, std::uint64_t& value,
                         bool& handled);
    bool msr_bitmap_intercepts(std::uint32_t msr, bool write) const;
    void send_notification(std::uint8_t nv, std::uint32_t ndst);
    // Spin loops: the period of one iteration, and the wait for a store to the watched
    // line that takes effect after this processor's present (decoupled mode).
    double spin_period(bool pause) const;
    template <class Events>
    void wait_absorbing_offset(const Events& events);
    // The spin-wait's wake-up condition for a watched line: its store or an interrupt.
    const sc_core::sc_event_or_list& line_or_interrupt(std::uint64_t line, sc_core::sc_event& written);
    void catch_up_with_store(GuestContext& g, const sc_core::sc_time& stored, bool pause);
    std::uint64_t translate(GuestContext& g, std::uint64_t gpa) const {
        if (gpa >= g.memory_map.size) outside_guest_memory(g, gpa);
        return g.memory_map.host_base + gpa;
    }
    [[noreturn]] void outside_guest_memory(GuestContext& g, std::uint64_t gpa) const;
    bool is_apic_gpa(GuestContext& g, std::uint64_t gpa) const;

    // Helpers.
    vmcs::Vmcs& vmcs() { return m_current->vmcs; }
    const vmcs::Vmcs& vmcs() const { return m_current->vmcs; }
    std::uint32_t pin() const;
    std::uint32_t primary() const;
    std::uint32_t secondary() const;
    std::uint64_t tertiary() const;
    VirtualApicPage vapic();
    std::uint64_t rip(GuestContext& g) const;
    void set_rip(GuestContext& g, std::uint64_t rip);
    void advance_rip(GuestContext& g, unsigned length);
    bool guest_if(GuestContext& g) const;
    const char* mode_name() const { return m_non_root ? "nonroot" : "root"; }
    // A trace line of a named step (nothing computed, no call, when tracing is off).
    void trace(const char* flag, const char* step, const char* where, double cost) const {
        if (m_tracer.any()) trace_line(flag, step, where, cost);
    }
    void trace_line(const char* flag, const char* step, const char* where, double cost) const;
    void count_exit(std::uint16_t basic);
    void handle_host_interrupts();
    void handler_then_eoi(std::uint8_t vector);

    int m_index;
    const model::Tracer& m_tracer;  // the platform's
    Platform& m_platform;
    const model::Clock& m_clock;      // the platform's
    const model::CostTable& m_costs;  // the platform's profile's
    // vapic()'s last page: its address and bytes (PhysicalMemory::page_bytes).
    std::uint64_t m_vapic_address = ~std::uint64_t{0};
    std::uint8_t* m_vapic_bytes = nullptr;
    std::unique_ptr<apic::LocalApic> m_apic;
    Port m_port{*this};
    std::function<void()> m_software;
    double m_local = 0.0;  // local time offset in cycles
    // Cycles the local offset may reach before sync_point() synchronizes. Exact mode: 0
    // (synchronize whenever anything was charged); decoupled: the global quantum.
    double m_quantum = 0.0;

    // VMX state.
    bool m_vmx_on = false;
    bool m_non_root = false;
    std::uint64_t m_vmxon_region = 0;
    GuestContext* m_current = nullptr;  // current VMCS (and its guest context)
    bool m_host_if = true;              // RFLAGS.IF in root operation
    model::SparseArray<HostHandler> m_host_handlers;  // by vector

    // Hand-over between the VMM thread and a guest thread.
    sc_core::sc_event m_exit_event;
    VmExit m_last_exit;
    bool m_guest_finished = false;
    bool m_tpr_threshold_exit_pending = false;  // set by VM entry (SDM 26.7.7)

    // Per basic exit reason (reasons are below 256): this processor's count and the
    // platform-wide statistics counter.
    struct ExitTally {
        std::uint64_t count = 0;
        model::Counter* counter = nullptr;  // exits.N in the statistics, registered on first use
    };
    model::SparseArray<ExitTally> m_exits;  // by basic exit reason

    std::uint64_t m_notifications_sent = 0;
    std::unordered_map<std::uint64_t, std::unique_ptr<sc_core::sc_event_or_list>> m_line_or_interrupt;

    // Statistics shared by all processors (registered once; stats.txt names).
    model::StatCounter m_stat_interrupts_delivered;
    model::StatCounter m_stat_pi_processed;
    model::StatCounter m_stat_ipiv_virtualized;
    model::StatCounter m_stat_notifications_sent;
    model::StatCounter m_stat_host_interrupts;
    model::StatCounter m_stat_uipis_sent;
    model::StatCounter m_stat_uintr_notifications;
    model::StatCounter m_stat_user_interrupts;
};

}  // namespace vtx::cpu
