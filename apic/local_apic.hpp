#pragma once
// One physical local APIC per logical processor (SystemC module): the ApicState register
// file and priority logic, the register-access costs the core pays, ICR writes that send
// interrupt messages over the InterruptBus, message acceptance at simulated time, the APIC
// timer, and the interrupt signals toward the core.
//
// Construction attaches and binds the APIC to the bus, so a platform is just
//     vtx::apic::InterruptBus bus{"bus", costs, clock};
//     vtx::apic::LocalApic apic0{"apic0", 0, costs, clock, bus};
//     vtx::apic::LocalApic apic1{"apic1", 1, costs, clock, bus};
// Out of reset the APIC is in xAPIC mode, hardware-enabled and software-disabled
// (SVR = 000000FFH): software sets SVR bit 8 before fixed interrupts are accepted.
#include <array>
#include <cstdint>
#include <functional>
#include <queue>
#include <tuple>
#include <utility>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "apic/apic_state.hpp"
#include "apic/interrupt_bus.hpp"
#include "model/clock.hpp"
#include "model/costs.hpp"
#include "model/sparse_array.hpp"

namespace vtx::apic {

// An access to the xAPIC MMIO page. claimed = false: the APIC is not in xAPIC mode (disabled
// or x2APIC) and does not decode the access; it goes to memory (SDM 11.12.2).
struct MmioResult {
    std::uint32_t value = 0;
    bool claimed = true;
    double cycles = 0;  // what the access costs the core
    bool ok() const { return claimed; }
};

// RDMSR / WRMSR of IA32_APIC_BASE or an x2APIC register. gp: the instruction raises #GP(0).
struct MsrResult {
    std::uint64_t value = 0;
    bool gp = false;
    double cycles = 0;  // what the access costs the core
    bool ok() const { return !gp; }
};

// One message the APIC accepted (including coalesced ones), for tests and traces.
struct DeliveryRecord {
    std::uint64_t cycle = 0;  // core cycle at which the APIC accepted it
    std::uint8_t vector = 0;
    DeliveryMode delivery_mode = DeliveryMode::Fixed;
    std::uint32_t source_id = 0;
    AcceptOutcome outcome = AcceptOutcome::Accepted;
};

class LocalApic : public sc_core::sc_module, public InterruptBusClient {
public:
    tlm_utils::simple_initiator_socket<LocalApic> initiator_socket;  // sends to the bus
    tlm_utils::simple_target_socket<LocalApic> target_socket;        // receives from the bus

    LocalApic(sc_core::sc_module_name name, std::uint32_t initial_apic_id,
              const vtx::model::CostTable& costs, const vtx::model::Clock& clock,
              InterruptBus& bus, bool bsp = false);

    // ---- register access from the core, at sc_time_stamp() + `annotation` (the core's
    // local time offset in decoupled mode, TLM-2.0 loosely timed; zero when the core has
    // synchronized): an ICR write sends its message at that time + ApicIcrSend, and the
    // timer counts from it. Costs: ApicMmioAccess / ApicMsrAccess.
    MmioResult mmio_read(std::uint32_t offset, const sc_core::sc_time& annotation = sc_core::SC_ZERO_TIME);
    MmioResult mmio_write(std::uint32_t offset, std::uint32_t value,
                          const sc_core::sc_time& annotation = sc_core::SC_ZERO_TIME);
    MsrResult rdmsr(std::uint32_t msr, const sc_core::sc_time& annotation = sc_core::SC_ZERO_TIME);
    MsrResult wrmsr(std::uint32_t msr, std::uint64_t value,
                    const sc_core::sc_time& annotation = sc_core::SC_ZERO_TIME);
    // Host-software convenience: a 32-bit register write in the APIC's current mode
    // (x2APIC: WRMSR of the register's MSR; xAPIC: the MMIO offset); its cost.
    double write_register(std::uint32_t offset, std::uint32_t value,
                          const sc_core::sc_time& annotation = sc_core::SC_ZERO_TIME);
    // Host-software convenience: the ICR write of the current mode (xAPIC: ICR_HI then
    // ICR_LO; x2APIC: WRMSR 830H). Nothing is sent if the APIC is disabled or, in x2APIC
    // mode, the value sets reserved bits (counted in ipis_refused()).
    void send_ipi(std::uint64_t icr_value);

    // ---- interrupt signalling toward the core
    // Notified (delta) when an interrupt, NMI, INIT, SIPI or SMI becomes pending: an event
    // is latched, an interrupt becomes deliverable (acceptance, TPR lowered, EOI, software
    // enable), or a newly accepted vector becomes the highest deliverable one. An IRR bit
    // held back by the PPR does not notify until it becomes deliverable.
    sc_core::sc_event& interrupt_event() { return m_interrupt_event; }
    bool intr_pending() const { return m_state.has_deliverable_interrupt(); }
    // INTA: the vector moved IRR -> ISR (the spurious vector if nothing is deliverable).
    // The caller charges ack_cycles().
    std::uint8_t acknowledge();
    double ack_cycles() const;
    // EOI from the core (a write of 0 to the EOI register, already charged as an access,
    // or virtualized paths that reach the physical APIC); eoi_cycles() is its processing.
    void eoi();
    double eoi_cycles() const;
    bool nmi_pending() const { return m_state.nmi_pending(); }
    void clear_nmi() { m_state.clear_nmi(); }
    bool init_pending() const { return m_state.init_pending(); }  // the core decides if blocked
    void clear_init() { m_state.clear_init(); }
    bool sipi_pending() const { return m_state.sipi_pending(); }
    std::uint8_t sipi_vector() const { return m_state.sipi_vector(); }
    void clear_sipi() { m_state.clear_sipi(); }
    // The core's state when a SIPI arrives: whether it is in the wait-for-SIPI activity
    // state. Set by the core; a SIPI arriving while it answers false is discarded at once
    // (counted in sipis_discarded()). Without it (an APIC on its own) SIPIs are latched.
    void set_wait_for_sipi_probe(std::function<bool()> in_wait_for_sipi) {
        m_in_wait_for_sipi = std::move(in_wait_for_sipi);
    }
    std::uint64_t sipis_discarded() const { return m_sipis_discarded; }
    bool smi_pending() const { return m_state.smi_pending(); }
    void clear_smi() { m_state.clear_smi(); }
    // The processor takes an INIT: APIC registers to their INIT state (11.4.7.3).
    void init_reset();
    // TPR access from the core without an APIC register access (MOV CR8).
    std::uint8_t tpr() const { return m_state.tpr(); }
    void set_tpr(std::uint8_t tpr);

