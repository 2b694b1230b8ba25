// Guest instructions in VMX non-root operation (called on the guest thread by cpu/guest.cpp):
// each retires, or causes the VM exit the VM-execution controls ask for; spin-waits.
#include "cpu/logical_processor.hpp"

#include <cmath>
#include <cstring>

#include "cpu/flow_encodings.hpp"
#include "cpu/platform.hpp"
#include "model/x86.hpp"
#include "vmcs/controls.hpp"

namespace vtx::cpu {

// ====================================================================================
// Guest instructions (called on the guest thread by cpu/guest.cpp)
// ====================================================================================
bool LogicalProcessor::exec_simple(GuestContext& g, Cost c, unsigned length) {
    charge(c);
    advance_rip(g, length);
    return true;
}

bool LogicalProcessor::exec_rdtsc(GuestContext& g, std::uint64_t& out) {
    charge(Cost::GuestRdtsc);
    std::uint64_t t = tsc();
    if (primary() & vmcs::kPrimaryUseTscOffsetting) t += g.vmcs.hw_read(Field::TscOffset);
    out = t;
    advance_rip(g, kLenRdtsc);
    return true;
}

bool LogicalProcessor::exec_pause(GuestContext& g) { return exec_simple(g, Cost::GuestPause, kLenPause); }

bool LogicalProcessor::exec_compute(GuestContext& g, double cycles) {
    // Straight-line work: its cycles, and at least one retired instruction (which ends an
    // STI or MOV-SS blocking window, SDM 6.8.3).
    charge_cycles(cycles);
    advance_rip(g, kLenStraightLine);
    return true;
}

bool LogicalProcessor::exec_cpuid(GuestContext& g) {
    vm_exit(g, static_cast<std::uint32_t>(ExitReason::Cpuid), 0, 0, kLenCpuid);
    return false;
}

bool LogicalProcessor::exec_vmcall(GuestContext& g) {
    vm_exit(g, static_cast<std::uint32_t>(ExitReason::Vmcall), 0, 0, kLenVmcall);
    return false;
}

bool LogicalProcessor::exec_vmx_instruction(GuestContext& g, ExitReason reason, unsigned length) {
    vm_exit(g, static_cast<std::uint32_t>(reason), 0, 0, length);
    return false;
}

bool LogicalProcessor::exec_hlt(GuestContext& g) {
    if (primary() & vmcs::kPrimaryHltExiting) {
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::Hlt), 0, 0, kLenHlt);
        return false;
    }
    step(Cost::GuestHltEnter, "HLT: enter the HLT state", "SDM 25.1");
    advance_rip(g, kLenHlt);
    g.vmcs.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Hlt));
    return true;  // the next event window waits in HLT
}

void LogicalProcessor::exec_sti(GuestContext& g) {
    charge(Cost::GuestStiCli);
    const bool was_set = guest_if(g);
    advance_rip(g, kLenStiCli);
    g.vmcs.hw_write(Field::GuestRflags, g.vmcs.hw_read(Field::GuestRflags) | x86::kRflagsIf);
    if (!was_set)
        g.vmcs.hw_write(Field::GuestInterruptibilityInfo,
                        g.vmcs.hw_read(Field::GuestInterruptibilityInfo) | vmcs::kBlockingBySti);
}

void LogicalProcessor::exec_cli(GuestContext& g) {
    charge(Cost::GuestStiCli);
    advance_rip(g, kLenStiCli);
    g.vmcs.hw_write(Field::GuestRflags, g.vmcs.hw_read(Field::GuestRflags) & ~x86::kRflagsIf);
}

