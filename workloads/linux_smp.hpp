#pragma once
// A guest kernel's cross-CPU function calls, as guest code: Linux 4.14's kernel/smp.c
// (smp_call_function_single, smp_call_function_many, the per-CPU call-single queue and
// its flush) over arch/x86's IPI send paths (x2apic_phys.c, the xAPIC physflat path of
// ipi.c) and interrupt entry (arch/x86/kernel/smp.c). Workloads modelled on Linux guests
// (ipi_bench, random_ipi, overcommit) send their IPIs through it, so a guest's IPI
// traffic has Linux's shape: a message is queued on the target's lock-less list
// (llist_add, a LOCK CMPXCHG), and an IPI is sent only when that list was empty; the
// handler acknowledges the APIC first (EOI), then drains the whole list (one XCHG) and
// runs each queued function.
//
// Named choices (docs/workloads.md):
// - The kernel version is 4.14 (December 2017, the time of the IPI benchmark module): the
//   IPI is always sent. Linux 5.8 and later skip it when the target's idle task polls
//   (send_call_function_single_ipi -> set_nr_if_polling), so that under idle=poll a
//   modern kernel sends no IPI at all.
// - Destinations are physical, one ICR write per target CPU: x2apic_phys's
//   __x2apic_send_IPI_mask (one fence, then a WRMSR per CPU) and xAPIC physflat
//   (default_send_IPI_mask_sequence_phys: wait for ICR idle, ICR2, ICR per CPU). The
//   flat-logical and shorthand (all-but-self) variants older kernels use for <= 8 xAPIC
//   CPUs are not modelled.
// - A CPU's per-CPU data takes its own cache lines: the call-single queue head, the
//   interrupt statistics (irq_call_count), the csd of smp_call_function_single without
//   wait (csd_data) and the on-stack csd of the waiting call. A csd is 32 bytes, as
//   call_single_data_t (aligned to its size).
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu/guest.hpp"
#include "vmm/kvm.hpp"

namespace vtx::workloads::linux_smp {

// arch/x86/include/asm/irq_vectors.h
inline constexpr std::uint8_t kCallFunctionVector = 0xFC;        // CALL_FUNCTION_VECTOR
inline constexpr std::uint8_t kCallFunctionSingleVector = 0xFB;  // CALL_FUNCTION_SINGLE_VECTOR
inline constexpr std::uint8_t kRescheduleVector = 0xFD;          // RESCHEDULE_VECTOR
// kernel/smp.c (4.14) csd flags.
inline constexpr std::uint64_t kCsdFlagLock = 0x01;         // CSD_FLAG_LOCK
inline constexpr std::uint64_t kCsdFlagSynchronous = 0x02;  // CSD_FLAG_SYNCHRONOUS
inline constexpr std::uint64_t kCsdSize = 32;               // sizeof(call_single_data_t)

// A function run on a CPU by a cross-CPU call: (the CPU running it, its number, info).
using SmpFunction = std::function<void(cpu::GuestCpu&, unsigned cpu, std::uint64_t info)>;

// One guest kernel: its per-CPU data in guest memory and the functions it may call.
class Kernel {
public:
    // `cpus` CPUs (numbered as their APIC IDs); `callers_many` of them (0..callers_many-1)
    // may call call_many (each has a csd per CPU: cfd_data).
    Kernel(vmm::Vm& vm, unsigned cpus, bool x2apic, unsigned callers_many = 0);

    // Registers a function; returns its "address" (the id stored in csd->func).
    std::uint64_t add_function(SmpFunction f);
    // Installs the call-function interrupt handlers on a CPU (its IDT entries).
    void install(cpu::GuestCpu& g, unsigned self);

    // smp_call_function_single(cpu, func, info, wait). On the calling CPU itself the
    // function runs at once with interrupts disabled (no IPI).
    void call_single(cpu::GuestCpu& g, unsigned self, unsigned target, std::uint64_t func, std::uint64_t info,
                     bool wait);
    // smp_call_function_many(cpu_online_mask, func, info, wait): every other CPU.
    void call_many(cpu::GuestCpu& g, unsigned self, std::uint64_t func, std::uint64_t info, bool wait);

    // smp_send_reschedule(cpu): the reschedule IPI that wakes an idle CPU for a task
    // queued on it. Its handler (smp_reschedule_interrupt) acknowledges and counts it.
    void send_reschedule(cpu::GuestCpu& g, unsigned target);

