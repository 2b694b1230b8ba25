#pragma once
// Case-insensitive ASCII comparison for name lookups (field and exit-reason names).
#include <cctype>
#include <string_view>

namespace vtx::vmcs::detail {

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::toupper(static_cast<unsigned char>(a[i])) !=
            std::toupper(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

}  // namespace vtx::vmcs::detail
