#pragma once
// Test support for the cpu/ scenario tests (kvm-unit-tests style, one test case per
// process): a Platform of N logical processors built from a shipped profile, host local
// APICs in x2APIC mode with SVR software-enabled (as sim/experiment.cpp run_in_process),
// test vCPUs (a GuestContext with its virtual-APIC page, APIC-access page, PID and MSR
// bitmap) and a minimal "test VMM" that runs on a processor in VMX root operation:
//
//   VMXON, VMCLEAR + VMPTRLD, VMWRITEs of the vCPU's control set and guest state, then a
//   loop of VMLAUNCH/VMRESUME that records every VM exit and hands it to a per-test
//   handler, which may emulate or skip the instruction and decides whether to go on.
//
// The test VMM does nothing behind the test's back: no PIR -> VIRR sync, no event
// injection, no interrupt handling in root operation beyond running the host handler of
// a vector acknowledged on exit (so that the physical APIC gets its EOI).
//
// Assertions belong in the test body after run(): Catch's REQUIRE throws, which a SystemC
// thread must not do. Threads record what they see; the body checks it.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <systemc>

#include "apic/icr.hpp"
#include "apic/registers.hpp"
#include "cpu/guest.hpp"
#include "cpu/guest_context.hpp"
#include "cpu/logical_processor.hpp"
#include "cpu/platform.hpp"
#include "cpu/virtual_apic.hpp"
#include "model/memory.hpp"
#include "model/profile.hpp"
#include "pid/descriptor.hpp"
#include "pid/layout.hpp"
#include "pid/pid_table.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/exit_info.hpp"
#include "vmcs/fields.hpp"

namespace vtx::cpu::test {

using vmcs::ActivityState;
using vmcs::ExitReason;
using vmcs::Field;

// ---- architectural and harness constants ---------------------------------------------
inline constexpr std::uint8_t kPostedIntrVector = 0xF2;  // KVM POSTED_INTR_VECTOR
inline constexpr std::uint64_t kGuestEntry = 0x1000;    // linear RIP of the guest program
inline constexpr std::uint64_t kRflagsFixed = 0x2;      // RFLAGS bit 1 reads as 1
inline constexpr std::uint64_t kRflagsIf = std::uint64_t{1} << 9;
inline constexpr std::uint64_t kGuestMemoryBytes = std::uint64_t{1} << 20;
// Instruction lengths the processor reports for the modelled instructions.
inline constexpr unsigned kLenWrmsr = 2, kLenRdmsr = 2, kLenMovMmio = 6, kLenVmcall = 3, kLenHlt = 1;
// ICR fields (SDM 11.6.1).
inline constexpr std::uint32_t kIcrFixed = 0x000;
inline constexpr std::uint32_t kIcrNmi = 0x400;
inline constexpr std::uint32_t kIcrInit = 0x500;
inline constexpr std::uint32_t kIcrStartup = 0x600;
inline constexpr std::uint32_t kIcrLogical = 0x800;
inline constexpr std::uint32_t kIcrLevelAssert = 0x4000;
inline constexpr std::uint32_t kIcrTriggerLevel = 0x8000;
inline constexpr std::uint32_t kIcrShorthandSelf = 0x40000;
inline constexpr std::uint32_t kIcrShorthandAll = 0x80000;
inline constexpr std::uint32_t kIcrShorthandOthers = 0xC0000;
// x2APIC MSRs.
inline constexpr std::uint32_t kMsrTpr = 0x808, kMsrPpr = 0x80A, kMsrEoi = 0x80B, kMsrLdr = 0x80D,
                               kMsrIcr = 0x830, kMsrSelfIpi = 0x83F, kMsrVersion = 0x803,
                               kMsrId = 0x802, kMsrIsr0 = 0x810, kMsrIrr0 = 0x820;

constexpr std::uint16_t reason(ExitReason r) { return static_cast<std::uint16_t>(r); }

inline model::CpuProfile load_profile(const std::string& name) {
    return model::CpuProfile::load(std::string(VTX_SOURCE_DIR) + "/profiles/" + name + ".json");
}

// ---- VMX controls ---------------------------------------------------------------------
struct Controls {
    std::uint32_t pin = vmcs::kPinDefault1;
    std::uint32_t primary = vmcs::kPrimaryDefault1;
    std::uint32_t secondary = 0;
    std::uint64_t tertiary = 0;
    std::uint32_t exit = vmcs::kExitDefault1 | vmcs::kExitHostAddressSpaceSize |
                         vmcs::kExitAcknowledgeInterruptOnExit;
    std::uint32_t entry = vmcs::kEntryDefault1 | vmcs::kEntryIa32eModeGuest;

