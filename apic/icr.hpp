#pragma once
// The interrupt command register (SDM Vol. 3A 11.6.1, Figure 11-12 xAPIC; 11.12.9, Figure
// 11-28 x2APIC) and the interrupt message it produces.
//
// Throughout vtxsim an ICR value is the 64-bit combined form: in xAPIC mode bits 31:0 are
// ICR_LO (offset 300H) and bits 63:32 are ICR_HI (offset 310H), so the 8-bit xAPIC
// destination sits in bits 63:56; in x2APIC mode it is MSR 830H with a 32-bit destination
// in bits 63:32.
#include <cstdint>
#include <string>

namespace vtx::apic {

inline constexpr std::uint64_t kIcrVectorMask = 0xFF;
inline constexpr unsigned kIcrDeliveryModeShift = 8;
inline constexpr std::uint64_t kIcrDeliveryModeMask = 0x7ull << kIcrDeliveryModeShift;
inline constexpr std::uint64_t kIcrDestinationModeLogical = 1ull << 11;
inline constexpr std::uint64_t kIcrDeliveryStatus = 1ull << 12;  // xAPIC only, read-only
inline constexpr std::uint64_t kIcrLevelAssert = 1ull << 14;
inline constexpr std::uint64_t kIcrTriggerLevel = 1ull << 15;
inline constexpr unsigned kIcrShorthandShift = 18;
inline constexpr std::uint64_t kIcrShorthandMask = 0x3ull << kIcrShorthandShift;
inline constexpr unsigned kX2ApicIcrDestinationShift = 32;  // bits 63:32
inline constexpr unsigned kXApicIcrDestinationShift = 56;   // ICR_HI bits 31:24
inline constexpr unsigned kXApicIcrHiDestinationShift = 24;
inline constexpr unsigned kIcrHiShift = 32;  // ICR_HI in the combined 64-bit form
// Writable bits of ICR_LO / ICR_HI in xAPIC mode (others reserved; delivery status read-only).
inline constexpr std::uint32_t kXApicIcrLoWritable =
    static_cast<std::uint32_t>(kIcrVectorMask | kIcrDeliveryModeMask | kIcrDestinationModeLogical |
                               kIcrLevelAssert | kIcrTriggerLevel | kIcrShorthandMask);
inline constexpr std::uint32_t kXApicIcrHiWritable = 0xFF000000;
// x2APIC ICR reserved bits: 13, 17:16, 31:20 (a WRMSR setting one raises #GP). Bit 12
// (delivery status) does not exist in x2APIC mode: WRMSR ignores it.
inline constexpr std::uint64_t kX2ApicIcrReservedBits =
    (1ull << 13) | (0x3ull << 16) | (0xFFFull << 20);
static_assert(kX2ApicIcrReservedBits == 0xFFF32000ull);

enum class DeliveryMode : std::uint8_t {
    Fixed = 0,
    LowestPriority = 1,
    Smi = 2,
    Reserved3 = 3,  // remote read on the 82489DX; reserved since
    Nmi = 4,
    Init = 5,
    StartUp = 6,
    Reserved7 = 7,  // ExtINT in redirection entries; reserved in the ICR
};
enum class DestinationMode : std::uint8_t { Physical = 0, Logical = 1 };
enum class Level : std::uint8_t { Deassert = 0, Assert = 1 };
enum class TriggerMode : std::uint8_t { Edge = 0, Level = 1 };
enum class Shorthand : std::uint8_t {
    None = 0,
    Self = 1,
    AllIncludingSelf = 2,
    AllExcludingSelf = 3,
};

const char* delivery_mode_name(DeliveryMode m);
const char* shorthand_name(Shorthand s);

// Every ICR field, decoded.
struct Icr {
    std::uint8_t vector = 0;
    DeliveryMode delivery_mode = DeliveryMode::Fixed;
    DestinationMode destination_mode = DestinationMode::Physical;
    bool delivery_status = false;  // xAPIC: 1 = send pending; always 0 in x2APIC mode
    Level level = Level::Deassert;
    TriggerMode trigger_mode = TriggerMode::Edge;
    Shorthand shorthand = Shorthand::None;
    std::uint32_t destination = 0;  // xAPIC: 8 bits; x2APIC: 32 bits

    bool operator==(const Icr& o) const;
    bool operator!=(const Icr& o) const { return !(*this == o); }
};

Icr decode_icr(std::uint64_t icr, bool x2apic);
std::uint64_t encode_icr(const Icr& fields, bool x2apic);

// Whether the local APIC sends an ICR as written (SDM Table 11-3, valid combinations for the
// Pentium 4 / Xeon and later local xAPIC). Not sent: reserved delivery modes, destination
// shorthands Self / All-Including-Self with anything but Fixed, and INIT level de-assert
// (level 0, trigger level), which these processors do not support.
enum class IcrCheck : std::uint8_t {
    Valid,
    ReservedDeliveryMode,
    InvalidShorthandCombination,
    InitLevelDeassert,
};
IcrCheck check_icr(const Icr& fields);
const char* icr_check_name(IcrCheck c);

// A fixed or lowest-priority message with a vector in 0-15 (SDM 11.5.2).
bool has_illegal_vector(const Icr& fields);

}  // namespace vtx::apic