bool LogicalProcessor::exec_wrmsr(GuestContext& g) {
    const auto msr = static_cast<std::uint32_t>(g.regs.rcx);
    const std::uint64_t value = (g.regs.rdx << 32) | (g.regs.rax & 0xFFFFFFFFu);
    const std::uint64_t start = rip(g);
    if (msr_bitmap_intercepts(msr, true)) {
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::Wrmsr), 0, 0, kLenWrmsr);
        return false;
    }
    if (is_uintr_msr(msr)) {
        std::uint64_t v = value;
        if (!uintr_msr_access(g, msr, true, v)) return false;
        advance_rip(g, kLenWrmsr);
        return true;
    }
    if (in_virtualized_x2apic_range(msr) &&
        (secondary() & vmcs::kSecondaryVirtualizeX2apicMode)) {
        bool handled = false;
        const bool done = x2apic_msr_write(g, msr, value, start, kLenWrmsr, handled);
        if (handled) return done;
    }
    // Operates normally: the physical register (x2APIC range) or an MSR the model
    // treats as a no-op.
    if (in_virtualized_x2apic_range(msr)) {
        sync_point();
        const auto r = m_apic->wrmsr(msr, value, annotation());
        charge_cycles(r.cycles);
        if (r.gp) {
            deliver_guest_interrupt(g, x86::kVectorGp);
            return false;
        }
    }
    advance_rip(g, kLenWrmsr);
    return true;
}

bool LogicalProcessor::exec_rdmsr(GuestContext& g) {
    const auto msr = static_cast<std::uint32_t>(g.regs.rcx);
    if (msr_bitmap_intercepts(msr, false)) {
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::Rdmsr), 0, 0, kLenRdmsr);
        return false;
    }
    std::uint64_t value = 0;
    bool handled = false;
    if (is_uintr_msr(msr)) {
        if (!uintr_msr_access(g, msr, false, value)) return false;
        handled = true;
    }
    if (!handled && in_virtualized_x2apic_range(msr) &&
        (secondary() & vmcs::kSecondaryVirtualizeX2apicMode))
        x2apic_msr_read(g, msr, value, handled);
    if (!handled && in_virtualized_x2apic_range(msr)) {
        sync_point();
        const auto r = m_apic->rdmsr(msr, annotation());
        charge_cycles(r.cycles);
        if (r.gp) {
            deliver_guest_interrupt(g, x86::kVectorGp);
            return false;
        }
        value = r.value;
    }
    g.regs.rax = value & 0xFFFFFFFFu;
    g.regs.rdx = value >> 32;
    advance_rip(g, kLenRdmsr);
    return true;
}

// The APIC page without an APIC-access page: the MMIO hole is an EPT misconfiguration (KVM's
// MMIO SPTEs); the decoded access goes to the VMM with the exit.
bool LogicalProcessor::mmio_hole_exit(GuestContext& g, const DecodedMmio& access) {
    g.mmio = access;
    g.vmcs.set_exit_info(Field::GuestPhysicalAddress, access.gpa);
    vm_exit(g, static_cast<std::uint32_t>(ExitReason::EptMisconfig), 0, 0, kLenMovMmio);
    return false;
}

bool LogicalProcessor::exec_mmio_read(GuestContext& g, std::uint64_t gpa, unsigned size,
                                      std::uint64_t& out) {
    if (is_apic_gpa(g, gpa)) {
        if (secondary() & vmcs::kSecondaryVirtualizeApicAccesses)
            return apic_access_mmio(g, static_cast<std::uint32_t>(gpa - kGuestApicBase), size, false,
                                    out, rip(g), kLenMovMmio);
        return mmio_hole_exit(g, DecodedMmio{true, false, gpa, size, 0});
    }
    model::MemRequest req;
    req.op = model::MemOp::Read;
    req.address = gpa;
    req.size = size;
    exec_memory(g, req);
    out = 0;
    std::memcpy(&out, req.data, size);
    return true;
}

bool LogicalProcessor::exec_mmio_write(GuestContext& g, std::uint64_t gpa, unsigned size,
                                       std::uint64_t value) {
    if (is_apic_gpa(g, gpa)) {
        if (secondary() & vmcs::kSecondaryVirtualizeApicAccesses)
            return apic_access_mmio(g, static_cast<std::uint32_t>(gpa - kGuestApicBase), size, true,
                                    value, rip(g), kLenMovMmio);
        return mmio_hole_exit(g, DecodedMmio{true, true, gpa, size, value});
    }
    model::MemRequest req;
    req.op = model::MemOp::Write;
    req.address = gpa;
    req.size = size;
    std::memcpy(req.data, &value, size);
    return exec_memory(g, req);
}

[[gnu::flatten]] bool LogicalProcessor::exec_memory(GuestContext& g, model::MemRequest& req) {
    req.address = translate(g, req.address);
    m_port.access(req);
    advance_rip(g, kLenMemory);
    return true;
}