    // KVM's APICv (TPR shadow, APIC-register virtualization, virtual-interrupt delivery,
    // posted interrupts) with external-interrupt exiting and MSR bitmaps.
    static Controls apicv(bool x2apic) {
        Controls c;
        c.pin |= vmcs::kPinExternalInterruptExiting | vmcs::kPinProcessPostedInterrupts;
        c.primary |= vmcs::kPrimaryUseTprShadow | vmcs::kPrimaryUseMsrBitmaps |
                     vmcs::kPrimaryActivateSecondaryControls;
        c.secondary = (x2apic ? vmcs::kSecondaryVirtualizeX2apicMode
                              : vmcs::kSecondaryVirtualizeApicAccesses) |
                      vmcs::kSecondaryApicRegisterVirtualization |
                      vmcs::kSecondaryVirtualInterruptDelivery;
        return c;
    }
    static Controls apicv_xapic() { return apicv(false); }
    static Controls apicv_x2apic() { return apicv(true); }
    // Adds IPI virtualization (tertiary bit 4, activated by primary bit 17).
    Controls& with_ipiv() {
        primary |= vmcs::kPrimaryActivateTertiaryControls;
        tertiary |= vmcs::kTertiaryIpiVirt;
        return *this;
    }
};

// ---- what the test VMM records at each VM exit ------------------------------------------
struct ExitRecord {
    std::uint16_t reason = 0;       // basic exit reason
    std::uint32_t full_reason = 0;  // the whole exit-reason field
    std::uint64_t qualification = 0;
    std::uint32_t intr_info = 0;
    std::uint32_t instruction_length = 0;
    std::uint64_t guest_rip = 0;       // GUEST_RIP read by VMREAD after the exit
    std::uint32_t activity = 0;        // GUEST_ACTIVITY_STATE after the exit
    std::uint16_t intr_status = 0;     // GUEST_INTR_STATUS after the exit (SVI:RVI)
    std::uint64_t guest_instructions = 0;  // instructions the guest had retired
    double cycle = 0;                  // simulated time of the exit (cycles)
    int tag = 0;                       // the vCPU's `tag` at the exit (e.g. a table row)
    std::uint8_t rvi() const { return static_cast<std::uint8_t>(intr_status & 0xFF); }
    std::uint8_t svi() const { return static_cast<std::uint8_t>(intr_status >> 8); }
};

// A snapshot of a PID read from memory without disturbing it.
struct PidSnapshot {
    pid::Pir pir;
    pid::NotificationInfo info;
};
inline PidSnapshot read_pid(model::PhysicalMemory& mem, std::uint64_t address) {
    PidSnapshot s;
    for (std::size_t i = 0; i < s.pir.words.size(); ++i) s.pir.words[i] = mem.peek64(address + 8 * i);
    s.info.raw = mem.peek64(address + pid::kPidNotificationInfoOffset);
    return s;
}

// Waits (on a processor's thread, root software) until `done()` holds, polling every
// `period` cycles of simulated time.
inline void wait_until(LogicalProcessor& p, const std::function<bool()>& done, double period = 50) {
    p.sync();
    while (!done()) sc_core::wait(p.clock().to_time(period));
}
// Lets `cycles` of simulated time pass on a processor's thread.
inline void delay(LogicalProcessor& p, double cycles) {
    p.sync();
    sc_core::wait(p.clock().to_time(cycles));
}

class Harness;

// ---- a test vCPU: hardware context plus what the test VMM writes into its VMCS ----------
class TestVcpu {
public:
    using ExitHandler = std::function<bool(TestVcpu&, LogicalProcessor&, const ExitRecord&)>;
    using EntryHook = std::function<void(TestVcpu&, LogicalProcessor&)>;

