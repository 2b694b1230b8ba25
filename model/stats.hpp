#pragma once
// Named statistics (counters and histograms) with unit and description, dumped in the
// gem5 stats.txt style or as JSON.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vtx::model {

class Counter {
public:
    Counter& operator++() { ++m_value; return *this; }
    Counter& operator+=(std::uint64_t v) { m_value += v; return *this; }
    std::uint64_t value() const { return m_value; }
    void reset() { m_value = 0; }

private:
    std::uint64_t m_value = 0;
};

class Histogram {
public:
    void sample(double v);
    std::uint64_t count() const { return m_count; }
    double mean() const { return m_count ? m_sum / m_count : 0.0; }
    double min() const { return m_min; }
    double max() const { return m_max; }
    double stddev() const;  // sample standard deviation
    void reset() { *this = Histogram{}; }

private:
    std::uint64_t m_count = 0;
    double m_sum = 0, m_sum_sq = 0, m_min = 0, m_max = 0;
};

class Stats {
public:
    // Returns the counter, creating it (with unit and description) on first use.
    Counter& counter(const std::string& name, const std::string& unit = "count",
                     const std::string& desc = "");
    Histogram& histogram(const std::string& name, const std::string& unit = "cycles",
                         const std::string& desc = "");
    std::uint64_t value(const std::string& name) const;  // 0 if absent
    bool has(const std::string& name) const { return m_counters.count(name) != 0; }
    std::string dump_text() const;
    nlohmann::json to_json() const;
    void reset();
    std::vector<std::string> counter_names() const;

private:
    struct Meta { std::string unit, desc; };
    std::map<std::string, Counter> m_counters;
    std::map<std::string, Histogram> m_histograms;
    std::map<std::string, Meta> m_meta;
};

// A statistic declared once as a member with its name and description (gem5: stats are
// members), bumped on the hot path through a pointer: no string building or map lookup
// per event. It appears in the dump from its first event on (a path never taken leaves
// no zero line), as counters made with Stats::counter do.
class StatCounter {
public:
    StatCounter(Stats& stats, const char* name, const char* description)
        : m_stats(stats), m_name(name), m_description(description) {}
    StatCounter& operator++() { return *this += 1; }
    StatCounter& operator+=(std::uint64_t v) {
        if (!m_counter) m_counter = &m_stats.counter(m_name, "count", m_description);
        *m_counter += v;
        return *this;
    }

private:
    Stats& m_stats;
    const char* m_name;
    const char* m_description;
    Counter* m_counter = nullptr;
};

}  // namespace vtx::model
