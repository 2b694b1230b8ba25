#include "model/memory_target.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace vtx::model {

MemoryTarget::MemoryTarget(sc_core::sc_module_name name, PhysicalMemory& mem, const Clock& clock)
    : sc_module(name), socket("socket"), m_mem(mem), m_clock(clock) {
    socket.register_b_transport(this, &MemoryTarget::b_transport);
    // The stores of the socket's transactions and of untimed accesses (the direct interface
    // handles its own, see transport).
    m_mem.set_store_observer(
        [this](std::uint64_t, int, std::uint32_t tag) { stored(m_lines[tag - 1], m_store_time_offset); });
}

void MemoryTarget::stored(WatchedLine& w, const sc_core::sc_time& offset) {
    ++w.m_writes;
    w.m_latest = std::max(w.m_latest, sim_now() + offset);
    // Only a registered waiter needs the event: a poller that starts waiting later
    // has seen this store (its count, see begin_wait).
    if (w.m_waiters == 0) return;
    if (!w.m_waiters_woken && only_unsatisfied_pollers(w)) {
        // Their loads would find the condition false: the line moves as they would move it.
        for (const ValuePoller* p : w.m_value_pollers) m_mem.note_read(p->address, p->size, p->agent);
        w.m_passed = true;
        return;
    }
    w.m_written.notify(offset);
    w.m_waiters_woken = true;
}

bool MemoryTarget::only_unsatisfied_pollers(const WatchedLine& w) const {
    if (w.m_value_pollers.size() != w.m_waiters) return false;
    for (const ValuePoller* p : w.m_value_pollers) {
        std::uint64_t value = 0;
        m_mem.peek(p->address, &value, p->size == 8 ? 8 : 4);  // its two sizes, as constants
        if ((*p->satisfied)(value)) return false;
    }
    return true;
}

MemoryTarget::WatchedLine* MemoryTarget::watched(std::uint64_t line_address) {
    return const_cast<WatchedLine*>(std::as_const(*this).watched(line_address));
}

const MemoryTarget::WatchedLine* MemoryTarget::watched(std::uint64_t line_address) const {
    const std::uint32_t tag = m_mem.line_observer(line_address);
    return tag ? &m_lines[tag - 1] : nullptr;
}

MemoryTarget::WatchedLine& MemoryTarget::watch(std::uint64_t line_address) {
    if (WatchedLine* w = watched(line_address)) return *w;
    m_lines.emplace_back();
    m_mem.observe_line(line_address, static_cast<std::uint32_t>(m_lines.size()));  // its stores reach the observer from now on
    return m_lines.back();
}

std::uint64_t MemoryTarget::line_write_count(std::uint64_t line_address) const {
    const WatchedLine* w = watched(line_address);
    return w ? w->m_writes : 0;
}

sc_core::sc_time MemoryTarget::line_store_time(std::uint64_t line_address) const {
    const WatchedLine* w = watched(line_address);
    return w ? w->m_latest : sc_core::SC_ZERO_TIME;
}

sc_core::sc_event& MemoryTarget::line_written_event(std::uint64_t line_address) { return watch(line_address).m_written; }

void MemoryTarget::begin_wait(WatchedLine& w, std::uint64_t seen_writes, const ValuePoller* poller) {
    if (w.m_waiters == 0 && w.m_writes == seen_writes) w.m_written.cancel();
    ++w.m_waiters;
    if (poller) w.m_value_pollers.push_back(poller);
}

void MemoryTarget::end_wait(WatchedLine& w, const ValuePoller* poller) {
    if (poller) {
        const auto it = std::find(w.m_value_pollers.begin(), w.m_value_pollers.end(), poller);
        if (it != w.m_value_pollers.end()) w.m_value_pollers.erase(it);
    }
    if (w.m_waiters > 0 && --w.m_waiters == 0) w.m_waiters_woken = w.m_passed = false;
}

void MemoryTarget::begin_wait(std::uint64_t line_address, std::uint64_t seen_writes) {
    begin_wait(watch(line_address), seen_writes);
}

void MemoryTarget::end_wait(std::uint64_t line_address) {
    if (WatchedLine* w = watched(line_address)) end_wait(*w);
}

double MemoryTarget::transport(MemRequest& req, double offset_cycles) {
    req.synchronized = false;
    PhysicalMemory::Located at;
    if (!m_mem.locate(req, at)) {
        // Across lines or pages, a page's first access, or malformed (MemoryError): through
        // the socket's path, with the offset as its annotated delay.
        sc_core::sc_time delay = offset_cycles > 0 ? m_clock.to_time(offset_cycles) : sc_core::SC_ZERO_TIME;
        req.latency = access_annotated(req, delay);
        return req.latency;
    }
    WatchedLine* w = req.op != MemOp::Read && at.line->observer ? &m_lines[at.line->observer - 1] : nullptr;
    // A second store to a line whose pollers have not run since the first (woken, or passed
    // as ValuePollers): synchronize first (see begin_wait).
    if (w && offset_cycles > 0 && w->store_must_sync()) {
        wait(m_clock.to_time(offset_cycles));
        offset_cycles = 0;
        req.synchronized = true;
    }
    req.latency = m_mem.perform(req, at);
    if (w) stored(*w, offset_cycles > 0 ? m_clock.to_time(offset_cycles) : sc_core::SC_ZERO_TIME);
    return req.latency;
}

double MemoryTarget::access_annotated(MemRequest& req, sc_core::sc_time& delay) {
    if (req.op != MemOp::Read && delay != sc_core::SC_ZERO_TIME) {
        // A second store to a line whose pollers have not run since the first: synchronize
        // first (see begin_wait).
        if (const WatchedLine* w = watched(req.address); w && w->store_must_sync()) {
            wait(delay);
            delay = sc_core::SC_ZERO_TIME;
            req.synchronized = true;
        }
    }
    m_store_time_offset = delay;
    try {
        const double cycles = m_mem.access(req);
        m_store_time_offset = sc_core::SC_ZERO_TIME;
        return cycles;
    } catch (...) {
        m_store_time_offset = sc_core::SC_ZERO_TIME;
        throw;
    }
}

void MemoryTarget::b_transport(int, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    MemOpExtension* ext = nullptr;
    gp.get_extension(ext);
    MemRequest plain;
    MemRequest* req = ext ? ext->request : &plain;
    if (!ext) {
        if (gp.get_data_length() > sizeof plain.data || gp.get_byte_enable_ptr()) {
            gp.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
            return;
        }
        plain.op = gp.is_read() ? MemOp::Read : MemOp::Write;
        plain.address = gp.get_address();
        plain.size = gp.get_data_length();
        if (gp.is_write()) std::memcpy(plain.data, gp.get_data_ptr(), plain.size);
    }
    try {
        const double cycles = access_annotated(*req, delay);
        req->latency = cycles;
        delay += m_clock.latency_to_time(cycles);
    } catch (const MemoryError&) {
        gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    if (!ext && gp.is_read()) std::memcpy(gp.get_data_ptr(), plain.data, plain.size);
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
}

}  // namespace vtx::model
