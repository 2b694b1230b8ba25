#pragma once
// Scenario files (YAML, docs/scenarios.md): parsing into workloads::scenario::Scenario and
// the run specification that runs one. Every mistake is one model::ConfigError naming the
// file, line and field.
#include <memory>
#include <string>
#include <vector>

#include "sim/experiment.hpp"
#include "workloads/scenario.hpp"

namespace vtx::sim {

struct ScenarioFile {
    std::shared_ptr<const workloads::scenario::Scenario> scenario;
    // The platform's settings: the profile, `set` items (kvm., cost., vmcs.), time mode.
    std::string profile = "spr";
    std::vector<std::string> sets;
    double quantum_cycles = 0;  // scenarios are about order: exact mode unless the file says otherwise
    double max_simulated_seconds = 1.0;
};

ScenarioFile load_scenario_file(const std::string& path);
// The same from the file's text (`path` names it in messages).
ScenarioFile parse_scenario_text(const std::string& text, const std::string& path);

// The run specification of a scenario (profile loaded, sets applied).
RunSpec scenario_spec(const ScenarioFile& file);

}  // namespace vtx::sim
