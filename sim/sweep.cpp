#include "sim/sweep.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "model/error.hpp"
#include "model/output.hpp"
#include "model/parse.hpp"
#include "sim/options.hpp"
#include "workloads/workload.hpp"

namespace vtx::sim {

namespace fs = std::filesystem;

namespace {

// FNV-1a, 64 bits: a hash that is the same on every standard library.
std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 0xcbf29ce484222325ull) {
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

bool is_set_key(const std::string& key) {
    return key.rfind("cost.", 0) == 0 || key.rfind("kvm.", 0) == 0 || key.rfind("workload.", 0) == 0 ||
           key.rfind("vmcs.", 0) == 0;
}

std::string dir_name(const std::string& point_name) {
    std::string d;
    for (char c : point_name) d += c == ',' ? std::string("__") : std::string(1, std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '=' || c == '-' || c == '_' ? c : '_');
    return d.empty() ? "all" : d;
}

nlohmann::json plan_json(const SweepPlan& p) {
    nlohmann::json grid = nlohmann::json::array();
    for (const auto& g : p.grid) grid.push_back({{"key", g.key}, {"values", g.values}});
    return {{"workload", p.workload}, {"grid", grid},         {"runs", p.runs},
            {"seed", p.seed},         {"profile", p.profile}, {"sets", p.sets},
            {"quantum", p.quantum_cycles}};
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string duration_text(double seconds) {
    char buf[32];
    if (seconds >= 3600)
        std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(seconds / 3600), static_cast<int>(seconds / 60) % 60);
    else if (seconds >= 60)
        std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(seconds / 60), static_cast<int>(seconds) % 60);
    else
        std::snprintf(buf, sizeof buf, "%.0fs", seconds);
    return buf;
}

}  // namespace

GridKey parse_grid(const std::string& text) {
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
        throw model::ConfigError("--grid \"" + text + "\": expected KEY=V1,V2,...");
    GridKey g;
    g.key = text.substr(0, eq);
    static const std::set<std::string> kKeys = {"vcpus", "pcpus", "apic", "ipiv", "profile", "quantum"};
    if (!kKeys.count(g.key) && !is_set_key(g.key))
        throw model::ConfigError("--grid \"" + text + "\": unknown key \"" + g.key +
                                 "\" (vcpus, pcpus, apic, ipiv, profile, quantum, or a --set key: cost.NAME, "
                                 "kvm.NAME, workload.NAME, vmcs.FIELD)");
    std::stringstream ss(text.substr(eq + 1));
    for (std::string v; std::getline(ss, v, ',');) {
        if (v.empty()) throw model::ConfigError("--grid \"" + text + "\": an empty value");
        if (std::find(g.values.begin(), g.values.end(), v) != g.values.end())
            throw model::ConfigError("--grid \"" + text + "\": \"" + v + "\" twice");
        g.values.push_back(v);
    }
    return g;
}

std::vector<SweepPoint> sweep_points(const SweepPlan& plan) {
    std::vector<SweepPoint> points(1);
    for (const GridKey& g : plan.grid) {
        std::vector<SweepPoint> next;
        for (const SweepPoint& p : points)
            for (const std::string& v : g.values) {
                SweepPoint q = p;
                q.values.push_back(v);
                q.name += (q.name.empty() ? "" : ",") + g.key + "=" + v;
                next.push_back(q);
            }
        points.swap(next);
    }
    for (SweepPoint& p : points) p.seed = fnv1a(p.name, fnv1a(std::to_string(plan.seed)));
    return points;
}

