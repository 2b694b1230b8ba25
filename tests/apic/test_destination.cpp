// Destination matching and routing: physical, broadcast, logical flat, logical cluster,
// x2APIC cluster, every shorthand, lowest-priority arbitration.
#include <catch2/catch.hpp>

#include <vector>

#include "apic/destination.hpp"
#include "apic/registers.hpp"

using namespace vtx::apic;

namespace {
DestinationView xapic_view(std::uint32_t id, std::uint8_t logical_id = 0,
                           std::uint32_t model = kDfrModelFlat, std::uint8_t ppr = 0) {
    DestinationView v;
    v.apic_id = id;
    v.x2apic = false;
    v.ldr = static_cast<std::uint32_t>(logical_id) << kXApicLdrShift;
    v.dfr_model = model;
    v.ppr = ppr;
    return v;
}

DestinationView x2apic_view(std::uint32_t id, std::uint8_t ppr = 0) {
    DestinationView v;
    v.apic_id = id;
    v.x2apic = true;
    v.ldr = x2apic_ldr_of(id);
    v.ppr = ppr;
    return v;
}

DestinationView disabled(DestinationView v) {
    v.hardware_enabled = false;
    v.software_enabled = false;
    return v;
}

InterruptMessage message(DestinationMode mode, std::uint32_t dest, bool x2apic,
                         DeliveryMode dm = DeliveryMode::Fixed, Shorthand sh = Shorthand::None) {
    InterruptMessage m;
    m.vector = 0x40;
    m.delivery_mode = dm;
    m.destination_mode = mode;
    m.destination = dest;
    m.x2apic_format = x2apic;
    m.shorthand = sh;
    return m;
}

constexpr auto kPhys = DestinationMode::Physical;
constexpr auto kLog = DestinationMode::Logical;
}  // namespace

TEST_CASE("destination matching across every addressing mode", "[destination]") {
    struct Row {
        const char* what;
        InterruptMessage msg;
        DestinationView target;
        bool expected;
    };
    const std::vector<Row> rows = {
        // physical, xAPIC
        {"xAPIC physical, same ID", message(kPhys, 3, false), xapic_view(3), true},
        {"xAPIC physical, other ID", message(kPhys, 3, false), xapic_view(4), false},
        {"xAPIC physical broadcast FFH", message(kPhys, 0xFF, false), xapic_view(4), true},
        {"xAPIC physical broadcast, hardware-disabled target", message(kPhys, 0xFF, false),
         disabled(xapic_view(4)), false},
        {"xAPIC physical, hardware-disabled target", message(kPhys, 4, false),
         disabled(xapic_view(4)), false},
        // physical, x2APIC
        {"x2APIC physical, same 32-bit ID", message(kPhys, 0x100, true), x2apic_view(0x100), true},
        {"x2APIC physical compares all 32 bits", message(kPhys, 0x100, true), x2apic_view(0x000), false},
        {"x2APIC physical broadcast FFFFFFFFH", message(kPhys, 0xFFFFFFFF, true), x2apic_view(0x123), true},
        {"x2APIC physical FFH is not a broadcast", message(kPhys, 0xFF, true), x2apic_view(0x123), false},
        {"x2APIC physical FFH is ID FFH", message(kPhys, 0xFF, true), x2apic_view(0xFF), true},
        // logical flat (DFR model 1111b): LDR[31:24] AND destination
        {"flat, one bit", message(kLog, 0x01, false), xapic_view(0, 0x01), true},
        {"flat, set of bits", message(kLog, 0x0C, false), xapic_view(2, 0x04), true},
        {"flat, disjoint bits", message(kLog, 0x03, false), xapic_view(2, 0x04), false},
        {"flat, logical ID zero", message(kLog, 0x7F, false), xapic_view(2, 0x00), false},
        {"flat, broadcast FFH", message(kLog, 0xFF, false), xapic_view(2, 0x10), true},
        // logical cluster (DFR model 0000b): cluster [7:4] equal, members [3:0] overlap
        {"cluster, same cluster and member", message(kLog, 0x23, false),
         xapic_view(0, 0x21, kDfrModelCluster), true},
        {"cluster, other cluster", message(kLog, 0x13, false),
         xapic_view(0, 0x21, kDfrModelCluster), false},
        {"cluster, same cluster other member", message(kLog, 0x22, false),
         xapic_view(0, 0x21, kDfrModelCluster), false},
        {"cluster, broadcast FFH", message(kLog, 0xFF, false),
         xapic_view(0, 0x21, kDfrModelCluster), true},
        {"undefined DFR model matches nothing", message(kLog, 0x21, false),
         xapic_view(0, 0x21, 0x5), false},
        // x2APIC logical: cluster [31:16] equal, member bits [15:0] overlap
        {"x2APIC cluster, member", message(kLog, 0x00020030, true), x2apic_view(0x25), true},
        {"x2APIC cluster, other member", message(kLog, 0x00020010, true), x2apic_view(0x25), false},
        {"x2APIC cluster, other cluster", message(kLog, 0x00030020, true), x2apic_view(0x25), false},
        {"x2APIC cluster 0 member 0", message(kLog, 0x00000001, true), x2apic_view(0x0), true},
        {"x2APIC logical broadcast", message(kLog, 0xFFFFFFFF, true), x2apic_view(0x25), true},
        {"x2APIC cluster from ID bits 19:4", message(kLog, 0xFFFF0001, true), x2apic_view(0xFFFF0), true},
    };
    for (const Row& row : rows) {
        INFO(row.what);
        CHECK(matches_destination(row.msg, row.target) == row.expected);
    }
}

