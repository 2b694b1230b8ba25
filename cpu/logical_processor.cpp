// The logical processor: construction, time (exact and decoupled modes), its memory port, and
// the VMCS helpers the flows share. The flows live by SDM chapter in vmx_instructions.cpp,
// vm_entry_exit.cpp, event_delivery.cpp, apic_virtualization.cpp, guest_instructions.cpp and
// host_interrupts.cpp.
#include "cpu/logical_processor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/platform.hpp"
#include "model/error.hpp"
#include "model/x86.hpp"
#include "pid/pid_table.hpp"
#include "vmcs/controls.hpp"

namespace vtx::cpu {

using model::Cost;
using vmcs::Field;

// ------------------------------------------------------------------------------------
LogicalProcessor::LogicalProcessor(sc_core::sc_module_name name, int index, Platform& platform,
                                   apic::InterruptBus& bus)
    : sc_module(name),
      mem_socket("mem_socket"),
      m_index(index),
      m_tracer(platform.tracer()),
      m_platform(platform),
      m_clock(platform.clock()),
      m_costs(platform.costs()),
      m_stat_interrupts_delivered(platform.stats(), "guest.interrupts_delivered",
                                  "interrupts delivered through a guest IDT"),
      m_stat_pi_processed(platform.stats(), "pi.processed", "posted-interrupt processing runs"),
      m_stat_ipiv_virtualized(platform.stats(), "ipiv.virtualized", "IPIs virtualized without VM exit"),
      m_stat_notifications_sent(platform.stats(), "notifications.sent",
                                "posted-interrupt notification IPIs sent by IPIv"),
      m_stat_host_interrupts(platform.stats(), "host.interrupts", "interrupts taken in root operation"),
      m_stat_uipis_sent(platform.stats(), "uintr.senduipi", "SENDUIPI executions that posted a user interrupt"),
      m_stat_uintr_notifications(platform.stats(), "uintr.notifications",
                                 "user-interrupt notification processing runs"),
      m_stat_user_interrupts(platform.stats(), "uintr.delivered", "user interrupts delivered to UIHANDLER") {
    m_apic = std::make_unique<apic::LocalApic>("apic", static_cast<std::uint32_t>(index),
                                               platform.costs(), platform.clock(), bus);
    m_apic->set_wait_for_sipi_probe([this] {
        return m_non_root && m_current &&
               static_cast<vmcs::ActivityState>(m_current->vmcs.hw_read(Field::GuestActivityState)) ==
                   vmcs::ActivityState::WaitForSipi;
    });
    SC_HAS_PROCESS(LogicalProcessor);
    SC_THREAD(run);
}

LogicalProcessor::~LogicalProcessor() = default;

const vmcs::VmxCapabilities& LogicalProcessor::capabilities() const {
    return m_platform.capabilities();
}

void LogicalProcessor::run() {
    if (m_software) model::keep_input_error_kind(m_software);
}

// ---- time ----

void LogicalProcessor::trace_line(const char* flag, const char* step, const char* where,
                                  double cost) const {
    if (!m_platform.tracer().enabled(flag)) return;  // nothing computed when tracing is off
    m_platform.tracer().line(flag, now_cycles(), m_index, mode_name(), step, where, cost);
}

void LogicalProcessor::sync() {
    if (m_local > 0.0) {
        sc_core::wait(clock().to_time(m_local));
        m_local = 0.0;
    }
}

sc_core::sc_time LogicalProcessor::hand_over() {
    sync_point();
    const sc_core::sc_time free_at = model::sim_now() + annotation();
    m_local = 0.0;
    return free_at;
}

void LogicalProcessor::take_over(const sc_core::sc_time& free_at) {
    const sc_core::sc_time now = model::sim_now();
    if (free_at > now) m_local = std::max(m_local, clock().to_cycles(free_at - now));
}

sc_core::sc_time LogicalProcessor::annotation() const {
    return m_local > 0.0 ? clock().to_time(m_local) : sc_core::SC_ZERO_TIME;
}

template <class Events>
void LogicalProcessor::wait_absorbing_offset(const Events& events) {
    const double ahead = m_local;
    m_local = 0.0;
    const double start = now_cycles();
    sc_core::wait(events);
    const double waited = now_cycles() - start;
    if (waited < ahead) m_local = ahead - waited;
}

void LogicalProcessor::wait_for(const sc_core::sc_event& e) { wait_absorbing_offset(e); }
void LogicalProcessor::wait_for(const sc_core::sc_event_or_list& events) { wait_absorbing_offset(events); }
void LogicalProcessor::wait_for(const sc_core::sc_event_or_list& events, double max_cycles) {
    // The local offset is part of the time to wait: wait it out, then the rest with the events.
    sync();
    if (max_cycles > 0) sc_core::wait(clock().to_time(max_cycles), events);
}

const sc_core::sc_event_or_list& LogicalProcessor::line_or_interrupt(std::uint64_t line, sc_core::sc_event& written) {
    // Built once per watched line: an or-list made by operator| is allocated anew for
    // every wait.
    auto& list = m_line_or_interrupt[line];
    if (!list) {
        list = std::make_unique<sc_core::sc_event_or_list>();
        *list |= written;
        *list |= m_apic->interrupt_event();
    }
    return *list;
}

std::uint64_t LogicalProcessor::tsc() const {
    const double ratio = m_platform.profile().tsc_ghz / m_platform.profile().core_ghz;
    return static_cast<std::uint64_t>(now_cycles() * ratio);
}

[[gnu::flatten]] void LogicalProcessor::Port::access(model::MemRequest& req) {
    m_lp.sync_point();
    req.agent = m_lp.m_index;
    // The memory target's direct interface (DMI-like: no generic payload, no socket
    // dispatch, the offset in cycles); its mem_socket stays bound for other initiators.
    const double cycles = m_lp.m_platform.memory_target().transport(req, m_lp.m_local);
    // The target may have waited the offset out (a second store to a polled line, see
    // MemoryTarget::begin_wait); the latency is charged below.
    if (req.synchronized) m_lp.m_local = 0.0;
    if (m_lp.m_tracer.any()) {
        char what[96];
        std::snprintf(what, sizeof what, "%s 0x%llx", model::mem_op_name(req.op),
                      static_cast<unsigned long long>(req.address));
        m_lp.trace("mem", what, cycles > m_lp.costs()[Cost::MemL1Hit] + m_lp.costs()[Cost::MemLockedRmw]
                                    ? "line transfer" : "", cycles);
    }
    m_lp.m_local += cycles;
}

// ---- helpers ----
std::uint32_t LogicalProcessor::pin() const {
    return static_cast<std::uint32_t>(vmcs().hw_read(Field::PinBasedVmExecControl));
}
std::uint32_t LogicalProcessor::primary() const {
    return static_cast<std::uint32_t>(vmcs().hw_read(Field::CpuBasedVmExecControl));
}
std::uint32_t LogicalProcessor::secondary() const { return vmcs::effective_secondary_controls(vmcs()); }
std::uint64_t LogicalProcessor::tertiary() const { return vmcs::effective_tertiary_controls(vmcs()); }
VirtualApicPage LogicalProcessor::vapic() {
    const std::uint64_t address = vmcs().hw_read(Field::VirtualApicPageAddr);
    if (address != m_vapic_address) {  // the page's bytes, looked up once per address
        m_vapic_address = address;
        m_vapic_bytes = m_platform.memory().page_bytes(address);
    }
    return VirtualApicPage(m_platform.memory(), address, m_vapic_bytes);
}
std::uint64_t LogicalProcessor::rip(GuestContext& g) const { return g.vmcs.hw_read(Field::GuestRip); }
void LogicalProcessor::set_rip(GuestContext& g, std::uint64_t r) { g.vmcs.hw_write(Field::GuestRip, r); }
void LogicalProcessor::advance_rip(GuestContext& g, unsigned length) {
    set_rip(g, rip(g) + length);
    ++g.instructions;
    // STI / MOV-SS blocking lasts for one instruction.
    const auto intr = g.vmcs.hw_read(Field::GuestInterruptibilityInfo);
    if (vmcs::blocked_by_sti_or_mov_ss(intr))
        g.vmcs.hw_write(Field::GuestInterruptibilityInfo,
                        intr & ~std::uint64_t{vmcs::kBlockingBySti | vmcs::kBlockingByMovSs});
}
bool LogicalProcessor::guest_if(GuestContext& g) const {
    return (g.vmcs.hw_read(Field::GuestRflags) & x86::kRflagsIf) != 0;
}
void LogicalProcessor::count_exit(std::uint16_t basic) {
    ExitTally& t = m_exits.at(static_cast<std::uint8_t>(basic));  // basic reasons are below 256
    ++t.count;
    if (!t.counter) t.counter = &m_platform.stats().counter("exits." + std::to_string(basic), "count",
                                                            "VM exits with this basic exit reason");
    ++*t.counter;
}
std::uint64_t LogicalProcessor::exits(std::uint16_t basic) const {
    const ExitTally* t = m_exits.find(basic);
    return t ? t->count : 0;
}
void LogicalProcessor::outside_guest_memory(GuestContext& g, std::uint64_t gpa) const {
    throw SimulationError(g.name + ": guest-physical address " + pid::hex_address(gpa) +
                          " is outside the VM's memory");
}
bool LogicalProcessor::is_apic_gpa(GuestContext&, std::uint64_t gpa) const {
    return gpa >= kGuestApicBase && gpa < kGuestApicBase + kGuestApicPageSize;
}

}  // namespace vtx::cpu
