#pragma once
// Parsing numbers from user text (command line, config files, scenario keys): the one
// place that decides what counts as a number, so every caller reports bad input the
// same way.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace vtx::model {

// The whole text as an unsigned integer (base 10, or 0x/0 prefixes with base 0), or nothing.
inline std::optional<std::uint64_t> parse_u64(const std::string& text, int base = 10) {
    if (text.empty() || text[0] == '-' || text[0] == '+' || text[0] == ' ') return std::nullopt;
    std::size_t used = 0;
    unsigned long long n = 0;
    try {
        n = std::stoull(text, &used, base);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (used != text.size()) return std::nullopt;
    return n;
}

// The whole text as a finite number (decimal or exponent notation), or nothing.
inline std::optional<double> parse_finite_double(const std::string& text) {
    std::size_t used = 0;
    double v = 0;
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (used == 0 || used != text.size() || !std::isfinite(v)) return std::nullopt;
    return v;
}

}  // namespace vtx::model
