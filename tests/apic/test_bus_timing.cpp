// The interrupt interconnect's timing: every copy arrives at the cycle the cost model
// implies, multicast and broadcast serialize at the sender's port, many senders to one APIC
// queue at its port, senders to different APICs do not wait for each other.
#include <catch2/catch.hpp>

#include "apic_platform.hpp"

using namespace vtx::apic;
using vtx::apic::test::Platform;
using vtx::apic::test::Script;
using vtx::model::Cost;

namespace {
// The cycle at which a copy is accepted: sent at `send`, holding serialization slot `slot`
// (1-based) of ports that were free (docs/apic-choices.md, "Timing").
double accept_cycle(const Platform& p, double send, int slot) {
    return send + p.cost(Cost::ApicIcrSend) + slot * p.cost(Cost::ApicBusSerialization) +
           p.cost(Cost::ApicBusLatency) + p.cost(Cost::ApicAccept);
}

// APIC `apic` accepted exactly one message, at the cycle of slot `slot` for a send at `send`.
void check_one_accepted(Platform& p, std::size_t apic, double send, int slot) {
    INFO("APIC " << apic);
    REQUIRE(p[apic].delivery_log().size() == 1);
    CHECK(p[apic].delivery_log()[0].cycle == static_cast<std::uint64_t>(accept_cycle(p, send, slot)));
}

// xAPIC ICR write: destination in ICR_HI, then ICR_LO sends.
void xapic_send(LocalApic& a, std::uint32_t icr_lo, std::uint8_t dest) {
    a.mmio_write(kApicOffsetIcrHi, static_cast<std::uint32_t>(dest) << kXApicIcrHiDestinationShift);
    a.mmio_write(kApicOffsetIcrLo, icr_lo);
}

constexpr std::uint32_t kFixedAssert = 0x4000;                    // fixed, physical, assert
constexpr std::uint32_t kAllExcludingSelf = 3u << kIcrShorthandShift;
constexpr std::uint32_t kAllIncludingSelf = 2u << kIcrShorthandShift;
constexpr std::uint32_t kLogical = static_cast<std::uint32_t>(kIcrDestinationModeLogical);
}  // namespace

TEST_CASE("a unicast IPI is accepted icr_send + serialization + latency + accept after the write",
          "[bus][timing]") {
    Platform p(2);
    MmioResult write_result;
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        p[0].mmio_write(kApicOffsetIcrHi, 1u << kXApicIcrHiDestinationShift);
        write_result = p[0].mmio_write(kApicOffsetIcrLo, kFixedAssert | 0x41);
    });
    sc_core::sc_start();
    CHECK(write_result.claimed);
    CHECK(write_result.cycles == p.cost(Cost::ApicMmioAccess));
    REQUIRE(p[1].delivery_log().size() == 1);
    const DeliveryRecord& r = p[1].delivery_log()[0];
    CHECK(r.cycle == static_cast<std::uint64_t>(accept_cycle(p, 1000, 1)));
    CHECK(r.vector == 0x41);
    CHECK(r.delivery_mode == DeliveryMode::Fixed);
    CHECK(r.source_id == 0);
    CHECK(r.outcome == AcceptOutcome::Accepted);
    CHECK(p[1].accepted_count(0x41) == 1);
    CHECK(p[1].intr_pending());
    CHECK(p[0].delivery_log().empty());
    CHECK(p.bus.messages() == 1);
    CHECK(p.bus.deliveries() == 1);
    CHECK(p.bus.busy_cycles() == p.cost(Cost::ApicBusSerialization));
    CHECK(p.bus.queueing_cycles() == 0);
}

TEST_CASE("all-excluding-self to 8 APICs serializes one copy per destination", "[bus][timing]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        xapic_send(p[0], kAllExcludingSelf | kFixedAssert | 0x50, 0);
    });
    sc_core::sc_start();
    CHECK(p[0].delivery_log().empty());
    for (std::size_t i = 1; i < 8; ++i) check_one_accepted(p, i, 1000, static_cast<int>(i));
    CHECK(p.bus.deliveries() == 7);
    CHECK(p.bus.busy_cycles() == 7 * p.cost(Cost::ApicBusSerialization));
}

TEST_CASE("physical broadcast FFH and all-including-self reach the sender too", "[bus][timing]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        xapic_send(p[3], kFixedAssert | 0x60, 0xFF);
        p.at_cycle(5000);
        xapic_send(p[5], kAllIncludingSelf | kFixedAssert | 0x61, 0);
    });
    sc_core::sc_start();
    for (std::size_t i = 0; i < 8; ++i) {
        INFO("APIC " << i);
        REQUIRE(p[i].delivery_log().size() == 2);
        const int slot = static_cast<int>(i) + 1;  // ascending interconnect index
        CHECK(p[i].delivery_log()[0].vector == 0x60);
        CHECK(p[i].delivery_log()[0].cycle == static_cast<std::uint64_t>(accept_cycle(p, 1000, slot)));
        CHECK(p[i].delivery_log()[1].vector == 0x61);
        CHECK(p[i].delivery_log()[1].cycle == static_cast<std::uint64_t>(accept_cycle(p, 5000, slot)));
    }
}

