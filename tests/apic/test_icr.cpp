// ICR decoding/encoding, the validity of ICR combinations and the message an ICR issues.
#include <catch2/catch.hpp>

#include <vector>

#include "apic/icr.hpp"
#include "apic/interrupt_message.hpp"

using namespace vtx::apic;

namespace {
struct DecodeRow {
    const char* what;
    std::uint64_t icr;
    bool x2apic;
    Icr expected;
};

Icr fields(std::uint8_t vector, DeliveryMode dm, DestinationMode dest_mode, bool status,
           Level level, TriggerMode trigger, Shorthand sh, std::uint32_t dest) {
    Icr f;
    f.vector = vector;
    f.delivery_mode = dm;
    f.destination_mode = dest_mode;
    f.delivery_status = status;
    f.level = level;
    f.trigger_mode = trigger;
    f.shorthand = sh;
    f.destination = dest;
    return f;
}

using DM = DeliveryMode;
using DestM = DestinationMode;
using SH = Shorthand;
using TM = TriggerMode;
constexpr Level kA = Level::Assert;
constexpr Level kD = Level::Deassert;

const std::vector<DecodeRow> kDecodeRows = {
    {"xAPIC fixed physical", 0x0500000000004031ull, false,
     fields(0x31, DM::Fixed, DestM::Physical, false, kA, TM::Edge, SH::None, 0x05)},
    {"xAPIC lowest-priority logical", 0x0F00000000004941ull, false,
     fields(0x41, DM::LowestPriority, DestM::Logical, false, kA, TM::Edge, SH::None, 0x0F)},
    {"xAPIC SMI", 0x0100000000004200ull, false,
     fields(0x00, DM::Smi, DestM::Physical, false, kA, TM::Edge, SH::None, 0x01)},
    {"xAPIC NMI all excluding self", 0x00000000000C4400ull, false,
     fields(0x00, DM::Nmi, DestM::Physical, false, kA, TM::Edge, SH::AllExcludingSelf, 0)},
    {"xAPIC INIT level assert", 0x020000000000C500ull, false,
     fields(0x00, DM::Init, DestM::Physical, false, kA, TM::Level, SH::None, 0x02)},
    {"xAPIC INIT level de-assert", 0x0200000000008500ull, false,
     fields(0x00, DM::Init, DestM::Physical, false, kD, TM::Level, SH::None, 0x02)},
    {"xAPIC start-up", 0x0300000000004698ull, false,
     fields(0x98, DM::StartUp, DestM::Physical, false, kA, TM::Edge, SH::None, 0x03)},
    {"xAPIC self", 0x0000000000044050ull, false,
     fields(0x50, DM::Fixed, DestM::Physical, false, kA, TM::Edge, SH::Self, 0)},
    {"xAPIC all including self", 0x0000000000084060ull, false,
     fields(0x60, DM::Fixed, DestM::Physical, false, kA, TM::Edge, SH::AllIncludingSelf, 0)},
    {"xAPIC delivery status pending", 0x0000000000001031ull, false,
     fields(0x31, DM::Fixed, DestM::Physical, true, kD, TM::Edge, SH::None, 0)},
    {"xAPIC broadcast", 0xFF00000000004031ull, false,
     fields(0x31, DM::Fixed, DestM::Physical, false, kA, TM::Edge, SH::None, 0xFF)},
    {"x2APIC fixed physical 32-bit destination", 0x1234567800004031ull, true,
     fields(0x31, DM::Fixed, DestM::Physical, false, kA, TM::Edge, SH::None, 0x12345678)},
    {"x2APIC logical cluster", 0x0003000400004832ull, true,
     fields(0x32, DM::Fixed, DestM::Logical, false, kA, TM::Edge, SH::None, 0x00030004)},
    {"x2APIC has no delivery status", 0x0000000700001031ull, true,
     fields(0x31, DM::Fixed, DestM::Physical, false, kD, TM::Edge, SH::None, 7)},
    {"x2APIC broadcast", 0xFFFFFFFF00004031ull, true,
     fields(0x31, DM::Fixed, DestM::Physical, false, kA, TM::Edge, SH::None, 0xFFFFFFFF)},
    {"x2APIC NMI all excluding self", 0x00000000000C4400ull, true,
     fields(0x00, DM::Nmi, DestM::Physical, false, kA, TM::Edge, SH::AllExcludingSelf, 0)},
};
}  // namespace

TEST_CASE("ICR fields decode at their architectural positions", "[icr]") {
    for (const DecodeRow& row : kDecodeRows) {
        INFO(row.what);
        const Icr f = decode_icr(row.icr, row.x2apic);
        CHECK(f == row.expected);
        CHECK(static_cast<unsigned>(f.vector) == row.expected.vector);
        CHECK(f.destination == row.expected.destination);
    }
}

TEST_CASE("ICR encode is the inverse of decode", "[icr]") {
    for (const DecodeRow& row : kDecodeRows) {
        INFO(row.what);
        if (row.x2apic && (row.icr & kIcrDeliveryStatus)) {
            // bit 12 does not exist in x2APIC mode: it is dropped
            CHECK(encode_icr(decode_icr(row.icr, true), true) == (row.icr & ~kIcrDeliveryStatus));
            continue;
        }
        CHECK(encode_icr(row.expected, row.x2apic) == row.icr);
    }
}

