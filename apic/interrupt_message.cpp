#include "apic/interrupt_message.hpp"

#include <cstdio>

#include "apic/registers.hpp"

namespace vtx::apic {

bool InterruptMessage::broadcast() const {
    return x2apic_format ? destination == kX2ApicBroadcastId
                         : (destination & kXApicIdMask) == kXApicBroadcastId;
}

bool InterruptMessage::operator==(const InterruptMessage& o) const {
    return vector == o.vector && delivery_mode == o.delivery_mode &&
           destination_mode == o.destination_mode && level == o.level &&
           trigger_mode == o.trigger_mode && shorthand == o.shorthand &&
           destination == o.destination && source_id == o.source_id &&
           x2apic_format == o.x2apic_format;
}

std::string InterruptMessage::to_string() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s vector 0x%02x %s dest 0x%x (%s, %s) from 0x%x",
                  delivery_mode_name(delivery_mode), vector, shorthand_name(shorthand),
                  destination,
                  destination_mode == DestinationMode::Logical ? "logical" : "physical",
                  x2apic_format ? "x2APIC" : "xAPIC", source_id);
    return buf;
}

InterruptMessage message_from_icr(std::uint64_t icr, bool x2apic, std::uint32_t source_id) {
    return message_from_icr(decode_icr(icr, x2apic), x2apic, source_id);
}

InterruptMessage message_from_icr(const Icr& f, bool x2apic, std::uint32_t source_id) {
    InterruptMessage m;
    m.vector = f.vector;
    m.delivery_mode = f.delivery_mode;
    m.destination_mode = f.destination_mode;
    m.level = Level::Assert;          // issued as assert (Table 11-3)
    m.trigger_mode = TriggerMode::Edge;  // issued as edge (Table 11-3 note 2)
    m.shorthand = f.shorthand;
    m.destination = f.destination;
    m.source_id = source_id;
    m.x2apic_format = x2apic;
    return m;
}

InterruptMessage self_ipi_message(std::uint8_t vector, std::uint32_t source_id) {
    InterruptMessage m;
    m.vector = vector;
    m.delivery_mode = DeliveryMode::Fixed;
    m.shorthand = Shorthand::Self;
    m.source_id = source_id;
    m.x2apic_format = true;
    return m;
}

}  // namespace vtx::apic