std::vector<RunSpec> point_specs(const SweepPlan& plan, const SweepPoint& point) {
    const workloads::WorkloadInfo* info = workloads::find_workload(plan.workload);
    if (!info) throw model::ConfigError("sweep: unknown workload \"" + plan.workload + "\" (see `vtxsim list`)");
    std::string profile = plan.profile;
    for (std::size_t k = 0; k < plan.grid.size(); ++k)
        if (plan.grid[k].key == "profile") profile = point.values[k];
    RunSpec spec;
    spec.profile = load_profile(profile);
    spec.kvm.enable_ipiv = spec.profile.features.ipi_virtualization;
    spec.workload = plan.workload;
    spec.config.vcpus = info->default_vcpus;
    spec.quantum_cycles = plan.quantum_cycles;
    spec.max_simulated_seconds = plan.max_simulated_seconds;
    std::vector<std::string> sets = plan.sets;
    bool pcpus_given = false;
    for (std::size_t k = 0; k < plan.grid.size(); ++k) {
        const std::string& key = plan.grid[k].key;
        const std::string& v = point.values[k];
        const std::string where = "--grid " + key + ": \"" + v + "\"";
        if (is_set_key(key)) {
            sets.push_back(key + "=" + v);
        } else if (key == "vcpus" || key == "pcpus") {
            const auto n = model::parse_u64(v);
            if (!n || *n < 1 || *n > 4096) throw model::ConfigError(where + " is not a whole number from 1 to 4096");
            (key == "vcpus" ? spec.config.vcpus : spec.config.pcpus) = static_cast<unsigned>(*n);
            pcpus_given = pcpus_given || key == "pcpus";
        } else if (key == "apic") {
            if (v != "xapic" && v != "x2apic") throw model::ConfigError(where + " is not xapic or x2apic");
            spec.config.x2apic = v == "x2apic";
        } else if (key == "ipiv") {
            if (v != "on" && v != "off") throw model::ConfigError(where + " is not on or off");
            sets.push_back(std::string("kvm.enable_ipiv=") + v);
        } else if (key == "quantum") {
            spec.quantum_cycles = parse_quantum(v);
        }
    }
    if (!pcpus_given) spec.config.pcpus = spec.config.vcpus;
    apply_sets(sets, spec);
    if (spec.kvm.enable_ipiv && !spec.profile.features.ipi_virtualization)
        throw model::ConfigError("sweep point " + point.name + ": profile \"" + spec.profile.name +
                                 "\" has no IPI virtualization");
    spec.seed = point.seed;
    spec.stream = plan.workload + "/" + point.name;
    std::vector<RunSpec> specs;
    for (unsigned r = 0; r < plan.runs; ++r) {
        specs.push_back(spec);
        specs.back().run_index = r;
    }
    return specs;
}

