// Root operation: the physical local APIC as host software uses it (ICR writes that send
// physical IPIs) and host interrupt handling (SDM 11.8).
#include "cpu/logical_processor.hpp"


#include "cpu/flow_encodings.hpp"
#include "cpu/platform.hpp"
#include "model/x86.hpp"

namespace vtx::cpu {

// ====================================================================================
// Root-mode API: physical APIC and host interrupts
// ====================================================================================
void LogicalProcessor::host_send_ipi(std::uint32_t destination, std::uint8_t vector,
                                     std::uint32_t icr_extra) {
    sync_point();
    if (m_apic->x2apic_mode()) {
        const auto r = m_apic->wrmsr(apic::kX2ApicMsrIcr, (std::uint64_t{destination} << kX2apicIcrDestShift) |
                                                        vector | icr_extra, annotation());
        charge_cycles(r.cycles);
    } else {
        charge_cycles(m_apic->mmio_write(kVapicIcrHi, destination << kXapicIcrDestShift, annotation()).cycles);
        charge_cycles(m_apic->mmio_write(kVapicIcrLo, vector | icr_extra, annotation()).cycles);
    }
}

void LogicalProcessor::set_host_handler(std::uint8_t vector, HostHandler handler) {
    m_host_handlers.at(vector) = std::move(handler);
}

bool LogicalProcessor::host_interrupt_pending() const { return m_apic->intr_pending(); }

void LogicalProcessor::handle_host_interrupts() {
    while (m_host_if && m_apic->intr_pending()) {
        const std::uint8_t vec = m_apic->acknowledge();
        step(Cost::ApicInterruptAck, "host: acknowledge local APIC", "SDM 10.8", "apic");
        step(Cost::KvmHostIrqEntry, "host: IDT entry", "arch/x86 idtentry", "kvm");
        handler_then_eoi(vec);
        ++m_stat_host_interrupts;
    }
}

void LogicalProcessor::run_host_handler(std::uint8_t vec) {
    step(Cost::KvmHostIrqEntry, "host: IDT entry (acknowledged on VM exit)", "arch/x86 idtentry", "kvm");
    handler_then_eoi(vec);
}

void LogicalProcessor::handler_then_eoi(std::uint8_t vec) {
    // The handler runs with interrupts disabled (interrupt gate); IRET restores IF.
    const bool saved = m_host_if;
    m_host_if = false;
    if (const HostHandler* h = m_host_handlers.find(vec); h && *h) (*h)(vec);
    m_host_if = saved;
    sync_point();
    m_apic->eoi();
    step(Cost::ApicEoi, "host: EOI", "SDM 10.8.5", "apic");
}

void LogicalProcessor::local_irq_enable() {
    m_host_if = true;
    sync_point();
    handle_host_interrupts();
}

void LogicalProcessor::host_wait_for_interrupt(sc_core::sc_event* wake) {
    sync_point();
    if (m_host_if && m_apic->intr_pending()) {
        handle_host_interrupts();
        return;
    }
    if (wake)
        wait_for(m_apic->interrupt_event() | *wake);
    else
        wait_for(m_apic->interrupt_event());
    handle_host_interrupts();
}

}  // namespace vtx::cpu
