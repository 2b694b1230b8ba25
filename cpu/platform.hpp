#pragma once
// The simulated machine: physical memory (a TLM-2.0 target), the interrupt interconnect
// and N logical processors, each with its local APIC, all timed by one CPU profile.
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <systemc>

#include "apic/interrupt_bus.hpp"
#include "cpu/guest_context.hpp"
#include "cpu/interrupt_observer.hpp"
#include "cpu/logical_processor.hpp"
#include "model/clock.hpp"
#include "model/memory.hpp"
#include "model/memory_target.hpp"
#include "model/profile.hpp"
#include "model/stats.hpp"
#include "model/timeline.hpp"
#include "model/trace.hpp"
#include "vmcs/capabilities.hpp"

namespace vtx::cpu {

// A guest did something the model cannot continue from (an exception with no handler,
// an access outside its memory): reported with the vCPU and what happened.
class SimulationError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

inline constexpr std::uint64_t kDefaultMemoryBytes = std::uint64_t{1} << 32;

class Platform : public sc_core::sc_module {
public:
    Platform(sc_core::sc_module_name name, const model::CpuProfile& profile, unsigned cpus,
             std::uint64_t memory_bytes = kDefaultMemoryBytes);
    ~Platform() override;

    unsigned cpu_count() const { return static_cast<unsigned>(m_cpus.size()); }
    LogicalProcessor& cpu(unsigned i) { return *m_cpus.at(i); }
    model::PhysicalMemory& memory() { return m_memory; }
    model::MemoryTarget& memory_target() { return *m_memory_target; }
    apic::InterruptBus& bus() { return *m_bus; }
    const model::CpuProfile& profile() const { return m_profile; }
    model::CpuProfile& profile() { return m_profile; }
    const model::CostTable& costs() const { return m_profile.costs; }
    const model::Clock& clock() const { return m_clock; }
    const vmcs::VmxCapabilities& capabilities() const { return m_caps; }
    vmcs::VmxCapabilities& capabilities() { return m_caps; }
    model::Stats& stats() { return m_stats; }
    model::Tracer& tracer() { return m_tracer; }
    // A protocol checker's hooks (nullptr: none; `vtxsim run --check`).
    void set_interrupt_observer(InterruptObserver* o) { m_interrupt_observer = o; }
    InterruptObserver* interrupt_observer() const { return m_interrupt_observer; }
    model::Timeline& timeline() { return m_timeline; }

    // The time mode (docs/architecture.md): 0 = exact (every processor synchronizes before
    // anything another component could observe), else the global quantum in cycles by
    // which a processor may run ahead of SystemC time (TLM-2.0 loosely timed; also set as
    // tlm::tlm_global_quantum for other TLM components). Set before the simulation starts.
    void set_quantum(double cycles);
    double quantum() const { return m_quantum; }

    // What the host's firmware and kernel do to its local APICs before anything runs:
    // x2APIC mode (as Linux uses on these servers) or, with `x2apic` false, xAPIC mode
    // (Linux booted with nox2apic); software-enabled, spurious vector FFH.
    void bring_up_host_apics(bool x2apic = true);

    // Gives a vCPU context a VMCS region in physical memory (4 KiB, revision identifier
    // in its first 4 bytes) so that VMCLEAR/VMPTRLD can name it by address.
    void register_vmcs(GuestContext& ctx);
    GuestContext* vmcs_at(std::uint64_t address) const;

private:
    InterruptObserver* m_interrupt_observer = nullptr;
    model::CpuProfile m_profile;
    model::Clock m_clock;
    double m_quantum = 0.0;
    vmcs::VmxCapabilities m_caps;
    model::PhysicalMemory m_memory;
    model::Stats m_stats;
    model::Tracer m_tracer;
    model::Timeline m_timeline;
    std::unique_ptr<model::MemoryTarget> m_memory_target;
    std::unique_ptr<apic::InterruptBus> m_bus;
    std::vector<std::unique_ptr<LogicalProcessor>> m_cpus;
    std::map<std::uint64_t, GuestContext*> m_vmcs_regions;
};

}  // namespace vtx::cpu