bool run_sweep(const SweepPlan& plan, unsigned jobs, bool terminal, std::optional<std::size_t> only_point) {
    const workloads::WorkloadInfo* info = workloads::find_workload(plan.workload);
    if (!info) throw model::ConfigError("sweep: unknown workload \"" + plan.workload + "\" (see `vtxsim list`)");
    std::error_code ec;
    fs::create_directories(fs::path(plan.out_dir) / "points", ec);
    if (ec) throw model::ConfigError("--out " + plan.out_dir + ": cannot create the directory (" + ec.message() + ")");
    const std::string plan_file = (fs::path(plan.out_dir) / "sweep.json").string();
    const std::string plan_text = plan_json(plan).dump(2) + "\n";
    if (fs::exists(plan_file)) {
        if (read_text(plan_file) != plan_text)
            throw model::ConfigError("--out " + plan.out_dir +
                                     ": holds another sweep (its sweep.json differs); resume it with the same "
                                     "options, or use another directory");
    } else {
        model::write_file_atomically(plan_file, plan_text);
    }
    const std::vector<SweepPoint> points = sweep_points(plan);
    std::vector<RunSpec> specs;
    std::vector<std::size_t> point_of;  // spec index -> point index
    std::vector<std::size_t> pending_runs(points.size(), 0);
    SweepProgress progress;
    progress.points_total = points.size();
    if (only_point && *only_point >= points.size())
        throw model::ConfigError("sweep: point " + std::to_string(*only_point) + " of " + std::to_string(points.size()));
    for (std::size_t i = 0; i < points.size(); ++i) {
        if (only_point && i != *only_point) continue;
        const fs::path dir = fs::path(plan.out_dir) / "points" / dir_name(points[i].name);
        if (fs::exists(dir / "results.json")) {
            ++progress.points_skipped;
            continue;
        }
        for (RunSpec& s : point_specs(plan, points[i])) {
            specs.push_back(std::move(s));
            point_of.push_back(i);
            ++pending_runs[i];
        }
    }
    std::vector<std::vector<RunOutcome>> outs(points.size());
    std::vector<std::size_t> got(points.size(), 0);
    for (std::size_t i = 0; i < points.size(); ++i) outs[i].resize(pending_runs[i]);
    const auto start = std::chrono::steady_clock::now();
    std::size_t runs_done = 0;
    bool checks_ok = true;
    auto report = [&](const std::string& finished) {
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double eta = runs_done ? elapsed / runs_done * static_cast<double>(specs.size() - runs_done) : 0;
        const std::size_t done = progress.points_done + progress.points_skipped;
        if (terminal) {
            const int width = 30;
            const int filled = static_cast<int>(width * static_cast<double>(done) / std::max<std::size_t>(1, points.size()));
            std::fprintf(stderr, "\r[%s%s] %zu/%zu points, %zu/%zu runs, ETA %s   ", std::string(filled, '#').c_str(),
                         std::string(width - filled, '.').c_str(), done, points.size(), runs_done, specs.size(),
                         duration_text(eta).c_str());
        } else if (!finished.empty()) {
            std::fprintf(stderr, "sweep: %zu/%zu points (%s), %zu/%zu runs, ETA %s\n", done, points.size(),
                         finished.c_str(), runs_done, specs.size(), duration_text(eta).c_str());
        }
        std::fflush(stderr);
    };
    if (progress.points_skipped)
        std::fprintf(stderr, "sweep: %zu of %zu points have results in %s: skipped\n", progress.points_skipped,
                     points.size(), plan.out_dir.c_str());
    report("");
    run_many(specs, jobs, [&](std::size_t index, const RunOutcome& o) {
        ++runs_done;
        const std::size_t p = point_of[index];
        outs[p][specs[index].run_index] = o;
        if (++got[p] < pending_runs[p]) {
            report("");
            return;
        }
        // The point is complete: its directory, as gem5's m5out (config, stats, results).
        const std::vector<RunOutcome>& po = outs[p];
        const fs::path dir = fs::path(plan.out_dir) / "points" / dir_name(points[p].name);
        fs::create_directories(dir);
        const std::vector<RunSpec> ps = point_specs(plan, points[p]);
        model::write_file_atomically((dir / "config.json").string(), resolved_config(ps[0]).dump(2) + "\n");
        if (po[0].ok) model::write_file_atomically((dir / "stats.txt").string(), po[0].stats_text);
        nlohmann::json runs = nlohmann::json::array();
        std::vector<double> cycles;
        bool ok = true;
        std::map<std::string, double> values;
        for (std::size_t ri = 0; ri < po.size(); ++ri) {
            const RunOutcome& r = po[ri];
            ok = ok && r.ok && r.check_ok;
            if (r.ok) cycles.push_back(r.cycles_per_iteration);
            for (const auto& [k, v] : r.values) values[k] += v / static_cast<double>(po.size());
            runs.push_back({{"run", ri + 1}, {"ok", r.ok && r.check_ok}, {"error", r.error},
                            {"cycles_per_iteration", r.cycles_per_iteration}, {"exits", r.exits}, {"values", r.values},
                            {"check", r.check}});
        }
        checks_ok = checks_ok && ok;
        nlohmann::json keys = nlohmann::json::object();
        for (std::size_t k = 0; k < plan.grid.size(); ++k) keys[plan.grid[k].key] = points[p].values[k];
        const double m = cycles.empty() ? 0 : mean_of(cycles);
        const double sd = cycles.size() > 1 ? sample_stddev(cycles) : 0;
        model::write_file_atomically((dir / "results.json").string(),
                                     nlohmann::json({{"point", keys}, {"name", points[p].name}, {"seed", points[p].seed},
                                                     {"metric", info->metric}, {"mean", m}, {"stddev", sd},
                                                     {"checks_ok", ok}, {"values", values}, {"runs", runs}})
                                             .dump(2) + "\n");
        ++progress.points_done;
        char line[160];
        std::snprintf(line, sizeof line, "%s: mean %.1f, sd %.1f%s", points[p].name.c_str(), m, sd,
                      ok ? "" : ", a check FAILED");
        report(line);
    });
    if (terminal) std::fprintf(stderr, "\n");
    if (only_point) return checks_ok;  // one task of a batch job: `sweep --merge` joins them
    return merge_sweep(plan) && checks_ok;
}

