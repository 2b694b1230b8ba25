#include "apic/interrupt_bus.hpp"

#include "apic/registers.hpp"

#include <algorithm>
#include <string>

namespace vtx::apic {

using model::Cost;

void InterruptTransaction::prepare(const InterruptMessage& msg) {
    m_ext.message = msg;
    m_data = msg.destination;
    m_gp.set_command(tlm::TLM_WRITE_COMMAND);
    m_gp.set_address(msg.destination);
    m_gp.set_data_ptr(reinterpret_cast<unsigned char*>(&m_data));
    m_gp.set_data_length(sizeof m_data);
    m_gp.set_streaming_width(sizeof m_data);
    m_gp.set_byte_enable_ptr(nullptr);
    m_gp.set_dmi_allowed(false);
    m_gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
}

InterruptBus::InterruptBus(sc_core::sc_module_name name, const model::CostTable& costs,
                           const model::Clock& clock)
    : sc_module(name),
      target_socket("target_socket"),
      initiator_socket("initiator_socket"),
      m_costs(costs),
      m_clock(clock) {
    target_socket.register_b_transport(this, &InterruptBus::b_transport);
}

std::size_t InterruptBus::attach(InterruptBusClient& client) {
    m_clients.push_back(&client);
    m_ports.emplace_back();
    return m_clients.size() - 1;
}

void InterruptBus::end_of_elaboration() {
    if (target_socket.size() != static_cast<unsigned>(m_clients.size()) ||
        initiator_socket.size() != static_cast<unsigned>(m_clients.size()))
        SC_REPORT_FATAL(name(), "every attached APIC must bind one sender and one receiver socket");
}

void InterruptBus::b_transport(int sender, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    InterruptMessageExtension* ext = nullptr;
    gp.get_extension(ext);
    const auto source = static_cast<std::size_t>(sender);
    if (!ext || source >= m_clients.size()) {
        gp.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
        return;
    }
    const InterruptMessage& msg = ext->message;
    const sc_core::sc_time enter = model::sim_now() + delay;
    ++m_messages;
    gp.set_response_status(tlm::TLM_OK_RESPONSE);

    if (msg.shorthand == Shorthand::Self) {  // loops back inside the sending APIC
        ++m_loopbacks;
        deliver(enter, source, msg);
        return;
    }

    std::vector<std::size_t> resolved;
    const std::vector<std::size_t>* found = &resolved;
    if (is_physical_unicast(msg)) {
        found = &physical_targets(msg);  // unicast: no scan of every APIC, no copy
    } else {
        std::vector<DestinationView> views;
        views.reserve(m_clients.size());
        for (const InterruptBusClient* c : m_clients) views.push_back(c->destination_view());
        resolved = resolve_destinations(msg, views, source);
    }
    const std::vector<std::size_t>& targets = *found;
    if (targets.empty()) ++m_undeliverable;

    // The sender's port: one serialization slot per destination copy (one for a message
    // that matched nothing: it still left onto the interconnect). Each receiver's port:
    // one arrival per slot.
    const double ser = m_costs[Cost::ApicBusSerialization];
    const double latency = m_costs[Cost::ApicBusLatency];
    Port& from = m_ports[source];
    const sc_core::sc_time start = std::max(enter, from.send_free);
    m_queueing_cycles += m_clock.to_cycles(start - enter);
    const sc_core::sc_time slot = m_clock.latency_to_time(ser);
    for (std::size_t k = 0; k < targets.size(); ++k) {
        const sc_core::sc_time transit = start + m_clock.latency_to_time(ser * static_cast<double>(k + 1) + latency);
        Port& to = m_ports[targets[k]];
        const sc_core::sc_time arrive = std::max(transit, to.last_arrival + slot);
        m_queueing_cycles += m_clock.to_cycles(arrive - transit);
        to.last_arrival = arrive;
        deliver(arrive, targets[k], msg);
    }
    const double slots = static_cast<double>(std::max<std::size_t>(targets.size(), 1));
    from.send_free = start + m_clock.to_time(ser * slots);
    m_busy_cycles += ser * slots;
}

const std::vector<std::size_t>& InterruptBus::physical_targets(const InterruptMessage& msg) {
    if (m_index_generation != m_addressing_generation) {
        for (bool x2apic_format : {false, true}) {
            auto& index = m_physical_index[x2apic_format];
            index.clear();
            for (std::size_t i = 0; i < m_clients.size(); ++i) {
                const DestinationView v = m_clients[i]->destination_view();
                if (v.hardware_enabled) index[physical_match_key(v.apic_id, x2apic_format)].push_back(i);
            }
        }
        m_index_generation = m_addressing_generation;
    }
    const auto& index = m_physical_index[msg.x2apic_format];
    const auto it = index.find(physical_match_key(msg.destination, msg.x2apic_format));
    return it == index.end() ? m_none : it->second;
}

void InterruptBus::deliver(const sc_core::sc_time& when, std::size_t target,
                            const InterruptMessage& msg) {
    // TLM-2.0 loosely timed: hand the copy to the receiver now, annotated with the time
    // until it arrives; the receiver queues it for then.
    sc_core::sc_time delay = when - model::sim_now();
    m_delivery.perform(initiator_socket[static_cast<int>(target)], msg, delay);
    ++m_deliveries;
}

void InterruptBus::export_stats(model::Stats& stats, const std::string& prefix) const {
    stats.counter(prefix + ".messages", "count", "interrupt messages sent") += m_messages;
    stats.counter(prefix + ".deliveries", "count", "message copies delivered to a local APIC") +=
        m_deliveries;
    stats.counter(prefix + ".undeliverable", "count", "messages that matched no local APIC") +=
        m_undeliverable;
    stats.counter(prefix + ".loopbacks", "count", "self IPIs delivered inside the sending APIC") +=
        m_loopbacks;
    stats.counter(prefix + ".busy_cycles", "cycles", "sender ports' occupancy") +=
        static_cast<std::uint64_t>(m_busy_cycles);
    stats.counter(prefix + ".queueing_cycles", "cycles", "cycles messages waited for a sender's or a receiver's port") +=
        static_cast<std::uint64_t>(m_queueing_cycles);
}

}  // namespace vtx::apic