TEST_CASE("an xAPIC ICR uses only the 8-bit destination of ICR_HI", "[icr]") {
    // ICR_HI bits 23:0 are reserved: they do not reach the destination.
    const Icr f = decode_icr(0x12345678'00004031ull, false);
    CHECK(f.destination == 0x12);
}

TEST_CASE("ICR validity follows the valid-combination table", "[icr]") {
    struct Row {
        const char* what;
        std::uint64_t icr;
        IcrCheck expected;
    };
    const std::vector<Row> rows = {
        {"fixed, no shorthand", 0x0000000000004031ull, IcrCheck::Valid},
        {"lowest priority, no shorthand", 0x0000000000004131ull, IcrCheck::Valid},
        {"NMI, no shorthand", 0x0000000000004400ull, IcrCheck::Valid},
        {"INIT assert", 0x000000000000C500ull, IcrCheck::Valid},
        {"INIT level de-assert", 0x0000000000008500ull, IcrCheck::InitLevelDeassert},
        {"INIT edge with level bit 0", 0x0000000000000500ull, IcrCheck::Valid},
        {"start-up", 0x0000000000004698ull, IcrCheck::Valid},
        {"delivery mode 011b", 0x0000000000004331ull, IcrCheck::ReservedDeliveryMode},
        {"delivery mode 111b", 0x0000000000004731ull, IcrCheck::ReservedDeliveryMode},
        {"self, fixed", 0x0000000000044031ull, IcrCheck::Valid},
        {"self, NMI", 0x0000000000044400ull, IcrCheck::InvalidShorthandCombination},
        {"self, lowest priority", 0x0000000000044131ull, IcrCheck::InvalidShorthandCombination},
        {"all including self, fixed", 0x0000000000084031ull, IcrCheck::Valid},
        {"all including self, INIT", 0x0000000000084500ull, IcrCheck::InvalidShorthandCombination},
        {"all excluding self, NMI", 0x00000000000C4400ull, IcrCheck::Valid},
        {"all excluding self, INIT", 0x00000000000C4500ull, IcrCheck::Valid},
        {"all excluding self, start-up", 0x00000000000C4610ull, IcrCheck::Valid},
        {"all excluding self, lowest priority", 0x00000000000C4131ull, IcrCheck::Valid},
    };
    for (const Row& row : rows) {
        INFO(row.what);
        CHECK(check_icr(decode_icr(row.icr, false)) == row.expected);
        CHECK(check_icr(decode_icr(row.icr, true)) == row.expected);
    }
}

TEST_CASE("illegal vectors are those below 16 in fixed and lowest-priority messages", "[icr]") {
    CHECK(has_illegal_vector(decode_icr(0x4000 | 0x0F, false)));
    CHECK(has_illegal_vector(decode_icr(0x4100 | 0x00, false)));
    CHECK_FALSE(has_illegal_vector(decode_icr(0x4000 | 0x10, false)));
    CHECK_FALSE(has_illegal_vector(decode_icr(0x4400, false)));  // NMI ignores the vector
    CHECK_FALSE(has_illegal_vector(decode_icr(0x4608, false)));  // SIPI vector 08H is legal
}

TEST_CASE("the message from an ICR carries its fields and the sender format", "[icr][message]") {
    const InterruptMessage x = message_from_icr(0x0500000000004931ull, false, 3);
    CHECK(x.vector == 0x31);
    CHECK(x.delivery_mode == DeliveryMode::LowestPriority);
    CHECK(x.destination_mode == DestinationMode::Logical);
    CHECK(x.shorthand == Shorthand::None);
    CHECK(x.destination == 0x05);
    CHECK(x.source_id == 3);
    CHECK_FALSE(x.x2apic_format);
    CHECK_FALSE(x.broadcast());

    const InterruptMessage y = message_from_icr(0xFFFFFFFF00004031ull, true, 0x100);
    CHECK(y.destination == 0xFFFFFFFF);
    CHECK(y.x2apic_format);
    CHECK(y.broadcast());
    CHECK(y.source_id == 0x100);

    CHECK(message_from_icr(0xFF00000000004031ull, false, 0).broadcast());
    CHECK_FALSE(message_from_icr(0x000000FF00004031ull, true, 0).broadcast());
}

TEST_CASE("IPIs are issued edge-triggered with level assert", "[icr][message]") {
    // Pentium 4 and later: the trigger and level bits of the ICR have no meaning.
    const InterruptMessage m = message_from_icr(0x020000000000C031ull, false, 0);  // fixed, level
    CHECK(m.trigger_mode == TriggerMode::Edge);
    CHECK(m.level == Level::Assert);
    const InterruptMessage s = self_ipi_message(0x44, 9);
    CHECK(s.shorthand == Shorthand::Self);
    CHECK(s.delivery_mode == DeliveryMode::Fixed);
    CHECK(s.vector == 0x44);
    CHECK(s.source_id == 9);
}
