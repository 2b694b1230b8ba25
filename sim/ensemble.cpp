#include "sim/ensemble.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "model/error.hpp"
#include "model/rng.hpp"
#include "sim/calibrate.hpp"

namespace vtx::sim {
namespace {

// Two standard errors of a training column's mean, relative to it: the acceptance band.
double tolerance(const TrainingSet::Column& col) {
    if (col.runs.size() < 2 || col.mean == 0) return 0.01;  // no spread published: 1 %
    return 2.0 * sample_stddev(col.runs) / std::sqrt(static_cast<double>(col.runs.size())) / col.mean;
}

// Member k's generator: independent of how many members the ensemble has.
model::SplitMix64 member_stream(std::uint64_t seed, unsigned k) {
    model::SplitMix64 mix(seed ^ (0xD1B54A32D192ED03ull * (k + 1)));
    return model::SplitMix64(mix.next_u64());
}

[[noreturn]] void bad(const std::string& file, const std::string& what) {
    throw model::ConfigError("ensemble " + display_path(file) + ": " + what);
}

}  // namespace

std::string profile_digest(const model::CpuProfile& profile) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&h](const std::string& s) {
        for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
        h = (h ^ 0xFF) * 0x100000001b3ull;  // a separator
    };
    for (std::size_t i = 0; i < model::kCostCount; ++i) {
        const auto c = static_cast<model::Cost>(i);
        const model::CostEntry& e = profile.costs.entry(c);
        char value[64];
        std::snprintf(value, sizeof value, "%.17g", e.cycles);
        mix(std::string(model::cost_name(c)));
        mix(value);
        mix(std::string(model::provenance_name(e.provenance)));
    }
    char hex[20];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return hex;
}

std::string default_ensemble_file(const model::CpuProfile& profile) {
    return (std::filesystem::path(profile_dir()) / "ensembles" / (profile.name + ".json")).string();
}

unsigned Ensemble::accepted() const {
    return static_cast<unsigned>(std::count_if(members.begin(), members.end(), [](const auto& m) { return m.accepted; }));
}

nlohmann::json Ensemble::to_json() const {
    nlohmann::json ms = nlohmann::json::array();
    for (const EnsembleMember& m : members) {
        nlohmann::json costs = nlohmann::json::object();
        for (const auto& [name, v] : m.costs) costs[name] = std::round(v * 10.0) / 10.0;
        nlohmann::json res = nlohmann::json::array();
        for (double r : m.residual_percent) res.push_back(std::round(r * 1000.0) / 1000.0);
        ms.push_back({{"member", m.index}, {"accepted", m.accepted}, {"residual_percent", res}, {"costs", costs}});
    }
    nlohmann::json tol = nlohmann::json::array();
    for (double t : tolerance_percent) tol.push_back(std::round(t * 1000.0) / 1000.0);
    return {{"what", "vtxsim calibration ensemble: assumed costs drawn within their ranges, fitted costs refit"},
            {"profile", profile},
            {"profile_digest", profile_digest},
            {"training", training},
            {"seed", seed},
            {"runs", runs},
            {"iterations", iterations},
            {"quantum", quantum_cycles},
            {"acceptance", "every training mean reproduced within two standard errors of the published runs"},
            {"tolerance_percent", tol},
            {"members", ms}};
}

Ensemble Ensemble::load(const std::string& path, const model::CpuProfile& profile) {
    const nlohmann::json j = read_json_file(path, "ensemble " + display_path(path),
                                            "(make one with `vtxsim calibrate --ensemble N --out FILE`)");
    Ensemble en;
    en.file = path;
    try {
        if (!j.is_object() || !j.contains("members") || !j["members"].is_array())
            bad(path, "top level must be an object with an array \"members\"");
        en.profile = j.at("profile").get<std::string>();
        en.profile_digest = j.at("profile_digest").get<std::string>();
        if (en.profile != profile.name)
            bad(path, "made for profile \"" + en.profile + "\", not \"" + profile.name + "\"");
        if (en.profile_digest != vtx::sim::profile_digest(profile))
            bad(path, "made from another version of profile \"" + profile.name +
                          "\" (its costs have changed since): make it again with `vtxsim calibrate --ensemble N`");
        en.training = j.at("training").get<std::string>();
        en.seed = j.at("seed").get<std::uint64_t>();
        en.runs = j.at("runs").get<unsigned>();
        en.iterations = j.at("iterations").get<unsigned>();
        en.quantum_cycles = j.at("quantum").get<double>();
        en.tolerance_percent = j.at("tolerance_percent").get<std::vector<double>>();
        for (const auto& m : j["members"]) {
            EnsembleMember em;
            em.index = m.at("member").get<unsigned>();
            em.accepted = m.at("accepted").get<bool>();
            em.residual_percent = m.at("residual_percent").get<std::vector<double>>();
            if (em.residual_percent.size() != en.tolerance_percent.size())
                bad(path, "member " + std::to_string(em.index) + ": a residual per training column expected");
            for (const auto& [name, v] : m.at("costs").items()) {
                if (!model::find_cost(name)) bad(path, "member " + std::to_string(em.index) + ": unknown cost \"" + name + "\"");
                if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
                    bad(path, "member " + std::to_string(em.index) + ": cost \"" + name + "\" must be a number >= 0");
                em.costs[name] = v.get<double>();
            }
            en.members.push_back(std::move(em));
        }
    } catch (const nlohmann::json::exception& e) {
        bad(path, std::string("missing or mistyped field: ") + e.what());
    }
    if (en.accepted() == 0) bad(path, "no accepted member");
    return en;
}

