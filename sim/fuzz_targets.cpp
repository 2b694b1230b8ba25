#include "sim/fuzz_targets.hpp"

#include <sstream>
#include <vector>

#include "model/error.hpp"
#include "model/profile.hpp"
#include "sim/options.hpp"
#include "sim/scenario_file.hpp"

namespace vtx::sim {

void fuzz_profile(const std::uint8_t* data, std::size_t size) {
    try {
        (void)model::CpuProfile::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    } catch (const model::ConfigError&) {
    }
}

void fuzz_scenario(const std::uint8_t* data, std::size_t size) {
    try {
        const ScenarioFile f = parse_scenario_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
        (void)scenario_spec(f);
    } catch (const model::ConfigError&) {
    }
}

void fuzz_set(const std::uint8_t* data, std::size_t size) {
    static const model::CpuProfile profile = load_profile("spr");
    std::vector<std::string> sets;
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    for (std::string line; std::getline(in, line);) sets.push_back(line);
    RunSpec spec;
    spec.profile = profile;
    try {
        apply_sets(sets, spec);
    } catch (const model::ConfigError&) {
    }
}

FuzzTarget fuzz_target(const std::string& name) {
    if (name == "profile") return fuzz_profile;
    if (name == "scenario") return fuzz_scenario;
    if (name == "set") return fuzz_set;
    return nullptr;
}

}  // namespace vtx::sim
