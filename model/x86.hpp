#pragma once
// Intel 64 architectural constants that every layer uses (SDM Vol. 1 3.4.3 RFLAGS, Vol. 3
// 6.3.1 exception vectors): one home, included where needed.
#include <cstdint>

namespace vtx::x86 {

// RFLAGS bits.
inline constexpr std::uint64_t kRflagsCf = std::uint64_t{1} << 0;
inline constexpr std::uint64_t kRflagsReserved1 = std::uint64_t{1} << 1;  // always 1
inline constexpr std::uint64_t kRflagsPf = std::uint64_t{1} << 2;
inline constexpr std::uint64_t kRflagsAf = std::uint64_t{1} << 4;
inline constexpr std::uint64_t kRflagsZf = std::uint64_t{1} << 6;
inline constexpr std::uint64_t kRflagsSf = std::uint64_t{1} << 7;
inline constexpr std::uint64_t kRflagsIf = std::uint64_t{1} << 9;
inline constexpr std::uint64_t kRflagsOf = std::uint64_t{1} << 11;

// Exception vectors.
inline constexpr std::uint8_t kVectorGp = 13;  // #GP
inline constexpr std::uint8_t kVectorUd = 6;   // #UD
inline constexpr std::uint8_t kFirstExternalVector = 32;  // vectors 0-31: exceptions and NMI

// CR4.UINTR (bit 25): user interrupts enabled (SDM vol. 3 2.5; SENDUIPI, UIRET, STUI need it).
inline constexpr std::uint64_t kCr4Uintr = std::uint64_t{1} << 25;

// The user-interrupt MSRs (SDM vol. 4 table 2-2, "IA32_UINTR_*").
inline constexpr std::uint32_t kMsrUintrRr = 0x985;           // UIRR: one bit per user vector 0..63
inline constexpr std::uint32_t kMsrUintrHandler = 0x986;      // UIHANDLER: the handler's linear address
inline constexpr std::uint32_t kMsrUintrStackAdjust = 0x987;  // UISTACKADJUST
inline constexpr std::uint32_t kMsrUintrMisc = 0x988;         // UITTSZ (31:0), UINV (39:32)
inline constexpr std::uint32_t kMsrUintrPd = 0x989;           // UPIDADDR: this thread's UPID
inline constexpr std::uint32_t kMsrUintrTt = 0x98A;           // UITTADDR (63:4) | valid (0)

}  // namespace vtx::x86
