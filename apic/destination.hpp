#pragma once
// Which local APICs an interrupt message reaches (SDM Vol. 3A 11.6.2 "Determining IPI
// Destination", 11.6.2.4 lowest-priority delivery, 11.12.10 x2APIC logical destinations).
// Pure functions over a snapshot of every APIC's addressing state.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "apic/interrupt_message.hpp"
#include "apic/registers.hpp"

namespace vtx::apic {

// The addressing state of one local APIC, as the interconnect sees it when it routes.
struct DestinationView {
    std::uint32_t apic_id = 0;      // xAPIC mode: the 8-bit xAPIC ID; x2APIC mode: x2APIC ID
    bool x2apic = false;
    std::uint32_t ldr = 0;          // logical destination register value
    std::uint32_t dfr_model = 0xF;  // DFR[31:28] (xAPIC only): 1111b flat, 0000b cluster
    bool hardware_enabled = true;   // IA32_APIC_BASE.EN
    bool software_enabled = true;   // SVR bit 8
    std::uint8_t ppr = 0;           // processor priority (lowest-priority arbitration)
};

// The x2APIC logical ID derived from an x2APIC ID (SDM 11.12.10.2): cluster = ID[19:4] in
// bits 31:16, member bit 1 << ID[3:0] in bits 15:0.
std::uint32_t x2apic_ldr_of(std::uint32_t x2apic_id);

// Whether `target` matches the message's destination field (no shorthand): physical ID
// compare or logical flat / cluster / x2APIC cluster match, with all-ones broadcast.
// A hardware-disabled APIC matches nothing.
bool matches_destination(const InterruptMessage& msg, const DestinationView& target);

// Physical destination mode compares keys: an x2APIC-format (32-bit) destination the whole
// APIC ID, an xAPIC-format (8-bit) destination its low 8 bits. The interconnect's unicast
// index is keyed the same way, so the rule lives here once.
constexpr std::uint32_t physical_match_key(std::uint32_t id, bool x2apic_format) {
    return x2apic_format ? id : (id & kXApicIdMask);
}
// A message that physical_match_key alone routes: no shorthand, physical mode, not the
// broadcast ID, fixed-destination delivery (lowest priority arbitrates among matches).
bool is_physical_unicast(const InterruptMessage& msg);

// Lowest-priority arbitration among candidates (indices into views): the software-enabled
// APIC with the lowest processor priority (PPR) wins; kLowestPriorityTieBreak settles ties.
std::optional<std::size_t> select_lowest_priority(const std::vector<DestinationView>& views,
                                                  const std::vector<std::size_t>& candidates);

// The one place that names the tie-break between equal PPRs: the lowest APIC ID wins
// (then the lowest interconnect index, should two APICs share an ID).
enum class LowestPriorityTieBreak { LowestApicId };
inline constexpr LowestPriorityTieBreak kLowestPriorityTieBreak = LowestPriorityTieBreak::LowestApicId;

// Every APIC (index into views, ascending) the message is delivered to, when sent by the
// APIC at source_index: destination shorthand or destination match, then lowest-priority
// arbitration for that delivery mode. Hardware-disabled APICs are never destinations.
std::vector<std::size_t> resolve_destinations(const InterruptMessage& msg,
                                              const std::vector<DestinationView>& views,
                                              std::size_t source_index);

}  // namespace vtx::apic
