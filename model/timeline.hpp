#pragma once
// A timeline of what each processor did, as Chrome/Perfetto trace-event JSON
// (chrome://tracing, ui.perfetto.dev): guest runs as slices, VM exits, IPIs and
// notifications as instants. Off by default; recording costs nothing when off.
#include <algorithm>
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

    // The same timeline as a VCD file for GTKWave: per processor a 1-bit `guest` (a guest
    // runs in VMX non-root operation) and an 8-bit `exit_reason` (the basic reason of the
    // last VM exit, from `args.reason` of "vmx" instants). Time unit: one cycle.
    std::string to_vcd(int cpus) const {
        std::string out = "$date vtxsim $end\n$timescale 1 ns $end\n$comment one time unit = one core cycle $end\n";
        out += "$scope module vtxsim $end\n";
        for (int c = 0; c < cpus; ++c) {
            out += "$var wire 1 g" + std::to_string(c) + " cpu" + std::to_string(c) + "_guest $end\n";
            out += "$var wire 8 r" + std::to_string(c) + " cpu" + std::to_string(c) + "_exit_reason $end\n";
        }
        out += "$upscope $end\n$enddefinitions $end\n#0\n";
        for (int c = 0; c < cpus; ++c) out += "0g" + std::to_string(c) + "\nb0 r" + std::to_string(c) + "\n";
        // Processors record at their own local times: order by time for the file.
        std::vector<const Event*> ordered;
        for (const auto& e : m_events) ordered.push_back(&e);
        std::stable_sort(ordered.begin(), ordered.end(),
                         [](const Event* a, const Event* b) { return a->cycle < b->cycle; });
        long long last = 0;
        for (const Event* ep : ordered) {
            const Event& e = *ep;
            if (e.cpu < 0 || e.cpu >= cpus) continue;
            std::string change;
            if (e.phase == 'B') change = "1g" + std::to_string(e.cpu);
            if (e.phase == 'E') change = "0g" + std::to_string(e.cpu);
            if (e.phase == 'i' && e.category == "vmx" && e.args.contains("reason")) {
                std::string bits;
                for (unsigned v = e.args["reason"].get<unsigned>() & 0xFF, i = 0; i < 8; ++i, v <<= 1)
                    bits += (v & 0x80) ? '1' : '0';
                change = "b" + bits + " r" + std::to_string(e.cpu);
            }
            if (change.empty()) continue;
            const long long t = static_cast<long long>(e.cycle);
            if (t != last) out += "#" + std::to_string(t) + "\n";
            last = t;
            out += change + "\n";
        }
        return out;
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
