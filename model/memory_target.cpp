#include "model/memory_target.hpp"

#include <cstring>

namespace vtx::model {

MemoryTarget::MemoryTarget(sc_core::sc_module_name name, PhysicalMemory& mem, const Clock& clock)
    : sc_module(name), socket("socket"), m_mem(mem), m_clock(clock) {
    socket.register_b_transport(this, &MemoryTarget::b_transport);
    m_mem.set_store_observer([this](std::uint64_t line, int) {
        auto it = m_line_events.find(line);
        if (it != m_line_events.end()) {
            ++m_line_writes[line];
            it->second->notify(sc_core::SC_ZERO_TIME);
        }
    });
}

std::uint64_t MemoryTarget::line_write_count(std::uint64_t line_address) const {
    auto it = m_line_writes.find(line_address & ~(kCacheLineSize - 1));
    return it == m_line_writes.end() ? 0 : it->second;
}

sc_core::sc_event& MemoryTarget::line_written_event(std::uint64_t line_address) {
    auto& ev = m_line_events[line_address & ~(kCacheLineSize - 1)];
    if (!ev) ev = std::make_unique<sc_core::sc_event>();
    return *ev;
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
        const double cycles = m_mem.access(*req);
        delay += m_clock.to_time(cycles);
    } catch (const MemoryError&) {
        gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    if (!ext && gp.is_read()) std::memcpy(gp.get_data_ptr(), plain.data, plain.size);
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
}

}  // namespace vtx::model
