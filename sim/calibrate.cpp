#include "sim/calibrate.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>

#include "model/error.hpp"

namespace vtx::sim {
namespace {

// Simulated means of the training configurations for cost values `theta` of `fitted`: the
// mean over `runs` runs of each, as `compare ipi` makes them.
std::vector<double> simulate(const RunSpec& base, const TrainingSet& t, const std::vector<model::Cost>& fitted,
                             const std::vector<double>& theta, unsigned runs, unsigned jobs) {
    RunSpec b = base;
    for (std::size_t i = 0; i < fitted.size(); ++i) b.profile.costs.set_cycles(fitted[i], theta[i]);
    const auto specs = ipi_comparison_specs(b, runs);
    const auto outs = run_many(specs, jobs);
    std::vector<double> means;
    for (const auto& col : t.columns) {
        std::size_t k = 0;
        while (k < std::size(kIpiConfigs) &&
               !(kIpiConfigs[k].x2apic == (col.apic == "x2apic") && kIpiConfigs[k].ipiv == col.ipiv))
            ++k;
        if (k == std::size(kIpiConfigs)) throw model::ConfigError("training column has no simulated configuration");
        double sum = 0;
        for (unsigned r = 0; r < runs; ++r) {
            const auto& o = outs[k * runs + r];
            if (!o.ok) throw cpu::SimulationError("calibration run failed: " + o.error);
            sum += o.cycles_per_iteration;
        }
        means.push_back(sum / runs);
    }
    return means;
}

double cost_fn(const std::vector<double>& sim, const TrainingSet& t) {
    double s = 0;
    for (std::size_t i = 0; i < sim.size(); ++i) {
        const double r = (sim[i] - t.columns[i].mean) / t.columns[i].mean;
        s += r * r;
    }
    return s;
}

// Solves (A + lambda diag(A)) x = b for small dense systems (Gaussian elimination).
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
    const std::size_t n = b.size();
    for (std::size_t k = 0; k < n; ++k) {
        std::size_t p = k;
        for (std::size_t i = k + 1; i < n; ++i)
            if (std::fabs(a[i][k]) > std::fabs(a[p][k])) p = i;
        std::swap(a[k], a[p]);
        std::swap(b[k], b[p]);
        if (std::fabs(a[k][k]) < 1e-300) continue;
        for (std::size_t i = k + 1; i < n; ++i) {
            const double f = a[i][k] / a[k][k];
            for (std::size_t j = k; j < n; ++j) a[i][j] -= f * a[k][j];
            b[i] -= f * b[k];
        }
    }
    std::vector<double> x(n, 0);
    for (std::size_t k = n; k-- > 0;) {
        double s = b[k];
        for (std::size_t j = k + 1; j < n; ++j) s -= a[k][j] * x[j];
        x[k] = std::fabs(a[k][k]) < 1e-300 ? 0 : s / a[k][k];
    }
    return x;
}

}  // namespace