    TestVcpu(Platform& platform, std::string name, unsigned cpu, const GuestMemoryMap& map)
        : ctx(std::move(name), platform.profile().features), cpu(cpu), m_platform(platform) {
        auto& mem = platform.memory();
        vapic = mem.allocate(model::kPageSize, model::kPageSize);
        apic_access = mem.allocate(model::kPageSize, model::kPageSize);
        pid_address = mem.allocate(pid::kPidBytes, pid::kPidAlignment);
        msr_bitmap = mem.allocate(model::kPageSize, model::kPageSize);
        vmxon_region = mem.allocate(model::kPageSize, model::kPageSize);
        std::vector<std::uint8_t> ones(model::kPageSize, 0xFF);  // intercept every MSR
        mem.poke(msr_bitmap, ones.data(), ones.size());
        ctx.memory_map = map;
        ctx.code = [this](std::uint64_t linear) -> GuestProgram {
            auto it = code.find(linear);
            return it == code.end() ? GuestProgram{} : it->second;
        };
        platform.register_vmcs(ctx);
        // The PID: NV = POSTED_INTR_VECTOR, NDST = the physical APIC ID of its processor
        // (host APICs run in x2APIC mode: NDST is the 32-bit ID).
        model::DirectMemoryPort port(mem, model::kDeviceAgent);
        pid::PostedInterruptDescriptor(port, pid_address)
            .initialize(kPostedIntrVector, pid::ndst_for_x2apic(platform.cpu(cpu).apic().apic_id()));
    }

    GuestContext ctx;
    unsigned cpu;  // the processor the test VMM of this vCPU runs on
    std::uint64_t vapic = 0, apic_access = 0, pid_address = 0, msr_bitmap = 0, vmxon_region = 0;

    // What the test VMM writes before the first VM entry.
    Controls controls;
    std::uint64_t rip = kGuestEntry;
    std::uint64_t cs_base = 0;
    std::uint64_t rflags = kRflagsFixed;
    ActivityState activity = ActivityState::Active;
    std::uint32_t interruptibility = 0;
    std::uint16_t intr_status = 0;  // SVI:RVI
    std::array<std::uint64_t, 4> eoi_exit_bitmap{};
    std::uint32_t tpr_threshold = 0;
    std::uint16_t notification_vector = kPostedIntrVector;
    std::uint64_t pid_table = 0;  // 0: none (PID_POINTER_TABLE is written only if set)
    std::uint16_t last_pid_index = 0;

    // Guest programs by linear address (CS.base + RIP at the first entry into the active state).
    std::map<std::uint64_t, GuestProgram> code;

    // Test VMM behaviour.
    ExitHandler on_exit;       // default: default_exit_handler
    EntryHook after_setup;     // after the VMWRITEs, before the first entry
    EntryHook before_entry;    // before every VMLAUNCH / VMRESUME
    unsigned max_exits = 256;  // a runaway guard
    int tag = 0;               // copied into each ExitRecord

    // Results.
    std::vector<ExitRecord> exits;
    std::vector<std::string> vmx_errors;  // failed VMX instructions of the set-up
    std::optional<EntryResult> end;       // the entry result that ended the loop (if not an exit)
    std::uint64_t vm_instruction_error = 0;  // VMREAD of VM_INSTRUCTION_ERROR after a VMfailValid
    bool vmm_finished = false;
    unsigned entries = 0;
    std::vector<double> entry_cycles;  // simulated time of each VMLAUNCH / VMRESUME

