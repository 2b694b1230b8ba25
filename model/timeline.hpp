#pragma once
// A timeline of what each processor did, as Chrome/Perfetto trace-event JSON
// (chrome://tracing, ui.perfetto.dev): guest runs as slices, VM exits, IPIs and
// notifications as instants. Off by default; recording costs nothing when off.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vtx::model {

class Timeline {
public:
    void enable() { m_enabled = true; }
    bool enabled() const { return m_enabled; }
    // Times are in cycles; the JSON is written in microseconds of the given clock.
    void begin(double cycle, int cpu, const std::string& name, const std::string& category) {
        if (m_enabled) m_events.push_back({cycle, cpu, 'B', name, category, {}});
    }
    void end(double cycle, int cpu) {
        if (m_enabled) m_events.push_back({cycle, cpu, 'E', "", "", {}});
    }
    void instant(double cycle, int cpu, const std::string& name, const std::string& category,
                 nlohmann::json args = {}) {
        if (m_enabled) m_events.push_back({cycle, cpu, 'i', name, category, std::move(args)});
    }
    nlohmann::json to_json(double ghz) const {
        nlohmann::json events = nlohmann::json::array();
        for (const auto& e : m_events) {
            nlohmann::json j = {{"ph", std::string(1, e.phase)}, {"ts", e.cycle / (ghz * 1000.0)},
                                {"pid", 0}, {"tid", e.cpu}};
            if (!e.name.empty()) j["name"] = e.name;
            if (!e.category.empty()) j["cat"] = e.category;
            if (e.phase == 'i') j["s"] = "t";
            if (!e.args.is_null()) j["args"] = e.args;
            events.push_back(std::move(j));
        }
        return {{"traceEvents", events}, {"displayTimeUnit", "ns"}};
    }

private:
    struct Event {
        double cycle;
        int cpu;
        char phase;
        std::string name, category;
        nlohmann::json args;
    };
    bool m_enabled = false;
    std::vector<Event> m_events;
};

}  // namespace vtx::model
