#pragma once
// PhysicalMemory as a TLM-2.0 target. Every transaction carries a MemOpExtension naming
// the operation (plain or locked) and the initiating agent; plain TLM reads and writes
// without the extension are accepted as device (uncached) accesses. An access outside
// memory completes with TLM_ADDRESS_ERROR_RESPONSE, which the initiator reports.

#include <functional>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>

#include "model/clock.hpp"
#include "model/memory.hpp"

namespace vtx::model {

struct MemOpExtension : tlm::tlm_extension<MemOpExtension> {
    MemRequest* request = nullptr;
    tlm::tlm_extension_base* clone() const override { return new MemOpExtension(*this); }
    void copy_from(const tlm::tlm_extension_base& other) override {
        request = static_cast<const MemOpExtension&>(other).request;
    }
};

class MemoryTarget : public sc_core::sc_module {
public:
    tlm_utils::multi_passthrough_target_socket<MemoryTarget> socket;

    MemoryTarget(sc_core::sc_module_name name, PhysicalMemory& mem, const Clock& clock);

    PhysicalMemory& memory() { return m_mem; }

    // The direct interface (as a TLM-2.0 initiator that obtained a DMI pointer bypasses the
    // socket, but with the target's timing and coherence kept): performs `req` as
    // b_transport does, the initiator's local offset given in cycles. Returns the latency in
    // cycles; sets req.synchronized when it waited the offset out (see begin_wait). Throws
    // MemoryError for an access outside memory.
    double transport(MemRequest& req, double offset_cycles);

    // ---- lines a spin-wait watches (the first call of watch or line_written_event makes a
    // line watched; the others are meaningful for watched lines only). A poller keeps the
    // WatchedLine that watch() returns (it never moves) and asks it, instead of asking by
    // address each time; the address-based functions below are the same questions.
    struct ValuePoller;  // below
    class WatchedLine {
    public:
        sc_core::sc_event& written_event() { return m_written; }
        std::uint64_t write_count() const { return m_writes; }
        const sc_core::sc_time& store_time() const { return m_latest; }