    // ---- conveniences ----
    void program(GuestProgram p, std::uint64_t linear = kGuestEntry) {
        code[linear] = std::move(p);
        rip = linear - cs_base;
    }
    void handler(std::uint8_t vector, GuestHandler h) { ctx.idt.at(vector) = std::move(h); }
    VirtualApicPage page() { return VirtualApicPage(m_platform.memory(), vapic); }
    std::uint32_t vapic32(std::uint32_t offset) { return page().read32(offset); }
    std::uint64_t vapic64(std::uint32_t offset) { return page().read64(offset); }
    bool virr(std::uint8_t v) { return page().test_bit(kVapicIrr, v); }
    bool visr(std::uint8_t v) { return page().test_bit(kVapicIsr, v); }
    std::uint8_t rvi() const { return static_cast<std::uint8_t>(ctx.vmcs.hw_read(Field::GuestIntrStatus)); }
    std::uint8_t svi() const {
        return static_cast<std::uint8_t>(ctx.vmcs.hw_read(Field::GuestIntrStatus) >> 8);
    }
    std::uint64_t guest_rip() const { return ctx.vmcs.hw_read(Field::GuestRip); }
    PidSnapshot pid_state() { return read_pid(m_platform.memory(), pid_address); }
    // MSR bitmap (SDM 24.6.9): read-low at 0, write-low at 2048, one bit per MSR 0..1FFFH.
    void set_msr_intercept(std::uint32_t msr, bool read, bool write) {
        set_bitmap_bit(0, msr, read);
        set_bitmap_bit(2048, msr, write);
    }
    // KVM's x2APIC APICv bitmap: reads of 800H-8FFH pass through; writes of TPR, EOI and
    // SELF IPI pass through (and ICR too when `icr`).
    void passthrough_x2apic_msrs(bool icr) {
        for (std::uint32_t msr = 0x800; msr <= 0x8FF; ++msr) set_msr_intercept(msr, false, true);
        for (std::uint32_t msr : {kMsrTpr, kMsrEoi, kMsrSelfIpi}) set_msr_intercept(msr, false, false);
        if (icr) set_msr_intercept(kMsrIcr, false, false);
    }
    // Seeds VIRR bits and RVI, as a VMM does before entry.
    void pend_virtual_interrupt(std::uint8_t v) {
        VirtualApicPage p = page();
        p.set_bit(kVapicIrr, v);
        if (v > (intr_status & 0xFF)) intr_status = static_cast<std::uint16_t>((intr_status & 0xFF00) | v);
    }

    // The default handling of the test VMM: skip (emulate as a no-op) fault-like
    // instruction exits; continue after everything else.
    static bool default_exit_handler(TestVcpu& v, LogicalProcessor& p, const ExitRecord& e) {
        switch (static_cast<ExitReason>(e.reason)) {
            case ExitReason::Rdmsr:
                v.ctx.regs.rax = v.ctx.regs.rdx = 0;
                v.skip(p);
                return true;
            case ExitReason::ApicAccess:
            case ExitReason::EptMisconfig:
                v.ctx.mmio.value = 0;
                v.skip(p);
                return true;
            case ExitReason::Wrmsr:
            case ExitReason::Cpuid:
            case ExitReason::Vmcall:
            case ExitReason::Hlt:
                v.skip(p);
                return true;
            default:
                return true;
        }
    }
    // Moves GUEST_RIP past the instruction that caused the exit (KVM skip_emulated_instruction).
    void skip(LogicalProcessor& p) {
        const auto r = p.vmread(Field::GuestRip).value;
        const auto len = p.vmread(Field::VmExitInstructionLen).value;
        p.vmwrite(Field::GuestRip, r + len);
    }
    std::uint64_t exit_count(ExitReason r) const {
        std::uint64_t n = 0;
        for (const auto& e : exits) n += e.reason == reason(r);
        return n;
    }

private:
    void set_bitmap_bit(std::uint64_t half, std::uint32_t msr, bool on) {
        auto& mem = m_platform.memory();
        std::uint8_t b = 0;
        mem.peek(msr_bitmap + half + msr / 8, &b, 1);
        b = on ? static_cast<std::uint8_t>(b | (1u << (msr % 8))) : static_cast<std::uint8_t>(b & ~(1u << (msr % 8)));
        mem.poke(msr_bitmap + half + msr / 8, &b, 1);
    }
    Platform& m_platform;
};

// ---- the harness --------------------------------------------------------------------------
class Harness {
public:
    explicit Harness(const std::string& profile_name, unsigned cpus = 2)
        : m_profile(load_profile(profile_name)) {
        sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
        m_platform = std::make_unique<Platform>("platform", m_profile, cpus);
        m_platform->bring_up_host_apics();
        m_guest_memory.size = kGuestMemoryBytes;
        m_guest_memory.host_base = m_platform->memory().allocate(kGuestMemoryBytes, model::kPageSize);
    }