bool merge_sweep(const SweepPlan& plan) {
    const workloads::WorkloadInfo* info = workloads::find_workload(plan.workload);
    if (!info) throw model::ConfigError("sweep: unknown workload \"" + plan.workload + "\"");
    const std::vector<SweepPoint> points = sweep_points(plan);
    bool checks_ok = true;
    std::vector<std::string> missing;
    // The sweep's results, from every point's directory (this run's and earlier ones').
    nlohmann::json all = nlohmann::json::array();
    std::string csv;
    for (const auto& g : plan.grid) csv += g.key + ",";
    csv += "runs,mean,stddev,min,max,checks_ok\n";
    for (const SweepPoint& pt : points) {
        const fs::path file = fs::path(plan.out_dir) / "points" / dir_name(pt.name) / "results.json";
        if (!fs::exists(file)) {
            missing.push_back(pt.name);
            continue;
        }
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(read_text(file.string()));
            (void)j.at("runs"), (void)j.at("mean"), (void)j.at("stddev"), (void)j.at("checks_ok");
        } catch (const nlohmann::json::exception& e) {
            throw model::ConfigError(file.string() + ": not a point's results (" + e.what() +
                                     "); remove it and the sweep runs the point again");
        }
        std::vector<double> cycles;
        for (const auto& r : j["runs"])
            if (r["ok"].get<bool>()) cycles.push_back(r["cycles_per_iteration"].get<double>());
        checks_ok = checks_ok && j["checks_ok"].get<bool>();
        for (const auto& v : pt.values) csv += v + ",";
        char row[160];
        std::snprintf(row, sizeof row, "%zu,%.6f,%.6f,%.6f,%.6f,%s\n", j["runs"].size(), j["mean"].get<double>(),
                      j["stddev"].get<double>(), cycles.empty() ? 0 : *std::min_element(cycles.begin(), cycles.end()),
                      cycles.empty() ? 0 : *std::max_element(cycles.begin(), cycles.end()),
                      j["checks_ok"].get<bool>() ? "true" : "false");
        csv += row;
        nlohmann::json entry = j;
        entry.erase("runs");
        entry["cycles"] = cycles;
        all.push_back(entry);
    }
    model::write_file_atomically((fs::path(plan.out_dir) / "results.csv").string(), csv);
    model::write_file_atomically((fs::path(plan.out_dir) / "results.json").string(),
                                 nlohmann::json({{"sweep", plan_json(plan)}, {"metric", info->metric}, {"points", all},
                                                 {"missing", missing}})
                                         .dump(2) + "\n");
    if (!missing.empty()) {
        std::string list;
        for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        std::fprintf(stderr, "sweep: %zu of %zu points have no results yet: %s\n", missing.size(), points.size(),
                     list.c_str());
        return false;
    }
    return checks_ok;
}

SweepPlan load_sweep_plan(const std::string& dir) {
    const std::string file = (fs::path(dir) / "sweep.json").string();
    if (!fs::exists(file)) throw model::ConfigError(dir + ": no sweep.json (not a sweep directory)");
    try {
        const nlohmann::json j = nlohmann::json::parse(read_text(file));
        SweepPlan p;
        p.workload = j.at("workload");
        for (const auto& g : j.at("grid")) p.grid.push_back({g.at("key"), g.at("values").get<std::vector<std::string>>()});
        p.runs = j.at("runs");
        p.seed = j.at("seed");
        p.profile = j.at("profile");
        p.sets = j.at("sets").get<std::vector<std::string>>();
        p.quantum_cycles = j.at("quantum");
        p.out_dir = dir;
        return p;
    } catch (const nlohmann::json::exception& e) {
        throw model::ConfigError(file + ": " + e.what());
    }
}

std::string emit_slurm(const SweepPlan& plan, const std::string& vtxsim_path, const std::string& time_limit) {
    // The directory and its plan, as `sweep` writes them (an existing one must match).
    std::error_code ec;
    fs::create_directories(fs::path(plan.out_dir) / "slurm", ec);
    if (ec) throw model::ConfigError("--emit-slurm " + plan.out_dir + ": cannot create the directory (" + ec.message() + ")");
    const std::string plan_file = (fs::path(plan.out_dir) / "sweep.json").string();
    const std::string plan_text = plan_json(plan).dump(2) + "\n";
    if (fs::exists(plan_file) && read_text(plan_file) != plan_text)
        throw model::ConfigError("--emit-slurm " + plan.out_dir + ": holds another sweep (its sweep.json differs)");
    model::write_file_atomically(plan_file, plan_text);
    const std::size_t n = sweep_points(plan).size();
    const std::string dir = fs::absolute(plan.out_dir).string();
    std::ostringstream s;
    s << "#!/bin/bash\n"
      << "# vtxsim sweep of " << plan.workload << ": one array task per point (" << n << " points, "
      << plan.runs << " runs each).\n"
      << "# Submit: sbatch " << dir << "/sweep.sbatch    Join the results: vtxsim sweep --merge " << dir << "\n"
      << "#SBATCH --job-name=vtxsim-" << plan.workload << "\n"
      << "#SBATCH --array=0-" << (n - 1) << "\n"
      << "#SBATCH --output=" << dir << "/slurm/%a.out\n"
      << "#SBATCH --cpus-per-task=1\n"
      // SIGTERM to the task a minute before the limit: vtxsim stops its runs and exits; the
      // points already done are on disk (each written whole), and a resubmission skips them.
      << "#SBATCH --signal=TERM@60\n";
    if (!time_limit.empty()) s << "#SBATCH --time=" << time_limit << "\n";
    s << "exec \"" << vtxsim_path << "\" sweep --run-point \"$SLURM_ARRAY_TASK_ID\" --out \"" << dir << "\" --jobs 1\n";
    const std::string script = (fs::path(plan.out_dir) / "sweep.sbatch").string();
    model::write_file_atomically(script, s.str());
    fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
    return script;
}

