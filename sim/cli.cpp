#include "sim/cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "model/output.hpp"
#include "model/parse.hpp"
#include "sim/bench.hpp"
#include "sim/calibrate.hpp"
#include "sim/ensemble.hpp"
#include "sim/validate.hpp"
#include "sim/experiment.hpp"
#include "sim/options.hpp"
#include "sim/scenario_file.hpp"
#include "sim/sweep.hpp"
#include "workloads/workload.hpp"

namespace po = boost::program_options;

namespace vtx::sim {
namespace {

struct Subcommand {
    const char* name;
    const char* summary;
};

const std::vector<Subcommand> kSubcommands = {
    {"run", "run one workload (e.g. `vtxsim run ipi --apic x2apic --ipiv on`)"},
    {"compare", "reproduce the IPIv cover-letter table (`vtxsim compare ipi --runs 20`)"},
    {"list", "list workloads, profiles, VMM knobs and cost names"},
    {"calibrate", "fit the profile's `fitted` costs to the training measurements"},
    {"validate", "the model against published measurements no cost was fitted to"},
    {"bench", "measure simulator speed (host ns per simulated IPI round trip)"},
    {"check", "run scenario files and check their expectations (docs/scenarios.md)"},
    {"explain", "a scenario step by step: each microcode and VMM step, the state it changed, subtotals"},
    {"sweep", "run a grid of configurations (`--grid KEY=V1,V2`), resumable, with progress"},
    {"plot", "plot a sweep's results (gnuplot: SVG or PNG)"},
};

void print_help(std::ostream& os) {
    os << "vtxsim - cycle-approximate simulator of Intel VT-x logical processors, local APICs\n"
          "and a KVM-like VMM (IPI virtualization, posted interrupts, APIC virtualization)\n\n"
          "usage: vtxsim <subcommand> [options]\n       vtxsim <subcommand> --help\n\n"
          "subcommands:\n";
    for (const auto& s : kSubcommands) {
        std::string n = s.name;
        os << "  " << n << std::string(12 - n.size(), ' ') << s.summary << "\n";
    }
}


// The time mode, for report headers: exact mode (the reference) is not marked.
std::string time_mode_note(double quantum) {
    return quantum > 0 ? "; decoupled, quantum " + format_cycles(quantum) + " cycles" : "";
}


// Options shared by the simulation subcommands.
struct Common {
    std::string profile = "spr";
    std::vector<std::string> sets;
    std::uint64_t seed = 1;
    unsigned runs = 1;
    unsigned jobs = 2;
    std::string seed_text, runs_text, jobs_text;  // as given: checked by parse_count
    std::string max_sim_time = "60", max_host_time = "0";
    std::string json, csv, config, stats;
    bool trace = false;
    std::string debug;
    std::string quantum;
    bool quantum_given = false;  // else kDefaultQuantumCycles
};

void add_common(po::options_description& d, Common& c, unsigned default_runs) {
    c.runs = default_runs;
    d.add_options()
        ("profile", po::value(&c.profile)->default_value(c.profile), "CPU profile: a name in profiles/ or a JSON file")
        ("set", po::value(&c.sets)->composing(), "KEY=VALUE: cost.NAME, kvm.NAME, vmcs.FIELD or workload.NAME (repeatable)")
        ("seed", po::value(&c.seed_text)->default_value("1"), "seed of the per-run variation")
        ("runs", po::value(&c.runs_text)->default_value(std::to_string(default_runs)), "runs per configuration")
        ("jobs", po::value(&c.jobs_text)->default_value("2"), "simulations in parallel (processes)")
        ("json", po::value(&c.json), "write results as JSON to FILE")
        ("csv", po::value(&c.csv), "write per-run results as CSV to FILE")
        ("stats", po::value(&c.stats), "write run 1's statistics (gem5 stats.txt style) to FILE")
        ("config", po::value(&c.config), "read these options (key = value lines) from FILE")
        ("trace", po::bool_switch(&c.trace), "print every microcode step and VMM path (cycle, cpu, mode, step, section)")
        ("debug", po::value(&c.debug), "debug flags, comma separated: vmx,pi,apic,kvm,guest,mem")
        ("max-sim-time", po::value(&c.max_sim_time)->default_value(c.max_sim_time),
         "simulated seconds a run may take before it is stopped as an error")
        ("max-host-time", po::value(&c.max_host_time)->default_value(c.max_host_time),
         "host seconds a run may take before it is stopped (0: no limit)")
        ("quantum", po::value(&c.quantum)->notifier([&c](const std::string&) { c.quantum_given = true; }),
         ("time mode: 0 = exact (synchronize before every observable action), N = decoupled, a "
          "processor runs up to N cycles ahead (default " + format_cycles(kDefaultQuantumCycles) + ")").c_str());
}

// Parses a subcommand's options (command line, then --config FILE with the same keys).
// Unknown options and keys are errors (exit 2 by the caller).
po::variables_map parse(const std::vector<std::string>& args, po::options_description& desc,
                        po::positional_options_description* pos, Common* common) {
    po::variables_map vm;
    po::command_line_parser parser(args);
    parser.options(desc);
    if (pos) parser.positional(*pos);
    po::store(parser.run(), vm);
    if (common && vm.count("config")) {
        const std::string file = vm["config"].as<std::string>();
        std::ifstream in(file);
        if (!in) throw model::ConfigError("--config " + file + ": cannot open file");
        try {
            po::store(po::parse_config_file(in, desc, false), vm);
        } catch (const po::error& e) {
            throw model::ConfigError("--config " + file + ": " + e.what());
        }
    }
    po::notify(vm);
    return vm;
}

// Options a subcommand shares with the others but does not use: refused, never ignored.
void refuse_unused(const po::variables_map& vm, const char* subcommand, std::initializer_list<const char*> names) {
    for (const char* n : names)
        if (vm.count(n) && !vm[n].defaulted())
            throw model::ConfigError(std::string("--") + n + ": `vtxsim " + subcommand + "` does not use it");
}

// A whole number given on the command line or in a config file, within the option's bounds
// (a "-1" would otherwise wrap to a huge unsigned value).
std::uint64_t parse_count(const char* option, const std::string& text, std::uint64_t min, std::uint64_t max) {
    const auto n = model::parse_u64(text);
    if (!n || *n < min || *n > max)
        throw model::ConfigError(std::string("--") + option + ": \"" + text + "\" is not a whole number from " +
                                 std::to_string(min) + " to " + std::to_string(max));
    return *n;
}
constexpr std::uint64_t kMaxRuns = 100000, kMaxJobs = 1024, kMaxCpus = 4096;
constexpr double kMaxSimSeconds = 3600, kMaxHostSeconds = 7 * 24 * 3600;

// A number of seconds within the option's bounds.
double parse_seconds(const char* option, const std::string& text, double min, double max) {
    const auto v = model::parse_finite_double(text);
    if (!v || *v < min || *v > max)
        throw model::ConfigError(std::string("--") + option + ": \"" + text + "\" is not a number of seconds from " +
                                 format_cycles(min) + " to " + format_cycles(max));
    return *v;
}

RunSpec base_spec(Common& c) {
    c.seed = parse_count("seed", c.seed_text, 0, ~std::uint64_t{0});
    c.runs = static_cast<unsigned>(parse_count("runs", c.runs_text, 1, kMaxRuns));
    c.jobs = static_cast<unsigned>(parse_count("jobs", c.jobs_text, 1, kMaxJobs));
    const double max_sim = parse_seconds("max-sim-time", c.max_sim_time, 1e-9, kMaxSimSeconds);
    const double max_host = parse_seconds("max-host-time", c.max_host_time, 0, kMaxHostSeconds);
    RunSpec spec;
    spec.profile = load_profile(c.profile);
    spec.kvm.enable_ipiv = spec.profile.features.ipi_virtualization;
    spec.seed = c.seed;
    spec.max_simulated_seconds = max_sim;
    spec.max_host_seconds = max_host;
    spec.trace = c.trace;
    std::stringstream ss(c.debug);
    for (std::string f; std::getline(ss, f, ',');)
        if (!f.empty()) {
            static const std::vector<std::string> kFlags = {"vmx", "pi", "apic", "kvm", "guest", "mem"};
            if (std::find(kFlags.begin(), kFlags.end(), f) == kFlags.end())
                throw model::ConfigError("--debug: unknown flag \"" + f + "\" (known: vmx, pi, apic, kvm, guest, mem)");
            spec.debug_flags.push_back(f);
        }
    if (c.quantum_given) spec.quantum_cycles = parse_quantum(c.quantum);
    return spec;
}

void write_file(const std::string& path, const std::string& text) { model::write_file_atomically(path, text); }

std::vector<double> cycles_of(const std::vector<RunOutcome>& outs) {
    std::vector<double> v;
    for (const auto& o : outs) v.push_back(o.cycles_per_iteration);
    return v;
}

void check_outcomes(const std::vector<RunOutcome>& outs) {
    for (std::size_t i = 0; i < outs.size(); ++i) {
        if (outs[i].ok) continue;
        if (outs[i].bad_input) throw model::ConfigError(outs[i].error);
        throw cpu::SimulationError("run " + std::to_string(i + 1) + ": " + outs[i].error);
    }
}

// ---------------------------------------------------------------------------- uncertainty
// --uncertainty [FILE]: the calibration ensemble (sim/ensemble.hpp), the profile's shipped
// one without FILE.
void add_uncertainty(po::options_description& d, std::string& file) {
    d.add_options()("uncertainty", po::value(&file)->implicit_value("default"),
                    "also run under every accepted member of a calibration ensemble (FILE; without FILE the\n"
                    "profile's, profiles/ensembles/PROFILE.json) and report each result's range over them");
}

Ensemble load_uncertainty(const std::string& option, const RunSpec& unset) {
    return Ensemble::load(option == "default" ? default_ensemble_file(unset.profile) : option, unset.profile);
}

std::string uncertainty_heading(const Ensemble& en, const Intervals& iv) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "range over the calibration ensemble (%s: %u accepted members; assumed costs drawn within their "
                  "ranges, fitted costs refit):",
                  display_path(en.file).c_str(), iv.members);
    return line;
}

