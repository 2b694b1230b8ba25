#include "apic/icr.hpp"

#include "apic/registers.hpp"

namespace vtx::apic {

const char* delivery_mode_name(DeliveryMode m) {
    switch (m) {
        case DeliveryMode::Fixed: return "fixed";
        case DeliveryMode::LowestPriority: return "lowest-priority";
        case DeliveryMode::Smi: return "SMI";
        case DeliveryMode::Reserved3: return "reserved(3)";
        case DeliveryMode::Nmi: return "NMI";
        case DeliveryMode::Init: return "INIT";
        case DeliveryMode::StartUp: return "start-up";
        case DeliveryMode::Reserved7: return "reserved(7)";
    }
    return "?";
}

const char* shorthand_name(Shorthand s) {
    switch (s) {
        case Shorthand::None: return "no shorthand";
        case Shorthand::Self: return "self";
        case Shorthand::AllIncludingSelf: return "all including self";
        case Shorthand::AllExcludingSelf: return "all excluding self";
    }
    return "?";
}

bool Icr::operator==(const Icr& o) const {
    return vector == o.vector && delivery_mode == o.delivery_mode &&
           destination_mode == o.destination_mode && delivery_status == o.delivery_status &&
           level == o.level && trigger_mode == o.trigger_mode && shorthand == o.shorthand &&
           destination == o.destination;
}

Icr decode_icr(std::uint64_t icr, bool x2apic) {
    Icr f;
    f.vector = static_cast<std::uint8_t>(icr & kIcrVectorMask);
    f.delivery_mode =
        static_cast<DeliveryMode>((icr & kIcrDeliveryModeMask) >> kIcrDeliveryModeShift);
    f.destination_mode =
        (icr & kIcrDestinationModeLogical) ? DestinationMode::Logical : DestinationMode::Physical;
    f.delivery_status = !x2apic && (icr & kIcrDeliveryStatus) != 0;
    f.level = (icr & kIcrLevelAssert) ? Level::Assert : Level::Deassert;
    f.trigger_mode = (icr & kIcrTriggerLevel) ? TriggerMode::Level : TriggerMode::Edge;
    f.shorthand = static_cast<Shorthand>((icr & kIcrShorthandMask) >> kIcrShorthandShift);
    f.destination = x2apic
        ? static_cast<std::uint32_t>(icr >> kX2ApicIcrDestinationShift)
        : static_cast<std::uint32_t>((icr >> kXApicIcrDestinationShift) & kXApicIdMask);
    return f;
}

std::uint64_t encode_icr(const Icr& f, bool x2apic) {
    std::uint64_t icr = f.vector;
    icr |= static_cast<std::uint64_t>(f.delivery_mode) << kIcrDeliveryModeShift;
    if (f.destination_mode == DestinationMode::Logical) icr |= kIcrDestinationModeLogical;
    if (f.delivery_status && !x2apic) icr |= kIcrDeliveryStatus;
    if (f.level == Level::Assert) icr |= kIcrLevelAssert;
    if (f.trigger_mode == TriggerMode::Level) icr |= kIcrTriggerLevel;
    icr |= static_cast<std::uint64_t>(f.shorthand) << kIcrShorthandShift;
    if (x2apic)
        icr |= static_cast<std::uint64_t>(f.destination) << kX2ApicIcrDestinationShift;
    else
        icr |= static_cast<std::uint64_t>(f.destination & kXApicIdMask)
               << kXApicIcrDestinationShift;
    return icr;
}

IcrCheck check_icr(const Icr& f) {
    if (f.delivery_mode == DeliveryMode::Reserved3 || f.delivery_mode == DeliveryMode::Reserved7)
        return IcrCheck::ReservedDeliveryMode;
    if ((f.shorthand == Shorthand::Self || f.shorthand == Shorthand::AllIncludingSelf) &&
        f.delivery_mode != DeliveryMode::Fixed)
        return IcrCheck::InvalidShorthandCombination;
    if (f.delivery_mode == DeliveryMode::Init && f.level == Level::Deassert &&
        f.trigger_mode == TriggerMode::Level)
        return IcrCheck::InitLevelDeassert;
    return IcrCheck::Valid;
}

const char* icr_check_name(IcrCheck c) {
    switch (c) {
        case IcrCheck::Valid: return "valid";
        case IcrCheck::ReservedDeliveryMode: return "reserved delivery mode";
        case IcrCheck::InvalidShorthandCombination: return "invalid shorthand/delivery-mode combination";
        case IcrCheck::InitLevelDeassert: return "INIT level de-assert (not supported)";
    }
    return "?";
}

bool has_illegal_vector(const Icr& f) {
    return (f.delivery_mode == DeliveryMode::Fixed ||
            f.delivery_mode == DeliveryMode::LowestPriority) &&
           f.vector < kFirstValidVector;
}

}  // namespace vtx::apic