    private:
        friend class MemoryTarget;
        sc_core::sc_event m_written;
        std::uint64_t m_writes = 0;
        sc_core::sc_time m_latest = sc_core::SC_ZERO_TIME;
        unsigned m_waiters = 0;
        bool m_waiters_woken = false;  // a store woke the waiters; they have not run yet
        std::vector<const ValuePoller*> m_value_pollers;  // those of the waiters that are
        bool m_passed = false;  // a store left them waiting (their loads modelled at it)
        // A further store before the pollers have run (woken, or passed by a store):
        // its initiator synchronizes first (see begin_wait).
        bool store_must_sync() const { return m_waiters > 0 && (m_waiters_woken || m_passed); }
    };
    // A poller whose condition is one load of an address in the watched line, satisfied or
    // not by the value it reads (`while (load(address) fails) ;`). A store to the line that
    // leaves every waiting poller's condition false need not wake them: their next loads
    // would read the line (each taking a copy, which the writer's next store then takes
    // back) and wait again. The target applies those loads' effect on the line at the store
    // (PhysicalMemory::note_read) and wakes nobody: the poller's spurious run (a thread
    // switch to it and back) and its evaluation saved. The writer's next store to the line
    // still synchronizes it first, as after a wake-up (store_must_sync): without that, a
    // writer running ahead reaches its next wait-free decisions (KVM's halt path) before the
    // poller's next actions in host order, which `ipi_halt` with halt polling off showed as a
    // 38 % error. Decoupled mode only (see LogicalProcessor::exec_spin): exact mode, the
    // reference, runs every load.
    struct ValuePoller {
        int agent = kDeviceAgent;
        std::uint64_t address = 0;  // the polled address, within the watched line
        unsigned size = 8;          // 4 or 8
        const std::function<bool(std::uint64_t)>* satisfied = nullptr;
    };
    WatchedLine& watch(std::uint64_t line_address);
    // `poller`: the waiter is a ValuePoller (it stays registered until end_wait with it).
    void begin_wait(WatchedLine& line, std::uint64_t seen_writes, const ValuePoller* poller = nullptr);
    void end_wait(WatchedLine& line, const ValuePoller* poller = nullptr);
    // Notified when the line is stored to while a poller waits on it (begin_wait to
    // end_wait), at the store's time (the transaction's annotated delay: the initiator's
    // local offset). A poller that starts waiting later has seen the store: it compares
    // line_write_count() around the evaluation of its condition.
    sc_core::sc_event& line_written_event(std::uint64_t line_address);
    // How many stores the line has seen so far: a poller that reads it before and after
    // evaluating its condition knows whether a store slipped in between.
    std::uint64_t line_write_count(std::uint64_t line_address) const;
    // The latest time at which a store to the line takes effect. In decoupled mode a
    // writer running ahead of SystemC time stores "in the future": a poller must not
    // observe the value before then.
    sc_core::sc_time line_store_time(std::uint64_t line_address) const;
    // A poller waits on the line from begin_wait to end_wait. A store wakes the waiting
    // pollers at its annotated time; a further store to the line before they have run
    // (and read the line) synchronizes its initiator first (decoupled mode: the annotated
    // delay is waited out in b_transport, as a TLM-2.0 LT target may), so the pollers see
    // memory as of the store that woke them, in exact mode's order.
    // `seen_writes`: the line_write_count() the poller's last evaluation of its condition
    // saw. When it equals the line's count and nobody else waits, a pending notification of
    // the line (a store that has taken place in host order but, in decoupled mode, takes
    // effect later: often the poller's own store, made just before it polls) can only wake
    // the poller for a store it has already seen, and is cancelled: a spurious wake-up is a
    // thread switch and a re-evaluation that decide nothing.
    void begin_wait(std::uint64_t line_address, std::uint64_t seen_writes);
    void end_wait(std::uint64_t line_address);

private:
    WatchedLine* watched(std::uint64_t line_address);
    const WatchedLine* watched(std::uint64_t line_address) const;
    void b_transport(int id, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    // Performs `req` with the initiator's annotated delay (synchronizing first for a second
    // store to a woken line, see begin_wait), returns its latency in cycles.
    double access_annotated(MemRequest& req, sc_core::sc_time& delay);
    // A store to a watched line, taking effect `offset` after SystemC's present.
    void stored(WatchedLine& w, const sc_core::sc_time& offset);
    // Whether every waiter of `w` is a ValuePoller whose condition the line's present
    // contents leave false.
    bool only_unsatisfied_pollers(const WatchedLine& w) const;

    PhysicalMemory& m_mem;
    const Clock& m_clock;
    // The annotated delay of the socket transaction being performed (zero for untimed
    // accesses made directly on PhysicalMemory): when its stores become visible.
    sc_core::sc_time m_store_time_offset = sc_core::SC_ZERO_TIME;
    // The watched lines, a line's tag in PhysicalMemory (observe_line) being its index + 1:
    // a store finds its line's record without a look-up. A deque: a WatchedLine (and its
    // event) never moves once made.
    std::deque<WatchedLine> m_lines;
};

// The generic payload an initiator reuses for every memory transaction, its MemOpExtension
// attached once (constructing a payload allocates its extension array; attaching and
// detaching per access cost two library calls).
class MemoryTransaction {
public:
    MemoryTransaction() { m_gp.set_extension(&m_ext); }
    ~MemoryTransaction() { m_gp.clear_extension(&m_ext); }
    MemoryTransaction(const MemoryTransaction&) = delete;
    MemoryTransaction& operator=(const MemoryTransaction&) = delete;

    // Performs one MemRequest through an initiator socket, TLM-2.0 loosely timed: `delay`
    // is the initiator's local time offset on the way in (the access takes effect that long
    // after the current SystemC time) and, on the way out, the offset after the access (the
    // target adds the latency, and may have waited part of the offset out). Returns the
    // access latency in cycles. Throws MemoryError when the target answers with an address
    // error.
    template <typename Socket>
    double perform(Socket& socket, MemRequest& req, sc_core::sc_time& delay) {
        m_ext.request = &req;
        m_gp.set_command(req.op == MemOp::Read ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND);
        m_gp.set_address(req.address);
        m_gp.set_data_ptr(req.data);
        m_gp.set_data_length(req.size);
        m_gp.set_streaming_width(req.size);
        m_gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        socket->b_transport(m_gp, delay);
        m_ext.request = nullptr;
        if (m_gp.get_response_status() == tlm::TLM_ADDRESS_ERROR_RESPONSE)
            throw MemoryError(req.address, req.size, "TLM address error: physical address outside memory");
        if (m_gp.is_response_error())
            throw MemoryError(req.address, req.size, "TLM error: " + m_gp.get_response_string());
        return req.latency;
    }

private:
    tlm::tlm_generic_payload m_gp;
    MemOpExtension m_ext;
};

}  // namespace vtx::model
