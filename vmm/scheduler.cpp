#include "vmm/scheduler.hpp"

#include <algorithm>

#include "apic/registers.hpp"
#include "cpu/platform.hpp"

namespace vtx::vmm {

using model::Cost;

namespace {
constexpr std::uint64_t kTimerDivideBy1 = 0xB;  // divide configuration 1011b
}  // namespace

HostScheduler::HostScheduler(cpu::LogicalProcessor& cpu, double slice_cycles, std::optional<model::Cost> idle_exit)
    : m_cpu(cpu), m_slice(slice_cycles), m_idle_exit(idle_exit) {
    cpu.set_host_handler(kLocalTimerVector, [this](std::uint8_t) { timer_tick(); });
    m_idle_wake |= cpu.apic().interrupt_event();
    m_idle_wake |= m_changed;
}

void HostScheduler::acquire(HostThread t) {
    if (m_owner == t) return;
    m_queue.push_back(t);
    m_changed.notify(sc_core::SC_ZERO_TIME);  // the idle task hands over
    while (!(m_owner == nullptr && m_queue.front() == t)) sc_core::wait(m_changed);
    m_queue.pop_front();
    m_owner = t;
    m_cpu.take_over(m_free_at);
    m_need_resched = !m_queue.empty() && m_preempting.count(m_queue.front());
    m_preempting.erase(t);
    if (m_last != t) {
        m_cpu.step(Cost::HostContextSwitch, "schedule: switch to the next thread", "kernel/sched", "kvm");
        ++m_switches;
        m_last = t;
    }
    if (m_shared) arm_slice_timer();
}

void HostScheduler::acquire_preempting(HostThread t) {
    if (m_owner == t) return;
    m_preempting.insert(t);
    if (m_owner) m_need_resched = true;
    acquire(t);
}

void HostScheduler::release(HostThread t) {
    if (m_owner != t) return;
    m_free_at = m_cpu.hand_over();
    m_owner = nullptr;
    m_changed.notify(m_free_at - sc_core::sc_time_stamp());
}

void HostScheduler::yield(HostThread t) {
    ++m_preemptions;
    ++m_cpu.platform().stats().counter("host.preemptions", "count",
                                       "vCPU threads preempted (the end of a slice, a waking host task)");
    release(t);
    acquire(t);
}

void HostScheduler::arm_slice_timer() {
    m_tick_armed = true;
    auto& apic = m_cpu.apic();
    m_cpu.sync();
    m_cpu.charge_cycles(apic.write_register(apic::kApicOffsetTimerDivide, kTimerDivideBy1));
    m_cpu.charge_cycles(apic.write_register(apic::kApicOffsetLvtTimer, kLocalTimerVector));
    m_cpu.charge_cycles(apic.write_register(apic::kApicOffsetTimerInitialCount, static_cast<std::uint32_t>(m_slice)));
}

void HostScheduler::timer_tick() {
    m_tick_armed = false;  // one-shot
    m_cpu.step(Cost::HostTimerTick, "scheduler tick", "kernel/sched", "kvm");
    if (!m_queue.empty())
        m_need_resched = true;
    else if (m_owner && m_shared)
        arm_slice_timer();
}

void HostScheduler::idle_loop() {
    // The idle task touches the CPU (its time, its APIC) only while no vCPU thread owns it.
    for (;;) {
        if (!m_owner) {
            m_cpu.take_over(m_free_at);
            m_cpu.local_irq_enable();  // runs the handlers of pending host interrupts
            m_cpu.sync();
            if (!m_owner && m_cpu.host_interrupt_pending()) continue;
        }
        if (!m_owner && !m_queue.empty()) {
            m_changed.notify(sc_core::SC_ZERO_TIME);
            sc_core::wait(m_changed);
            continue;
        }
        // While a vCPU thread owns the CPU it takes the host interrupts itself: the idle
        // task waits for the CPU only (waking it for every interrupt cost a thread switch
        // each and did nothing).
        if (m_owner) {
            sc_core::wait(m_changed);
        } else {
            // cpuidle: MWAIT in the idle state; an interrupt brings the CPU out after the
            // state's exit latency, before its handler runs.
            sc_core::wait(m_idle_wake);
            if (m_idle_exit && !m_owner && m_cpu.host_interrupt_pending())
                m_cpu.step(*m_idle_exit, "leave the idle state (MWAIT)", "drivers/idle/intel_idle.c", "kvm");
        }
    }
}

}  // namespace vtx::vmm