TEST_CASE("multicast and broadcast cost more than a unicast", "[bus][timing]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        for (std::size_t i = 0; i < 8; ++i)
            p[i].mmio_write(kApicOffsetLdr, (1u << i) << kXApicLdrShift);  // flat, one bit each
        p.at_cycle(1000);
        xapic_send(p[0], kFixedAssert | 0x41, 1);  // unicast to APIC 1
        p.at_cycle(10000);
        xapic_send(p[0], kLogical | kFixedAssert | 0x42, 0xFE);  // multicast to APICs 1..7
        p.at_cycle(20000);
        xapic_send(p[0], kAllExcludingSelf | kFixedAssert | 0x43, 0);  // broadcast
    });
    sc_core::sc_start();
    auto last_accept = [&](std::uint8_t vector) {
        std::uint64_t last = 0;
        for (std::size_t i = 0; i < 8; ++i)
            for (const DeliveryRecord& r : p[i].delivery_log())
                if (r.vector == vector) last = std::max(last, r.cycle);
        return last;
    };
    const std::uint64_t unicast = last_accept(0x41) - 1000;
    const std::uint64_t multicast = last_accept(0x42) - 10000;
    const std::uint64_t broadcast = last_accept(0x43) - 20000;
    CHECK(multicast > unicast);
    CHECK(broadcast > unicast);
    CHECK(multicast - unicast ==
          static_cast<std::uint64_t>(6 * p.cost(Cost::ApicBusSerialization)));  // 7 copies vs 1
    for (std::size_t i = 1; i < 8; ++i) CHECK(p[i].accepted_count(0x42) == 1);
    CHECK(p[0].accepted_count(0x42) == 0);
}

TEST_CASE("senders to different APICs at once do not wait for each other", "[bus][timing]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        for (std::size_t s = 0; s < 4; ++s)  // APIC s -> APIC s + 4, all at cycle 1000
            xapic_send(p[s], kFixedAssert | 0x70, static_cast<std::uint8_t>(s + 4));
    });
    sc_core::sc_start();
    for (std::size_t s = 0; s < 4; ++s) {
        check_one_accepted(p, s + 4, 1000, 1);
        CHECK(p[s + 4].delivery_log()[0].source_id == s);
    }
    CHECK(p.bus.queueing_cycles() == 0);
    CHECK(p.bus.busy_cycles() == 4 * p.cost(Cost::ApicBusSerialization));
}

TEST_CASE("many senders to one APIC at once queue at its port", "[bus][timing]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        for (std::size_t s = 0; s < 4; ++s)  // APICs 0..3 -> APIC 7, all at cycle 1000
            xapic_send(p[s], kFixedAssert | static_cast<std::uint32_t>(0x70 + s), 7);
        p.at_cycle(8000);  // the port is idle again: no queueing
        xapic_send(p[1], kFixedAssert | 0x78, 7);
    });
    sc_core::sc_start();
    const auto& log = p[7].delivery_log();
    REQUIRE(log.size() == 5);
    for (std::size_t s = 0; s < 4; ++s) {  // in the order of the ICR writes, one slot apart
        INFO("sender " << s);
        CHECK(log[s].source_id == s);
        CHECK(log[s].vector == 0x70 + s);
        CHECK(log[s].cycle == static_cast<std::uint64_t>(accept_cycle(p, 1000, static_cast<int>(s) + 1)));
    }
    CHECK(log[4].vector == 0x78);
    CHECK(log[4].cycle == static_cast<std::uint64_t>(accept_cycle(p, 8000, 1)));
    CHECK(p.bus.queueing_cycles() == (0 + 1 + 2 + 3) * p.cost(Cost::ApicBusSerialization));
    CHECK(p.bus.messages() == 5);
}

TEST_CASE("a sender's messages queue at its own port", "[bus][timing]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        for (std::size_t d = 4; d < 8; ++d)  // APIC 0 -> APICs 4..7, back to back
            xapic_send(p[0], kFixedAssert | 0x70, static_cast<std::uint8_t>(d));
    });
    sc_core::sc_start();
    for (std::size_t d = 4; d < 8; ++d) check_one_accepted(p, d, 1000, static_cast<int>(d) - 3);
    CHECK(p.bus.queueing_cycles() == (0 + 1 + 2 + 3) * p.cost(Cost::ApicBusSerialization));
}

TEST_CASE("a message that matches nothing still occupies its sender's port", "[bus][timing]") {
    Platform p(2);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        xapic_send(p[0], kFixedAssert | 0x41, 9);  // no APIC 9
        xapic_send(p[0], kFixedAssert | 0x42, 1);
    });
    sc_core::sc_start();
    CHECK(p.bus.undeliverable() == 1);
    REQUIRE(p[1].delivery_log().size() == 1);
    CHECK(p[1].delivery_log()[0].cycle == static_cast<std::uint64_t>(accept_cycle(p, 1000, 2)));
}

TEST_CASE("bus statistics are exported under a prefix", "[bus]") {
    Platform p(2);
    Script script("script", [&] {
        p.software_enable_all();
        xapic_send(p[0], kFixedAssert | 0x41, 1);
    });
    sc_core::sc_start();
    vtx::model::Stats stats;
    p.bus.export_stats(stats);
    CHECK(stats.value("apic.bus.messages") == 1);
    CHECK(stats.value("apic.bus.deliveries") == 1);
    CHECK(stats.value("apic.bus.busy_cycles") ==
          static_cast<std::uint64_t>(p.cost(Cost::ApicBusSerialization)));
}
