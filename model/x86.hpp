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

}  // namespace vtx::x86