CalibrationReport calibrate(const RunSpec& base, const TrainingSet& t, unsigned runs, unsigned iterations,
                            unsigned jobs) {
    std::vector<model::Cost> fitted;
    std::vector<double> theta;
    for (std::size_t i = 0; i < model::kCostCount; ++i) {
        const auto c = static_cast<model::Cost>(i);
        if (base.profile.costs.entry(c).provenance == model::Provenance::Fitted) {
            fitted.push_back(c);
            theta.push_back(base.profile.costs.entry(c).cycles);
        }
    }
    if (fitted.empty()) throw model::ConfigError("calibrate: profile \"" + base.profile.name + "\" marks no cost `fitted`");
    if (fitted.size() > kMaxFittedCosts)
        throw model::ConfigError("calibrate: profile \"" + base.profile.name + "\" marks " +
                                 std::to_string(fitted.size()) + " costs `fitted`; at most " +
                                 std::to_string(kMaxFittedCosts) + " may be");
    std::string text;
    char line[512];
    auto current = simulate(base, t, fitted, theta, runs, jobs);
    double f = cost_fn(current, t);
    double lambda = 1e-2;
    for (unsigned it = 0; it < iterations; ++it) {
        // Jacobian of the relative residuals by forward differences.
        const std::size_t m = current.size(), n = theta.size();
        std::vector<std::vector<double>> jac(m, std::vector<double>(n));
        for (std::size_t k = 0; k < n; ++k) {
            std::vector<double> th = theta;
            const double h = std::max(50.0, 0.1 * theta[k]);  // large enough to see past the poll-loop quantization
            th[k] += h;
            const auto s = simulate(base, t, fitted, th, runs, jobs);
            for (std::size_t i = 0; i < m; ++i) jac[i][k] = (s[i] - current[i]) / h / t.columns[i].mean;
        }
        std::vector<double> r(m);
        for (std::size_t i = 0; i < m; ++i) r[i] = (t.columns[i].mean - current[i]) / t.columns[i].mean;
        std::vector<std::vector<double>> a(n, std::vector<double>(n, 0));
        std::vector<double> b(n, 0);
        for (std::size_t p = 0; p < n; ++p) {
            for (std::size_t q = 0; q < n; ++q)
                for (std::size_t i = 0; i < m; ++i) a[p][q] += jac[i][p] * jac[i][q];
            for (std::size_t i = 0; i < m; ++i) b[p] += jac[i][p] * r[i];
        }
        bool improved = false;
        for (int attempt = 0; attempt < 6 && !improved; ++attempt) {
            auto damped = a;
            for (std::size_t p = 0; p < n; ++p) damped[p][p] += lambda * (a[p][p] + 1e-12);
            const auto step = solve(damped, b);
            std::vector<double> th = theta;
            for (std::size_t p = 0; p < n; ++p) th[p] = std::max(0.0, theta[p] + step[p]);
            const auto s = simulate(base, t, fitted, th, runs, jobs);
            const double nf = cost_fn(s, t);
            if (nf < f) {
                theta = th;
                current = s;
                f = nf;
                lambda = std::max(1e-6, lambda / 3);
                improved = true;
            } else {
                lambda *= 4;
            }
        }
        std::snprintf(line, sizeof line, "iteration %u: sum of squared relative residuals %.3e\n", it + 1, f);
        text += line;
        if (!improved || f < 1e-8) break;
    }
    text += "fitted costs:\n";
    for (std::size_t k = 0; k < fitted.size(); ++k) {
        std::snprintf(line, sizeof line, "  %-34s %9.1f (was %.1f)\n", std::string(model::cost_name(fitted[k])).c_str(),
                      theta[k], base.profile.costs.entry(fitted[k]).cycles);
        text += line;
    }
    text += "residuals (mean of " + std::to_string(runs) + " simulated runs vs training mean):\n";
    for (std::size_t i = 0; i < current.size(); ++i) {
        std::snprintf(line, sizeof line, "  %-7s %-9s simulated %9.2f  training %9.2f  residual %+7.2f%%\n",
                      t.columns[i].apic.c_str(), t.columns[i].ipiv ? "w/ IPIv" : "w/o IPIv", current[i],
                      t.columns[i].mean, 100.0 * (current[i] - t.columns[i].mean) / t.columns[i].mean);
        text += line;
    }
    // The profile file with the fitted values.
    std::ifstream in(base.profile.file);
    nlohmann::json j = nlohmann::json::parse(in);
    for (auto& e : j["costs"])
        for (std::size_t k = 0; k < fitted.size(); ++k)
            if (e["name"] == std::string(model::cost_name(fitted[k])))
                e["cycles"] = std::round(theta[k] * 10.0) / 10.0;
    CalibrationReport rep;
    rep.profile_json = j;
    rep.text = text;
    return rep;
}

}  // namespace vtx::sim
