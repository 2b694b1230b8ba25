#pragma once
// The host scheduler of one physical CPU: KVM's vCPU threads are ordinary host threads, and
// when several are pinned to one CPU (overcommit) they take turns in time slices. The
// idle task takes host interrupts while no vCPU thread runs (e.g. the posted-interrupt
// wakeup vector that wakes a blocked vCPU). A slice ends with the host timer interrupt
// (LOCAL_TIMER_VECTOR through the local APIC timer), which makes a running guest exit.
#include <deque>
#include <optional>
#include <set>

#include <systemc>

#include "cpu/logical_processor.hpp"

namespace vtx::vmm {

inline constexpr std::uint8_t kLocalTimerVector = 0xEC;  // LOCAL_TIMER_VECTOR

// A host thread pinned to a CPU: a vCPU thread (named by its Vcpu) or a host task (the VMM
// process's own thread, a CPU-bound task of another process: any object that names it).
using HostThread = const void*;

class HostScheduler {
public:
    // `idle_exit`: the cost an interrupt pays to bring the idle CPU out of its idle state
    // (none when the idle task polls).
    HostScheduler(cpu::LogicalProcessor& cpu, double slice_cycles, std::optional<model::Cost> idle_exit);
    // No thread runs or waits: the idle task has the CPU.
    bool idle() const { return m_owner == nullptr && m_queue.empty(); }

    // schedule() in: waits until this CPU runs `t` (first in, first out), then pays the
    // context switch. Arms the slice timer when others are waiting.
    void acquire(HostThread t);
    // A thread that wakes up wanting the CPU now (a host task woken by try_to_wake_up with
    // wakeup preemption): as acquire, and the running thread is asked to reschedule
    // (TIF_NEED_RESCHED; the waker's reschedule IPI makes a running guest exit).
    void acquire_preempting(HostThread t);
    // schedule() out: the CPU goes to the next waiting thread, or to the idle task.
    void release(HostThread t);
    // Preemption (the end of a slice, or a waking task): to the back of the queue, then in again.
    void yield(HostThread t);
    bool need_resched() const { return m_need_resched; }
    bool contended() const { return !m_queue.empty(); }
    // The idle task: runs as the CPU's software; takes host interrupts when no vCPU runs.
    void idle_loop();
    // LOCAL_TIMER_VECTOR handler.
    void timer_tick();
    // tick_nohz_dep_set_cpu: a thread joined a CPU whose tick was stopped (the owner ran
    // alone); run on that CPU (its reschedule IPI's handler), this restarts the slice timer.
    void restart_tick() {
        if (m_shared && m_owner && !m_tick_armed) arm_slice_timer();
    }
    // More than one vCPU thread is pinned here: the scheduler tick runs (otherwise the
    // CPU is tickless, as with nohz_full, and a vCPU runs until it blocks).
    void set_shared(bool shared) { m_shared = shared; }
    std::uint64_t switches() const { return m_switches; }
    std::uint64_t preemptions() const { return m_preemptions; }

private:
    void arm_slice_timer();
    cpu::LogicalProcessor& m_cpu;
    double m_slice;
    std::optional<model::Cost> m_idle_exit;
    std::deque<HostThread> m_queue;
    HostThread m_owner = nullptr;
    HostThread m_last = nullptr;
    bool m_need_resched = false;
    bool m_shared = false;
    bool m_tick_armed = false;  // the slice timer is counting down
    std::set<HostThread> m_preempting;  // waiting threads that woke with wakeup preemption
    sc_core::sc_event m_changed;
    sc_core::sc_event_or_list m_idle_wake;  // an interrupt or m_changed (built once)
    sc_core::sc_time m_free_at = sc_core::SC_ZERO_TIME;  // when the last owner handed the CPU over
    std::uint64_t m_switches = 0;
    std::uint64_t m_preemptions = 0;
};

}  // namespace vtx::vmm