    // ---- APIC IDs that change at run time (xAPIC only): a stress of the VMM, not something
    // Linux does (it reads a CPU's APIC ID from x86_cpu_to_apicid, set once at boot). With
    // it, a CPU's APIC ID lives in a guest table (initially the CPU's number); a sender
    // reads the target's entry under the read side of a guest rwlock and writes the ICR
    // before releasing it; change_apic_id writes the CPU's xAPIC ID register and its table
    // entry under the write side. So no IPI is addressed to an ID that has stopped being
    // its target's: every IPI must still reach its CPU, through a VMM that sees the IDs
    // move (KVM: a new APIC map, and APICv inhibited for the VM, APIC_ID_MODIFIED).
    void enable_dynamic_apic_ids();
    void change_apic_id(cpu::GuestCpu& g, unsigned self, std::uint32_t new_id);
    std::uint64_t apic_id_changes() const { return m_id_changes; }

    // The per-CPU interrupt statistics the handlers keep in guest memory (irq_call_count,
    // irq_resched_count).
    std::uint64_t irq_call_count(unsigned cpu) const;
    std::uint64_t irq_resched_count(unsigned cpu) const;
    // IPIs sent to a CPU (observations of the model: no guest state).
    std::uint64_t call_ipis_sent_to(unsigned cpu) const { return m_call_ipis_sent[cpu]; }
    std::uint64_t resched_ipis_sent_to(unsigned cpu) const { return m_resched_ipis_sent[cpu]; }
    unsigned cpus() const { return m_cpus; }

private:
    std::uint64_t queue(unsigned cpu) const { return m_percpu + cpu * kPerCpuBytes; }
    std::uint64_t irq_stat(unsigned cpu) const { return queue(cpu) + 64; }  // irq_call_count
    std::uint64_t irq_resched_stat(unsigned cpu) const { return irq_stat(cpu) + 8; }
    std::uint64_t csd_data(unsigned cpu) const { return queue(cpu) + 128; }
    std::uint64_t csd_stack(unsigned cpu) const { return queue(cpu) + 192; }
    std::uint64_t cfd_csd(unsigned caller, unsigned cpu) const {
        return m_cfd + (std::uint64_t{caller} * m_cpus + cpu) * kCsdSize;
    }
    static constexpr std::uint64_t kPerCpuBytes = 256;

    void csd_lock_wait(cpu::GuestCpu& g, std::uint64_t csd);
    void csd_lock(cpu::GuestCpu& g, std::uint64_t csd);
    bool llist_add(cpu::GuestCpu& g, std::uint64_t node, std::uint64_t head);
    // generic_exec_single's queueing: true when the caller must send the IPI.
    bool queue_csd(cpu::GuestCpu& g, unsigned target, std::uint64_t csd, std::uint64_t func, std::uint64_t info);
    void send_ipi(cpu::GuestCpu& g, unsigned target, std::uint8_t vector);
    void count_sent(unsigned target, std::uint8_t vector);
    void send_ipi_mask(cpu::GuestCpu& g, const std::vector<unsigned>& targets, std::uint8_t vector);
    void interrupt(cpu::GuestCpu& g, unsigned self);  // smp_call_function{,_single}_interrupt
    void flush_queue(cpu::GuestCpu& g, unsigned self);  // flush_smp_call_function_queue

    std::uint64_t apicid(unsigned cpu) const { return m_apicid + 8 * std::uint64_t{cpu}; }  // x86_cpu_to_apicid
    void apicid_read_lock(cpu::GuestCpu& g);
    void apicid_read_unlock(cpu::GuestCpu& g);

    vmm::Vm& m_vm;
    unsigned m_cpus;
    std::uint64_t m_apicid = 0, m_apicid_lock = 0;  // dynamic APIC IDs: the table and its rwlock
    std::uint64_t m_id_changes = 0;
    bool m_x2apic;
    unsigned m_callers_many;
    std::uint64_t m_percpu = 0, m_cfd = 0;
    std::vector<SmpFunction> m_functions;  // id - 1
    std::vector<std::uint64_t> m_call_ipis_sent, m_resched_ipis_sent;
};

}  // namespace vtx::workloads::linux_smp
