#include "cpu/platform.hpp"

#include <cmath>
#include <string>

#include <tlm>

#include "apic/registers.hpp"
#include "model/error.hpp"

namespace vtx::cpu {

Platform::Platform(sc_core::sc_module_name name, const model::CpuProfile& profile, unsigned cpus,
                   std::uint64_t memory_bytes)
    : sc_module(name),
      m_profile(profile),
      m_clock(profile.core_ghz),
      m_caps(vmcs::build_capabilities(profile.features)),
      m_memory(memory_bytes, &m_profile.costs) {
    m_memory_target = std::make_unique<model::MemoryTarget>("memory", m_memory, m_clock);
    m_bus = std::make_unique<apic::InterruptBus>("interrupt_bus", m_profile.costs, m_clock);
    for (unsigned i = 0; i < cpus; ++i) {
        auto lp = std::make_unique<LogicalProcessor>(("cpu" + std::to_string(i)).c_str(),
                                                     static_cast<int>(i), *this, *m_bus);
        lp->mem_socket.bind(m_memory_target->socket);
        m_cpus.push_back(std::move(lp));
    }
}

Platform::~Platform() = default;

void Platform::set_quantum(double cycles) {
    if (!(cycles >= 0.0) || !std::isfinite(cycles))
        throw model::ConfigError("quantum must be a finite number of cycles >= 0, got " + std::to_string(cycles));
    m_quantum = cycles;
    for (auto& lp : m_cpus) lp->m_quantum = cycles;
    tlm::tlm_global_quantum::instance().set(m_clock.to_time(cycles));
}

void Platform::bring_up_host_apics(bool x2apic) {
    constexpr std::uint32_t kHostSvr = apic::kSvrApicSoftwareEnable | 0xFF;  // spurious vector FFH
    for (unsigned c = 0; c < cpu_count(); ++c) {
        auto& a = cpu(c).apic();
        const std::uint64_t base = apic::kApicDefaultBaseAddress | apic::kApicBaseGlobalEnable |
                                   (c == 0 ? apic::kApicBaseBsp : 0);
        a.wrmsr(apic::kMsrIa32ApicBase, base | (x2apic ? apic::kApicBaseX2ApicEnable : 0));
        a.write_register(apic::kApicOffsetSvr, kHostSvr);
    }
}

void Platform::register_vmcs(GuestContext& ctx) {
    ctx.vmcs_address = m_memory.allocate(model::kPageSize, model::kPageSize);
    const std::uint32_t revision = m_caps.vmcs_revision_id();
    m_memory.poke(ctx.vmcs_address, &revision, sizeof revision);
    ctx.vmcs.set_revision_id(revision);
    m_vmcs_regions[ctx.vmcs_address] = &ctx;
}

GuestContext* Platform::vmcs_at(std::uint64_t address) const {
    auto it = m_vmcs_regions.find(address);
    return it == m_vmcs_regions.end() ? nullptr : it->second;
}

}  // namespace vtx::cpu
