#include "apic/local_apic.hpp"

#include <algorithm>
#include <cmath>

namespace vtx::apic {

using model::Cost;

namespace {
// Bits of LocalApic::pending_mask().
constexpr unsigned kPendingIntr = 1u << 0;
constexpr unsigned kPendingNmi = 1u << 1;
constexpr unsigned kPendingInit = 1u << 2;
constexpr unsigned kPendingSipi = 1u << 3;
constexpr unsigned kPendingSmi = 1u << 4;

}  // namespace

LocalApic::LocalApic(sc_core::sc_module_name name, std::uint32_t initial_apic_id,
                     const vtx::model::CostTable& costs, const vtx::model::Clock& clock,
                     InterruptBus& bus, bool bsp)
    : sc_module(name),
      initiator_socket("initiator_socket"),
      target_socket("target_socket"),
      m_state(initial_apic_id, bsp),
      m_bus(bus),
      m_costs(costs),
      m_clock(clock),
      m_bus_index(bus.attach(*this)) {
    target_socket.register_b_transport(this, &LocalApic::receive);
    // Bind in attach order, so that socket index == bus index on both sides.
    initiator_socket.bind(bus.target_socket);
    bus.initiator_socket.bind(target_socket);
    SC_HAS_PROCESS(LocalApic);
    SC_METHOD(accept_due);
    sensitive << m_accept_event;
    dont_initialize();
    SC_METHOD(timer_expired);
    sensitive << m_timer_event;
    dont_initialize();
}

// ---------------------------------------------------------------- register access

MmioResult LocalApic::mmio_read(std::uint32_t offset, const sc_core::sc_time& annotation) {
    const Annotated at(*this, annotation);
    MmioResult r;
    r.cycles = m_costs[Cost::ApicMmioAccess];
    if (offset == kApicOffsetTimerCurrentCount) refresh_timer_count();
    const unsigned before = pending_mask();
    const ReadResult rr = m_state.read_mmio(offset);  // a reserved offset may signal an error
    r.claimed = rr.status != AccessStatus::NotClaimed;
    r.value = static_cast<std::uint32_t>(rr.value);
    notify_new(before);
    return r;
}

MmioResult LocalApic::mmio_write(std::uint32_t offset, std::uint32_t value,
                                 const sc_core::sc_time& annotation) {
    const Annotated at(*this, annotation);
    MmioResult r;
    r.cycles = m_costs[Cost::ApicMmioAccess];
    const unsigned before = pending_mask();
    const auto addressing = physical_addressing();
    const WriteResult w = m_state.write_mmio(offset, value);
    addressing_may_change(addressing);
    r.claimed = w.status != AccessStatus::NotClaimed;
    apply(w);
    notify_new(before);
    return r;
}

MsrResult LocalApic::rdmsr(std::uint32_t msr, const sc_core::sc_time& annotation) {
    const Annotated at(*this, annotation);
    MsrResult r;
    r.cycles = m_costs[Cost::ApicMsrAccess];
    if (msr == kX2ApicMsrTimerCurrentCount) refresh_timer_count();
    const ReadResult rr = m_state.read_msr(msr);
    r.gp = rr.status == AccessStatus::GeneralProtection;
    r.value = r.gp ? 0 : rr.value;
    return r;
}

MsrResult LocalApic::wrmsr(std::uint32_t msr, std::uint64_t value, const sc_core::sc_time& annotation) {
    const Annotated at(*this, annotation);
    MsrResult r;
    r.cycles = m_costs[Cost::ApicMsrAccess];
    const unsigned before = pending_mask();
    const auto addressing = physical_addressing();
    const WriteResult w = m_state.write_msr(msr, value);
    addressing_may_change(addressing);
    r.gp = w.status == AccessStatus::GeneralProtection;
    apply(w);
    notify_new(before);
    return r;
}

double LocalApic::write_register(std::uint32_t offset, std::uint32_t value, const sc_core::sc_time& annotation) {
    if (m_state.x2apic_mode()) return wrmsr(x2apic_msr_of(offset), value, annotation).cycles;
    return mmio_write(offset, value, annotation).cycles;
}

void LocalApic::send_ipi(std::uint64_t icr_value) {
    switch (m_state.mode()) {
        case ApicMode::X2Apic:
            if (wrmsr(kX2ApicMsrIcr, icr_value).gp) ++m_ipis_refused;
            return;
        case ApicMode::XApic:
            mmio_write(kApicOffsetIcrHi, static_cast<std::uint32_t>(icr_value >> kIcrHiShift));
            mmio_write(kApicOffsetIcrLo, static_cast<std::uint32_t>(icr_value));
            return;
        case ApicMode::Disabled: ++m_ipis_refused; return;
    }
}

void LocalApic::apply(const WriteResult& w) {
    if (!w.ok()) return;
    if (w.send_icr) send_icr(*w.send_icr);
    if (w.self_ipi) {
        if (*w.self_ipi < kFirstValidVector) m_state.record_error(kEsrSendIllegalVector);
        send_message(self_ipi_message(*w.self_ipi, apic_id()));
    }
    if (w.timer_started) restart_timer();
    if (w.mode_changed && !enabled()) stop_timer();
}

// ---------------------------------------------------------------- sending

void LocalApic::send_icr(std::uint64_t icr) {
    const bool x2apic = m_state.x2apic_mode();
    const Icr fields = decode_icr(icr, x2apic);
    // 11.5.3: an illegal vector is flagged by the sender; the message still goes out and
    // every receiver refuses it (ESR "received illegal vector").
    if (has_illegal_vector(fields)) m_state.record_error(kEsrSendIllegalVector);
    if (check_icr(fields) != IcrCheck::Valid) {
        ++m_ipis_refused;
        return;
    }
    send_message(message_from_icr(fields, x2apic, apic_id()));
}

void LocalApic::send_message(const InterruptMessage& msg) {
    // The message leaves this APIC ApicIcrSend cycles after the ICR write (whose time is
    // the access's annotation after sc_time_stamp()).
    sc_core::sc_time delay = m_annotation + m_clock.latency_to_time(m_costs[Cost::ApicIcrSend]);
    m_send.perform(initiator_socket, msg, delay);
    ++m_ipis_sent;
}

// ---------------------------------------------------------------- receiving

void LocalApic::receive(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    InterruptMessageExtension* ext = nullptr;
    gp.get_extension(ext);
    if (!ext) {
        gp.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
        return;
    }
    // The message arrives now + delay; the APIC accepts it ApicAccept cycles later.
    delay += m_clock.latency_to_time(m_costs[Cost::ApicAccept]);
    const sc_core::sc_time now = model::sim_now();
    m_arrivals.push(Arrival{now + delay, m_arrival_sequence++, ext->message});
    m_accept_event.notify(m_arrivals.top().at - now);
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
}

void LocalApic::accept_due() {
    const sc_core::sc_time now = model::sim_now();
    bool signal = false;
    while (!m_arrivals.empty() && m_arrivals.top().at <= now) {
        const InterruptMessage msg = m_arrivals.top().message;
        m_arrivals.pop();
        const unsigned before = pending_mask();
        const AcceptOutcome outcome = m_state.accept(msg);
        record(msg, outcome);
        if (outcome == AcceptOutcome::StartUpLatched && m_in_wait_for_sipi && !m_in_wait_for_sipi()) {
            // The processor acts on a SIPI only in wait-for-SIPI; otherwise "no VM exit
            // occurs and the SIPI is discarded" (SDM 26.2, SDM16 25.2), now, not later.
            m_state.clear_sipi();
            ++m_sipis_discarded;
            continue;
        }
        signal = signal || signals_core(before, outcome, msg.vector);
    }
    if (signal) m_interrupt_event.notify();
    if (!m_arrivals.empty()) m_accept_event.notify(m_arrivals.top().at - now);
}

void LocalApic::record(const InterruptMessage& msg, AcceptOutcome outcome) {
    if (outcome == AcceptOutcome::Accepted || outcome == AcceptOutcome::Coalesced) {
        VectorTally& t = m_tally.at(msg.vector);
        ++t.accepted;
        if (outcome == AcceptOutcome::Coalesced) ++t.coalesced;
    }
    if (!is_accepted(outcome)) {
        ++m_rejected;
        return;
    }
    if (!m_keep_log) return;
    DeliveryRecord rec;
    rec.cycle = m_clock.ticks_at(model::sim_now());
    rec.vector = msg.vector;
    rec.delivery_mode = msg.delivery_mode;
    rec.source_id = msg.source_id;
    rec.outcome = outcome;
    m_log.push_back(rec);
}

// ---------------------------------------------------------------- toward the core

std::uint8_t LocalApic::acknowledge() { return m_state.acknowledge(); }

double LocalApic::ack_cycles() const { return m_costs[Cost::ApicInterruptAck]; }

void LocalApic::eoi() {
    const unsigned before = pending_mask();
    m_state.eoi();
    notify_new(before);  // a held interrupt may now be deliverable
}

double LocalApic::eoi_cycles() const { return m_costs[Cost::ApicEoi]; }

void LocalApic::set_tpr(std::uint8_t tpr) {
    const unsigned before = pending_mask();
    m_state.set_tpr(tpr);
    notify_new(before);
}

void LocalApic::init_reset() {
    const auto addressing = physical_addressing();
    m_state.init_reset();
    addressing_may_change(addressing);
    stop_timer();
}

unsigned LocalApic::pending_mask() const {
    unsigned m = 0;
    if (m_state.has_deliverable_interrupt()) m |= kPendingIntr;
    if (m_state.nmi_pending()) m |= kPendingNmi;
    if (m_state.init_pending()) m |= kPendingInit;
    if (m_state.sipi_pending()) m |= kPendingSipi;
    if (m_state.smi_pending()) m |= kPendingSmi;
    return m;
}

bool LocalApic::signals_core(unsigned before, AcceptOutcome outcome, std::uint8_t vector) const {
    // Something new is pending: an event latched, or an interrupt became deliverable.
    if (pending_mask() & ~before) return true;
    // An interrupt was already pending, and this one is now the one INTA would take.
    return outcome == AcceptOutcome::Accepted && m_state.has_deliverable_interrupt() &&
           m_state.highest_irr() == vector;
}

void LocalApic::notify_new(unsigned before) {
    if (pending_mask() & ~before) m_interrupt_event.notify(sc_core::SC_ZERO_TIME);
}

// ---------------------------------------------------------------- timer (11.5.4)

sc_core::sc_time LocalApic::timer_period() const {
    const double ticks = static_cast<double>(m_state.timer_initial_count()) *
                         timer_divisor(m_state.timer_divide_config());
    return m_clock.to_time(ticks * m_timer_cycles_per_tick);
}

void LocalApic::restart_timer() {
    m_timer_event.cancel();
    if (m_state.timer_initial_count() == 0 || !enabled()) {  // a write of 0 stops the timer
        stop_timer();
        return;
    }
    m_timer_running = true;
    m_timer_start = access_time();
    m_state.set_timer_current_count(m_state.timer_initial_count());
    m_timer_event.notify(m_annotation + timer_period());
}

void LocalApic::stop_timer() {
    m_timer_event.cancel();
    m_timer_running = false;
    m_state.set_timer_current_count(0);
}

void LocalApic::refresh_timer_count() {
    if (!m_timer_running) return;
    const double cycles_per_count =
        timer_divisor(m_state.timer_divide_config()) * m_timer_cycles_per_tick;
    const sc_core::sc_time at = access_time();
    const double elapsed = at > m_timer_start ? m_clock.to_cycles(at - m_timer_start) : 0.0;
    const double counted = std::floor(elapsed / cycles_per_count + 1e-9);
    const double initial = m_state.timer_initial_count();
    m_state.set_timer_current_count(static_cast<std::uint32_t>(initial - std::min(counted, initial)));
}

void LocalApic::timer_expired() {
    if (!m_timer_running) return;
    const unsigned before = pending_mask();
    const std::uint8_t vector = static_cast<std::uint8_t>(m_state.lvt(Lvt::Timer) & kLvtVectorMask);
    const AcceptOutcome outcome = m_state.raise_local(Lvt::Timer);
    if (signals_core(before, outcome, vector)) m_interrupt_event.notify(sc_core::SC_ZERO_TIME);
    const std::uint32_t mode =
        (m_state.lvt(Lvt::Timer) & kLvtTimerModeMask) >> kLvtTimerModeShift;
    if (mode == kLvtTimerModePeriodic) {
        m_timer_start = model::sim_now();
        m_state.set_timer_current_count(m_state.timer_initial_count());
        m_timer_event.notify(timer_period());
    } else {
        m_timer_running = false;
        m_state.set_timer_current_count(0);
    }
}

}  // namespace vtx::apic