TEST_CASE("x2APIC logical IDs derive from the x2APIC ID", "[destination]") {
    CHECK(x2apic_ldr_of(0x0) == 0x00000001u);
    CHECK(x2apic_ldr_of(0x25) == 0x00020020u);
    CHECK(x2apic_ldr_of(0x123) == 0x00120008u);
    CHECK(x2apic_ldr_of(0xFFFFF) == 0xFFFF8000u);
    CHECK(x2apic_ldr_of(0x100000) == 0x00000001u);  // bits 31:20 are not part of it
}

namespace {
std::vector<DestinationView> eight_xapics() {
    std::vector<DestinationView> v;
    for (std::uint32_t i = 0; i < 8; ++i)
        v.push_back(xapic_view(i, static_cast<std::uint8_t>(1u << i)));
    return v;
}
using Indices = std::vector<std::size_t>;
}  // namespace

TEST_CASE("shorthands choose the sender, everyone, or everyone else", "[destination]") {
    auto views = eight_xapics();
    views[5] = disabled(views[5]);
    const InterruptMessage self = message(kPhys, 0, false, DeliveryMode::Fixed, Shorthand::Self);
    const InterruptMessage all = message(kPhys, 0, false, DeliveryMode::Fixed, Shorthand::AllIncludingSelf);
    const InterruptMessage others = message(kPhys, 0, false, DeliveryMode::Fixed, Shorthand::AllExcludingSelf);
    CHECK(resolve_destinations(self, views, 3) == Indices{3});
    CHECK(resolve_destinations(all, views, 3) == Indices{0, 1, 2, 3, 4, 6, 7});
    CHECK(resolve_destinations(others, views, 3) == Indices{0, 1, 2, 4, 6, 7});
    // the destination field is ignored with a shorthand
    InterruptMessage self_with_dest = self;
    self_with_dest.destination = 6;
    CHECK(resolve_destinations(self_with_dest, views, 3) == Indices{3});
}

TEST_CASE("destination fields route to every match", "[destination]") {
    const auto views = eight_xapics();
    CHECK(resolve_destinations(message(kPhys, 6, false), views, 0) == Indices{6});
    CHECK(resolve_destinations(message(kPhys, 9, false), views, 0).empty());
    CHECK(resolve_destinations(message(kPhys, 0xFF, false), views, 0) ==
          Indices{0, 1, 2, 3, 4, 5, 6, 7});
    CHECK(resolve_destinations(message(kLog, 0x0A, false), views, 0) == Indices{1, 3});
    CHECK(resolve_destinations(message(kLog, 0xF0, false), views, 0) == Indices{4, 5, 6, 7});
}

TEST_CASE("lowest priority picks the lowest PPR among matches", "[destination][lowest-priority]") {
    auto views = eight_xapics();
    const std::uint8_t pprs[8] = {0x50, 0x40, 0x30, 0x20, 0x20, 0x10, 0x60, 0x70};
    for (std::size_t i = 0; i < 8; ++i) views[i].ppr = pprs[i];
    const auto lowest = [&](std::uint32_t dest) {
        return resolve_destinations(message(kLog, dest, false, DeliveryMode::LowestPriority), views, 0);
    };
    CHECK(lowest(0x07) == Indices{2});  // APICs 0,1,2: PPR 50H, 40H, 30H
    CHECK(lowest(0xFF) == Indices{5});  // everyone: APIC 5 has PPR 10H
    CHECK(lowest(0x18) == Indices{3});  // APICs 3 and 4 tie at 20H: the lowest APIC ID wins
    CHECK(lowest(0x00).empty());

    SECTION("software-disabled APICs do not take part") {
        views[5].software_enabled = false;
        CHECK(lowest(0xFF) == Indices{3});
        views[3].software_enabled = false;
        views[4].software_enabled = false;
        CHECK(lowest(0x38) == Indices{});  // 3, 4, 5 all software-disabled
    }
    SECTION("the tie-break is the APIC ID, not the interconnect index") {
        views[3].apic_id = 9;  // APIC at index 3 now has ID 9, index 4 keeps ID 4
        CHECK(lowest(0x18) == Indices{4});
    }
    SECTION("all excluding self may be redirected back to the sender") {
        views[0].ppr = 0x00;
        const InterruptMessage m =
            message(kPhys, 0, false, DeliveryMode::LowestPriority, Shorthand::AllExcludingSelf);
        CHECK(resolve_destinations(m, views, 0) == Indices{0});
    }
    SECTION("physical lowest priority to one APIC is that APIC") {
        CHECK(resolve_destinations(message(kPhys, 7, false, DeliveryMode::LowestPriority), views, 0) ==
              Indices{7});
    }
}

TEST_CASE("x2APIC cluster multicast reaches the selected members only", "[destination]") {
    std::vector<DestinationView> views;
    for (std::uint32_t id : {0x10u, 0x11u, 0x12u, 0x13u, 0x20u, 0x21u, 0x22u, 0x23u})
        views.push_back(x2apic_view(id));
    CHECK(resolve_destinations(message(kLog, 0x00010005, true), views, 0) == Indices{0, 2});
    CHECK(resolve_destinations(message(kLog, 0x0002000F, true), views, 0) == Indices{4, 5, 6, 7});
    CHECK(resolve_destinations(message(kLog, 0x00030001, true), views, 0).empty());
    CHECK(resolve_destinations(message(kPhys, 0x21, true), views, 0) == Indices{5});
}
