#pragma once
// PhysicalMemory as a TLM-2.0 target. Every transaction carries a MemOpExtension naming
// the operation (plain or locked) and the initiating agent; plain TLM reads and writes
// without the extension are accepted as device (uncached) accesses. An access outside
// memory completes with TLM_ADDRESS_ERROR_RESPONSE, which the initiator reports.
#include <map>

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

    // Notified (at the current time) whenever a line is stored to: spin-waits use it.
    sc_core::sc_event& line_written_event(std::uint64_t line_address);
    // How many stores the line has seen so far: a poller that reads it before and after
    // evaluating its condition knows whether a store slipped in between.
    std::uint64_t line_write_count(std::uint64_t line_address) const;

private:
    void b_transport(int id, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    PhysicalMemory& m_mem;
    const Clock& m_clock;
    std::map<std::uint64_t, std::unique_ptr<sc_core::sc_event>> m_line_events;
    std::map<std::uint64_t, std::uint64_t> m_line_writes;  // lines someone waits on
};

// Performs one MemRequest through an initiator socket; returns the access latency in cycles.
// Throws MemoryError when the target answers with an address error.
template <typename Socket>
double tlm_memory_access(Socket& socket, MemRequest& req, const Clock& clock) {
    tlm::tlm_generic_payload gp;
    MemOpExtension ext;
    ext.request = &req;
    gp.set_extension(&ext);
    // The extension lives on this stack: take it off the payload on every path out.
    struct Detach {
        tlm::tlm_generic_payload& gp;
        MemOpExtension* ext;
        ~Detach() { gp.clear_extension(ext); }
    } detach{gp, &ext};
    gp.set_command(req.op == MemOp::Read ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND);
    gp.set_address(req.address);
    gp.set_data_ptr(req.data);
    gp.set_data_length(req.size);
    gp.set_streaming_width(req.size);
    gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    socket->b_transport(gp, delay);
    if (gp.get_response_status() == tlm::TLM_ADDRESS_ERROR_RESPONSE)
        throw MemoryError(req.address, req.size,
                          "TLM address error: physical address outside memory");
    if (gp.is_response_error())
        throw MemoryError(req.address, req.size, "TLM error: " + gp.get_response_string());
    return clock.to_cycles(delay);
}

}  // namespace vtx::model
