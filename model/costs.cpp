#include "model/costs.hpp"

namespace vtx::model {
namespace {
constexpr std::array<std::string_view, kCostCount> kNames = {
#define VTX_COST(id, name, desc) name,
#include "model/costs.def"
#undef VTX_COST
};
constexpr std::array<std::string_view, kCostCount> kDescriptions = {
#define VTX_COST(id, name, desc) desc,
#include "model/costs.def"
#undef VTX_COST
};
}  // namespace

std::string_view cost_name(Cost c) { return kNames[static_cast<std::size_t>(c)]; }
std::string_view cost_description(Cost c) { return kDescriptions[static_cast<std::size_t>(c)]; }

std::optional<Cost> find_cost(std::string_view name) {
    for (std::size_t i = 0; i < kCostCount; ++i)
        if (kNames[i] == name) return static_cast<Cost>(i);
    return std::nullopt;
}

std::string_view provenance_name(Provenance p) {
    switch (p) {
        case Provenance::Published: return "published";
        case Provenance::Measured: return "measured";
        case Provenance::Fitted: return "fitted";
        case Provenance::Assumed: return "assumed";
    }
    return "?";
}

std::optional<Provenance> parse_provenance(std::string_view s) {
    for (auto p : {Provenance::Published, Provenance::Measured, Provenance::Fitted,
                   Provenance::Assumed})
        if (provenance_name(p) == s) return p;
    return std::nullopt;
}

std::array<double, kCostCount> CostTable::make_ones() {
    std::array<double, kCostCount> a{};
    a.fill(1.0);
    return a;
}

void CostTable::set_run_factor(Cost c, double factor) {
    const auto i = static_cast<std::size_t>(c);
    m_factor[i] = factor;
    m_effective[i] = m_entries[i].cycles * factor;
}

void CostTable::reset_run_factors() {
    for (std::size_t i = 0; i < kCostCount; ++i) set_run_factor(static_cast<Cost>(i), 1.0);
}

void CostTable::set_cycles(Cost c, double cycles) {
    const auto i = static_cast<std::size_t>(c);
    m_entries[i].cycles = cycles;
    m_effective[i] = cycles * m_factor[i];
}

}  // namespace vtx::model