namespace {
void run_gnuplot(const std::string& script, const std::string& out) {
    FILE* pipe = ::popen("gnuplot 2>&1", "w");
    if (!pipe) throw std::runtime_error("plot: cannot start gnuplot");
    std::fwrite(script.data(), 1, script.size(), pipe);
    const int status = ::pclose(pipe);
    if (status != 0)
        throw std::runtime_error("plot: gnuplot failed (status " + std::to_string(status) +
                                 "); scripts/setup.sh installs it (gnuplot-nox)");
    if (!fs::exists(out) || fs::file_size(out) == 0) throw std::runtime_error("plot: gnuplot wrote no " + out);
}
std::string terminal_for(const std::string& out, int width, int height) {
    const std::string ext = fs::path(out).extension().string();
    if (ext != ".svg" && ext != ".png") throw model::ConfigError("plot: --out " + out + ": .svg or .png");
    const std::string size = std::to_string(width) + "," + std::to_string(height);
    return ext == ".svg" ? "set terminal svg size " + size + " dynamic font 'sans,11'\n"
                         : "set terminal png size " + size + "\n";
}
}  // namespace

void plot_breakdown(const std::string& title,
                    const std::vector<std::pair<std::string, std::map<std::string, double>>>& configs,
                    const std::string& out) {
    constexpr std::size_t kSteps = 12;
    std::map<std::string, double> largest;
    for (const auto& [label, steps] : configs)
        for (const auto& [step, cycles] : steps) largest[step] = std::max(largest[step], cycles);
    std::vector<std::pair<double, std::string>> order;
    for (const auto& [step, cycles] : largest) order.push_back({-cycles, step});
    std::sort(order.begin(), order.end());
    std::vector<std::string> shown;
    for (std::size_t i = 0; i < order.size() && i < kSteps; ++i) shown.push_back(order[i].second);
    auto quote = [](std::string s) {
        for (char& c : s)
            if (c == '"') c = '\'';
        return "\"" + s + "\"";
    };
    std::ostringstream gp;
    gp << terminal_for(out, 1100, 620) << "set output '" << out << "'\n";
    gp << "set title " << quote(title) << " noenhanced\n";
    gp << "set style data histograms\nset style histogram rowstacked\nset style fill solid 0.85 border -1\n";
    gp << "set boxwidth 0.6\nset key outside right top noenhanced font ',9'\nset grid ytics\n";
    gp << "set ylabel 'cycles charged by named steps'\nset yrange [0:*]\nset xtics font ',9'\n";
    // Thirteen distinguishable colours (the default cycle repeats after eight).
    const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                              "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a"};
    for (int i = 0; i < 13; ++i) gp << "set linetype " << i + 1 << " lc rgb '" << kColours[i] << "'\n";
    gp << "$D << EOD\nconfiguration";
    for (const auto& s : shown) gp << " " << quote(s);
    gp << " " << quote("other steps") << "\n";
    for (const auto& [label, steps] : configs) {
        gp << quote(label);
        double other = 0;
        for (const auto& [step, cycles] : steps)
            if (std::find(shown.begin(), shown.end(), step) == shown.end()) other += cycles;
        for (const auto& s : shown) gp << " " << (steps.count(s) ? steps.at(s) : 0.0);
        gp << " " << other << "\n";
    }
    gp << "EOD\nplot for [i=2:" << shown.size() + 2 << "] $D using i:xtic(1) title columnheader(i)\n";
    run_gnuplot(gp.str(), out);
}

