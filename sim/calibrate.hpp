#pragma once
// `vtxsim calibrate`: fits only the costs a profile marks `fitted` (six at most) so that
// the simulated `ipi` means match the training measurements, by least squares over
// simulated results (Levenberg-Marquardt with finite-difference Jacobians).
#include <string>

#include <nlohmann/json.hpp>

#include "sim/experiment.hpp"
#include "sim/options.hpp"

namespace vtx::sim {

inline constexpr std::size_t kMaxFittedCosts = 6;

struct CalibrationReport {
    nlohmann::json profile_json;  // the profile with the fitted values
    std::string text;             // residual report
};

// Fits the mean of `runs` runs per configuration (with the per-run variation, the very
// runs `compare ipi --runs N --seed S` makes) to the training means.
CalibrationReport calibrate(const RunSpec& base, const TrainingSet& training, unsigned runs,
                            unsigned iterations, unsigned jobs);

}  // namespace vtx::sim
