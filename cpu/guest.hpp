#pragma once
// The guest API: what a guest program (workloads/) can do. The guest never sees VMX:
// whether an operation is virtualized or causes a VM exit is decided by the processor
// from the current VMCS, as hardware does. (An L1 hypervisor program uses VMX
// instructions of its own, below; the VMM emulates them for it.)
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
    // Guest kernel code charged as one named cost (a system call's entry and exit, a
    // context switch): straight-line work of that cost's cycles.
    void kernel_path(model::Cost path);
    // Marks a point of the program for `vtxsim explain` (no instruction, no time).
    void mark(const char* what);
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

    // ---- user interrupts (Sapphire Rapids: the profile's features.uintr) ----
    // SENDUIPI with the UITT index `index`.
    void senduipi(std::uint64_t index);
    void stui();  // UIF := 1
    void clui();  // UIF := 0
    // The privilege level of the code that follows: user mode (CPL 3) as after SYSRET or
    // IRET to user space, kernel mode as after SYSCALL. User interrupts are delivered at
    // CPL 3 only. (No instruction: a program's mode switches are not what it measures.)
    void set_user_mode(bool user) { m_ctx.cpl = user ? 3 : 0; }
    // CR4.UINTR, as the guest kernel's MOV to CR4 (the VMM lets the bit through).
    void set_cr4_uintr(bool on);
    // A user-interrupt handler at a linear address (what IA32_UINTR_HANDLER names).
    void set_user_handler(std::uint64_t address, UserInterruptHandler h) { m_ctx.user_handlers[address] = std::move(h); }

    // ---- VMX instructions (for an L1 hypervisor program) ----
    // In VMX non-root operation each one is a VM exit that the VMM emulates (nested VMX).
    // Operands (the simulated guest has no instruction bytes to decode): VMXON, VMCLEAR,
    // VMPTRLD take the 64-bit physical address their memory operand holds, in RAX; VMREAD
    // and VMWRITE take the field encoding in RDX and the value in RAX. Each returns
    // whether it ended with VMsucceed (CF = ZF = 0). VMLAUNCH/VMRESUME return when control
    // comes back to the next instruction: true after a VM exit of the L2 guest (read it
    // with VMREAD), false on VMfail.
    bool vmxon(std::uint64_t region);
    bool vmxoff();
    bool vmclear(std::uint64_t vmcs);
    bool vmptrld(std::uint64_t vmcs);
    bool vmread(std::uint64_t encoding, std::uint64_t& value);
    bool vmwrite(std::uint64_t encoding, std::uint64_t value);
    std::uint64_t vmread(vmcs::Field f) {  // 0 on VMfail
        std::uint64_t v = 0;
        return vmread(vmcs::encoding(f), v) ? v : 0;
    }
    bool vmwrite(vmcs::Field f, std::uint64_t value) { return vmwrite(vmcs::encoding(f), value); }
    bool vmlaunch();
    bool vmresume();

    // ---- loops ----
    // PAUSE loop until done() (interrupts are taken at its boundaries). `watch_gpa` is
    // the location done() polls, if any.
    // `pause`: the loop body executes PAUSE (its period); otherwise a tight load loop.
    void spin_until(const std::function<bool()>& done, std::optional<std::uint64_t> watch_gpa = {},
                    bool pause = true);
    // while (!satisfied(load(gpa))) ; with a load of `size` (4 or 8) bytes: spin_until
    // whose condition is the polled value's (see LogicalProcessor::SpinValue).
    void spin_until_value(std::uint64_t gpa, unsigned size, std::function<bool(std::uint64_t)> satisfied,
                          bool pause = true);
    // for (;;) pause; : an idle loop that only interrupts interrupt (never returns).
    [[noreturn]] void idle_loop();
    // A spin lock (test-and-set with PAUSE), as kvm-unit-tests' spin_lock().
    void spin_lock(std::uint64_t gpa);
    void spin_unlock(std::uint64_t gpa);

    // ---- IDT ----
    void set_handler(std::uint8_t vector, GuestHandler handler) { m_ctx.idt.at(vector) = std::move(handler); }

private:
    // Retires one instruction: takes pending events at the boundary, then runs `attempt`
    // on the current processor until it completes, or until a VM exit after which the
    // VMM moved RIP past it (emulation).
    template <class F>
    void retire(F attempt);
    bool vmx_instruction(std::uint16_t basic_reason, unsigned length);
    std::uint64_t memory_op(model::MemOp op, std::uint64_t gpa, unsigned size,
                            std::uint64_t operand = 0, std::uint64_t compare = 0);

    GuestContext& m_ctx;
};

}  // namespace vtx::cpu
