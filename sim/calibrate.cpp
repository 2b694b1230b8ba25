#include "sim/calibrate.hpp"

#include <cmath>
#include <ctime>
#include <cstdio>
#include <fstream>

#include <Eigen/Dense>

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

std::string identifiability_report(const RunSpec& base, const TrainingSet& t, unsigned runs, unsigned jobs) {
    std::vector<model::Cost> fitted, others;
    for (std::size_t i = 0; i < model::kCostCount; ++i) {
        const auto c = static_cast<model::Cost>(i);
        (base.profile.costs.entry(c).provenance == model::Provenance::Fitted ? fitted : others).push_back(c);
    }
    if (fitted.empty()) throw model::ConfigError("calibrate --report: profile \"" + base.profile.name + "\" marks no cost `fitted`");
    const std::size_t m = t.columns.size();
    const auto at = simulate(base, t, {}, {}, runs, jobs);
    // Elasticity column of one cost: d(mean_i / training_i) per relative change of the cost,
    // by a forward difference of 10 % (at least 50 cycles: past the poll loop's quantization).
    auto column = [&](model::Cost c) {
        const double v = base.profile.costs.entry(c).cycles;
        const double h = std::max(50.0, 0.1 * v);
        const auto s = simulate(base, t, {c}, {v + h}, runs, jobs);
        Eigen::VectorXd col(static_cast<Eigen::Index>(m));
        for (std::size_t i = 0; i < m; ++i)
            col(static_cast<Eigen::Index>(i)) = (s[i] - at[i]) / t.columns[i].mean / h * std::max(v, 1.0);
        return col;
    };
    Eigen::MatrixXd jf(static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(fitted.size()));
    for (std::size_t k = 0; k < fitted.size(); ++k) jf.col(static_cast<Eigen::Index>(k)) = column(fitted[k]);
    const Eigen::JacobiSVD<Eigen::MatrixXd> svd(jf, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const Eigen::VectorXd sv = svd.singularValues();
    std::string out;
    char line[512];
    std::snprintf(line, sizeof line,
                  "identifiability of the %zu fitted costs by the %zu training means (%u runs a configuration):\n",
                  fitted.size(), m, runs);
    out += line;
    out += "elasticities (% change of each mean per % change of each fitted cost):\n";
    std::snprintf(line, sizeof line, "  %-30s", "");
    out += line;
    for (const auto& col : t.columns) {
        std::snprintf(line, sizeof line, " %8s%s", col.apic.c_str(), col.ipiv ? "+IPIv" : "     ");
        out += line;
    }
    out += "\n";
    for (std::size_t k = 0; k < fitted.size(); ++k) {
        std::snprintf(line, sizeof line, "  %-30s", std::string(model::cost_name(fitted[k])).c_str());
        out += line;
        for (std::size_t i = 0; i < m; ++i) {
            std::snprintf(line, sizeof line, " %13.4f", jf(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k)));
            out += line;
        }
        out += "\n";
    }
    out += "singular values:";
    for (Eigen::Index i = 0; i < sv.size(); ++i) {
        std::snprintf(line, sizeof line, " %.4g", sv(i));
        out += line;
    }
    std::snprintf(line, sizeof line, "; condition number %.3g\n", sv(sv.size() - 1) > 0 ? sv(0) / sv(sv.size() - 1) : INFINITY);
    out += line;
    out += "the combination the means determine worst (right singular vector of the smallest):";
    const Eigen::VectorXd weak = svd.matrixV().col(sv.size() - 1);
    for (std::size_t k = 0; k < fitted.size(); ++k) {
        std::snprintf(line, sizeof line, " %+.2f %s", weak(static_cast<Eigen::Index>(k)),
                      std::string(model::cost_name(fitted[k])).c_str());
        out += line;
    }
    out += "\n";
    // What the fit absorbs: for a +10 % error in another cost, the fitted costs' change
    // (in % of their values) that keeps the means (least squares).
    out += "a +10 % error in a cost the fit does not set would move the fitted costs by (% of their values):\n";
    std::snprintf(line, sizeof line, "  %-34s", "");
    out += line;
    for (auto c : fitted) {
        std::snprintf(line, sizeof line, " %22s", std::string(model::cost_name(c)).c_str());
        out += line;
    }
    out += "\n";
    for (auto c : others) {
        const Eigen::VectorXd ja = column(c);
        if (ja.cwiseAbs().maxCoeff() < 1e-4) continue;  // moves no mean
        const Eigen::VectorXd shift = -svd.solve(ja * 0.1) * 100.0;
        std::snprintf(line, sizeof line, "  %-34s", std::string(model::cost_name(c)).c_str());
        out += line;
        for (Eigen::Index k = 0; k < shift.size(); ++k) {
            std::snprintf(line, sizeof line, " %+21.1f%%", shift(k));
            out += line;
        }
        out += "\n";
    }
    return out;
}

