#pragma once
// A scenario: a platform, per-vCPU guest programs in a small instruction vocabulary (one
// instruction per guest API call, cpu/guest.hpp), interrupt handlers per vector, and
// expectations on the state the run leaves (or reaches at named check points). Plain
// data, read from a file by sim/scenario_file.cpp; run as a Workload by
// make_scenario_workload. docs/scenarios.md is the reference.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "workloads/workload.hpp"

namespace vtx::workloads::scenario {

// Where in the file something was written, for messages ("FILE:LINE").
struct Where {
    std::string file;
    int line = 0;
    std::string text() const { return file + ":" + std::to_string(line); }
};

enum class Op {
    Nop,        // one straight-line instruction
    Compute,    // a = cycles of straight-line work
    Sti, Cli, Hlt, StiHlt, Pause, Mfence, Rdtsc,
    Cpuid,      // a = leaf
    Vmcall,     // a = number
    Wrmsr,      // a = MSR, b = value
    Rdmsr,      // a = MSR
    ApicWrite,  // a = register offset, b = value (xAPIC: MMIO to the APIC page; x2APIC: WRMSR 800H + offset/16)
    ApicRead,   // a = register offset
    SendIpi,    // a = ICR low 32 bits, b = destination (the guest's ICR write: kvm-unit-tests apic_icr_write)
    Eoi,        // apic_write(EOI, 0)
    Store,      // a = address, b = value, size 4 or 8
    Load,       // a = address, size 4 or 8
    LockAdd, LockBts, LockBtr, Xchg,  // a = address, b = operand (bit number for BTS/BTR)
    Cmpxchg,    // a = address, b = expected, c = new value
    SpinUntil,  // PAUSE until [a] (size) compares `cond` with b; watches the line
    Loop,       // body, a = times
    Check,      // evaluate the expectations named `name` here
    Idle,       // for (;;) pause; interrupts are taken (never returns)
    // User interrupts (cpu/guest.hpp): SENDUIPI a = UITT index; STUI, CLUI; the privilege
    // level (user_mode: CPL 3, kernel_mode: CPL 0); CR4.UINTR (uintr_on / uintr_off).
    Senduipi, Stui, Clui, UserMode, KernelMode, UintrOn, UintrOff,
};

// Where a scenario's user-interrupt handler (a vCPU's `user_handler:`) is installed: the
// value its program writes to IA32_UINTR_HANDLER.
inline constexpr std::uint64_t kUserHandlerAddress = 0x400000;

enum class Cond { Eq, Ne, Ge, Le };

struct Instr {
    Op op = Op::Nop;
    std::uint64_t a = 0, b = 0, c = 0;
    int symbol = -1;           // memory operands: the scenario memory line `a` is an offset into (-1: `a` is a GPA)
    int value_symbol = -1;     // Store/Wrmsr value "&name + N": the GPA of memory line `value_symbol`, plus b
    unsigned size = 8;
    Cond cond = Cond::Eq;
    std::string name;          // Check: the point's name
    std::vector<Instr> body;   // Loop
    Where where;
};

struct VcpuSpec {
    unsigned id = 0;
    unsigned pcpu = 0;
    // Starts UNINITIALIZED (waiting for INIT-SIPI-SIPI) instead of RUNNABLE; its program then
    // runs from the SIPI's start-up address, sipi_vector << 12.
    bool uninitialized = false;
    std::uint8_t sipi_vector = 0;
    std::vector<Instr> program;
    std::map<std::uint8_t, std::vector<Instr>> handlers;  // vector -> handler body (IRET at its end)
    std::vector<Instr> user_handler;  // the user-interrupt handler at kUserHandlerAddress (UIRET at its end)
    bool has_user_handler = false;
    Where where;
};

// One expectation: `what` names it in the report.
struct Expectation {
    enum class Kind {
        Exits,      // vCPU's VM exits with basic reason `key`: value
        Received,   // vCPU's handler for vector `key` ran `value` times
        Activity,   // vCPU's guest activity state (VMCS): value
        MpState,    // KVM's mp_state of the vCPU (vmm::MpState): value
        Rvi, Svi,   // guest interrupt status bytes
        Vppr,       // virtual-APIC page PPR
        VirrHas, VisrHas,  // the vector `key` set (value 1) or clear (0) in VIRR / VISR
        PidOn, PidSn, PidNv, PidNdst, PidPirHas,  // the vCPU's posted-interrupt descriptor
        ExitReason, ExitQualification,            // the VMCS's last exit information
        Memory,     // the scenario memory line `symbol` (8 bytes): value
        Stat,       // the platform statistic `symbol`: value
        UserReceived,  // vCPU's user handler ran for user vector `key` `value` times
        Uirr, Uif,     // the vCPU's UIRR, UIF
    };
    Kind kind = Kind::Memory;
    unsigned vcpu = 0;
    std::uint64_t key = 0;
    std::uint64_t value = 0;
    std::string symbol;
    std::string at;  // a check point's name; empty: at the end of the run
    std::string what;
    Where where;
};

// An action of the VMM process's host side at a given time (`host:`), run by a host
// thread on the housekeeping CPU (vmm/kvm.hpp "The VMM process's host side").
struct HostEvent {
    enum class Kind {
        Preempt,    // a CPU-bound host task wakes on `vcpu`'s CPU and runs `cycles` there
        Block,      // `vcpu`'s thread is signalled out of KVM_RUN and sleeps `cycles` in userspace
        SetApicId,  // KVM_SET_LAPIC on `vcpu`'s thread (signalled out of KVM_RUN): xAPIC ID `apic_id`
        Msi,        // KVM_SIGNAL_MSI: the interrupt message `icr` (ICR layout) to `dest`
        HostIpi,    // smp_call_function_single to physical CPU `pcpu`
        Migrate,    // sched_setaffinity of `vcpu`'s thread to physical CPU `pcpu` (signalled out of KVM_RUN)
        Check,      // evaluate the expectations named `name` now
    };
    Kind kind = Kind::Check;
    double at = 0;  // cycles of simulated time from the start of the run
    unsigned vcpu = 0;
    double cycles = 0;
    std::uint32_t apic_id = 0;
    std::uint32_t icr = 0, dest = 0;
    unsigned pcpu = 0;
    std::string name;
    Where where;
};

struct Scenario {
    std::string name;
    std::string description;
    Where where;
    bool x2apic = true;
    unsigned pcpus = 1;             // including the housekeeping CPU of host events
    unsigned host_cpu = 0;          // where the host thread runs (no vCPU is pinned there)
    std::vector<HostEvent> host;    // in time order
    std::vector<VcpuSpec> vcpus;              // vCPU 0 first: its program's end ends the run
    std::vector<std::pair<std::string, std::uint64_t>> memory;  // named lines and their initial values
    std::vector<Expectation> expectations;
    bool explain = false;  // record every step with the state it changed (vtxsim explain)
    // Re-evaluate every expectation after every step and report, for one that fails, the
    // step from which its value stayed unexpected and the step that last changed it
    // (vtxsim check does this in a second run of a failing scenario).
    bool find_departures = false;
};

// The outcome of each expectation, in file order (check points as evaluated).
struct Outcome {
    const Expectation* expectation = nullptr;
    bool ok = false;
    std::uint64_t actual = 0;
    bool evaluated = false;  // a check point that was never reached stays unevaluated (a failure)
};

std::unique_ptr<Workload> make_scenario_workload(std::shared_ptr<const Scenario> scenario);

}  // namespace vtx::workloads::scenario