void plot_sweep(const std::string& dir_or_file, const std::string& out, const std::string& x_key_arg) {
    std::string file = dir_or_file;
    if (fs::is_directory(file)) file = (fs::path(file) / "results.json").string();
    if (!fs::exists(file)) throw model::ConfigError("plot: " + file + ": no such file (a sweep directory or its results.json)");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text(file));
    } catch (const nlohmann::json::exception& e) {
        throw model::ConfigError("plot: " + file + ": not JSON: " + e.what());
    }
    if (!j.contains("sweep") || !j.contains("points")) throw model::ConfigError("plot: " + file + ": not a sweep's results.json");
    std::vector<std::string> keys;
    for (const auto& g : j["sweep"]["grid"]) keys.push_back(g["key"]);
    auto numeric = [&](const std::string& key) {
        for (const auto& p : j["points"])
            if (!model::parse_finite_double(p["point"][key].get<std::string>())) return false;
        return true;
    };
    std::string x_key = x_key_arg;
    if (x_key.empty())
        for (const auto& k : keys)
            if (numeric(k)) {
                x_key = k;
                break;
            }
    if (x_key.empty()) throw model::ConfigError("plot: no swept key has numbers for an x axis (use --x KEY)");
    if (std::find(keys.begin(), keys.end(), x_key) == keys.end())
        throw model::ConfigError("plot: --x " + x_key + ": not a swept key");
    if (!numeric(x_key)) throw model::ConfigError("plot: --x " + x_key + ": its values are not all numbers");
    const std::string ext = fs::path(out).extension().string();
    if (ext != ".svg" && ext != ".png") throw model::ConfigError("plot: --out " + out + ": .svg or .png");
    // Series: one per combination of the other keys, points sorted by x.
    std::map<std::string, std::vector<std::array<double, 3>>> series;
    for (const auto& p : j["points"]) {
        std::string label;
        for (const auto& k : keys)
            if (k != x_key) label += (label.empty() ? "" : " ") + k + "=" + p["point"][k].get<std::string>();
        if (label.empty()) label = j["sweep"]["workload"].get<std::string>();
        series[label].push_back({*model::parse_finite_double(p["point"][x_key].get<std::string>()),
                                 p["mean"].get<double>(), p["stddev"].get<double>()});
    }
    std::ostringstream gp;
    gp << (ext == ".svg" ? "set terminal svg size 900,560 dynamic font 'sans,11'\n" : "set terminal png size 900,560\n");
    gp << "set output '" << out << "'\n";
    gp << "set title \"" << j["sweep"]["workload"].get<std::string>() << ", " << j["sweep"]["runs"].get<unsigned>()
       << " runs a point (error bars: sample standard deviation)\\n" << j["metric"].get<std::string>()
       << "\" noenhanced font ',10'\n";
    gp << "set xlabel '" << x_key << "' noenhanced\nset ylabel 'simulated cycles'\n";
    double xmin = 0, xmax = 0;
    bool first = true;
    for (const auto& [label, pts] : series)
        for (const auto& p : pts) {
            xmin = first ? p[0] : std::min(xmin, p[0]);
            xmax = first ? p[0] : std::max(xmax, p[0]);
            first = false;
        }
    if (xmin > 0 && xmax / xmin >= 64) gp << "set logscale x 2\n";  // VM sizes: 2 .. 4096
    gp << "set key outside right top noenhanced\nset grid\nset autoscale xfix\nset offsets graph 0.05, graph 0.05, graph 0.1, 0\n";
    gp << "set yrange [0:*]\n";
    std::size_t i = 0;
    for (auto& [label, pts] : series) {
        std::sort(pts.begin(), pts.end());
        gp << "$S" << i++ << " << EOD\n";
        for (const auto& p : pts) gp << p[0] << " " << p[1] << " " << p[2] << "\n";
        gp << "EOD\n";
    }
    gp << "plot ";
    i = 0;
    for (const auto& [label, pts] : series) {
        gp << (i ? ", " : "") << "$S" << i << " using 1:2:3 with yerrorlines title '" << label << "'";
        ++i;
    }
    gp << "\n";
    run_gnuplot(gp.str(), out);
}

}  // namespace vtx::sim