Ensemble make_ensemble(const RunSpec& base, const TrainingSet& training, unsigned members, std::uint64_t seed,
                       unsigned runs, unsigned iterations, unsigned jobs,
                       const std::function<void(const EnsembleMember&)>& progress) {
    Ensemble en;
    en.profile = base.profile.name;
    en.profile_digest = vtx::sim::profile_digest(base.profile);
    en.training = training.source;  // what the training means are (their citation)
    en.seed = seed;
    en.runs = runs;
    en.iterations = iterations;
    en.quantum_cycles = base.quantum_cycles;
    std::vector<double> tol;
    for (const auto& col : training.columns) {
        tol.push_back(tolerance(col));
        en.tolerance_percent.push_back(100.0 * tol.back());
    }
    unsigned drawn = 0;
    for (std::size_t i = 0; i < model::kCostCount; ++i)
        if (base.profile.costs.entry(static_cast<model::Cost>(i)).provenance == model::Provenance::Assumed) {
            const auto [lo, hi] = base.profile.plausible_range(static_cast<model::Cost>(i));
            drawn += hi > lo;
        }
    if (drawn == 0)
        throw model::ConfigError("calibrate --ensemble: profile \"" + base.profile.name +
                                 "\" states no range for its assumed costs (`assumed_range` or a cost's `range`)");
    for (unsigned k = 0; k < members; ++k) {
        RunSpec b = base;
        EnsembleMember m;
        m.index = k + 1;
        model::SplitMix64 g = member_stream(seed, k);
        for (std::size_t i = 0; i < model::kCostCount; ++i) {
            const auto c = static_cast<model::Cost>(i);
            if (base.profile.costs.entry(c).provenance != model::Provenance::Assumed) continue;
            const auto [lo, hi] = base.profile.plausible_range(c);
            const double u = static_cast<double>(g.next_u64() >> 11) * 0x1.0p-53;  // one draw per assumed cost, always
            if (!(hi > lo)) continue;
            const double v = lo + u * (hi - lo);
            b.profile.costs.set_cycles(c, v);
            m.costs[std::string(model::cost_name(c))] = v;
        }
        const FitResult fit = fit_costs(b, training, runs, iterations, jobs);
        for (std::size_t f = 0; f < fit.fitted.size(); ++f) m.costs[std::string(model::cost_name(fit.fitted[f]))] = fit.values[f];
        m.accepted = true;
        for (std::size_t i = 0; i < fit.residuals.size(); ++i) {
            m.residual_percent.push_back(100.0 * fit.residuals[i]);
            m.accepted = m.accepted && std::fabs(fit.residuals[i]) <= tol[i];
        }
        if (progress) progress(m);
        en.members.push_back(std::move(m));
    }
    return en;
}

Intervals ensemble_intervals(const Ensemble& ensemble, const RunSpec& unset, const std::vector<std::string>& sets,
                             const std::function<std::vector<double>(const RunSpec&)>& evaluate) {
    Intervals out;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (const EnsembleMember& m : ensemble.members) {
        if (!m.accepted) continue;
        RunSpec b = unset;
        for (const auto& [name, v] : m.costs) b.profile.costs.set_cycles(*model::find_cost(name), v);
        apply_sets(sets, b);
        const std::vector<double> values = evaluate(b);
        if (out.members == 0) {
            out.low.assign(values.size(), nan);
            out.high.assign(values.size(), nan);
        }
        for (std::size_t i = 0; i < values.size() && i < out.low.size(); ++i) {
            if (std::isnan(values[i])) continue;
            out.low[i] = std::isnan(out.low[i]) ? values[i] : std::min(out.low[i], values[i]);
            out.high[i] = std::isnan(out.high[i]) ? values[i] : std::max(out.high[i], values[i]);
        }
        ++out.members;
    }
    return out;
}

}  // namespace vtx::sim
