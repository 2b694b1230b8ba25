#pragma once
// The interrupt interconnect between local APICs, as a TLM-2.0 module.
//
// A sending LocalApic calls b_transport on its initiator socket (bound to target_socket)
// with a generic payload carrying an InterruptMessageExtension and, as the annotated delay,
// the time until the message leaves the APIC (ApicIcrSend). The bus routes at that call,
// against the current addressing state of every attached APIC (ID, LDR, DFR, mode, PPR),
// and hands one copy per destination to that receiver at once, through
// initiator_socket[index], annotated with the time until it arrives (TLM-2.0 loosely timed;
// the receiver queues it for then).
//
// Topology: point to point (a mesh, as the profiles' server processors have; no shared
// APIC bus since the P6 family). Each APIC's port onto the interconnect takes one message
// copy per ApicBusSerialization: a sender's copies leave one after another, and a
// receiver's copies arrive one after another; messages between different pairs do not wait
// for each other. Timing (cycles; see docs/apic-choices.md):
//   enter    = send time + ApicIcrSend                 (the annotated delay)
//   start    = max(enter, time the sender's port is free)
//   leave_k  = start + (k + 1) * ApicBusSerialization, k = 0..n-1 over the n destinations
//              in ascending interconnect index
//   arrive_k = max(leave_k + ApicBusLatency, last arrival at destination k's port
//                  + ApicBusSerialization)
//   sender's port free afterwards = start + max(n, 1) * ApicBusSerialization
// The receiver accepts ApicAccept cycles after arrival (LocalApic). A self-shorthand
// message (ICR shorthand Self, x2APIC SELF IPI) loops back inside the sending APIC:
// arrive = enter, no port occupancy.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_initiator_socket.h>
#include <tlm_utils/multi_passthrough_target_socket.h>

#include "apic/destination.hpp"
#include "apic/interrupt_message.hpp"
#include "model/clock.hpp"
#include "model/costs.hpp"
#include "model/stats.hpp"

namespace vtx::apic {

// The interrupt message a transaction carries.
struct InterruptMessageExtension : tlm::tlm_extension<InterruptMessageExtension> {
    InterruptMessage message;
    InterruptMessageExtension() = default;
    explicit InterruptMessageExtension(const InterruptMessage& m) : message(m) {}
    tlm::tlm_extension_base* clone() const override { return new InterruptMessageExtension(*this); }
    void copy_from(const tlm::tlm_extension_base& other) override {
        message = static_cast<const InterruptMessageExtension&>(other).message;
    }
};

// The generic payload an initiator (a sending APIC, the bus towards each receiver) reuses
// for every interrupt message, its extension attached once (constructing a payload
// allocates its extension array): a write of the 32-bit destination to address =
// destination, the message in the extension.
class InterruptTransaction {
public:
    InterruptTransaction() { m_gp.set_extension(&m_ext); }
    ~InterruptTransaction() { m_gp.clear_extension(&m_ext); }
    InterruptTransaction(const InterruptTransaction&) = delete;
    InterruptTransaction& operator=(const InterruptTransaction&) = delete;

    // Performs b_transport of `msg` through `socket` (any TLM-2.0 initiator socket or port).
    template <typename Socket>
    void perform(Socket&& socket, const InterruptMessage& msg, sc_core::sc_time& delay) {
        prepare(msg);
        socket->b_transport(m_gp, delay);
    }

private:
    void prepare(const InterruptMessage& msg);
    tlm::tlm_generic_payload m_gp;
    InterruptMessageExtension m_ext;
    std::uint32_t m_data = 0;
};

// What the interconnect needs to know about each attached APIC when it routes.
class InterruptBusClient {
public:
    virtual DestinationView destination_view() const = 0;

protected:
    ~InterruptBusClient() = default;
};

class InterruptBus : public sc_core::sc_module {
public:
    tlm_utils::multi_passthrough_target_socket<InterruptBus> target_socket;        // senders
    tlm_utils::multi_passthrough_initiator_socket<InterruptBus> initiator_socket;  // receivers

    InterruptBus(sc_core::sc_module_name name, const model::CostTable& costs,
                 const model::Clock& clock);

    // Registers an APIC and returns its interconnect index. The client must then bind, in
    // this order of attach calls, its initiator socket to target_socket and initiator_socket
    // to its target socket (LocalApic's constructor does all three).
    std::size_t attach(InterruptBusClient& client);
    std::size_t size() const { return m_clients.size(); }
    // An attached APIC's physical addressing (APIC ID, mode, enable) changed: the index of
    // physical destinations is rebuilt before the next physical message.
    void addressing_changed() { ++m_addressing_generation; }

    // ---- statistics
    std::uint64_t messages() const { return m_messages; }            // messages sent
    std::uint64_t deliveries() const { return m_deliveries; }        // copies handed to receivers
    std::uint64_t undeliverable() const { return m_undeliverable; }  // matched no APIC
    std::uint64_t loopbacks() const { return m_loopbacks; }          // self messages
    double busy_cycles() const { return m_busy_cycles; }          // sender ports' occupancy
    double queueing_cycles() const { return m_queueing_cycles; }  // waiting for a port
    void export_stats(model::Stats& stats, const std::string& prefix = "apic.bus") const;

private:
    void b_transport(int sender, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    // Hands a copy to receiver `target`, annotated to arrive at `when`.
    void deliver(const sc_core::sc_time& when, std::size_t target, const InterruptMessage& msg);
    void end_of_elaboration() override;

    // The receivers of a physical, non-broadcast message without shorthand, in ascending
    // interconnect index (what resolve_destinations finds, without a view of every APIC).
    const std::vector<std::size_t>& physical_targets(const InterruptMessage& msg);

    const model::CostTable& m_costs;
    const model::Clock& m_clock;
    std::vector<InterruptBusClient*> m_clients;
    // Enabled APICs by physical_match_key, [0] for xAPIC-format destinations (ID[7:0]) and
    // [1] for x2APIC-format ones (the whole ID), rebuilt when an APIC's addressing changed.
    std::array<std::unordered_map<std::uint32_t, std::vector<std::size_t>>, 2> m_physical_index;
    std::uint64_t m_addressing_generation = 1, m_index_generation = 0;
    const std::vector<std::size_t> m_none;
    // Per attached APIC: when its sender port is next free, and its receiver port's last
    // arrival (the next may come ApicBusSerialization later; 0 before the first, which no
    // copy can precede by a slot: every copy spends at least one slot leaving its sender).
    struct Port {
        sc_core::sc_time send_free = sc_core::SC_ZERO_TIME;
        sc_core::sc_time last_arrival = sc_core::SC_ZERO_TIME;
    };
    std::vector<Port> m_ports;
    InterruptTransaction m_delivery;  // the copy handed to each receiver

    std::uint64_t m_messages = 0, m_deliveries = 0, m_undeliverable = 0, m_loopbacks = 0;
    double m_busy_cycles = 0, m_queueing_cycles = 0;
};

}  // namespace vtx::apic
