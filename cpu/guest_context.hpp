#pragma once
// A vCPU's hardware context: its VMCS, the guest's register file and IDT, and the SystemC
// thread its guest program runs on. The VMM owns one per vCPU; VMPTRLD makes it current
// on a logical processor (by the VMCS's physical address).
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <systemc>

#include "model/sparse_array.hpp"
#include "vmcs/vmcs.hpp"

namespace vtx::cpu {

class GuestCpu;
class LogicalProcessor;

using GuestProgram = std::function<void(GuestCpu&)>;
using GuestHandler = std::function<void(GuestCpu&, std::uint8_t vector)>;
// A user-interrupt handler (at UIHANDLER): called with the delivered user vector (UIRRV).
using UserInterruptHandler = std::function<void(GuestCpu&, std::uint8_t user_vector)>;

// The user-interrupt state of the processor while this context runs: the IA32_UINTR_*
// MSRs and UIF (XSAVES state component 14, which the VMM switches with the vCPU).
struct UintrState {
    std::uint64_t rr = 0;            // UIRR: a requested user interrupt per user vector
    std::uint64_t handler = 0;       // UIHANDLER
    std::uint64_t stack_adjust = 0;  // UISTACKADJUST
    std::uint64_t misc = 0;          // UITTSZ (31:0), UINV (39:32)
    std::uint64_t pd = 0;            // UPIDADDR
    std::uint64_t tt = 0;            // UITTADDR (63:4), valid (0)
    bool uif = false;                // user-interrupt flag (STUI sets, CLUI and delivery clear, UIRET sets)
    std::uint8_t uinv() const { return static_cast<std::uint8_t>(misc >> 32); }
    std::uint32_t uittsz() const { return static_cast<std::uint32_t>(misc); }
    std::uint64_t uitt_address() const { return tt & ~std::uint64_t{0xF}; }
    bool uitt_valid() const { return tt & 1u; }
};

// The guest-physical address of the local APIC page (IA32_APIC_BASE default).
inline constexpr std::uint64_t kGuestApicBase = 0xFEE00000;
inline constexpr std::uint64_t kGuestApicPageSize = 0x1000;

// The guest's general-purpose registers the modelled instructions use as operands
// (RDMSR/WRMSR: ECX, EDX:EAX; CPUID: EAX..EDX; VMCALL: RAX). The VMM reads and writes them
// when it emulates an instruction, as KVM does with vcpu->arch.regs.
struct GuestRegisters {
    std::uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0;
};

// An MMIO instruction as the VMM's instruction emulator decodes it after an APIC-access
// or EPT-misconfiguration exit (the simulated guest has no instruction bytes to fetch).
struct DecodedMmio {
    bool valid = false;
    bool write = false;
    std::uint64_t gpa = 0;
    unsigned size = 4;
    std::uint64_t value = 0;  // the value written (write) or loaded by emulation (read)
};

// Guest-physical memory: vtxsim models EPT as one contiguous mapping of the VM's memory
// (GPA + host_base = HPA), plus the APIC page at kGuestApicBase, which maps to the
// VMCS's APIC-access page when "virtualize APIC accesses" is 1 and is an MMIO hole
// (EPT misconfiguration, exit 49) otherwise.
struct GuestMemoryMap {
    std::uint64_t host_base = 0;
    std::uint64_t size = 0;
};

class GuestContext {
public:
    GuestContext(std::string name, const model::CpuFeatures& features);
    ~GuestContext();  // defined where GuestCpu is complete (guest.cpp)
    GuestContext(const GuestContext&) = delete;
    GuestContext& operator=(const GuestContext&) = delete;

    std::string name;
    vmcs::Vmcs vmcs;
    std::uint64_t vmcs_address = 0;  // physical address of the VMCS region
    GuestRegisters regs;
    DecodedMmio mmio;
    GuestMemoryMap memory_map;
    model::SparseArray<GuestHandler> idt;  // by vector
    // User-interrupt handlers by linear address (what UIHANDLER may point at).
    std::map<std::uint64_t, UserInterruptHandler> user_handlers;
    UintrState uintr;
    unsigned cpl = 0;  // current privilege level: 3 while the program runs in user mode
    // Finds the guest program at a linear address (CS.base + RIP) on the first entry
    // into the active state: the VM's "code" (the simulated guest has no instruction
    // bytes; its programs are C++ functions registered at addresses).
    std::function<GuestProgram(std::uint64_t linear_rip)> code;

    // Run-time state (owned by the processor).
    LogicalProcessor* lp = nullptr;  // where the context last entered
    bool thread_started = false;
    sc_core::sc_process_handle thread;  // the guest program's thread, once started
    // The vCPU was reset (an INIT): the program it ran is abandoned; the next VM entry
    // starts the program at the entry's CS:RIP on a new thread.
    bool restart_requested = false;
    bool finished = false;
    sc_core::sc_event resume_event;
    std::unique_ptr<GuestCpu> api;
    int pending_injection = -1;  // vector injected by VM entry, delivered before any instruction
    bool pending_injection_nmi = false;  // ... and it is an NMI (type 2): NMI blocking follows
    // RIP in the frame of the interrupt or exception being handled: what IRET returns to.
    // An exception handler may change it (as kvm-unit-tests' exception fixups do).
    std::uint64_t return_rip = 0;
    std::uint64_t instructions = 0;
    std::uint64_t delivered_interrupts = 0;
};

}  // namespace vtx::cpu
