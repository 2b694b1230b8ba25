#pragma once
// The cost model: named per-step costs (in core cycles) of one CPU profile.
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

namespace vtx::model {

enum class Cost : std::size_t {
#define VTX_COST(id, name, desc) id,
#include "model/costs.def"
#undef VTX_COST
};

inline constexpr std::size_t kCostCount = 0
#define VTX_COST(id, name, desc) +1
#include "model/costs.def"
#undef VTX_COST
    ;

// Where a cost value comes from.
enum class Provenance { Published, Measured, Fitted, Assumed };

std::string_view cost_name(Cost c);
std::string_view cost_description(Cost c);
std::optional<Cost> find_cost(std::string_view name);
std::string_view provenance_name(Provenance p);
std::optional<Provenance> parse_provenance(std::string_view s);

// A cost's earlier value: what it was, until when, and why it changed.
struct CostChange {
    double cycles = 0.0;   // the value before the change
    std::string date;      // YYYY-MM-DD of the change
    std::string reason;
};

struct CostEntry {
    double cycles = 0.0;
    Provenance provenance = Provenance::Assumed;
    std::string source;          // where the number comes from
    double run_variation = 0.0;  // relative std-dev of the per-run perturbation (0 = fixed)
    std::vector<CostChange> history;  // earlier values, oldest first
    double range_low = -1, range_high = -1;  // a stated plausible range (cycles), -1: none
};

// All costs of a profile. Every Cost has an entry (the loader refuses a profile that
// misses one), so lookups on the simulation hot path are plain array reads.
class CostTable {
public:
    const CostEntry& entry(Cost c) const { return m_entries[static_cast<std::size_t>(c)]; }
    CostEntry& entry(Cost c) { return m_entries[static_cast<std::size_t>(c)]; }
    double operator[](Cost c) const { return m_effective[static_cast<std::size_t>(c)]; }

    // The values in effect for one run: nominal x per-run factor (1 when not perturbed).
    void set_run_factor(Cost c, double factor);
    void reset_run_factors();
    void set_cycles(Cost c, double cycles);

private:
    std::array<CostEntry, kCostCount> m_entries{};
    std::array<double, kCostCount> m_effective{};
    std::array<double, kCostCount> m_factor = make_ones();
    static std::array<double, kCostCount> make_ones();
};

}  // namespace vtx::model