// The four configurations' means and the two reductions (percent, as printed: negative is
// a saving) of a comparison's outcomes, `runs` a configuration; NaN where refused.
std::vector<double> comparison_values(const std::vector<RunOutcome>& outs, unsigned runs) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<double> v(6, nan);
    for (int k = 0; k < 4; ++k) {
        std::vector<double> col;
        bool refused = false;
        for (unsigned r = 0; r < runs; ++r) {
            const RunOutcome& o = outs[k * runs + r];
            if (!o.ok) {
                if (!o.bad_input) throw cpu::SimulationError("ensemble run: " + o.error);
                refused = true;
                break;
            }
            col.push_back(o.cycles_per_iteration);
        }
        if (!refused) v[k] = mean_of(col);
    }
    for (int a = 0; a < 2; ++a)
        if (!std::isnan(v[2 * a]) && !std::isnan(v[2 * a + 1]) && v[2 * a] != 0)
            v[4 + a] = 100.0 * (v[2 * a + 1] - v[2 * a]) / v[2 * a];
    return v;
}

// Prints the ensemble's ranges under a comparison table; returns them as JSON.
nlohmann::json print_comparison_intervals(const Ensemble& en, const Intervals& iv) {
    std::printf("%s\n", uncertainty_heading(en, iv).c_str());
    auto row = [&](const char* name, const std::vector<double>& v) {
        std::printf("%5s", name);
        for (int k = 0; k < 4; ++k) {
            if (std::isnan(v[k]))
                std::printf(" %16s", "-");
            else
                std::printf(" %16.2f", v[k]);
        }
        std::printf("\n");
    };
    row("min", iv.low);
    row("max", iv.high);
    std::printf("%5s", "%red");
    for (int a = 0; a < 2; ++a) {
        std::printf(" %16s", "");
        if (std::isnan(iv.low[4 + a]))
            std::printf(" %16s", "-");
        else {
            char range[64];
            std::snprintf(range, sizeof range, "%.2f%%..%.2f%%", iv.low[4 + a], iv.high[4 + a]);
            std::printf(" %16s", range);
        }
    }
    std::printf("\n");
    auto arr = [](const std::vector<double>& v, std::size_t from, std::size_t to, double sign) {
        nlohmann::json j = nlohmann::json::array();
        for (std::size_t i = from; i < to; ++i) j.push_back(std::isnan(v[i]) ? nlohmann::json(nullptr) : nlohmann::json(sign * v[i]));
        return j;
    };
    // reduction_percent in the JSON is a saving (positive), as the nominal one.
    return {{"ensemble", display_path(en.file)},
            {"members", iv.members},
            {"mean_low", arr(iv.low, 0, 4, 1)},
            {"mean_high", arr(iv.high, 0, 4, 1)},
            {"reduction_percent_low", arr(iv.high, 4, 6, -1)},
            {"reduction_percent_high", arr(iv.low, 4, 6, -1)}};
}

