#pragma once
// `vtxsim validate`: the model against published measurements that no cost was fitted to
// (profiles/validation/*.json). A point names what was measured, its value and spread, the
// CPU and setup, and where it was published; and the model run that stands for it (workload,
// APIC mode, IPIv, profile, knobs) with every known way the measurement's setup differs from
// that run. A validation point never sets a cost: a cost changes only with a source.
#include <optional>
#include <string>
#include <vector>

namespace vtx::sim {

struct ValidationPoint {
    std::string file;      // where it was read from
    std::string name;      // the file's stem
    std::string quantity;  // what was measured, in words
    double value = 0;      // the published value
    std::string unit;      // "cycles" (TSC cycles, as kvm-unit-tests prints them) or "ns"
    std::optional<double> spread;  // published standard deviation (same unit), if any
    std::string cpu, setup, citation;
    bool used_for_fitting = false;  // refused: validation data never fit a cost
    // The model run.
    std::string workload, apic = "x2apic", profile = "spr", metric = "cycles_per_iteration";
    std::optional<bool> ipiv;  // default: on if the profile has IPIv
    unsigned vcpus = 0;        // 0: the workload's default
    unsigned runs = 5;
    std::vector<std::string> sets;         // KEY=VALUE as --set
    std::vector<std::string> differences;  // the measurement's setup vs the model run (empty: matches)

    // Reads and checks a point; ConfigError naming the file and field.
    static ValidationPoint load(const std::string& path);
};

// The validation points shipped with the profiles: profiles/validation/*.json, by name.
std::vector<std::string> validation_files();

}  // namespace vtx::sim