double LogicalProcessor::spin_period(bool pause) const {
    // The loop period: PAUSE, or a load and a branch for a tight loop.
    return pause ? costs()[Cost::GuestPause] : costs()[Cost::MemL1Hit] + costs()[Cost::GuestInstruction];
}

void LogicalProcessor::catch_up_with_store(GuestContext& g, const sc_core::sc_time& stored, bool pause) {
    // Decoupled mode: the writer of the watched line ran ahead of SystemC time, so its
    // store takes effect later than this processor's present. The loop keeps iterating
    // until then and observes the value at its first iteration boundary after the store
    // (what exact mode sees). In exact mode every store is already in the past.
    if (stored <= model::sim_now()) return;
    const double due = clock().to_cycles(stored) - now_cycles();
    if (due <= 0.0) return;
    const double period = spin_period(pause);
    const double iterations = std::ceil(due / period);
    charge_cycles(iterations * period);
    g.instructions += static_cast<std::uint64_t>(iterations) * 2;
}

void LogicalProcessor::exec_spin(GuestContext& g, const std::function<bool()>& done,
                                 std::optional<std::uint64_t> watch_gpa, bool pause, bool done_never,
                                 const SpinValue* value) {
    // A PAUSE loop: each iteration polls `done()` and executes PAUSE; interrupts are
    // taken at the loop's instruction boundaries. Instead of simulating every
    // iteration, the loop sleeps until something it could observe changes (the watched
    // line is written, or an interrupt arrives) and then resumes at the next iteration
    // boundary, as the real loop would.
    for (;;) {
        LogicalProcessor& lp = *g.lp;  // the vCPU may have moved after an exit
        if (!lp.event_window(g)) continue;
        // done() may make several timed loads: a store to the watched line between them
        // must not be slept through, so compare the line's store count around it.
        model::MemoryTarget& memory = lp.m_platform.memory_target();
        std::uint64_t watch_hpa = 0, writes_before = 0;
        model::MemoryTarget::WatchedLine* line = nullptr;
        if (watch_gpa) {
            watch_hpa = lp.translate(g, *watch_gpa);
            line = &memory.watch(watch_hpa);  // counting starts here
            writes_before = line->write_count();
        }
        if (line) lp.catch_up_with_store(g, line->store_time(), pause);
        if (done()) return;
        LogicalProcessor& cur = *g.lp;
        if (line && line->write_count() != writes_before) continue;
        const double period = cur.spin_period(pause);
        // Inside an STI / MOV-SS blocking window (the loop right after STI), one iteration
        // retires first: that ends the window, and an interrupt held back by it is taken
        // at the next boundary without waiting for a new one (SDM 6.8.3).
        if (vmcs::blocked_by_sti_or_mov_ss(g.vmcs.hw_read(Field::GuestInterruptibilityInfo))) {
            cur.charge_cycles(period);
            cur.advance_rip(g, pause ? kLenPause : kLenStraightLine);
            continue;
        }
        const double t0 = cur.now_cycles();
        if (!watch_gpa && !done_never) {
            // done() depends on something this loop cannot watch (time): one iteration.
            cur.charge_cycles(period);
            g.instructions += 2;
            continue;
        }
        if (line) {
            // Decoupled mode: a condition on the polled value lets stores that leave it false
            // pass without waking the loop (their effect on the line is kept, see
            // MemoryTarget::ValuePoller); exact mode evaluates the condition after each.
            model::MemoryTarget::ValuePoller poller;
            const bool by_value = value && cur.decoupled();
            if (by_value) poller = {static_cast<int>(cur.m_index), watch_hpa, value->size, &value->satisfied};
            memory.begin_wait(*line, writes_before, by_value ? &poller : nullptr);
            cur.wait_for(cur.line_or_interrupt(watch_hpa & ~(model::kCacheLineSize - 1), line->written_event()));
            memory.end_wait(*line, by_value ? &poller : nullptr);
        } else {
            cur.wait_for(cur.m_apic->interrupt_event());
        }
        // Resume at the next iteration boundary after the wake-up.
        const double elapsed = cur.now_cycles() - t0;
        const double iterations = std::ceil(elapsed / period);
        cur.charge_cycles(iterations * period - elapsed);
        g.instructions += static_cast<std::uint64_t>(iterations) * 2;
    }
}

}  // namespace vtx::cpu
