#pragma once
// Posted-interrupt descriptor (PID) layout and the value types built on it. Plain C++.
//
// Layout (64 bytes, 64-byte aligned; reference vtx-semantics.md section 6.1, SDM Vol. 3
// Table 29-1 / new SDM section 30.1.6, Linux arch/x86/kvm/vmx/posted_intr.h struct pi_desc):
//   255:0   PIR   one posted-interrupt request bit per vector
//   256     ON    outstanding notification
//   257     SN    suppress notification (honoured by the IPIv hardware path)
//   271:258 reserved
//   279:272 NV    notification vector
//   287:280 reserved
//   319:288 NDST  notification destination (xAPIC: APIC ID in NDST[15:8]; x2APIC: all 32 bits)
//   511:320 reserved / software
// Bits 319:256 form the 8-byte "NotifyInfo" control word at byte offset 32, which the IPIv
// pseudocode updates with one locked read-modify-write (vtx-semantics.md section 5.3 step 6).
#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace vtx::pid {

// --- Descriptor geometry ---
inline constexpr std::uint64_t kPidBytes = 64;
inline constexpr std::uint64_t kPidAlignment = 64;
inline constexpr std::uint64_t kPirOffset = 0;
inline constexpr std::uint64_t kPirBytes = 32;
inline constexpr unsigned kPirBits = 256;
inline constexpr unsigned kPirWords64 = 4;
inline constexpr unsigned kPirWords32 = 8;  // KVM's __kvm_apic_update_irr() walks 32-bit words
inline constexpr std::uint64_t kPidNotificationInfoOffset = 32;  // NotifyInfo: bits 319:256
inline constexpr unsigned kPidNotificationInfoFirstBit = 256;

// --- Architectural bit positions within the descriptor ---
inline constexpr unsigned kPidOnBit = 256;
inline constexpr unsigned kPidSnBit = 257;
inline constexpr unsigned kPidNvLowBit = 272;  // NV = bits 279:272
inline constexpr unsigned kPidNvHighBit = 279;
inline constexpr unsigned kPidNdstLowBit = 288;  // NDST = bits 319:288
inline constexpr unsigned kPidNdstHighBit = 319;

// --- The same positions within the 8-byte NotifyInfo word at offset 32 ---
inline constexpr unsigned kNotifyOnShift = kPidOnBit - kPidNotificationInfoFirstBit;
inline constexpr unsigned kNotifySnShift = kPidSnBit - kPidNotificationInfoFirstBit;
inline constexpr unsigned kNotifyNvShift = kPidNvLowBit - kPidNotificationInfoFirstBit;
inline constexpr unsigned kNotifyNdstShift = kPidNdstLowBit - kPidNotificationInfoFirstBit;
inline constexpr std::uint64_t kNotifyOnMask = std::uint64_t{1} << kNotifyOnShift;
inline constexpr std::uint64_t kNotifySnMask = std::uint64_t{1} << kNotifySnShift;
inline constexpr std::uint64_t kNotifyNvMask = std::uint64_t{0xFF} << kNotifyNvShift;
inline constexpr std::uint64_t kNotifyNdstMask = std::uint64_t{0xFFFF'FFFF} << kNotifyNdstShift;
static_assert(kNotifyNvShift + 8 == kPidNvHighBit - kPidNotificationInfoFirstBit + 1, "NV is 8 bits");
static_assert(kNotifyNdstShift + 32 == kPidNdstHighBit - kPidNotificationInfoFirstBit + 1,
              "NDST is 32 bits");
static_assert(kPidNotificationInfoOffset * 8 == kPidNotificationInfoFirstBit, "NotifyInfo offset");

// --- NDST formats (vtx-semantics.md sections 5.4 and 6.1; KVM vmx_vcpu_pi_load()) ---
inline constexpr unsigned kNdstXapicIdShift = 8;  // xAPIC: APIC ID in NDST[15:8]
inline constexpr std::uint32_t kNdstXapicIdMask = 0xFF00;

constexpr std::uint32_t ndst_for_xapic(std::uint8_t apic_id) {
    return (std::uint32_t{apic_id} << kNdstXapicIdShift) & kNdstXapicIdMask;
}
constexpr std::uint32_t ndst_for_x2apic(std::uint32_t apic_id) { return apic_id; }
constexpr std::uint32_t apic_id_from_ndst(std::uint32_t ndst, bool x2apic) {
    return x2apic ? ndst : (ndst & kNdstXapicIdMask) >> kNdstXapicIdShift;
}

// Bad use of a PID or PID-pointer table view (misaligned address, index out of range).
class PidError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// Formats an address as 0x... for error messages.
std::string hex_address(std::uint64_t address);

// --- The 256 PIR bits as a value (word i holds vectors 64*i .. 64*i+63) ---
struct Pir {
    std::array<std::uint64_t, kPirWords64> words{};

    bool test(std::uint8_t vector) const { return (words[vector / 64] >> (vector % 64)) & 1u; }
    void set(std::uint8_t vector) { words[vector / 64] |= std::uint64_t{1} << (vector % 64); }
    void reset(std::uint8_t vector) { words[vector / 64] &= ~(std::uint64_t{1} << (vector % 64)); }
    bool empty() const;
    unsigned count() const;
    std::vector<std::uint8_t> vectors() const;  // set vectors, ascending
    Pir& operator|=(const Pir& other);
    bool operator==(const Pir& other) const { return words == other.words; }
    bool operator!=(const Pir& other) const { return !(*this == other); }
};

// The highest set vector, or nothing if no bit is set (posted-interrupt processing step 6
// raises RVI to it; KVM's __kvm_apic_update_irr() tracks it as max_irr).
std::optional<std::uint8_t> highest_vector(const Pir& bits);

// --- The NotifyInfo control word (PID bits 319:256) as a value ---
struct NotificationInfo {
    std::uint64_t raw = 0;

    bool on() const { return raw & kNotifyOnMask; }
    bool sn() const { return raw & kNotifySnMask; }
    std::uint8_t nv() const { return static_cast<std::uint8_t>((raw & kNotifyNvMask) >> kNotifyNvShift); }
    std::uint32_t ndst() const {
        return static_cast<std::uint32_t>((raw & kNotifyNdstMask) >> kNotifyNdstShift);
    }

    NotificationInfo with_on(bool v) const { return {v ? raw | kNotifyOnMask : raw & ~kNotifyOnMask}; }
    NotificationInfo with_sn(bool v) const { return {v ? raw | kNotifySnMask : raw & ~kNotifySnMask}; }
    NotificationInfo with_nv(std::uint8_t nv) const {
        return {(raw & ~kNotifyNvMask) | (std::uint64_t{nv} << kNotifyNvShift)};
    }
    NotificationInfo with_ndst(std::uint32_t ndst) const {
        return {(raw & ~kNotifyNdstMask) | (std::uint64_t{ndst} << kNotifyNdstShift)};
    }
};

}  // namespace vtx::pid
