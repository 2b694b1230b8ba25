#pragma once
// Resolving what the user asked for (profile, knobs, costs, workload parameters) into
// run specifications, with one clear message per mistake.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/experiment.hpp"

namespace vtx::sim {

// Where profiles/ is: $VTX_PROFILE_DIR, else the source tree's profiles/ (compiled in),
// else ./profiles.
std::string profile_dir();
// How outputs name a file: inside profiles/ as "profiles/...", so that the same run gives
// the same output wherever the checkout lives; any other path as given.
std::string display_path(const std::string& path);
// A JSON input file, parsed: one model::ConfigError "LABEL: cannot open file[ HINT]" or
// "LABEL: not valid JSON: ..." (a syntax error, a number out of range) otherwise.
nlohmann::json read_json_file(const std::string& path, const std::string& label, const std::string& hint = "");
// NAME (profiles/NAME.json) or a path to a JSON file.
model::CpuProfile load_profile(const std::string& name_or_file);
std::vector<std::string> profile_names();

// Applies `--set KEY=VALUE` items: cost.NAME, kvm.NAME, workload.NAME.
void apply_sets(const std::vector<std::string>& sets, RunSpec& spec);

// The training measurements (the IPIv cover letter's 20-run table).
struct TrainingSet {
    std::string source;
    struct Column {
        std::string apic;  // "xapic" / "x2apic"
        bool ipiv = false;
        std::vector<double> runs;
        double mean = 0;
    };
    std::vector<Column> columns;
    // The setting the measurements imply, as --set KEY=VALUE (the host kernel and its
    // mitigations): calibrate, compare ipi and the ensemble run in it.
    std::vector<std::string> setup;
};
std::string default_training_file();
TrainingSet load_training(const std::string& path);

// A number of cycles as the reports print it.
std::string format_cycles(double cycles);
// --quantum CYCLES (or a scenario's / sweep's quantum): 0 (exact) up to 1e9, whole.
double parse_quantum(const std::string& text);
// Everything a run was configured with (profile, knobs, every cost), for JSON outputs.
nlohmann::json resolved_config(const RunSpec& s);

double mean_of(const std::vector<double>& v);
double sample_stddev(const std::vector<double>& v);

}  // namespace vtx::sim