FitResult fit_costs(const RunSpec& base, const TrainingSet& t, unsigned runs, unsigned iterations, unsigned jobs) {
    FitResult res;
    std::vector<double>& theta = res.values;
    for (std::size_t i = 0; i < model::kCostCount; ++i) {
        const auto c = static_cast<model::Cost>(i);
        if (base.profile.costs.entry(c).provenance == model::Provenance::Fitted) {
            res.fitted.push_back(c);
            theta.push_back(base.profile.costs.entry(c).cycles);
        }
    }
    const std::vector<model::Cost>& fitted = res.fitted;
    if (fitted.empty()) throw model::ConfigError("calibrate: profile \"" + base.profile.name + "\" marks no cost `fitted`");
    if (fitted.size() > kMaxFittedCosts)
        throw model::ConfigError("calibrate: profile \"" + base.profile.name + "\" marks " +
                                 std::to_string(fitted.size()) + " costs `fitted`; at most " +
                                 std::to_string(kMaxFittedCosts) + " may be");
    std::string& text = res.text;
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
    res.simulated = current;
    for (std::size_t i = 0; i < current.size(); ++i)
        res.residuals.push_back((current[i] - t.columns[i].mean) / t.columns[i].mean);
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
                      t.columns[i].mean, 100.0 * res.residuals[i]);
        text += line;
    }
    return res;
}

CalibrationReport calibrate(const RunSpec& base, const TrainingSet& t, unsigned runs, unsigned iterations,
                            unsigned jobs) {
    const FitResult fit = fit_costs(base, t, runs, iterations, jobs);
    const std::vector<model::Cost>& fitted = fit.fitted;
    const std::vector<double>& theta = fit.values;
    const std::string& text = fit.text;
    // The profile file with the fitted values.
    std::ifstream in(base.profile.file);
    nlohmann::json j = nlohmann::json::parse(in);
    // Today's date (UTC) for the history of a changed value.
    char today[16];
    const std::time_t now = std::time(nullptr);
    std::strftime(today, sizeof today, "%Y-%m-%d", std::gmtime(&now));
    for (auto& e : j["costs"])
        for (std::size_t k = 0; k < fitted.size(); ++k)
            if (e["name"] == std::string(model::cost_name(fitted[k]))) {
                const double before = e["cycles"].get<double>();
                const double after = std::round(theta[k] * 10.0) / 10.0;
                if (after == before) continue;
                e["cycles"] = after;
                if (!e.contains("history")) e["history"] = nlohmann::json::array();
                e["history"].push_back({{"cycles", before},
                                        {"date", today},
                                        {"reason", "vtxsim calibrate against " + display_path(t.source) + " (" +
                                                       std::to_string(runs) + " runs a configuration, seed " +
                                                       std::to_string(base.seed) + ")"}});
            }
    CalibrationReport rep;
    rep.profile_json = j;
    rep.text = text;
    return rep;
}

}  // namespace vtx::sim
