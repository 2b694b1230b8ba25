#include "pid/layout.hpp"

#include <cstdio>

namespace vtx::pid {

std::string hex_address(std::uint64_t address) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(address));
    return buf;
}

bool Pir::empty() const {
    for (std::uint64_t w : words)
        if (w) return false;
    return true;
}

unsigned Pir::count() const {
    unsigned n = 0;
    for (std::uint64_t w : words) n += static_cast<unsigned>(__builtin_popcountll(w));
    return n;
}

std::vector<std::uint8_t> Pir::vectors() const {
    std::vector<std::uint8_t> out;
    for (unsigned v = 0; v < kPirBits; ++v)
        if (test(static_cast<std::uint8_t>(v))) out.push_back(static_cast<std::uint8_t>(v));
    return out;
}

Pir& Pir::operator|=(const Pir& other) {
    for (unsigned i = 0; i < kPirWords64; ++i) words[i] |= other.words[i];
    return *this;
}

std::optional<std::uint8_t> highest_vector(const Pir& bits) {
    for (unsigned i = kPirWords64; i-- > 0;) {
        if (bits.words[i])
            return static_cast<std::uint8_t>(i * 64 + 63 - __builtin_clzll(bits.words[i]));
    }
    return std::nullopt;
}

}  // namespace vtx::pid
