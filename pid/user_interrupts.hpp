#pragma once
// User interrupts (SENDUIPI; Intel SDM vol. 2 "SENDUIPI", vol. 3 "User Interrupts"): the
// user-interrupt target table entry (UITTE) a sender indexes, and the user posted-interrupt
// descriptor (UPID) it posts into. Plain value types over the architectural encodings; the
// processor (cpu/user_interrupts.cpp) reaches them in memory with locked operations.
// The UPID is not the VMX PID: ON is bit 0, SN bit 1, NV bits 23:16, NDST bits 63:32 of
// its first quadword, and the PIR (64 user vectors) is its second quadword.
#include <cstdint>

namespace vtx::pid {

inline constexpr unsigned kUittEntryBytes = 16;
inline constexpr unsigned kUpidBytes = 16;
inline constexpr std::uint64_t kUpidAlignment = 64;  // UITTE bits 69:64 must be 0
inline constexpr unsigned kUserVectors = 64;
inline constexpr std::uint64_t kUpidPirOffset = 8;

// UITTE: V (bit 0), UV (bits 15:8, 0..63), UPIDADDR (bits 127:64); the rest reserved.
struct UittEntry {
    std::uint64_t lo = 0, hi = 0;

    bool valid() const { return lo & 1u; }
    std::uint8_t uv() const { return static_cast<std::uint8_t>((lo >> 8) & 0xFF); }
    std::uint64_t upid_address() const { return hi; }
    // Bits 7:1 and 63:16 reserved, UV below 64 (bits 15:14 zero), UPIDADDR 64-byte aligned.
    bool reserved_bits_clear() const {
        return (lo & ~std::uint64_t{0x3F01}) == 0 && (hi & (kUpidAlignment - 1)) == 0;
    }
    static UittEntry make(std::uint8_t uv, std::uint64_t upid_address) {
        return UittEntry{1u | (std::uint64_t{uv} << 8), upid_address};
    }
};

// The UPID's first quadword.
struct UpidControl {
    static constexpr std::uint64_t kOn = std::uint64_t{1} << 0;
    static constexpr std::uint64_t kSn = std::uint64_t{1} << 1;
    static constexpr unsigned kNvShift = 16;
    static constexpr unsigned kNdstShift = 32;
    // Bits 15:2 and 31:24 are reserved (must be 0: SENDUIPI #GPs otherwise).
    static constexpr std::uint64_t kReserved = 0x00000000FF00FFFCull;

    std::uint64_t raw = 0;

    bool on() const { return raw & kOn; }
    bool sn() const { return raw & kSn; }
    std::uint8_t nv() const { return static_cast<std::uint8_t>(raw >> kNvShift); }
    std::uint32_t ndst() const { return static_cast<std::uint32_t>(raw >> kNdstShift); }
    bool reserved_bits_clear() const { return (raw & kReserved) == 0; }
    // The APIC ID NDST names: all of it in x2APIC mode, bits 15:8 in xAPIC mode.
    std::uint32_t destination(bool x2apic) const { return x2apic ? ndst() : (ndst() >> 8) & 0xFF; }
    static UpidControl make(std::uint8_t nv, std::uint32_t ndst) {
        return UpidControl{(std::uint64_t{nv} << kNvShift) | (std::uint64_t{ndst} << kNdstShift)};
    }
};

// NDST for an APIC ID in the sender's APIC mode (xAPIC: the 8-bit ID in bits 15:8).
inline std::uint32_t upid_ndst(std::uint32_t apic_id, bool x2apic) { return x2apic ? apic_id : (apic_id & 0xFF) << 8; }

}  // namespace vtx::pid