    Platform& platform() { return *m_platform; }
    LogicalProcessor& cpu(unsigned i) { return m_platform->cpu(i); }
    model::PhysicalMemory& memory() { return m_platform->memory(); }
    const model::CpuFeatures& features() const { return m_platform->profile().features; }

    // A vCPU whose test VMM runs on processor `cpu` (one VMM per processor). All vCPUs
    // share one guest-physical memory (one VM).
    TestVcpu& add_vcpu(unsigned cpu) {
        auto v = std::make_unique<TestVcpu>(*m_platform, "vcpu" + std::to_string(m_vcpus.size()), cpu,
                                            m_guest_memory);
        TestVcpu* vp = v.get();
        m_vcpus.push_back(std::move(v));
        ++m_running;
        m_platform->cpu(cpu).set_software([this, vp] {
            vmm(*vp);
            finished();
        });
        return *vp;
    }

    // Root-mode software (no VMX) on a processor, e.g. a sender of IPIs.
    void software(unsigned cpu, std::function<void(LogicalProcessor&)> fn) {
        ++m_running;
        LogicalProcessor* p = &m_platform->cpu(cpu);
        p->set_software([this, p, fn = std::move(fn)] {
            fn(*p);
            finished();
        });
    }

    // A zeroed, page-aligned PID-pointer table of `entries` 8-byte entries.
    std::uint64_t make_pid_table(unsigned entries) {
        return memory().allocate(pid::table_allocation_bytes(entries), pid::kPidTableAlignment);
    }
    void set_pid_table_entry(std::uint64_t table, unsigned index, std::uint64_t raw) {
        memory().poke64(table + index * pid::kPidTableEntryBytes, raw);
    }
    // A descriptor that belongs to no vCPU (a target that is not running), NV/NDST given.
    std::uint64_t make_pid(std::uint8_t nv, std::uint32_t ndst) {
        const std::uint64_t a = memory().allocate(pid::kPidBytes, pid::kPidAlignment);
        model::DirectMemoryPort port(memory(), model::kDeviceAgent);
        pid::PostedInterruptDescriptor(port, a).initialize(nv, ndst);
        return a;
    }
    PidSnapshot pid_state(std::uint64_t address) { return read_pid(memory(), address); }

    double drain_cycles = 20000;  // simulated after everything finished (see finished())

    // Runs the simulation until every VMM and software has finished, or `max_cycles`
    // have passed. Returns "" or what went wrong.
    std::string run(double max_cycles = 4e6) {
        try {
            sc_core::sc_start(m_platform->clock().to_time(max_cycles));
        } catch (const std::exception& e) {
            return e.what();
        }
        if (m_running != 0)
            return std::to_string(m_running) + " VMM/software thread(s) did not finish within " +
                   std::to_string(max_cycles) + " cycles";
        return "";
    }

private:
    // When the last VMM / software is done, messages may still be on the interrupt bus:
    // the simulation runs on for `drain_cycles`, then stops.
    void finished() {
        if (--m_running != 0) return;
        const sc_core::sc_time drain = m_platform->clock().to_time(drain_cycles);
        sc_core::sc_spawn([drain] {
            sc_core::wait(drain);
            sc_core::sc_stop();
        });
    }

