#pragma once
// `vtxsim sweep` and `vtxsim plot`: a grid of configurations of one workload, each point
// run --runs times as independent processes on the local cores, with progress, a seed per
// point derived from the sweep's seed and the point (so results depend on neither order
// nor parallelism), resumable (points with results are skipped), and the results kept as
// gem5 keeps m5out: per point its resolved configuration, statistics and results, and for
// the sweep results.csv / results.json. `plot` draws them with gnuplot.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/experiment.hpp"

namespace vtx::sim {

struct GridKey {
    std::string key;                  // vcpus, pcpus, apic, ipiv, profile, quantum, or a --set key
    std::vector<std::string> values;  // in the order given
};

struct SweepPlan {
    std::string workload;
    std::vector<GridKey> grid;
    unsigned runs = 5;
    std::uint64_t seed = 1;
    std::string profile = "spr";     // unless the grid sweeps it
    std::vector<std::string> sets;   // --set items applied to every point
    double quantum_cycles = kDefaultQuantumCycles;
    double max_simulated_seconds = 60;
    std::string out_dir;
};

// One point: its key values (in grid order) and a stable name ("apic=xapic,vcpus=64").
struct SweepPoint {
    std::vector<std::string> values;
    std::string name;
    std::uint64_t seed = 0;  // FNV-1a of (sweep seed, name): the same wherever the point runs
};

// `--grid KEY=V1,V2,...`; throws model::ConfigError naming the option.
GridKey parse_grid(const std::string& text);
std::vector<SweepPoint> sweep_points(const SweepPlan& plan);
// The run specifications of a point (resolving profile, sets, point keys; bad input throws).
std::vector<RunSpec> point_specs(const SweepPlan& plan, const SweepPoint& point);

struct SweepProgress {
    std::size_t points_total = 0, points_done = 0, points_skipped = 0;
};
// Runs the points without results, `jobs` processes at a time; writes each point's files
// as it completes and the sweep's results at the end. Returns whether every run's
// behavioural check passed.
// `only_point`: run that point alone (an array task of `--emit-slurm`'s batch job) and do
// not write the sweep's results (`merge_sweep` does).
bool run_sweep(const SweepPlan& plan, unsigned jobs, bool progress_on_terminal,
               std::optional<std::size_t> only_point = std::nullopt);
// Writes results.csv / results.json from the point directories present; false (and a
// message naming them) when points have no results yet, or a check failed.
bool merge_sweep(const SweepPlan& plan);
// The plan a sweep directory holds (sweep.json).
SweepPlan load_sweep_plan(const std::string& dir);
// `--emit-slurm`: writes the plan and a Slurm job-array script (a task per point) into the
// sweep directory; returns the script's path.
std::string emit_slurm(const SweepPlan& plan, const std::string& vtxsim_path, const std::string& time_limit);

// `vtxsim plot`: from a sweep directory (or its results.json), the workload's metric vs
// `x_key` (default: the first swept key whose values are numbers) with error bars (sample
// standard deviation), one series per combination of the other keys. Writes SVG or PNG
// (by the output's extension) through gnuplot.
void plot_sweep(const std::string& dir_or_file, const std::string& out, const std::string& x_key);

// `vtxsim plot --breakdown`: a stacked bar per configuration of the cycles each named step
// charged in one explained round trip (the largest steps, the rest as "other steps").
void plot_breakdown(const std::string& title,
                    const std::vector<std::pair<std::string, std::map<std::string, double>>>& configs,
                    const std::string& out);

}  // namespace vtx::sim
