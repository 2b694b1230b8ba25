#pragma once
// A calibration ensemble: what the model's answers depend on that the training data do not
// determine. Each member draws every `assumed` cost uniformly within its plausible range
// (the cost's own `range`, else the profile's `assumed_range`), refits the `fitted` costs to
// the training means with those draws, and is accepted when every training mean is then
// reproduced within two standard errors of the published runs (a draw the data rule out is
// kept in the file, marked rejected, and never used). `vtxsim calibrate --ensemble N` makes
// one (profiles/ensembles/PROFILE.json ships with the repository); `run` and `compare`
// with `--uncertainty [FILE]` re-run under every accepted member and report each result's
// range over them (docs/calibration.md "Uncertainty").
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/experiment.hpp"
#include "sim/options.hpp"

namespace vtx::sim {

struct EnsembleMember {
    unsigned index = 0;                    // 1-based
    bool accepted = false;                 // every training mean within tolerance after the refit
    std::vector<double> residual_percent;  // per training column, after the refit
    std::map<std::string, double> costs;   // the drawn assumed costs and the refitted costs
};

struct Ensemble {
    std::string file;            // where it was loaded from ("" when just made)
    std::string profile;         // the profile's name
    std::string profile_digest;  // of the profile's costs as they were (see profile_digest)
    std::string training;        // the training file (as displayed)
    std::uint64_t seed = 1;
    unsigned runs = 0, iterations = 0;
    double quantum_cycles = 0;
    std::vector<double> tolerance_percent;  // per training column: two standard errors of its mean
    std::vector<EnsembleMember> members;

    unsigned accepted() const;
    nlohmann::json to_json() const;
    // Reads and checks a file made for `profile` (the loaded profile, before any --set):
    // ConfigError naming the file and what is wrong.
    static Ensemble load(const std::string& path, const model::CpuProfile& profile);
};

// FNV-1a of every cost's name, value and provenance: an ensemble made from another version
// of the profile is refused.
std::string profile_digest(const model::CpuProfile& profile);

// The shipped ensemble of a profile: profiles/ensembles/NAME.json.
std::string default_ensemble_file(const model::CpuProfile& profile);

// `vtxsim calibrate --ensemble N`: member k draws from SplitMix64(seed, k), so that a
// member is the same whatever N is. `progress` is told of each member as it is done.
Ensemble make_ensemble(const RunSpec& base, const TrainingSet& training, unsigned members, std::uint64_t seed,
                       unsigned runs, unsigned iterations, unsigned jobs,
                       const std::function<void(const EnsembleMember&)>& progress);

// The range of each value `evaluate` returns over the accepted members: `unset` is the run
// specification before the user's --set assignments, which are applied on top of each
// member's costs (a what-if holds in every member). NaN values (a refused configuration)
// stay NaN.
struct Intervals {
    std::vector<double> low, high;
    unsigned members = 0;
};
Intervals ensemble_intervals(const Ensemble& ensemble, const RunSpec& unset, const std::vector<std::string>& sets,
                             const std::function<std::vector<double>(const RunSpec&)>& evaluate);

}  // namespace vtx::sim
