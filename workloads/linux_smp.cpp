#include "workloads/linux_smp.hpp"

#include <string>

#include "cpu/platform.hpp"
#include "model/error.hpp"
#include "pid/layout.hpp"
#include "workloads/kut.hpp"

namespace vtx::workloads::linux_smp {

namespace {
// call_single_data_t (32 bytes): the llist node, the flags, func, info.
constexpr std::uint64_t kCsdNext = 0, kCsdFlags = 8, kCsdFunc = 16, kCsdInfo = 24;
// __prepare_ICR(0, vector, APIC_DEST_PHYSICAL): fixed delivery, no shorthand, physical.
std::uint32_t prepare_icr(std::uint8_t vector) { return kut::kApicDmFixed | kut::kApicDestPhysical | vector; }
}  // namespace

Kernel::Kernel(vmm::Vm& vm, unsigned cpus, bool x2apic, unsigned callers_many)
    : m_vm(vm), m_cpus(cpus), m_x2apic(x2apic), m_callers_many(callers_many),
      m_call_ipis_sent(cpus, 0), m_resched_ipis_sent(cpus, 0) {
    m_percpu = vm.alloc_guest(kPerCpuBytes * cpus, 64);
    // spectre_v2_select_mitigation in the guest: on a CPU that enumerates eIBRS (QEMU -cpu
    // host passes it through) Linux sets IA32_SPEC_CTRL.IBRS at boot and keeps it.
    vm.set_guest_spec_ctrl(vmm::kSpecCtrlIbrs);
    if (callers_many) m_cfd = vm.alloc_guest(kCsdSize * cpus * callers_many, kCsdSize);
}

std::uint64_t Kernel::add_function(SmpFunction f) {
    m_functions.push_back(std::move(f));
    return m_functions.size();
}

std::uint64_t Kernel::irq_call_count(unsigned cpu) const {
    return m_vm.kvm().platform().memory().peek64(m_vm.gpa_to_hpa(irq_stat(cpu)));
}

std::uint64_t Kernel::irq_resched_count(unsigned cpu) const {
    return m_vm.kvm().platform().memory().peek64(m_vm.gpa_to_hpa(irq_resched_stat(cpu)));
}

void Kernel::install(cpu::GuestCpu& g, unsigned self) {
    auto handler = [this, self](cpu::GuestCpu& c, std::uint8_t) { interrupt(c, self); };
    g.set_handler(kCallFunctionVector, handler);
    g.set_handler(kCallFunctionSingleVector, handler);
    // smp_reschedule_interrupt: ack_APIC_irq(), inc_irq_stat(irq_resched_count),
    // scheduler_ipi() (the woken CPU's idle loop then finds the task).
    g.set_handler(kRescheduleVector, [this, self](cpu::GuestCpu& c, std::uint8_t) {
        kut::Lib(c, m_x2apic).eoi();
        c.store64(irq_resched_stat(self), c.load64(irq_resched_stat(self)) + 1);
    });
}

void Kernel::count_sent(unsigned target, std::uint8_t vector) {
    ++(vector == kRescheduleVector ? m_resched_ipis_sent : m_call_ipis_sent)[target];
}

void Kernel::send_reschedule(cpu::GuestCpu& g, unsigned target) { send_ipi(g, target, kRescheduleVector); }

// csd_lock_wait: smp_cond_load_acquire(&csd->flags, !(VAL & CSD_FLAG_LOCK)).
void Kernel::csd_lock_wait(cpu::GuestCpu& g, std::uint64_t csd) {
    g.spin_until_value(csd + kCsdFlags, 8, [](std::uint64_t flags) { return (flags & kCsdFlagLock) == 0; });
}

// csd_lock: wait until unlocked, then csd->flags |= CSD_FLAG_LOCK (a plain store; the
// owner is the only writer while it is unlocked).
void Kernel::csd_lock(cpu::GuestCpu& g, std::uint64_t csd) {
    csd_lock_wait(g, csd);
    g.store64(csd + kCsdFlags, g.load64(csd + kCsdFlags) | kCsdFlagLock);
}

// llist_add: node->next = first; cmpxchg(&head->first, first, node) until it holds.
// Returns whether the list was empty.
bool Kernel::llist_add(cpu::GuestCpu& g, std::uint64_t node, std::uint64_t head) {
    std::uint64_t first = g.load64(head);
    for (;;) {
        g.store64(node + kCsdNext, first);
        const std::uint64_t seen = g.lock_cmpxchg(head, first, node);
        if (seen == first) return first == 0;
        first = seen;
    }
}

bool Kernel::queue_csd(cpu::GuestCpu& g, unsigned target, std::uint64_t csd, std::uint64_t func, std::uint64_t info) {
    g.store64(csd + kCsdFunc, func);
    g.store64(csd + kCsdInfo, info);
    return llist_add(g, csd, queue(target));
}

// arch_send_call_function_single_ipi -> apic->send_IPI(cpu, vector): x2apic_send_IPI
// (fence, WRMSR ICR) or the xAPIC physflat path (wait for ICR idle, ICR2, ICR).
void Kernel::send_ipi(cpu::GuestCpu& g, unsigned target, std::uint8_t vector) {
    count_sent(target, vector);
    if (!m_apicid) {
        kut::Lib(g, m_x2apic).apic_icr_write(prepare_icr(vector), target);
        return;
    }
    apicid_read_lock(g);
    const auto id = static_cast<std::uint32_t>(g.load64(apicid(target)));
    kut::Lib(g, m_x2apic).apic_icr_write(prepare_icr(vector), id);
    apicid_read_unlock(g);
}

// ---- dynamic APIC IDs: a reader count with a writer bit (bit 63), taken with LOCK XADD /
// LOCK CMPXCHG as a simple rwlock; readers back off while a writer holds or waits.
namespace {
constexpr unsigned kWriterBitNumber = 63;
constexpr std::uint64_t kWriterBit = std::uint64_t{1} << kWriterBitNumber;
}  // namespace

void Kernel::enable_dynamic_apic_ids() {
    if (m_x2apic) throw model::ConfigError("dynamic APIC IDs need xAPIC mode: the x2APIC ID is read-only");
    m_apicid = m_vm.alloc_guest(8 * std::uint64_t{m_cpus}, 64);
    m_apicid_lock = m_vm.alloc_guest(64, 64);
    auto& mem = m_vm.kvm().platform().memory();
    for (unsigned c = 0; c < m_cpus; ++c) mem.poke64(m_vm.gpa_to_hpa(apicid(c)), c);
}

void Kernel::apicid_read_lock(cpu::GuestCpu& g) {
    for (;;) {
        if ((g.lock_add(m_apicid_lock, 1) & kWriterBit) == 0) return;
        g.lock_add(m_apicid_lock, ~std::uint64_t{0});  // a writer: back off until it is done
        g.spin_until_value(m_apicid_lock, 8, [](std::uint64_t lock) { return (lock & kWriterBit) == 0; });
    }
}

void Kernel::apicid_read_unlock(cpu::GuestCpu& g) { g.lock_add(m_apicid_lock, ~std::uint64_t{0}); }

void Kernel::change_apic_id(cpu::GuestCpu& g, unsigned self, std::uint32_t new_id) {
    // write_lock: take the writer bit, then wait for the readers to leave.
    while (g.lock_cmpxchg(m_apicid_lock, 0, kWriterBit) != 0)
        g.spin_until_value(m_apicid_lock, 8, [](std::uint64_t lock) { return lock == 0; });
    kut::Lib(g, m_x2apic).apic_write(kut::kApicId, new_id << kut::kXapicIdShift);
    g.store64(apicid(self), new_id);
    g.lock_btr(m_apicid_lock, kWriterBitNumber);  // write_unlock: clear the writer bit
    ++m_id_changes;
}

// arch_send_call_function_ipi_mask -> apic->send_IPI_mask: x2APIC physical writes the ICR
// once per CPU after one fence; xAPIC physflat goes through the whole sequence per CPU.
void Kernel::send_ipi_mask(cpu::GuestCpu& g, const std::vector<unsigned>& targets, std::uint8_t vector) {
    if (targets.empty()) return;
    if (!m_x2apic) {
        for (unsigned t : targets) send_ipi(g, t, vector);
        return;
    }
    g.mfence();  // x2apic_wrmsr_fence
    for (unsigned t : targets) {
        count_sent(t, vector);
        g.wrmsr(kut::kX2apicMsrBase + (kut::kApicIcr >> 4), (std::uint64_t{t} << 32) | prepare_icr(vector));
    }
}

void Kernel::call_single(cpu::GuestCpu& g, unsigned self, unsigned target, std::uint64_t func, std::uint64_t info,
                         bool wait) {
    if (target == self) {
        // generic_exec_single: local_irq_save(); func(info); local_irq_restore().
        g.cli();
        m_functions.at(func - 1)(g, self, info);
        g.sti();
        return;
    }
    std::uint64_t csd;
    if (wait) {
        // The on-stack csd, initialized { .flags = CSD_FLAG_LOCK | CSD_FLAG_SYNCHRONOUS }.
        csd = csd_stack(self);
        g.store64(csd + kCsdFlags, kCsdFlagLock | kCsdFlagSynchronous);
    } else {
        csd = csd_data(self);
        csd_lock(g, csd);
    }
    if (queue_csd(g, target, csd, func, info)) send_ipi(g, target, kCallFunctionSingleVector);
    if (wait) csd_lock_wait(g, csd);
}

void Kernel::call_many(cpu::GuestCpu& g, unsigned self, std::uint64_t func, std::uint64_t info, bool wait) {
    if (self >= m_callers_many)
        throw cpu::SimulationError("linux_smp: CPU " + std::to_string(self) + " has no cfd_data");
    if (m_cpus == 2) {  // only one other CPU: smp_call_function_single
        call_single(g, self, 1 - self, func, info, wait);
        return;
    }
    std::vector<unsigned> ipi;
    for (unsigned t = 0; t < m_cpus; ++t) {
        if (t == self) continue;
        const std::uint64_t csd = cfd_csd(self, t);
        csd_lock(g, csd);
        if (wait) g.store64(csd + kCsdFlags, kCsdFlagLock | kCsdFlagSynchronous);
        if (queue_csd(g, t, csd, func, info)) ipi.push_back(t);
    }
    send_ipi_mask(g, ipi, kCallFunctionVector);
    if (wait)
        for (unsigned t = 0; t < m_cpus; ++t)
            if (t != self) csd_lock_wait(g, cfd_csd(self, t));
}

// smp_call_function_single_interrupt / smp_call_function_interrupt (arch/x86/kernel/smp.c):
// ipi_entering_ack_irq() (EOI first), inc_irq_stat(irq_call_count), then the flush.
void Kernel::interrupt(cpu::GuestCpu& g, unsigned self) {
    kut::Lib(g, m_x2apic).eoi();
    g.store64(irq_stat(self), g.load64(irq_stat(self)) + 1);
    flush_queue(g, self);
}

// flush_smp_call_function_queue: llist_del_all (XCHG), llist_reverse_order, then each csd:
// a synchronous one runs its function and then unlocks (the caller waits for the
// function); an asynchronous one unlocks first.
void Kernel::flush_queue(cpu::GuestCpu& g, unsigned self) {
    std::uint64_t entry = g.xchg(queue(self), 0);
    std::vector<std::uint64_t> csds;
    for (; entry; entry = g.load64(entry + kCsdNext)) csds.push_back(entry);
    for (auto it = csds.rbegin(); it != csds.rend(); ++it) {
        const std::uint64_t csd = *it;
        const std::uint64_t func = g.load64(csd + kCsdFunc);
        const std::uint64_t info = g.load64(csd + kCsdInfo);
        const std::uint64_t flags = g.load64(csd + kCsdFlags);
        if (func == 0 || func > m_functions.size() || !(flags & kCsdFlagLock))
            throw cpu::SimulationError("linux_smp: CPU " + std::to_string(self) + " found a csd at " +
                                         pid::hex_address(csd) + " that is not locked or has no function");
        if (flags & kCsdFlagSynchronous) {
            m_functions[func - 1](g, self, info);
            g.store64(csd + kCsdFlags, 0);  // csd_unlock: smp_store_release
        } else {
            g.store64(csd + kCsdFlags, 0);
            m_functions[func - 1](g, self, info);
        }
    }
}

}  // namespace vtx::workloads::linux_smp
