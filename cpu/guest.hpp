#pragma once
// The guest API: what a guest program (workloads/) can do. The guest never sees VMX:
// whether an operation is virtualized or causes a VM exit is decided by the processor
// from the current VMCS, as hardware does.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "cpu/guest_context.hpp"
#include "model/memory.hpp"

namespace vtx::cpu {

class GuestCpu {
public:
    explicit GuestCpu(GuestContext& ctx) : m_ctx(ctx) {}

    const std::string& name() const { return m_ctx.name; }
    GuestContext& context() { return m_ctx; }
    LogicalProcessor& cpu() { return *m_ctx.lp; }

    // ---- instructions ----
    std::uint64_t rdtsc();
    void cpuid(std::uint32_t leaf);
    std::uint64_t vmcall(std::uint64_t nr);
    void hlt();
    void pause();
    void mfence();
    void compute(std::uint64_t cycles);  // straight-line work of that many cycles
    void sti();
    void cli();
    void sti_hlt();  // STI; HLT (the interrupt shadow covers the HLT)
    std::uint64_t rdmsr(std::uint32_t msr);
    void wrmsr(std::uint32_t msr, std::uint64_t value);
    std::uint32_t mmio_read32(std::uint64_t gpa);
    void mmio_write32(std::uint64_t gpa, std::uint32_t value);
    std::uint64_t load64(std::uint64_t gpa);
    std::uint32_t load32(std::uint64_t gpa);
    void store64(std::uint64_t gpa, std::uint64_t value);
    void store32(std::uint64_t gpa, std::uint32_t value);
    bool lock_bts(std::uint64_t gpa, unsigned bit);
    bool lock_btr(std::uint64_t gpa, unsigned bit);
    std::uint64_t xchg(std::uint64_t gpa, std::uint64_t value);
    std::uint64_t lock_cmpxchg(std::uint64_t gpa, std::uint64_t expected, std::uint64_t desired);
    std::uint64_t lock_add(std::uint64_t gpa, std::uint64_t delta);  // LOCK XADD; returns the old value

    // ---- loops ----
    // PAUSE loop until done() (interrupts are taken at its boundaries). `watch_gpa` is
    // the location done() polls, if any.
    // `pause`: the loop body executes PAUSE (its period); otherwise a tight load loop.
    void spin_until(const std::function<bool()>& done, std::optional<std::uint64_t> watch_gpa = {},
                    bool pause = true);
    // for (;;) pause; : an idle loop that only interrupts interrupt (never returns).
    [[noreturn]] void idle_loop();
    // A spin lock (test-and-set with PAUSE), as kvm-unit-tests' spin_lock().
    void spin_lock(std::uint64_t gpa);
    void spin_unlock(std::uint64_t gpa);

    // ---- IDT ----
    void set_handler(std::uint8_t vector, GuestHandler handler) { m_ctx.idt[vector] = std::move(handler); }

private:
    // Retires one instruction: takes pending events at the boundary, then runs `attempt`
    // on the current processor until it completes, or until a VM exit after which the
    // VMM moved RIP past it (emulation).
    template <class F>
    void retire(F attempt);
    std::uint64_t memory_op(model::MemOp op, std::uint64_t gpa, unsigned size,
                            std::uint64_t operand = 0, std::uint64_t compare = 0);

    GuestContext& m_ctx;
};

}  // namespace vtx::cpu
