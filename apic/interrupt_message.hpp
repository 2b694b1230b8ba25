#pragma once
// What travels on the interrupt interconnect: one interrupt message (SDM 11.6 "Issuing
// Interprocessor Interrupts"), as the sending local APIC issues it.
#include <cstdint>
#include <string>

#include "apic/icr.hpp"

namespace vtx::apic {

struct InterruptMessage {
    std::uint8_t vector = 0;
    DeliveryMode delivery_mode = DeliveryMode::Fixed;
    DestinationMode destination_mode = DestinationMode::Physical;
    Level level = Level::Assert;
    TriggerMode trigger_mode = TriggerMode::Edge;
    Shorthand shorthand = Shorthand::None;
    // xAPIC format: the 8-bit destination in bits 7:0; x2APIC format: 32 bits.
    std::uint32_t destination = 0;
    std::uint32_t source_id = 0;  // APIC ID of the sender (for logs and traces)
    bool x2apic_format = false;   // the sender was in x2APIC mode (destination format)

    bool broadcast() const;  // destination all ones in the sender's format
    bool operator==(const InterruptMessage& o) const;
    bool operator!=(const InterruptMessage& o) const { return !(*this == o); }
    std::string to_string() const;
};

// An INIT with level trigger and level de-assert (SDM 11.6.1: "INIT level de-assert", a
// synchronization message not supported on current processors): no INIT.
inline bool is_init_level_deassert(const InterruptMessage& m) {
    return m.delivery_mode == DeliveryMode::Init && m.trigger_mode == TriggerMode::Level &&
           m.level == Level::Deassert;
}

// The message an ICR write issues. Pentium 4 / Xeon and later local APICs issue every IPI
// edge-triggered with level = assert (SDM Table 11-3 note 2; the ICR level and trigger bits
// "have no meaning" on these processors), so the message carries Edge / Assert whatever
// the ICR says. Whether the ICR is sent at all is check_icr()'s business.
InterruptMessage message_from_icr(std::uint64_t icr, bool x2apic, std::uint32_t source_id);
// The same from an ICR already decoded (decode_icr(icr, x2apic)).
InterruptMessage message_from_icr(const Icr& fields, bool x2apic, std::uint32_t source_id);

// The message a SELF IPI register write issues (x2APIC, SDM 11.12.11): fixed, edge, self.
InterruptMessage self_ipi_message(std::uint8_t vector, std::uint32_t source_id);

}  // namespace vtx::apic