    // ---- identity and state
    std::uint32_t apic_id() const { return m_state.apic_id(); }
    bool x2apic_mode() const { return m_state.x2apic_mode(); }
    bool enabled() const { return m_state.hardware_enabled(); }
    bool software_enabled() const { return m_state.software_enabled(); }
    const ApicState& state() const { return m_state; }
    std::size_t bus_index() const { return m_bus_index; }
    DestinationView destination_view() const override { return m_state.destination_view(); }

    // ---- timer: the count decrements once per (divisor x cycles_per_tick) core cycles.
    // The default, 1 core cycle per tick, can be changed to model a slower timer clock.
    void set_timer_cycles_per_tick(double cycles) { m_timer_cycles_per_tick = cycles; }

    // ---- observation (tests, traces, stats)
    // Fixed / lowest-priority messages accepted with this vector, coalesced ones included
    // (an IRR bit already set absorbs the message); coalesced_count counts those alone.
    std::uint64_t accepted_count(std::uint8_t vector) const {
        const VectorTally* t = m_tally.find(vector);
        return t ? t->accepted : 0;
    }
    std::uint64_t coalesced_count(std::uint8_t vector) const {
        const VectorTally* t = m_tally.find(vector);
        return t ? t->coalesced : 0;
    }
    std::uint64_t rejected_count() const { return m_rejected; }
    const std::vector<DeliveryRecord>& delivery_log() const { return m_log; }
    // The log grows by one record per accepted message: on by default (tests, timelines);
    // long simulations that do not read it turn it off.
    void set_delivery_log(bool keep) { m_keep_log = keep; }
    std::uint64_t ipis_sent() const { return m_ipis_sent; }
    std::uint64_t ipis_refused() const { return m_ipis_refused; }

private:
    void receive(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    void accept_due();
    void timer_expired();
    void send_icr(std::uint64_t icr);
    void send_message(const InterruptMessage& msg);
    void apply(const WriteResult& w);
    void restart_timer();
    void stop_timer();
    void refresh_timer_count();
    sc_core::sc_time timer_period() const;
    unsigned pending_mask() const;
    void notify_new(unsigned before);
    bool signals_core(unsigned before, AcceptOutcome outcome, std::uint8_t vector) const;
    void record(const InterruptMessage& msg, AcceptOutcome outcome);

    // The time of the register access being performed: sc_time_stamp() + its annotation.
    sc_core::sc_time access_time() const { return sc_core::sc_time_stamp() + m_annotation; }
    // Sets the annotation of one register access for its duration.
    struct Annotated {
        LocalApic& apic;
        Annotated(LocalApic& a, const sc_core::sc_time& t) : apic(a) { apic.m_annotation = t; }
        ~Annotated() { apic.m_annotation = sc_core::SC_ZERO_TIME; }
    };

    // What physical routing depends on; the bus hears when it changes.
    std::tuple<std::uint32_t, bool, bool> physical_addressing() const {
        return {m_state.apic_id(), m_state.x2apic_mode(), m_state.hardware_enabled()};
    }
    void addressing_may_change(const std::tuple<std::uint32_t, bool, bool>& before) {
        if (physical_addressing() != before) m_bus.addressing_changed();
    }

    ApicState m_state;
    InterruptBus& m_bus;
    sc_core::sc_time m_annotation = sc_core::SC_ZERO_TIME;
    const vtx::model::CostTable& m_costs;
    const vtx::model::Clock& m_clock;
    std::size_t m_bus_index;

    sc_core::sc_event m_interrupt_event;
    InterruptTransaction m_send;  // the payload of every message this APIC sends
    // Messages arrived on the bus, accepted ApicAccept cycles later, earliest first
    // (ties in arrival order). A heap in one vector: no node allocation per message.
    struct Arrival {
        sc_core::sc_time at;
        std::uint64_t sequence;
        InterruptMessage message;
    };
    struct ArrivesLater {
        bool operator()(const Arrival& a, const Arrival& b) const {
            return std::tie(a.at, a.sequence) > std::tie(b.at, b.sequence);
        }
    };
    std::priority_queue<Arrival, std::vector<Arrival>, ArrivesLater> m_arrivals;
    std::uint64_t m_arrival_sequence = 0;
    sc_core::sc_event m_accept_event;

    sc_core::sc_event m_timer_event;
    bool m_timer_running = false;
    sc_core::sc_time m_timer_start;
    double m_timer_cycles_per_tick = 1.0;

    struct VectorTally {
        std::uint64_t accepted = 0, coalesced = 0;
    };
    vtx::model::SparseArray<VectorTally> m_tally;  // by vector
    std::uint64_t m_rejected = 0, m_ipis_sent = 0, m_ipis_refused = 0;
    std::vector<DeliveryRecord> m_log;
    bool m_keep_log = true;
    std::function<bool()> m_in_wait_for_sipi;
    std::uint64_t m_sipis_discarded = 0;
};

}  // namespace vtx::apic