// ---------------------------------------------------------------------------- run
int cmd_run(const std::vector<std::string>& args) {
    Common c;
    std::string workload, apic = "x2apic", ipiv, timeline;
    std::string vcpus, pcpus, uncertainty;
    bool protocol_check = false;
    po::options_description desc("vtxsim run WORKLOAD [options]");
    desc.add_options()("help,h", "this help")
        ("workload", po::value(&workload), "workload name (see `vtxsim list`)")
        ("apic", po::value(&apic)->default_value(apic), "guest APIC mode: xapic or x2apic")
        ("ipiv", po::value(&ipiv), "IPI virtualization: on or off (default: on if the profile has it)")
        ("vcpus", po::value(&vcpus), "number of vCPUs (default: the workload's)")
        ("pcpus", po::value(&pcpus), "number of physical CPUs (default: one per vCPU)")
        ("timeline", po::value(&timeline), "write a Chrome/Perfetto trace-event timeline of run 1 to FILE, and FILE.vcd for GTKWave")
        ("check", po::bool_switch(&protocol_check), "the protocol checker: every fixed IPI a guest writes is matched to its\n"
                                                     "delivery; lost, late, misrouted or duplicated ones are reported (exit 1)");
    add_common(desc, c, 1);
    add_uncertainty(desc, uncertainty);
    po::positional_options_description pos;
    pos.add("workload", 1);
    auto vm = parse(args, desc, &pos, &c);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    if (workload.empty()) throw model::ConfigError("run: which workload? (see `vtxsim list`)");
    const auto* info = workloads::find_workload(workload);
    if (!info) throw model::ConfigError("run: unknown workload \"" + workload + "\" (see `vtxsim list`)");
    if (apic != "xapic" && apic != "x2apic") throw model::ConfigError("--apic must be xapic or x2apic, not \"" + apic + "\"");
    RunSpec spec = base_spec(c);
    spec.workload = workload;
    spec.config.x2apic = apic == "x2apic";
    spec.config.vcpus = vcpus.empty() ? info->default_vcpus
                                      : static_cast<unsigned>(parse_count("vcpus", vcpus, 1, kMaxCpus));
    spec.config.pcpus = pcpus.empty() ? spec.config.vcpus
                                      : static_cast<unsigned>(parse_count("pcpus", pcpus, 1, kMaxCpus));
    if (!ipiv.empty()) {
        if (ipiv != "on" && ipiv != "off") throw model::ConfigError("--ipiv must be on or off, not \"" + ipiv + "\"");
        spec.kvm.enable_ipiv = ipiv == "on";
    }
    const RunSpec unset = spec;
    apply_sets(c.sets, spec);
    if (spec.kvm.enable_ipiv && !spec.profile.features.ipi_virtualization)
        throw model::ConfigError("--ipiv on: profile \"" + spec.profile.name + "\" has no IPI virtualization");
    spec.stream = workload + "/" + apic + "/" + (spec.kvm.enable_ipiv ? "ipiv" : "noipiv");
    std::vector<RunSpec> specs;
    for (unsigned r = 0; r < c.runs; ++r) {
        specs.push_back(spec);
        specs.back().run_index = r;
    }
    specs[0].timeline_path = timeline;
    for (RunSpec& s : specs) s.protocol_check = protocol_check;
    const std::vector<RunOutcome> all = run_many(specs, c.trace || !c.debug.empty() ? 1 : c.jobs);
    // The checker's findings first: a lost IPI often leaves the run unfinished.
    std::size_t findings = 0;
    if (protocol_check) {
        for (std::size_t i = 0; i < all.size(); ++i) {
            const RunOutcome& o = all[i];
            if (!o.protocol_checked) continue;
            findings += o.protocol_findings.size();
            std::printf("protocol check, run %zu: %llu IPIs to targets, %llu deliveries (%llu sends coalesced), %zu findings\n",
                        i + 1, static_cast<unsigned long long>(o.protocol_ipis),
                        static_cast<unsigned long long>(o.protocol_deliveries),
                        static_cast<unsigned long long>(o.protocol_coalesced), o.protocol_findings.size());
            for (const auto& f : o.protocol_findings) std::printf("  %s\n", f.c_str());
        }
        std::fflush(stdout);
    }
    check_outcomes(all);
    const auto cyc = cycles_of(all);
    std::map<std::string, std::uint64_t> exits;
    std::uint64_t notifications = 0, kvm_notifications = 0;
    double host = 0;
    std::printf("vtxsim run %s: apic %s, ipiv %s, profile %s, seed %llu, %u vCPUs on %u CPUs%s\n", workload.c_str(),
                apic.c_str(), spec.kvm.enable_ipiv ? "on" : "off", spec.profile.name.c_str(),
                static_cast<unsigned long long>(c.seed), spec.config.vcpus, spec.config.pcpus,
                time_mode_note(spec.quantum_cycles).c_str());
    std::printf("%5s %14s %12s  %s\n", "run", "cycles/iter", "iterations", "check");
    for (std::size_t i = 0; i < all.size(); ++i) {
        std::printf("%5zu %14.1f %12llu  %s%s\n", i + 1, all[i].cycles_per_iteration,
                    static_cast<unsigned long long>(all[i].iterations), all[i].check_ok ? "" : "FAILED: ",
                    all[i].check.c_str());
        for (const auto& [k, n] : all[i].exits) exits[k] += n;
        notifications += all[i].notifications;
        kvm_notifications += all[i].kvm_notifications;
        host += all[i].host_seconds;
    }
    std::printf("mean %.1f cycles per iteration, sample stddev %.1f\n", mean_of(cyc), sample_stddev(cyc));
    nlohmann::json uncertainty_json;
    if (!uncertainty.empty()) {
        const Ensemble en = load_uncertainty(uncertainty, unset);
        const Intervals iv = ensemble_intervals(en, unset, c.sets, [&](const RunSpec& b) {
            std::vector<RunSpec> member_specs;
            for (const RunSpec& s0 : specs) {
                member_specs.push_back(b);
                member_specs.back().stream = s0.stream;
                member_specs.back().run_index = s0.run_index;
            }
            const auto outs = run_many(member_specs, c.jobs);
            check_outcomes(outs);
            return std::vector<double>{mean_of(cycles_of(outs))};
        });
        std::printf("%s\n  mean %.1f .. %.1f cycles per iteration\n", uncertainty_heading(en, iv).c_str(), iv.low[0],
                    iv.high[0]);
        uncertainty_json = {{"ensemble", display_path(en.file)}, {"members", iv.members}, {"mean_low", iv.low[0]},
                            {"mean_high", iv.high[0]}};
    }
    std::printf("VM exits per measured iteration (all runs):");
    std::uint64_t iters = 0;
    for (const auto& o : all) iters += o.total_iterations;
    for (const auto& [k, n] : exits)
        std::printf(" reason %s: %.3f;", k.c_str(), iters ? static_cast<double>(n) / iters : 0.0);
    std::printf("\nnotification IPIs: %llu sent by IPI virtualization, %llu by KVM\n",
                static_cast<unsigned long long>(notifications), static_cast<unsigned long long>(kvm_notifications));
    bool ok = true;
    for (const auto& o : all) ok = ok && o.check_ok;
    if (!c.json.empty()) {
        nlohmann::json runs_j = nlohmann::json::array(), iters_j = nlohmann::json::array();
        for (const auto& o : all) {
            runs_j.push_back(o.cycles_per_iteration);
            iters_j.push_back(o.iterations);
        }
        nlohmann::json j = {{"workload", workload},
                            {"apic", apic},
                            {"ipiv", spec.kvm.enable_ipiv},
                            {"profile", spec.profile.name},
                            {"seed", c.seed},
                            {"runs", runs_j},
                            {"iterations", iters_j},
                            {"mean", mean_of(cyc)},
                            {"stddev", sample_stddev(cyc)},
                            {"exits", exits},
                            {"notifications", notifications},
                            {"kvm_notifications", kvm_notifications},
                            {"host_seconds", host},
                            {"checks_ok", ok},
                            {"stats", all[0].stats},
                            {"config", resolved_config(spec)}};
        if (!uncertainty_json.is_null()) j["uncertainty"] = uncertainty_json;
        write_file(c.json, j.dump(2) + "\n");
    }
    if (!c.stats.empty()) write_file(c.stats, all[0].stats_text);
    if (!c.csv.empty()) {
        std::string csv = "run,cycles_per_iteration,iterations,total_iterations,notifications,kvm_notifications\n";
        for (std::size_t i = 0; i < all.size(); ++i)
            csv += std::to_string(i + 1) + "," + std::to_string(all[i].cycles_per_iteration) + "," +
                   std::to_string(all[i].iterations) + "," + std::to_string(all[i].total_iterations) + "," +
                   std::to_string(all[i].notifications) + "," + std::to_string(all[i].kvm_notifications) + "\n";
        write_file(c.csv, csv);
    }
    return ok && findings == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------- compare

// `compare WORKLOAD` for any workload but the cover letter's table: the four configurations
// side by side in the workload's own metric, with the reductions and the VM exits (and the
// workload's other observations) that explain them. A configuration the workload refuses
// (an x2APIC-only test in xAPIC mode, more vCPUs than xAPIC addresses) is shown as such.
int compare_workload(Common& c, const po::variables_map& vm, const workloads::WorkloadInfo& info,
                     const std::string& vcpus, const std::string& pcpus, const std::string& uncertainty) {
    RunSpec base = base_spec(c);
    if (vm["runs"].defaulted()) c.runs = 5;
    base.workload = info.name;
    base.config.vcpus = vcpus.empty() ? info.default_vcpus
                                      : static_cast<unsigned>(parse_count("vcpus", vcpus, 1, kMaxCpus));
    base.config.pcpus = pcpus.empty() ? base.config.vcpus
                                      : static_cast<unsigned>(parse_count("pcpus", pcpus, 1, kMaxCpus));
    const RunSpec unset = base;
    apply_sets(c.sets, base);
    if (!base.profile.features.ipi_virtualization)
        throw model::ConfigError("compare: profile \"" + base.profile.name + "\" has no IPI virtualization");
    const Ensemble* ensemble = nullptr;
    Ensemble loaded;
    if (!uncertainty.empty()) loaded = load_uncertainty(uncertainty, unset), ensemble = &loaded;
    const auto specs = comparison_specs(base, c.runs);
    const auto outs = run_many(specs, c.jobs);
    // A configuration the workload refuses as input is reported, not an error; any other
    // failure is.
    std::vector<std::string> refused(4);
    for (std::size_t i = 0; i < outs.size(); ++i) {
        if (outs[i].ok) continue;
        if (!outs[i].bad_input) throw cpu::SimulationError("run " + std::to_string(i + 1) + ": " + outs[i].error);
        refused[i / c.runs] = outs[i].error;
    }
    if (std::all_of(refused.begin(), refused.end(), [](const std::string& r) { return !r.empty(); }))
        throw model::ConfigError(refused[0]);
    std::vector<std::vector<double>> col(4);
    double mean[4] = {}, sd[4] = {};
    bool checks_ok = true;
    for (std::size_t i = 0; i < outs.size(); ++i)
        if (outs[i].ok) {
            col[i / c.runs].push_back(outs[i].cycles_per_iteration);
            checks_ok = checks_ok && outs[i].check_ok;
        }
    for (int k = 0; k < 4; ++k)
        if (refused[k].empty()) mean[k] = mean_of(col[k]), sd[k] = sample_stddev(col[k]);
    std::printf("compare %s: %u vCPUs on %u CPUs, profile %s (%.2f GHz), seed %llu, %u runs per configuration%s\n",
                info.name.c_str(), base.config.vcpus, base.config.pcpus, base.profile.name.c_str(),
                base.profile.core_ghz, static_cast<unsigned long long>(c.seed), c.runs,
                time_mode_note(base.quantum_cycles).c_str());
    std::printf("%s (simulated; lower is better)\n%5s", info.metric.c_str(), "");
    for (const auto& cc : kIpiConfigs) std::printf(" %16s", cc.label);
    auto row = [&](const char* name, const double* v) {
        std::printf("\n%5s", name);
        for (int k = 0; k < 4; ++k) {
            if (refused[k].empty())
                std::printf(" %16.2f", v[k]);
            else
                std::printf(" %16s", "refused");
        }
    };
    row("avg", mean);
    row("sd", sd);
    double red[2] = {0, 0};
    std::printf("\n%5s", "%red");
    for (int a = 0; a < 2; ++a) {
        const bool have = refused[2 * a].empty() && refused[2 * a + 1].empty() && mean[2 * a] != 0;
        red[a] = have ? 100.0 * (mean[2 * a + 1] - mean[2 * a]) / mean[2 * a] : 0;
        std::printf(" %16s", "");
        if (have)
            std::printf(" %15.2f%%", red[a]);
        else
            std::printf(" %16s", "-");
    }
    std::printf("\n");
    nlohmann::json uncertainty_json;
    if (ensemble) {
        const Intervals iv = ensemble_intervals(*ensemble, unset, c.sets, [&](const RunSpec& b) {
            return comparison_values(run_many(comparison_specs(b, c.runs), c.jobs), c.runs);
        });
        uncertainty_json = print_comparison_intervals(*ensemble, iv);
    }
    std::printf("VM exits per iteration (all vCPUs), and the workload's observations (mean per run):\n");
    for (int k = 0; k < 4; ++k) {
        std::printf("  %-16s", kIpiConfigs[k].label);
        if (!refused[k].empty()) {
            std::printf(" refused: %s\n", refused[k].c_str());
            continue;
        }
        std::map<std::string, std::uint64_t> ex;
        std::map<std::string, double> values;
        std::uint64_t iters = 0;
        for (unsigned r = 0; r < c.runs; ++r) {
            const RunOutcome& o = outs[k * c.runs + r];
            for (const auto& [reason, n] : o.exits) ex[reason] += n;
            for (const auto& [name, v] : o.values) values[name] += v / c.runs;
            iters += o.total_iterations;
        }
        if (ex.empty()) std::printf(" no exits;");
        for (const auto& [reason, n] : ex)
            std::printf(" reason %s: %.3f;", reason.c_str(), iters ? static_cast<double>(n) / iters : 0.0);
        for (const auto& [name, v] : values) std::printf(" %s %.6g;", name.c_str(), v);
        std::printf("\n");
    }
    if (!checks_ok) std::printf("FAILED: a run's behavioural check failed (see `vtxsim run`)\n");
    if (!c.json.empty()) {
        nlohmann::json configs = nlohmann::json::array();
        for (int k = 0; k < 4; ++k) {
            nlohmann::json j = {{"apic", kIpiConfigs[k].x2apic ? "x2apic" : "xapic"}, {"ipiv", kIpiConfigs[k].ipiv}};
            if (refused[k].empty())
                j.update({{"runs", col[k]}, {"mean", mean[k]}, {"stddev", sd[k]}});
            else
                j["refused"] = refused[k];
            configs.push_back(j);
        }
        nlohmann::json reductions = nlohmann::json::object();
        if (refused[0].empty() && refused[1].empty()) reductions["xapic"] = -red[0];
        if (refused[2].empty() && refused[3].empty()) reductions["x2apic"] = -red[1];
        nlohmann::json out({{"workload", info.name},
                                           {"metric", info.metric},
                                           {"profile", base.profile.name},
                                           {"seed", c.seed},
                                           {"configs", configs},
                                           {"reduction_percent", reductions},
                                           {"checks_ok", checks_ok},
                                           {"config", resolved_config(base)}});
        if (!uncertainty_json.is_null()) out["uncertainty"] = uncertainty_json;
        write_file(c.json, out.dump(2) + "\n");
    }
    if (!c.csv.empty()) {
        std::string csv = "apic,ipiv,run,cycles_per_iteration\n";
        for (int k = 0; k < 4; ++k)
            for (std::size_t r = 0; r < col[k].size(); ++r) {
                char line[96];
                std::snprintf(line, sizeof line, "%s,%s,%zu,%.6f\n", kIpiConfigs[k].x2apic ? "x2apic" : "xapic",
                              kIpiConfigs[k].ipiv ? "on" : "off", r + 1, col[k][r]);
                csv += line;
            }
        write_file(c.csv, csv);
    }
    return checks_ok ? 0 : 1;
}

int cmd_compare(const std::vector<std::string>& args) {
    Common c;
    std::string what, vcpus, pcpus, uncertainty;
    std::string training = default_training_file();
    po::options_description desc(
        "vtxsim compare WORKLOAD [options]: xAPIC/x2APIC x IPIv off/on side by side. `compare ipi`\n"
        "is the IPIv cover letter's table (20 runs each, the published means beside it); other\n"
        "workloads: their own metric, 5 runs each unless --runs");
    desc.add_options()("help,h", "this help")("what", po::value(&what), "the workload (see `vtxsim list`)")
        ("vcpus", po::value(&vcpus), "number of vCPUs (default: the workload's)")
        ("pcpus", po::value(&pcpus), "number of physical CPUs (default: one per vCPU)")
        ("training", po::value(&training)->default_value(training), "compare ipi: published measurements shown for reference");
    add_common(desc, c, 20);
    add_uncertainty(desc, uncertainty);
    po::positional_options_description pos;
    pos.add("what", 1);
    auto vm = parse(args, desc, &pos, &c);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    if (what.empty()) throw model::ConfigError("compare: which workload? (see `vtxsim list`)");
    const auto* info = workloads::find_workload(what);
    if (!info) throw model::ConfigError("compare: unknown workload \"" + what + "\" (see `vtxsim list`)");
    refuse_unused(vm, "compare", {"stats", "trace", "debug"});
    if (what != "ipi" || !vcpus.empty() || !pcpus.empty()) {
        if (!vm["training"].defaulted()) throw model::ConfigError("--training: only `compare ipi` shows the published table");
        return compare_workload(c, vm, *info, vcpus, pcpus, uncertainty);
    }
    RunSpec base = base_spec(c);
    // The training file: its setting (host kernel, mitigations) is the table's; its means
    // are shown for reference. Without the default file the defaults stand.
    std::optional<TrainingSet> published;
    try {
        published = load_training(training);
    } catch (const model::ConfigError&) {
        if (!vm["training"].defaulted()) throw;
    }
    if (published) apply_sets(published->setup, base);
    const RunSpec unset = base;
    apply_sets(c.sets, base);
    if (!base.profile.features.ipi_virtualization)
        throw model::ConfigError("compare ipi: profile \"" + base.profile.name + "\" has no IPI virtualization");
    const Ensemble* ensemble = nullptr;
    Ensemble loaded;
    if (!uncertainty.empty()) loaded = load_uncertainty(uncertainty, unset), ensemble = &loaded;
    const auto specs = ipi_comparison_specs(base, c.runs);
    const auto outs = run_many(specs, c.jobs);
    check_outcomes(outs);
    std::vector<std::vector<double>> col(4);
    double host = 0;
    for (std::size_t i = 0; i < outs.size(); ++i) {
        col[i / c.runs].push_back(outs[i].cycles_per_iteration);
        host += outs[i].host_seconds;
    }
    std::printf("kvm-unit-tests vmexit ipi, 2 vCPUs, target busy-idling; profile %s (%.2f GHz), seed %llu%s\n",
                base.profile.name.c_str(), base.profile.core_ghz, static_cast<unsigned long long>(c.seed),
                time_mode_note(base.quantum_cycles).c_str());
    std::printf("Cycles of IPI (simulated)\n%5s %16s %16s %16s %16s\n", "run", kIpiConfigs[0].label,
                kIpiConfigs[1].label, kIpiConfigs[2].label, kIpiConfigs[3].label);
    for (unsigned r = 0; r < c.runs; ++r)
        std::printf("%5u %16.1f %16.1f %16.1f %16.1f\n", r + 1, col[0][r], col[1][r], col[2][r], col[3][r]);
    double mean[4], sd[4];
    for (int k = 0; k < 4; ++k) {
        mean[k] = mean_of(col[k]);
        sd[k] = sample_stddev(col[k]);
    }
    std::printf("%5s %16.2f %16.2f %16.2f %16.2f\n", "avg", mean[0], mean[1], mean[2], mean[3]);
    std::printf("%5s %16.2f %16.2f %16.2f %16.2f\n", "sd", sd[0], sd[1], sd[2], sd[3]);
    const double red_x = 100.0 * (mean[1] - mean[0]) / mean[0];
    const double red_x2 = 100.0 * (mean[3] - mean[2]) / mean[2];
    std::printf("%5s %16s %15.2f%% %16s %15.2f%%\n", "%red", "", red_x, "", red_x2);
    nlohmann::json uncertainty_json;
    if (ensemble) {
        const Intervals iv = ensemble_intervals(*ensemble, unset, c.sets, [&](const RunSpec& b) {
            return comparison_values(run_many(ipi_comparison_specs(b, c.runs), c.jobs), c.runs);
        });
        uncertainty_json = print_comparison_intervals(*ensemble, iv);
    }
    // Exit counts per iteration explain the numbers.
    std::printf("VM exits per iteration (sender and target):\n");
    for (int k = 0; k < 4; ++k) {
        std::map<std::string, std::uint64_t> ex;
        std::uint64_t iters = 0;
        for (unsigned r = 0; r < c.runs; ++r) {
            for (const auto& [reason, n] : outs[k * c.runs + r].exits) ex[reason] += n;
            iters += outs[k * c.runs + r].total_iterations;
        }
        std::printf("  %-16s", kIpiConfigs[k].label);
        if (ex.empty()) std::printf(" none");
        for (const auto& [reason, n] : ex)
            std::printf(" reason %s: %.3f", reason.c_str(), static_cast<double>(n) / static_cast<double>(iters));
        std::printf("\n");
    }
    // The published figures, read from the training file, for reference.
    if (published) {
        std::printf("published (%s): ", display_path(training).c_str());
        for (const auto& colt : published->columns)
            std::printf("%s %s %.2f; ", colt.apic.c_str(), colt.ipiv ? "w/ IPIv" : "w/o IPIv", colt.mean);
        std::printf("\n");
    }
    if (!c.json.empty()) {
        nlohmann::json configs = nlohmann::json::array();
        for (int k = 0; k < 4; ++k)
            configs.push_back({{"apic", kIpiConfigs[k].x2apic ? "x2apic" : "xapic"},
                               {"ipiv", kIpiConfigs[k].ipiv},
                               {"runs", col[k]},
                               {"mean", mean[k]},
                               {"stddev", sd[k]}});
        nlohmann::json j = {{"workload", "ipi"},
                            {"profile", base.profile.name},
                            {"seed", c.seed},
                            {"configs", configs},
                            {"reduction_percent", {{"xapic", -red_x}, {"x2apic", -red_x2}}},
                            {"host_seconds", host},
                            {"config", resolved_config(base)}};
        if (!uncertainty_json.is_null()) j["uncertainty"] = uncertainty_json;
        write_file(c.json, j.dump(2) + "\n");
    }
    if (!c.csv.empty()) {
        std::string csv = "apic,ipiv,run,cycles_per_iteration\n";
        for (int k = 0; k < 4; ++k)
            for (unsigned r = 0; r < c.runs; ++r) {
                char row[96];
                std::snprintf(row, sizeof row, "%s,%s,%u,%.6f\n", kIpiConfigs[k].x2apic ? "x2apic" : "xapic",
                              kIpiConfigs[k].ipiv ? "on" : "off", r + 1, col[k][r]);
                csv += row;
            }
        write_file(c.csv, csv);
    }
    return 0;
}

// ---------------------------------------------------------------------------- list
int cmd_list(const std::vector<std::string>& args) {
    if (!args.empty() && args[0] != "--help" && args[0] != "-h")
        throw model::ConfigError("list: unexpected argument \"" + args[0] + "\"");
    std::printf("workloads:\n");
    int width = 0;
    for (const auto& w : workloads::workload_registry()) width = std::max(width, static_cast<int>(w.name.size()));
    for (const auto& w : workloads::workload_registry())
        std::printf("  %-*s  %s\n", width, w.name.c_str(), w.description.c_str());
    std::printf("profiles (%s):\n", profile_dir().c_str());
    for (const auto& p : profile_names()) std::printf("  %s\n", p.c_str());
    std::printf("VMM knobs (--set kvm.NAME=VALUE):\n");
    for (const auto& k : vmm::KvmParams{}.describe())
        std::printf("  %-26s %-6s %s\n", k[0].c_str(), k[1].c_str(), k[2].c_str());
    std::printf("workload parameters (--set workload.NAME=VALUE):\n  %-26s %-6s %s\n", "workload.goal",
                std::to_string(workloads::WorkloadConfig{}.goal).c_str(),
                "TSC ticks a measurement pass must reach (kvm-unit-tests uses 2^30)");
    std::printf("VMCS fields (--set vmcs.FIELD=VALUE, VMWRITTEN after KVM's set-up of each vCPU), e.g.\n"
                "  vmcs.LAST_PID_POINTER_INDEX=0   vmcs.TERTIARY_VM_EXEC_CONTROL=0   (names as in Linux's asm/vmx.h)\n");
    std::printf("costs (--set cost.NAME=CYCLES):\n");
    for (std::size_t i = 0; i < model::kCostCount; ++i) {
        const auto c = static_cast<model::Cost>(i);
        std::printf("  %-34s %s\n", std::string(model::cost_name(c)).c_str(),
                    std::string(model::cost_description(c)).c_str());
    }
    return 0;
}

RunSpec explain_workload_spec(const workloads::WorkloadInfo& info, bool x2apic, const std::string& vcpus,
                              const std::string& profile, std::vector<std::string> sets);

// ---------------------------------------------------------------------------- sweep
int cmd_sweep(const std::vector<std::string>& args) {
    Common c;
    std::string workload, out, emit_dir, merge_dir, run_point, time_limit;
    std::vector<std::string> grid;
    po::options_description desc(
        "vtxsim sweep WORKLOAD --grid KEY=V1,V2,... [--grid ...] --out DIR [options]: every point of the\n"
        "grid, --runs runs each, as processes on --jobs cores; KEY: vcpus, pcpus, apic, ipiv, profile,\n"
        "quantum or a --set key. DIR keeps per point config.json, stats.txt, results.json, and\n"
        "results.csv / results.json for the sweep; run again to resume (done points are skipped)");
    desc.add_options()("help,h", "this help")("workload", po::value(&workload), "the workload (see `vtxsim list`)")
        ("grid", po::value(&grid)->composing(), "KEY=V1,V2,...: a swept key and its values (repeatable)")
        ("out", po::value(&out), "the sweep's directory")
        ("emit-slurm", po::value(&emit_dir), "instead of running: write the plan and a Slurm job-array script (a task per point) to DIR")
        ("time-limit", po::value(&time_limit), "--emit-slurm: the tasks' #SBATCH --time (e.g. 01:00:00)")
        ("merge", po::value(&merge_dir), "join the point results in DIR into results.csv / results.json")
        ("run-point", po::value(&run_point), "run only point N of the sweep in --out (a batch job's task)");
    add_common(desc, c, 5);
    po::positional_options_description pos;
    pos.add("workload", 1);
    auto vm = parse(args, desc, &pos, &c);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    refuse_unused(vm, "sweep", {"json", "csv", "stats", "trace", "debug"});
    if (!merge_dir.empty()) return merge_sweep(load_sweep_plan(merge_dir)) ? 0 : 1;
    if (!run_point.empty()) {
        if (out.empty()) throw model::ConfigError("sweep --run-point: --out DIR (the sweep's directory) is required");
        SweepPlan plan = load_sweep_plan(out);
        const auto index = static_cast<std::size_t>(parse_count("run-point", run_point, 0, 1u << 30));
        return run_sweep(plan, c.jobs, false, index) ? 0 : 1;
    }
    if (!emit_dir.empty()) {
        if (!out.empty()) throw model::ConfigError("sweep: --emit-slurm DIR takes the place of --out");
        out = emit_dir;
    }
    if (workload.empty()) throw model::ConfigError("sweep: which workload? (see `vtxsim list`)");
    if (out.empty()) throw model::ConfigError("sweep: --out DIR is required");
    if (grid.empty()) throw model::ConfigError("sweep: no --grid KEY=V1,V2,...");
    const RunSpec base = base_spec(c);  // checks seed, runs, jobs, times, quantum
    SweepPlan plan;
    plan.workload = workload;
    plan.runs = c.runs;
    plan.seed = c.seed;
    plan.profile = c.profile;
    plan.sets = c.sets;
    plan.quantum_cycles = base.quantum_cycles;
    plan.max_simulated_seconds = base.max_simulated_seconds;
    plan.out_dir = out;
    std::set<std::string> seen;
    for (const auto& g : grid) {
        plan.grid.push_back(parse_grid(g));
        if (!seen.insert(plan.grid.back().key).second)
            throw model::ConfigError("--grid " + plan.grid.back().key + ": the key is swept twice");
    }
    for (const auto& p : sweep_points(plan)) (void)point_specs(plan, p);  // every point's input, checked up front
    if (!emit_dir.empty()) {
        char self[4096];
        const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
        const std::string exe = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string("vtxsim");
        const std::string script = emit_slurm(plan, exe, time_limit);
        std::printf("wrote %s (%zu array tasks): sbatch %s, then vtxsim sweep --merge %s\n", script.c_str(),
                    sweep_points(plan).size(), script.c_str(), emit_dir.c_str());
        return 0;
    }
    if (!time_limit.empty()) throw model::ConfigError("--time-limit goes with --emit-slurm");
    return run_sweep(plan, c.jobs, ::isatty(STDERR_FILENO) != 0) ? 0 : 1;
}

// ---------------------------------------------------------------------------- plot
int cmd_plot(const std::vector<std::string>& args) {
    std::string input, out, x, breakdown;
    std::vector<std::string> sets;
    po::options_description desc(
        "vtxsim plot DIR|results.json --out F.svg|F.png [--x KEY]: a sweep's metric against a swept key;\n"
        "vtxsim plot --breakdown WORKLOAD|SCENARIO.yaml --out F.svg: the cycles each named step charged in\n"
        "one explained round trip, stacked, per configuration (xAPIC/x2APIC x IPIv off/on, or IPIv off/on)");
    desc.add_options()("help,h", "this help")("input", po::value(&input), "a sweep directory or its results.json")
        ("out", po::value(&out), "the plot: .svg or .png")("x", po::value(&x), "the x axis (default: the first numeric swept key)")
        ("breakdown", po::value(&breakdown), "a workload or scenario file: per-step cost breakdown")
        ("set", po::value(&sets)->composing(), "--breakdown: KEY=VALUE for every configuration");
    po::positional_options_description pos;
    pos.add("input", 1);
    auto vm = parse(args, desc, &pos, nullptr);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    if (!breakdown.empty()) {
        if (out.empty() || !input.empty() || !x.empty())
            throw model::ConfigError("plot --breakdown NAME: --out F.svg|F.png, and no sweep directory or --x");
        std::vector<RunSpec> specs;
        std::vector<std::string> labels;
        std::string title;
        if (const auto* info = workloads::find_workload(breakdown)) {
            for (const auto& cc : kIpiConfigs) {
                std::vector<std::string> all = sets;
                all.push_back(std::string("kvm.enable_ipiv=") + (cc.ipiv ? "on" : "off"));
                specs.push_back(explain_workload_spec(*info, cc.x2apic, "", "spr", all));
                labels.push_back(cc.label);
            }
            title = breakdown + ": cycles per named step in one iteration (vtxsim explain " + breakdown + ")";
        } else {
            ScenarioFile loaded = load_scenario_file(breakdown);
            auto scenario = std::make_shared<workloads::scenario::Scenario>(*loaded.scenario);
            scenario->explain = true;
            loaded.scenario = scenario;
            for (const char* ipiv : {"off", "on"}) {
                ScenarioFile f = loaded;
                f.sets.insert(f.sets.end(), sets.begin(), sets.end());
                f.sets.push_back(std::string("kvm.enable_ipiv=") + ipiv);
                specs.push_back(scenario_spec(f));
                labels.push_back(std::string("IPIv ") + ipiv);
            }
            title = scenario->name + ": cycles per named step (vtxsim explain " + breakdown + ")";
        }
        const auto outs = run_many(specs, 2);
        std::vector<std::pair<std::string, std::map<std::string, double>>> configs;
        for (std::size_t i = 0; i < outs.size(); ++i) {
            if (outs[i].bad_input) continue;  // a configuration the workload refuses
            if (!outs[i].ok) throw cpu::SimulationError(labels[i] + ": " + outs[i].error);
            configs.push_back({labels[i], outs[i].step_cycles});
        }
        if (configs.empty()) throw model::ConfigError("plot --breakdown " + breakdown + ": no configuration ran");
        plot_breakdown(title, configs, out);
        std::printf("wrote %s\n", out.c_str());
        return 0;
    }
    if (input.empty() || out.empty()) throw model::ConfigError("plot: a sweep directory and --out F.svg|F.png");
    plot_sweep(input, out, x);
    std::printf("wrote %s\n", out.c_str());
    return 0;
}

// ---------------------------------------------------------------------------- explain
// One short, explained run of a workload (its measurement loop's last complete iteration).
RunSpec explain_workload_spec(const workloads::WorkloadInfo& info, bool x2apic, const std::string& vcpus,
                              const std::string& profile, std::vector<std::string> sets) {
    RunSpec spec;
    spec.profile = load_profile(profile);
    spec.kvm.enable_ipiv = spec.profile.features.ipi_virtualization;
    spec.workload = info.name;
    spec.config.x2apic = x2apic;
    spec.config.vcpus = vcpus.empty() ? info.default_vcpus : static_cast<unsigned>(parse_count("vcpus", vcpus, 1, kMaxCpus));
    spec.config.pcpus = spec.config.vcpus;
    spec.config.goal = 1;  // the first pass of a measurement loop suffices
    apply_sets(sets, spec);
    spec.stream = info.name + "/" + (x2apic ? "x2apic" : "xapic") + "/" + (spec.kvm.enable_ipiv ? "ipiv" : "noipiv");
    spec.explain = true;
    return spec;
}

int cmd_explain(const std::vector<std::string>& args) {
    std::string file, out_file, apic = "x2apic", vcpus, profile = "spr";
    std::vector<std::string> sets;
    bool side_by_side = false;
    po::options_description desc(
        "vtxsim explain SCENARIO.yaml|WORKLOAD [--side-by-side] [--set KEY=VALUE]: runs the scenario (or one\n"
        "short run of the workload, whose last complete iteration is shown) and prints\n"
        "every step (cycle, processor, mode, flow, step, SDM section or KVM function, cycles) with the\n"
        "interrupt state it changed (RVI/SVI, VIRR/VISR, PID ON/SN/NV/PIR, vICR, activity), then the\n"
        "cycles per processor and flow; --side-by-side: IPI virtualization off and on, next to each other.\n"
        "Exit 0 once the runs completed (the expectations' outcomes are shown, `check` checks them)");
    desc.add_options()("help,h", "this help")("file", po::value(&file), "the scenario file (docs/scenarios.md)")
        ("side-by-side", po::bool_switch(&side_by_side), "kvm.enable_ipiv=off and =on in two columns")
        ("set", po::value(&sets)->composing(), "KEY=VALUE, after the file's own (repeatable)")
        ("out", po::value(&out_file), "write the explanation to FILE instead of the terminal")
        ("apic", po::value(&apic)->default_value(apic), "WORKLOAD: the guest's APIC mode, xapic or x2apic")
        ("vcpus", po::value(&vcpus), "WORKLOAD: number of vCPUs (default: the workload's)")
        ("profile", po::value(&profile)->default_value(profile), "WORKLOAD: CPU profile");
    po::positional_options_description pos;
    pos.add("file", 1);
    auto vm = parse(args, desc, &pos, nullptr);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    if (file.empty()) throw model::ConfigError("explain: which scenario file or workload? (tests/scenarios/ has examples)");
    std::vector<RunSpec> specs;
    std::string title;
    const workloads::WorkloadInfo* info = workloads::find_workload(file);
    if (info) {
        // A workload: one short run (its measurement loop's last complete iteration shown).
        if (apic != "xapic" && apic != "x2apic") throw model::ConfigError("--apic must be xapic or x2apic, not \"" + apic + "\"");
        for (int k = 0; k < (side_by_side ? 2 : 1); ++k) {
            std::vector<std::string> all = sets;
            if (side_by_side) all.push_back(k == 0 ? "kvm.enable_ipiv=off" : "kvm.enable_ipiv=on");
            specs.push_back(explain_workload_spec(*info, apic == "x2apic", vcpus, profile, all));
        }
        title = info->name + " (" + apic + ", " + std::to_string(specs[0].config.vcpus) + " vCPUs)";
    } else {
        if (!vm["apic"].defaulted() || !vcpus.empty() || !vm["profile"].defaulted())
            throw model::ConfigError("explain: --apic, --vcpus and --profile are for a workload; a scenario file states its platform");
        ScenarioFile loaded = load_scenario_file(file);
        auto scenario = std::make_shared<workloads::scenario::Scenario>(*loaded.scenario);
        scenario->explain = true;
        loaded.scenario = scenario;
        for (int k = 0; k < (side_by_side ? 2 : 1); ++k) {
            ScenarioFile f = loaded;
            f.sets.insert(f.sets.end(), sets.begin(), sets.end());
            if (side_by_side) f.sets.push_back(k == 0 ? "kvm.enable_ipiv=off" : "kvm.enable_ipiv=on");
            specs.push_back(scenario_spec(f));
        }
        title = scenario->name + " (" + file + ")";
    }
    const auto outs = run_many(specs, 2);
    for (std::size_t i = 0; i < outs.size(); ++i) {
        if (outs[i].bad_input) throw model::ConfigError(file + ": " + outs[i].error);
        if (!outs[i].ok) throw cpu::SimulationError(file + ": " + outs[i].error);
    }
    std::string text = title + (side_by_side ? ": IPIv off | IPIv on" : "") + "\n";
    auto emit = [&]() {
        if (out_file.empty())
            std::fputs(text.c_str(), stdout);
        else
            write_file(out_file, text);
    };
    if (!side_by_side) {
        text += outs[0].explanation + outs[0].check;
        if (!text.empty() && text.back() != '\n') text += '\n';
        emit();
        return 0;  // an explanation, not a check: the expectations' outcomes are part of it
    }
    auto lines = [](const std::string& text) {
        std::vector<std::string> v;
        std::stringstream ss(text);
        for (std::string l; std::getline(ss, l);) v.push_back(l);
        return v;
    };
    const auto left = lines(outs[0].explanation), right = lines(outs[1].explanation);
    constexpr int kColumn = 100;
    for (std::size_t i = 0; i < std::max(left.size(), right.size()); ++i) {
        const std::string l = i < left.size() ? left[i].substr(0, kColumn) : "";
        const std::string r = i < right.size() ? right[i].substr(0, kColumn) : "";
        char row[2 * kColumn + 8];
        std::snprintf(row, sizeof row, "%-*s | %s\n", kColumn, l.c_str(), r.c_str());
        text += row;
    }
    emit();
    return 0;
}

// ---------------------------------------------------------------------------- check
int cmd_check(const std::vector<std::string>& args) {
    std::vector<std::string> files;
    std::string timeline, json, debug, jobs_text = "2";
    bool trace = false, protocol = false;
    po::options_description desc(
        "vtxsim check FILE... [options]: runs each scenario file and checks its expectations;\n"
        "exit 0 when all hold, 1 when one fails, 2 for a bad file");
    desc.add_options()("help,h", "this help")("file", po::value(&files)->composing(), "scenario files")
        ("trace", po::bool_switch(&trace), "print every microcode step and VMM path (one file)")
        ("debug", po::value(&debug), "debug flags, comma separated: vmx,pi,apic,kvm,guest,mem (one file)")
        ("timeline", po::value(&timeline), "write a Chrome/Perfetto timeline of the run to FILE (one file)")
        ("json", po::value(&json), "write the outcomes as JSON to FILE")
        ("protocol", po::bool_switch(&protocol), "the protocol checker watches each run too (as run --check); a\n"
                                                 "finding fails the scenario")
        ("jobs", po::value(&jobs_text)->default_value(jobs_text), "scenarios in parallel (processes)");
    po::positional_options_description pos;
    pos.add("file", -1);
    auto vm = parse(args, desc, &pos, nullptr);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    if (files.empty()) throw model::ConfigError("check: which scenario files?");
    if ((trace || !debug.empty() || !timeline.empty()) && files.size() != 1)
        throw model::ConfigError("check: --trace, --debug and --timeline take one scenario file");
    const unsigned jobs = static_cast<unsigned>(parse_count("jobs", jobs_text, 1, kMaxJobs));
    std::vector<RunSpec> specs;
    std::vector<ScenarioFile> loaded;
    for (const auto& f : files) {
        loaded.push_back(load_scenario_file(f));
        specs.push_back(scenario_spec(loaded.back()));
        specs.back().trace = trace;
        specs.back().timeline_path = timeline;
        specs.back().protocol_check = protocol;
        std::stringstream ss(debug);
        for (std::string flag; std::getline(ss, flag, ',');)
            if (!flag.empty()) specs.back().debug_flags.push_back(flag);
    }
    auto outs = run_many(specs, trace || !debug.empty() ? 1 : jobs);
    // A scenario that ran but failed an expectation runs again, watching every expectation
    // step by step, to say where each failing one departed (the same run: exact mode, and
    // the watcher charges no time).
    std::vector<RunSpec> again;
    std::vector<std::size_t> again_index;
    for (std::size_t i = 0; i < outs.size(); ++i)
        if (outs[i].ok && !outs[i].check_ok && !trace && debug.empty() && timeline.empty()) {
            auto watched = std::make_shared<workloads::scenario::Scenario>(*specs[i].scenario);
            watched->find_departures = true;
            again.push_back(specs[i]);
            again.back().scenario = watched;
            again_index.push_back(i);
        }
    if (!again.empty()) {
        const auto second = run_many(again, jobs);
        for (std::size_t k = 0; k < second.size(); ++k)
            if (second[k].ok) outs[again_index[k]].check = second[k].check;
    }
    bool all = true;
    nlohmann::json results = nlohmann::json::array();
    for (std::size_t i = 0; i < outs.size(); ++i) {
        const auto& s = *loaded[i].scenario;
        RunOutcome& o = outs[i];
        if (o.bad_input) throw model::ConfigError(files[i] + ": " + o.error);
        if (o.protocol_checked) {
            o.check += "protocol check: " + std::to_string(o.protocol_findings.size()) + " findings\n";
            for (const auto& f : o.protocol_findings) o.check += "  " + f + "\n";
        }
        const bool ok = o.ok && o.check_ok && o.protocol_findings.empty();
        all = all && ok;
        std::printf("%s %s (%s): ", ok ? "PASS" : "FAIL", s.name.c_str(), files[i].c_str());
        if (!o.ok)
            std::printf("the run failed: %s\n%s", o.error.c_str(), o.check.c_str());  // (the protocol check's findings)
        else
            std::printf("%s", o.check.c_str());
        results.push_back({{"file", files[i]}, {"name", s.name}, {"ok", ok}, {"error", o.error}, {"report", o.check}});
    }
    if (!json.empty()) write_file(json, results.dump(2) + "\n");
    return all ? 0 : 1;
}

// ---------------------------------------------------------------------------- bench
int cmd_bench(const std::vector<std::string>& args) {
    Common c;
    std::string apic = "all", ipiv = "all", sizes_arg = "2,64,512,4096";
    std::string calls_arg = "262144";
    po::options_description desc(
        "vtxsim bench [options]: host ns per simulated IPI round trip (`ipi`, 2 vCPUs) for each\n"
        "configuration, in exact mode and in the decoupled mode of --quantum, each against the\n"
        "SystemC floor measured in the same run; --runs repetitions per row (the best counts).\n"
        "vtxsim bench --scale: host ns per simulated IPI and peak host memory per vCPU at\n"
        "several VM sizes (random_ipi, random unicast traffic)");
    desc.add_options()("help,h", "this help")("apic", po::value(&apic)->default_value(apic), "xapic, x2apic or all")
        ("ipiv", po::value(&ipiv)->default_value(ipiv), "on, off or all")
        ("scale", "measure scaling instead (x2APIC, IPIv as --ipiv, default on)")
        ("scale-vcpus", po::value(&sizes_arg)->default_value(sizes_arg), "--scale: VM sizes, comma separated")
        ("scale-calls", po::value(&calls_arg)->default_value(calls_arg), "--scale: cross-CPU calls per size");
    add_common(desc, c, 3);
    auto vm = parse(args, desc, nullptr, &c);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    if (apic != "xapic" && apic != "x2apic" && apic != "all")
        throw model::ConfigError("--apic: \"" + apic + "\" is not xapic, x2apic or all");
    if (ipiv != "on" && ipiv != "off" && ipiv != "all")
        throw model::ConfigError("--ipiv: \"" + ipiv + "\" is not on, off or all");
    refuse_unused(vm, "bench", {"csv", "stats", "trace", "debug", "jobs"});
    if (vm.count("scale")) {
        if (!vm["apic"].defaulted()) throw model::ConfigError("bench --scale: --apic: the scale runs are x2APIC");
        std::vector<unsigned> sizes;
        std::stringstream ss(sizes_arg);
        for (std::string item; std::getline(ss, item, ',');)
            sizes.push_back(static_cast<unsigned>(
                parse_count("scale-vcpus", item, 2, workloads::kX2apicMaxVcpus)));
        if (sizes.empty()) throw model::ConfigError("--scale-vcpus: no size given");
        const std::uint64_t calls = parse_count("scale-calls", calls_arg, 1, std::uint64_t{1} << 32);
        RunSpec spec = base_spec(c);
        spec.config.x2apic = true;
        if (ipiv != "all") spec.kvm.enable_ipiv = ipiv == "on";
        apply_sets(c.sets, spec);
        const ScaleReport report = run_scale_bench(spec, sizes, calls);
        std::fputs(report.text().c_str(), stdout);
        if (!c.json.empty()) write_file(c.json, report.to_json().dump(2) + "\n");
        return 0;
    }
    for (const char* only : {"scale-vcpus", "scale-calls"})
        if (!vm[only].defaulted()) throw model::ConfigError(std::string("--") + only + " needs --scale");
    RunSpec spec = base_spec(c);
    spec.config.goal = std::uint64_t{1} << 25;
    apply_sets(c.sets, spec);
    std::vector<IpiConfig> configs;
    for (const IpiConfig& cc : kIpiConfigs)
        if ((apic == "all" || (apic == "x2apic") == cc.x2apic) && (ipiv == "all" || (ipiv == "on") == cc.ipiv))
            configs.push_back(cc);
    // x2APIC with IPIv (the headline) first.
    std::reverse(configs.begin(), configs.end());
    std::vector<double> quanta;
    if (spec.quantum_cycles > 0) quanta.push_back(spec.quantum_cycles);
    quanta.push_back(0);
    const BenchReport report = run_bench(spec, configs, quanta, c.runs);
    std::fputs(report.text().c_str(), stdout);
    if (!c.json.empty()) write_file(c.json, report.to_json().dump(2) + "\n");
    return 0;
}

// ---------------------------------------------------------------------------- calibrate
int cmd_calibrate(const std::vector<std::string>& args) {
    Common c;
    std::string training = default_training_file(), out, ensemble_members;
    unsigned iterations = 8;
    const unsigned default_runs = 20;
    po::options_description desc("vtxsim calibrate [options]");
    desc.add_options()("help,h", "this help")
        ("training", po::value(&training)->default_value(training), "training measurements (JSON)")
        ("out", po::value(&out), "write the calibrated profile to FILE (default: PROFILE.calibrated.json)")
        ("iterations", po::value(&iterations)->default_value(iterations), "Levenberg-Marquardt iterations")
        ("report", "instead of fitting: how well the training means determine the fitted costs, and how far\n"
                   "the fit would move to absorb an error in any other cost (to --out FILE if given)")
        ("ensemble", po::value(&ensemble_members), "instead of fitting the profile: N refits, each with the assumed costs\n"
                     "drawn within their ranges (an ensemble for --uncertainty; to --out FILE, default\n"
                     "PROFILE.ensemble.json)");
    add_common(desc, c, default_runs);
    auto vm = parse(args, desc, nullptr, &c);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    refuse_unused(vm, "calibrate", {"json", "csv", "stats", "trace", "debug"});
    RunSpec base = base_spec(c);
    const TrainingSet t = load_training(training);
    apply_sets(t.setup, base);  // the setting the measurements were made in, then the user's
    apply_sets(c.sets, base);
    if (vm.count("report") && vm.count("ensemble")) throw model::ConfigError("calibrate: --report or --ensemble, not both");
    if (vm.count("ensemble")) {
        const auto n = static_cast<unsigned>(parse_count("ensemble", ensemble_members, 1, 1000));
        if (out.empty()) out = base.profile.name + ".ensemble.json";
        if (!c.sets.empty()) throw model::ConfigError("calibrate --ensemble: --set does not apply (the ensemble belongs to the profile as it is)");
        std::printf("calibration ensemble of profile %s: %u members, %u runs a configuration, seed %llu%s\n",
                    base.profile.name.c_str(), n, c.runs, static_cast<unsigned long long>(c.seed),
                    time_mode_note(base.quantum_cycles).c_str());
        const Ensemble en = make_ensemble(base, t, n, c.seed, c.runs, iterations, c.jobs, [](const EnsembleMember& m) {
            std::printf("  member %3u %-8s residuals", m.index, m.accepted ? "accepted" : "rejected");
            for (double r : m.residual_percent) std::printf(" %+6.2f%%", r);
            std::printf("\n");
            std::fflush(stdout);
        });
        write_file(out, en.to_json().dump(2) + "\n");
        std::printf("%u of %u members accepted (every training mean within two standard errors:", en.accepted(), n);
        for (double tol : en.tolerance_percent) std::printf(" %.2f%%", tol);
        std::printf("); wrote %s\n", out.c_str());
        return 0;
    }
    if (vm.count("report")) {
        if (!vm["iterations"].defaulted()) throw model::ConfigError("calibrate --report fits nothing: --iterations does not apply");
        const std::string report = identifiability_report(base, t, c.runs, c.jobs);
        std::cout << report;
        if (!out.empty()) write_file(out, report);
        return 0;
    }
    if (out.empty()) out = base.profile.name + ".calibrated.json";
    const CalibrationReport rep = calibrate(base, t, c.runs, iterations, c.jobs);
    std::cout << rep.text;
    write_file(out, rep.profile_json.dump(2) + "\n");
    write_file(out + ".residuals.txt", rep.text);
    std::printf("wrote %s and %s.residuals.txt\n", out.c_str(), out.c_str());
    return 0;
}

// ---------------------------------------------------------------------------- validate
int cmd_validate(const std::vector<std::string>& args) {
    Common c;
    std::vector<std::string> files;
    po::options_description desc(
        "vtxsim validate [FILE...]: the model against published measurements that no cost was fitted to\n"
        "(profiles/validation/*.json unless FILEs are given): published value, model, relative error, and\n"
        "how the measurement's setup differs from the model run. A validation point never sets a cost");
    desc.add_options()("help,h", "this help")("files", po::value(&files)->composing(), "validation point files");
    add_common(desc, c, 5);
    po::positional_options_description pos;
    pos.add("files", -1);
    auto vm = parse(args, desc, &pos, &c);
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    refuse_unused(vm, "validate", {"profile", "set", "csv", "stats", "trace", "debug"});
    if (files.empty()) files = validation_files();
    if (files.empty()) throw model::ConfigError("validate: no validation points in " + display_path(profile_dir()) + "/validation");
    std::vector<ValidationPoint> points;
    for (const auto& f : files) points.push_back(ValidationPoint::load(f));
    struct Row {
        double model = 0, error = 0;
        std::string command;
    };
    std::vector<Row> rows;
    for (const ValidationPoint& p : points) {
        auto wrap = [&](const std::string& what) {
            return model::ConfigError("validation point " + display_path(p.file) + ": " + what);
        };
        Common pc = c;
        pc.profile = p.profile;
        RunSpec spec;
        try {
            spec = base_spec(pc);
        } catch (const model::ConfigError& e) {
            throw wrap(e.what());
        }
        const auto* info = workloads::find_workload(p.workload);
        spec.workload = p.workload;
        spec.config.x2apic = p.apic == "x2apic";
        spec.config.vcpus = p.vcpus ? p.vcpus : info->default_vcpus;
        spec.config.pcpus = spec.config.vcpus;
        if (p.ipiv) {
            if (*p.ipiv && !spec.profile.features.ipi_virtualization)
                throw wrap("model: profile \"" + spec.profile.name + "\" has no IPI virtualization");
            spec.kvm.enable_ipiv = *p.ipiv;
        }
        try {
            apply_sets(p.sets, spec);
        } catch (const model::ConfigError& e) {
            throw wrap(std::string("model: ") + e.what());
        }
        const std::string ipiv = spec.kvm.enable_ipiv ? "on" : "off";
        spec.stream = p.workload + "/" + p.apic + "/" + (spec.kvm.enable_ipiv ? "ipiv" : "noipiv");  // as `vtxsim run`
        const unsigned runs = vm["runs"].defaulted() ? p.runs : c.runs;
        std::vector<RunSpec> specs(runs, spec);
        for (unsigned r = 0; r < runs; ++r) specs[r].run_index = r;
        const auto outs = run_many(specs, c.jobs);
        for (const auto& o : outs)
            if (!o.ok) {
                if (o.bad_input) throw wrap("model: " + o.error);
                throw cpu::SimulationError("validation point " + display_path(p.file) + ": " + o.error);
            }
        std::vector<double> values;
        for (const auto& o : outs) {
            if (p.metric == "cycles_per_iteration") {
                values.push_back(o.cycles_per_iteration);
                continue;
            }
            const auto it = o.values.find(p.metric);
            if (it == o.values.end()) throw wrap("model: workload " + p.workload + " reports no \"" + p.metric + "\"");
            values.push_back(it->second);
        }
        Row row;
        row.model = mean_of(values);
        if (p.unit == "ns") row.model /= spec.profile.tsc_ghz;  // TSC cycles to ns
        row.error = 100.0 * (row.model - p.value) / p.value;
        row.command = "vtxsim run " + p.workload + " --apic " + p.apic + " --ipiv " + ipiv + " --profile " + p.profile;
        if (p.vcpus) row.command += " --vcpus " + std::to_string(p.vcpus);
        for (const auto& s : p.sets) row.command += " --set " + s;
        row.command += " --runs " + std::to_string(runs);
        rows.push_back(row);
    }
    std::printf("validation: the model against %zu published measurements no cost was fitted to (seed %llu%s)\n",
                points.size(), static_cast<unsigned long long>(c.seed),
                time_mode_note(c.quantum_given ? parse_quantum(c.quantum) : kDefaultQuantumCycles).c_str());
    std::size_t width = 5;
    for (const auto& p : points) width = std::max(width, p.name.size());
    std::printf("%-*s %18s %18s %9s  %s\n", static_cast<int>(width), "point", "published", "model", "error", "setup");
    for (std::size_t i = 0; i < points.size(); ++i) {
        const ValidationPoint& p = points[i];
        char published[48], modelled[48], setup[48];
        if (p.spread)
            std::snprintf(published, sizeof published, "%.6g+-%.3g %s", p.value, *p.spread, p.unit.c_str());
        else
            std::snprintf(published, sizeof published, "%.6g %s", p.value, p.unit.c_str());
        std::snprintf(modelled, sizeof modelled, "%.1f %s", rows[i].model, p.unit.c_str());
        if (p.differences.empty())
            std::snprintf(setup, sizeof setup, "matches");
        else
            std::snprintf(setup, sizeof setup, "differs (%zu)", p.differences.size());
        std::printf("%-*s %18s %18s %+8.1f%%  %s\n", static_cast<int>(width), p.name.c_str(), published, modelled,
                    rows[i].error, setup);
    }
    std::printf("\nthe points, their sources, the model runs, and how each setup differs:\n");
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = 0; i < points.size(); ++i) {
        const ValidationPoint& p = points[i];
        std::printf("%s: %s\n  measured on %s; %s\n  source: %s\n  model: %s\n", p.name.c_str(), p.quantity.c_str(),
                    p.cpu.c_str(), p.setup.c_str(), p.citation.c_str(), rows[i].command.c_str());
        for (const auto& d : p.differences) std::printf("  differs: %s\n", d.c_str());
        out.push_back({{"point", p.name},
                       {"quantity", p.quantity},
                       {"unit", p.unit},
                       {"published", p.value},
                       {"spread", p.spread ? nlohmann::json(*p.spread) : nlohmann::json(nullptr)},
                       {"model", rows[i].model},
                       {"error_percent", rows[i].error},
                       {"setup_matches", p.differences.empty()},
                       {"differences", p.differences},
                       {"model_run", rows[i].command},
                       {"citation", p.citation}});
    }
    if (!c.json.empty()) write_file(c.json, nlohmann::json({{"seed", c.seed}, {"points", out}}).dump(2) + "\n");
    return 0;
}

}  // namespace

