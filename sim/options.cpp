#include "sim/options.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/error.hpp"
#include "model/parse.hpp"
#include "vmcs/fields.hpp"

#ifndef VTX_SOURCE_DIR_DEFAULT
#define VTX_SOURCE_DIR_DEFAULT "."
#endif

namespace vtx::sim {

namespace fs = std::filesystem;

std::string profile_dir() {
    if (const char* env = std::getenv("VTX_PROFILE_DIR")) return env;
    const fs::path compiled = fs::path(VTX_SOURCE_DIR_DEFAULT) / "profiles";
    if (fs::is_directory(compiled)) return compiled.string();
    return "profiles";
}

std::string display_path(const std::string& path) {
    std::error_code ec;
    const fs::path dir = fs::weakly_canonical(profile_dir(), ec);
    const fs::path p = fs::weakly_canonical(path, ec);
    if (ec) return path;
    const fs::path rel = p.lexically_relative(dir);
    if (rel.empty() || *rel.begin() == "..") return path;
    return (fs::path("profiles") / rel).string();
}

std::vector<std::string> profile_names() {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(profile_dir(), ec))
        if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
    std::sort(names.begin(), names.end());
    return names;
}

model::CpuProfile load_profile(const std::string& name_or_file) {
    const bool is_file = name_or_file.find('/') != std::string::npos ||
                         (name_or_file.size() > 5 && name_or_file.substr(name_or_file.size() - 5) == ".json");
    if (is_file)
        return model::CpuProfile::load(name_or_file);
    const fs::path p = fs::path(profile_dir()) / (name_or_file + ".json");
    if (!fs::exists(p)) {
        std::string known;
        for (const auto& n : profile_names()) known += (known.empty() ? "" : ", ") + n;
        throw model::ConfigError("--profile: no profile \"" + name_or_file + "\" in " + profile_dir() +
                                 " (known: " + known + ")");
    }
    return model::CpuProfile::load(p.string());
}

void apply_sets(const std::vector<std::string>& sets, RunSpec& spec) {
    for (const auto& item : sets) {
        const auto eq = item.find('=');
        if (eq == std::string::npos || eq == 0)
            throw model::ConfigError("--set \"" + item + "\": expected KEY=VALUE");
        const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
        const auto dot = key.find('.');
        const std::string scope = key.substr(0, dot == std::string::npos ? key.size() : dot);
        const std::string name = dot == std::string::npos ? "" : key.substr(dot + 1);
        const std::string where = "--set " + item;
        if (scope == "cost" && !name.empty()) {
            spec.profile.override_cost(name, value, where);
        } else if (scope == "kvm" && !name.empty()) {
            spec.kvm.set(name, value, where);
        } else if (scope == "vmcs" && !name.empty()) {
            const auto field = vmcs::find_field_by_name(name);
            if (!field) throw model::ConfigError(where + ": unknown VMCS field \"" + name + "\"");
            const auto v = model::parse_u64(value, 0);
            if (!v) throw model::ConfigError(where + ": VMCS value \"" + value + "\" is not an integer");
            spec.vmcs_overrides.emplace_back(*field, *v);
        } else if (scope == "workload" && name == "goal") {
            const auto g = model::parse_u64(value);
            if (!g || *g == 0) throw model::ConfigError(where + ": goal must be a positive integer (TSC ticks)");
            spec.config.goal = *g;
        } else if (scope == "workload" && !name.empty()) {
            spec.config.params[name] = value;
        } else {
            throw model::ConfigError(where + ": unknown key \"" + key +
                                     "\" (keys are cost.NAME, kvm.NAME, vmcs.FIELD, workload.NAME; see `vtxsim list`)");
        }
    }
}

std::string default_training_file() {
    return (fs::path(profile_dir()) / "training" / "kvm-ipiv-cover-letter.json").string();
}

nlohmann::json read_json_file(const std::string& path, const std::string& label, const std::string& hint) {
    std::ifstream in(path);
    if (!in) throw model::ConfigError(label + ": cannot open file" + (hint.empty() ? "" : " " + hint));
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {  // a syntax error, or a number out of range
        throw model::ConfigError(label + ": not valid JSON: " + e.what());
    }
}

TrainingSet load_training(const std::string& path) {
    const nlohmann::json j = read_json_file(path, "training file " + path);
    TrainingSet t;
    try {
        t.source = j.at("source").get<std::string>();
        for (const auto& c : j.at("columns")) {
            TrainingSet::Column col;
            col.apic = c.at("apic").get<std::string>();
            if (col.apic != "xapic" && col.apic != "x2apic")
                throw model::ConfigError("training file " + path + ": apic must be xapic or x2apic");
            col.ipiv = c.at("ipiv").get<bool>();
            col.runs = c.at("runs").get<std::vector<double>>();
            if (col.runs.empty()) throw model::ConfigError("training file " + path + ": a column has no runs");
            col.mean = mean_of(col.runs);
            t.columns.push_back(col);
        }
        if (j.contains("setup")) {
            for (const auto& [key, value] : j.at("setup").items()) {
                if (key.rfind("kvm.", 0) != 0 || !value.is_string())
                    throw model::ConfigError("training file " + path + ": setup: \"" + key +
                                             "\" must be a kvm.NAME knob with a string value");
                t.setup.push_back(key + "=" + value.get<std::string>());
            }
        }
    } catch (const nlohmann::json::exception& e) {
        throw model::ConfigError("training file " + path + ": " + e.what());
    }
    return t;
}

double mean_of(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / static_cast<double>(v.size());
}

double sample_stddev(const std::vector<double>& v) {
    if (v.size() < 2) return 0;
    const double m = mean_of(v);
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::string format_cycles(double cycles) {
    std::ostringstream os;
    os << cycles;
    return os.str();
}

// --quantum CYCLES: a whole number of cycles, 0 (exact mode) up to kMaxQuantumCycles.
constexpr double kMaxQuantumCycles = 1e9;
double parse_quantum(const std::string& text) {
    const auto q = model::parse_finite_double(text);
    if (!q || *q < 0 || *q > kMaxQuantumCycles || *q != std::floor(*q))
        throw model::ConfigError("--quantum: \"" + text + "\" is not a whole number of cycles from 0 (exact mode) to " +
                                 format_cycles(kMaxQuantumCycles));
    return *q;
}

nlohmann::json resolved_config(const RunSpec& s) {
    nlohmann::json costs = nlohmann::json::object();
    for (std::size_t i = 0; i < model::kCostCount; ++i) {
        const auto c = static_cast<model::Cost>(i);
        costs[std::string(model::cost_name(c))] = s.profile.costs.entry(c).cycles;
    }
    nlohmann::json kvm = nlohmann::json::object();
    for (const auto& k : s.kvm.describe()) kvm[k[0]] = k[1];
    return {{"profile", s.profile.name},
            {"profile_file", display_path(s.profile.file)},
            {"core_ghz", s.profile.core_ghz},
            {"workload", s.workload},
            {"apic", s.config.x2apic ? "x2apic" : "xapic"},
            {"vcpus", s.config.vcpus},
            {"pcpus", s.config.pcpus},
            {"goal", s.config.goal},
            {"seed", s.seed},
            {"quantum", s.quantum_cycles},
            {"knobs", kvm},
            {"costs", costs}};
}

}  // namespace vtx::sim
