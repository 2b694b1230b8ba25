#pragma once
// VMCS field encodings and the encoding rule (SDM Appendix B, "Field Encoding in VMCS";
// reference vtx-semantics.md section 1.3):
//   bit 0       access type: 0 = full, 1 = high (bits 63:32 of a 64-bit field)
//   bits 9:1    index
//   bits 11:10  type: 0 control, 1 VM-exit information (read-only data), 2 guest state, 3 host
//   bit 12      reserved (0)
//   bits 14:13  width: 0 = 16-bit, 1 = 64-bit, 2 = 32-bit, 3 = natural width
//   bits 31:15  reserved (0)
#include <cstddef>
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "model/features.hpp"
#include "vmcs/field_list.hpp"

namespace vtx::vmcs {

#define VTX_VMCS_FIELD_ENUM(name, text, encoding, requirement) name = encoding,
enum class Field : std::uint32_t { VTX_VMCS_FIELD_LIST(VTX_VMCS_FIELD_ENUM) };
#undef VTX_VMCS_FIELD_ENUM

enum class FieldWidth : std::uint8_t { Bits16 = 0, Bits64 = 1, Bits32 = 2, Natural = 3 };
enum class FieldType : std::uint8_t { Control = 0, ExitInfo = 1, GuestState = 2, HostState = 3 };

// Encoding bit layout.
inline constexpr std::uint32_t kEncodingAccessHigh = 1u << 0;
inline constexpr unsigned kEncodingIndexShift = 1;
inline constexpr std::uint32_t kEncodingIndexMask = 0x1FFu << kEncodingIndexShift;  // bits 9:1
inline constexpr unsigned kEncodingTypeShift = 10;
inline constexpr std::uint32_t kEncodingTypeMask = 0x3u << kEncodingTypeShift;  // bits 11:10
inline constexpr std::uint32_t kEncodingReservedBit12 = 1u << 12;
inline constexpr unsigned kEncodingWidthShift = 13;
inline constexpr std::uint32_t kEncodingWidthMask = 0x3u << kEncodingWidthShift;  // bits 14:13
inline constexpr std::uint32_t kEncodingDefinedBits = 0x7FFF;  // bits 31:15 are reserved

constexpr std::uint32_t encoding(Field f) { return static_cast<std::uint32_t>(f); }
constexpr bool is_high_access(std::uint32_t enc) { return (enc & kEncodingAccessHigh) != 0; }
constexpr unsigned field_index(std::uint32_t enc) {
    return (enc & kEncodingIndexMask) >> kEncodingIndexShift;
}
constexpr FieldType field_type(std::uint32_t enc) {
    return static_cast<FieldType>((enc & kEncodingTypeMask) >> kEncodingTypeShift);
}
constexpr FieldWidth field_width(std::uint32_t enc) {
    return static_cast<FieldWidth>((enc & kEncodingWidthMask) >> kEncodingWidthShift);
}
constexpr FieldType field_type(Field f) { return field_type(encoding(f)); }
constexpr FieldWidth field_width(Field f) { return field_width(encoding(f)); }
// Read-only = the "VM-exit information" type (SDM: "read-only data fields").
constexpr bool is_read_only(std::uint32_t enc) { return field_type(enc) == FieldType::ExitInfo; }
constexpr bool is_read_only(Field f) { return is_read_only(encoding(f)); }
// The encoding that reads/writes bits 63:32 of a 64-bit field.
constexpr std::uint32_t high_encoding(Field f) { return encoding(f) | kEncodingAccessHigh; }

// Number of bits a field of this width holds (natural width = 64 on Intel 64).
constexpr unsigned width_bits(FieldWidth w) {
    switch (w) {
        case FieldWidth::Bits16:
            return 16;
        case FieldWidth::Bits32:
            return 32;
        case FieldWidth::Bits64:
        case FieldWidth::Natural:
            return 64;
    }
    return 64;
}
constexpr std::uint64_t width_mask(FieldWidth w) {
    return width_bits(w) == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << width_bits(w)) - 1;
}

// What a field's existence depends on (SDM Appendix B footnotes).
enum class FieldRequirement : std::uint8_t {
    None,
    Vpid,
    PostedInterrupts,
    IpiVirtualization,
    VirtualInterruptDelivery,
    SecondaryControls,
    TertiaryControls,
    TprShadow,
    VirtualizeApicAccesses,
    MsrBitmaps,
    Ept,
    EptpSwitching,
    VmFunctions,
    PreemptionTimer,
    SecondaryExitControls,
};

#define VTX_VMCS_FIELD_COUNT(name, text, encoding, requirement) +1
inline constexpr std::size_t kKnownFieldCount = 0 VTX_VMCS_FIELD_LIST(VTX_VMCS_FIELD_COUNT);
#undef VTX_VMCS_FIELD_COUNT

struct FieldInfo {
    Field field;
    std::string_view name;  // Linux asm/vmx.h spelling, e.g. "GUEST_RIP"
    FieldRequirement requirement;
};

// Every known field, sorted by encoding.
const FieldInfo& known_field(std::size_t position);

namespace detail {
// Position of every defined full-access encoding in the known-field list (-1: unknown),
// built at compile time: every VMCS access of the processor goes through it.
#define VTX_VMCS_FIELD_ENCODING(name, text, encoding, requirement) encoding,
inline constexpr std::uint32_t kKnownEncodings[] = {VTX_VMCS_FIELD_LIST(VTX_VMCS_FIELD_ENCODING)};
#undef VTX_VMCS_FIELD_ENCODING
inline constexpr auto kFieldPositions = [] {
    std::array<std::int16_t, kEncodingDefinedBits + 1> t{};
    for (auto& p : t) p = -1;
    for (std::size_t i = 0; i < kKnownFieldCount; ++i) t[kKnownEncodings[i]] = static_cast<std::int16_t>(i);
    return t;
}();
}  // namespace detail

// Position of a (full-access) encoding in the known-field table, if it is known.
inline std::optional<std::size_t> field_position(std::uint32_t full_encoding) {
    if (full_encoding > kEncodingDefinedBits || detail::kFieldPositions[full_encoding] < 0) return std::nullopt;
    return static_cast<std::size_t>(detail::kFieldPositions[full_encoding]);
}
// Position of a known field (every Field names one).
constexpr std::size_t field_position(Field f) {
    return static_cast<std::size_t>(detail::kFieldPositions[encoding(f)]);
}

std::string_view field_name(Field f);
// Case-insensitive lookup by name ("GUEST_RIP", "guest_rip"). Used by CLI and scenarios.
std::optional<Field> find_field_by_name(std::string_view name);
// Whether the processor described by `features` supports the component named by `enc`
// (full or high access). Unknown encodings, reserved bits set, and high access to
// a field that is not 64-bit are all unsupported (VMREAD/VMWRITE fail with error 12).
bool is_supported_field(std::uint32_t enc, const model::CpuFeatures& features);
bool is_supported_field(Field f, const model::CpuFeatures& features);
bool requirement_met(FieldRequirement requirement, const model::CpuFeatures& features);

}  // namespace vtx::vmcs
