#pragma once
// `vtxsim calibrate`: fits only the costs a profile marks `fitted` (six at most) so that
// the simulated `ipi` means match the training measurements, by least squares over
// simulated results (Levenberg-Marquardt with finite-difference Jacobians).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/experiment.hpp"
#include "sim/options.hpp"

namespace vtx::sim {

inline constexpr std::size_t kMaxFittedCosts = 6;

struct CalibrationReport {
    nlohmann::json profile_json;  // the profile with the fitted values
    std::string text;             // residual report
};

// The fit itself: the fitted costs' values that bring the simulated means closest to the
// training means, starting from the profile's values.
struct FitResult {
    std::vector<model::Cost> fitted;  // the costs the profile marks `fitted`, in table order
    std::vector<double> values;       // their fitted values (cycles)
    std::vector<double> simulated;    // the simulated means at those values, per training column
    std::vector<double> residuals;    // (simulated - training) / training, per column
    std::string text;                 // iterations, values and residuals, as calibrate prints them
};
FitResult fit_costs(const RunSpec& base, const TrainingSet& training, unsigned runs, unsigned iterations,
                    unsigned jobs);

// Fits the mean of `runs` runs per configuration (with the per-run variation, the very
// runs `compare ipi --runs N --seed S` makes) to the training means.
CalibrationReport calibrate(const RunSpec& base, const TrainingSet& training, unsigned runs,
                            unsigned iterations, unsigned jobs);

// `vtxsim calibrate --report`: how well the training means determine the fitted costs, at
// the profile's values. The Jacobian of the four means' relative residuals against the
// fitted costs (as elasticities: % change of a mean per % change of a cost), its singular
// values and condition number, the direction it determines worst; and, for every other
// cost that moves a mean, how far the fitted costs would move to absorb a 10 % error in it
// (least squares, Eigen's SVD): what a what-if answer silently depends on.
std::string identifiability_report(const RunSpec& base, const TrainingSet& training, unsigned runs, unsigned jobs);

}  // namespace vtx::sim