    void vmm(TestVcpu& v) {
        LogicalProcessor& p = m_platform->cpu(v.cpu);
        auto check = [&](const char* what, const vmcs::VmxResult& r) {
            if (!r.succeeded()) v.vmx_errors.push_back(what);
        };
        check("VMXON", p.vmxon(v.vmxon_region));
        check("VMCLEAR", p.vmclear(v.ctx.vmcs_address));
        check("VMPTRLD", p.vmptrld(v.ctx.vmcs_address));
        write_vmcs(p, v);
        if (v.after_setup) v.after_setup(v, p);
        for (;;) {
            if (v.before_entry) v.before_entry(v, p);
            const bool launched = v.ctx.vmcs.launch_state() == vmcs::LaunchState::Launched;
            ++v.entries;
            v.entry_cycles.push_back(p.now_cycles());
            const EntryResult r = launched ? p.vmresume() : p.vmlaunch();
            if (r.outcome != EntryOutcome::Exited) {
                v.end = r;
                if (r.outcome == EntryOutcome::VmFailValid)
                    v.vm_instruction_error = p.vmread(Field::VmInstructionError).value;
                break;
            }
            ExitRecord e;
            e.reason = r.exit.basic();
            e.full_reason = r.exit.reason;
            e.qualification = p.vmread(Field::ExitQualification).value;
            e.intr_info = static_cast<std::uint32_t>(p.vmread(Field::VmExitIntrInfo).value);
            e.instruction_length = static_cast<std::uint32_t>(p.vmread(Field::VmExitInstructionLen).value);
            e.guest_rip = p.vmread(Field::GuestRip).value;
            e.activity = static_cast<std::uint32_t>(p.vmread(Field::GuestActivityState).value);
            e.intr_status = static_cast<std::uint16_t>(v.ctx.vmcs.hw_read(Field::GuestIntrStatus));
            e.guest_instructions = v.ctx.instructions;
            e.cycle = p.now_cycles();
            e.tag = v.tag;
            v.exits.push_back(e);
            // An external interrupt acknowledged on exit: the host handler runs and EOIs
            // the physical APIC (KVM handle_external_interrupt_irqoff).
            if (e.reason == reason(ExitReason::ExternalInterrupt) && vmcs::interruption_valid(e.intr_info))
                p.run_host_handler(vmcs::interruption_vector(e.intr_info));
            const bool go_on = v.on_exit ? v.on_exit(v, p, e) : TestVcpu::default_exit_handler(v, p, e);
            if (!go_on || v.exits.size() >= v.max_exits) break;
        }
        v.vmm_finished = true;
    }

    void write_vmcs(LogicalProcessor& p, TestVcpu& v) {
        const model::CpuFeatures& f = features();
        auto w = [&](Field field, std::uint64_t value) {
            if (!p.vmwrite(field, value).succeeded())
                v.vmx_errors.push_back("VMWRITE " + std::string(vmcs::field_name(field)));
        };
        const Controls& c = v.controls;
        w(Field::PinBasedVmExecControl, c.pin);
        w(Field::CpuBasedVmExecControl, c.primary);
        w(Field::SecondaryVmExecControl, c.secondary);
        if (f.tertiary_controls) w(Field::TertiaryVmExecControl, c.tertiary);
        w(Field::VmExitControls, c.exit);
        w(Field::VmEntryControls, c.entry);
        w(Field::VirtualApicPageAddr, v.vapic);
        w(Field::ApicAccessAddr, v.apic_access);
        w(Field::PostedIntrDescAddr, v.pid_address);
        w(Field::PostedIntrNv, v.notification_vector);
        if (f.ipi_virtualization && v.pid_table) {
            w(Field::PidPointerTable, v.pid_table);
            w(Field::LastPidPointerIndex, v.last_pid_index);
        }
        w(Field::MsrBitmap, v.msr_bitmap);
        const Field bitmaps[] = {Field::EoiExitBitmap0, Field::EoiExitBitmap1, Field::EoiExitBitmap2,
                                 Field::EoiExitBitmap3};
        for (std::size_t i = 0; i < 4; ++i) w(bitmaps[i], v.eoi_exit_bitmap[i]);
        w(Field::TprThreshold, v.tpr_threshold);
        w(Field::VmcsLinkPointer, ~std::uint64_t{0});
        w(Field::GuestCsBase, v.cs_base);
        w(Field::GuestRip, v.rip);
        w(Field::GuestRflags, v.rflags);
        w(Field::GuestActivityState, static_cast<std::uint64_t>(v.activity));
        w(Field::GuestInterruptibilityInfo, v.interruptibility);
        w(Field::GuestIntrStatus, v.intr_status);
    }

    model::CpuProfile m_profile;
    std::unique_ptr<Platform> m_platform;
    GuestMemoryMap m_guest_memory;
    std::vector<std::unique_ptr<TestVcpu>> m_vcpus;
    int m_running = 0;
};

// Sets bit `vector` of a 256-bit EOI-exit bitmap.
inline void set_eoi_exit(std::array<std::uint64_t, 4>& bitmap, std::uint8_t vector) {
    bitmap[vector / 64] |= std::uint64_t{1} << (vector % 64);
}

}  // namespace vtx::cpu::test
