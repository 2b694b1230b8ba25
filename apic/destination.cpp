#include "apic/destination.hpp"

#include <tuple>

#include "apic/registers.hpp"

namespace vtx::apic {
namespace {

bool matches_physical(const InterruptMessage& msg, const DestinationView& t) {
    return physical_match_key(t.apic_id, msg.x2apic_format) ==
           physical_match_key(msg.destination, msg.x2apic_format);
}

bool matches_xapic_logical(std::uint8_t mda, const DestinationView& t) {
    const std::uint32_t logical_id = (t.ldr >> kXApicLdrShift) & kXApicIdMask;
    switch (t.dfr_model) {
        case kDfrModelFlat:  // 11.6.2.2: bit-wise AND of MDA and logical APIC ID
            return (logical_id & mda) != 0;
        case kDfrModelCluster: {  // cluster in bits 7:4 must be equal, members in 3:0 overlap
            const bool same_cluster =
                (logical_id >> kXApicClusterShift) == (static_cast<std::uint32_t>(mda) >> kXApicClusterShift);
            return same_cluster && (logical_id & mda & kXApicClusterMemberMask) != 0;
        }
        default: return false;  // undefined DFR models match nothing
    }
}

bool matches_x2apic_logical(std::uint32_t mda, const DestinationView& t) {
    // 11.12.10.2: cluster ID in 31:16 must be equal, member bits in 15:0 overlap.
    return (mda >> kX2ApicLdrClusterShift) == (t.ldr >> kX2ApicLdrClusterShift) &&
           (mda & t.ldr & kX2ApicLdrMemberMask) != 0;
}

}  // namespace

bool is_physical_unicast(const InterruptMessage& msg) {
    return msg.shorthand == Shorthand::None && msg.destination_mode == DestinationMode::Physical &&
           !msg.broadcast() && msg.delivery_mode != DeliveryMode::LowestPriority;
}

std::uint32_t x2apic_ldr_of(std::uint32_t x2apic_id) {
    const std::uint32_t cluster = (x2apic_id >> kX2ApicIdClusterShift) & kX2ApicIdClusterMask;
    return (cluster << kX2ApicLdrClusterShift) | (1u << (x2apic_id & kX2ApicIdMemberMask));
}

bool matches_destination(const InterruptMessage& msg, const DestinationView& t) {
    if (!t.hardware_enabled) return false;
    if (msg.broadcast()) return true;  // all ones: every APIC, physical or logical
    if (msg.destination_mode == DestinationMode::Physical) return matches_physical(msg, t);
    if (t.x2apic) return matches_x2apic_logical(msg.destination, t);
    return matches_xapic_logical(static_cast<std::uint8_t>(msg.destination & kXApicIdMask), t);
}

std::optional<std::size_t> select_lowest_priority(const std::vector<DestinationView>& views,
                                                  const std::vector<std::size_t>& candidates) {
    static_assert(kLowestPriorityTieBreak == LowestPriorityTieBreak::LowestApicId);
    std::optional<std::size_t> best;
    auto key = [&](std::size_t i) {
        return std::make_tuple(views[i].ppr, views[i].apic_id, i);
    };
    for (std::size_t i : candidates) {
        const DestinationView& v = views[i];
        if (!v.hardware_enabled || !v.software_enabled) continue;
        if (!best || key(i) < key(*best)) best = i;
    }
    return best;
}

std::vector<std::size_t> resolve_destinations(const InterruptMessage& msg,
                                              const std::vector<DestinationView>& views,
                                              std::size_t source_index) {
    std::vector<std::size_t> matched;
    // Lowest priority with all-excluding-self may be redirected back to the sender
    // (Table 11-3 note 4): the sender takes part in the arbitration.
    const bool lowest_priority = msg.delivery_mode == DeliveryMode::LowestPriority;
    for (std::size_t i = 0; i < views.size(); ++i) {
        if (!views[i].hardware_enabled) continue;
        bool hit = false;
        switch (msg.shorthand) {
            case Shorthand::None: hit = matches_destination(msg, views[i]); break;
            case Shorthand::Self: hit = i == source_index; break;
            case Shorthand::AllIncludingSelf: hit = true; break;
            case Shorthand::AllExcludingSelf: hit = i != source_index || lowest_priority; break;
        }
        if (hit) matched.push_back(i);
    }
    if (!lowest_priority) return matched;
    const auto winner = select_lowest_priority(views, matched);
    if (!winner) return {};
    return {*winner};
}

}  // namespace vtx::apic