int run_cli(int argc, char* argv[]) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        print_help(std::cerr);
        return 2;
    }
    if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        print_help(std::cout);
        return 0;
    }
    const std::string sub = args[0];
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    try {
        if (sub == "run") return cmd_run(rest);
        if (sub == "compare") return cmd_compare(rest);
        if (sub == "list") return cmd_list(rest);
        if (sub == "bench") return cmd_bench(rest);
        if (sub == "check") return cmd_check(rest);
        if (sub == "explain") return cmd_explain(rest);
        if (sub == "sweep") return cmd_sweep(rest);
        if (sub == "plot") return cmd_plot(rest);
        if (sub == "calibrate") return cmd_calibrate(rest);
        if (sub == "validate") return cmd_validate(rest);
    } catch (const po::error& e) {
        std::cerr << "vtxsim " << sub << ": " << e.what() << " (see `vtxsim " << sub << " --help`)\n";
        return 2;
    } catch (const model::ConfigError& e) {
        std::cerr << "vtxsim " << sub << ": " << e.what() << "\n";
        return 2;
    } catch (const Interrupted& e) {
        std::cerr << "vtxsim " << sub << ": " << e.what() << "\n";
        return 128 + e.signal();
    } catch (const std::exception& e) {
        std::cerr << "vtxsim " << sub << ": " << e.what() << "\n";
        return 1;
    }
    if (sub.rfind("-", 0) == 0)
        std::cerr << "vtxsim: unknown option '" << sub << "' (see `vtxsim --help`)\n";
    else
        std::cerr << "vtxsim: unknown subcommand '" << sub << "' (see `vtxsim --help`)\n";
    return 2;
}

}  // namespace vtx::sim
