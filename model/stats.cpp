#include "model/stats.hpp"

#include <cmath>
#include <cstdio>

namespace vtx::model {

void Histogram::sample(double v) {
    if (m_count == 0 || v < m_min) m_min = v;
    if (m_count == 0 || v > m_max) m_max = v;
    ++m_count;
    m_sum += v;
    m_sum_sq += v * v;
}

double Histogram::stddev() const {
    if (m_count < 2) return 0.0;
    const double var = (m_sum_sq - m_sum * m_sum / m_count) / (m_count - 1);
    return var > 0 ? std::sqrt(var) : 0.0;
}

Counter& Stats::counter(const std::string& name, const std::string& unit,
                        const std::string& desc) {
    auto it = m_counters.find(name);
    if (it != m_counters.end()) return it->second;
    m_meta[name] = Meta{unit, desc};
    return m_counters[name];
}

Histogram& Stats::histogram(const std::string& name, const std::string& unit,
                            const std::string& desc) {
    auto it = m_histograms.find(name);
    if (it != m_histograms.end()) return it->second;
    m_meta[name] = Meta{unit, desc};
    return m_histograms[name];
}

std::uint64_t Stats::value(const std::string& name) const {
    auto it = m_counters.find(name);
    return it == m_counters.end() ? 0 : it->second.value();
}

std::vector<std::string> Stats::counter_names() const {
    std::vector<std::string> v;
    for (const auto& [k, c] : m_counters) v.push_back(k);
    return v;
}

std::string Stats::dump_text() const {
    std::string out = "---------- Begin Simulation Statistics ----------\n";
    char line[512];
    for (const auto& [name, c] : m_counters) {
        const Meta& m = m_meta.at(name);
        std::snprintf(line, sizeof line, "%-50s %14llu  # %s (%s)\n", name.c_str(),
                      static_cast<unsigned long long>(c.value()), m.desc.c_str(), m.unit.c_str());
        out += line;
    }
    for (const auto& [name, h] : m_histograms) {
        const Meta& m = m_meta.at(name);
        std::snprintf(line, sizeof line,
                      "%-50s %14.2f  # %s (%s) mean; samples %llu stddev %.2f min %.2f max %.2f\n",
                      (name + ".mean").c_str(), h.mean(), m.desc.c_str(), m.unit.c_str(),
                      static_cast<unsigned long long>(h.count()), h.stddev(), h.min(), h.max());
        out += line;
    }
    out += "---------- End Simulation Statistics   ----------\n";
    return out;
}

nlohmann::json Stats::to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, c] : m_counters)
        j[name] = {{"value", c.value()}, {"unit", m_meta.at(name).unit},
                   {"description", m_meta.at(name).desc}};
    for (const auto& [name, h] : m_histograms)
        j[name] = {{"count", h.count()}, {"mean", h.mean()}, {"stddev", h.stddev()},
                   {"min", h.min()},     {"max", h.max()},   {"unit", m_meta.at(name).unit},
                   {"description", m_meta.at(name).desc}};
    return j;
}

void Stats::reset() {
    for (auto& [k, c] : m_counters) c.reset();
    for (auto& [k, h] : m_histograms) h.reset();
}

}  // namespace vtx::model
