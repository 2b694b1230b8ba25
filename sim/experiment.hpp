#pragma once
// One simulation run, and many of them: SystemC allows one elaboration per process, so
// each run is simulated in a child process (fork) that sends its outcome back as JSON.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/profile.hpp"
#include "vmm/kvm.hpp"
#include "workloads/scenario.hpp"
#include "workloads/workload.hpp"

namespace vtx::sim {

// The default time mode: the global quantum, in core cycles, by which a processor may
// run ahead of SystemC time. Chosen as the fastest quantum whose results stay within the
// error budget against exact mode (quantum 0); measured table in docs/architecture.md,
// budget checked by tests/sim/test_time_modes.cpp.
inline constexpr double kDefaultQuantumCycles = 5000;

struct RunSpec {
    std::string workload = "ipi";
    model::CpuProfile profile;  // with --set overrides applied
    vmm::KvmParams kvm;
    workloads::WorkloadConfig config;
    std::uint64_t seed = 1;
    unsigned run_index = 0;
    std::string stream;  // names the configuration, so each one draws its own perturbation
    bool trace = false;
    std::vector<std::string> debug_flags;
    std::string timeline_path;  // write a Chrome/Perfetto trace-event timeline here
    std::vector<std::pair<vmcs::Field, std::uint64_t>> vmcs_overrides;  // --set vmcs.FIELD=VALUE
    double max_simulated_seconds = 60.0;  // a run that has not finished by then is an error
    double max_host_seconds = 0;          // a run that takes longer is stopped (0: no limit)
    double quantum_cycles = kDefaultQuantumCycles;  // 0: exact mode; else decoupled (cpu/platform.hpp)
    // A scenario file's contents (vtxsim check): runs instead of the registered workload.
    std::shared_ptr<const workloads::scenario::Scenario> scenario;
    bool explain = false;  // vtxsim explain WORKLOAD: record the run's steps (the last marked iteration)
    bool protocol_check = false;  // vtxsim run --check: the protocol checker (sim/protocol_check.hpp) watches the run
};

struct RunOutcome {
    bool ok = false;
    std::string error;
    bool bad_input = false;  // the error is the user's input (exit 2), not the simulation's
    double cycles_per_iteration = 0;
    std::uint64_t iterations = 0;
    std::uint64_t total_iterations = 0;
    std::map<std::string, std::uint64_t> exits;  // basic reason (as a string) -> count
    std::uint64_t notifications = 0;             // posted-interrupt notifications IPI virtualization sent
    std::uint64_t kvm_notifications = 0;         // ... and those KVM sent (vmx_deliver_posted_interrupt)
    double host_seconds = 0;        // simulating (sc_start)
    double setup_host_seconds = 0;  // building the platform, VMM and workload before it
    double peak_rss_kib = 0;        // the run's process: peak resident set (getrusage ru_maxrss)
    double simulated_cycles = 0;
    bool check_ok = false;
    std::string check;
    std::string explanation;  // vtxsim explain
    std::map<std::string, double> step_cycles;  // vtxsim explain: cycles per named step
    // --check: the protocol checker's findings (lost, late, misrouted, duplicated IPIs) and counts.
    bool protocol_checked = false;
    std::vector<std::string> protocol_findings;
    std::uint64_t protocol_ipis = 0, protocol_deliveries = 0, protocol_coalesced = 0;
    std::map<std::string, double> values;
    nlohmann::json stats;
    std::string stats_text;  // gem5 stats.txt style
    nlohmann::json to_json() const;
    static RunOutcome from_json(const nlohmann::json& j);
};

// The per-run perturbation: each cost with a run_variation draws a factor
// 1 + run_variation * N(0,1) (truncated at 3 sigma) from a stream seeded by (seed,
// stream, run index). It models what differs between runs on hardware (the mesh
// distance between the two cores, uncore frequency, cache and TLB state), and is applied
// to costs, never to results.
void apply_run_variation(model::CpuProfile& profile, std::uint64_t seed, const std::string& stream,
                         unsigned run_index);

// The four configurations of the IPIv cover letter (xAPIC/x2APIC x without/with IPIv), `runs`
// runs each, in that order. `compare` and `calibrate` both use it, so a calibration fits
// exactly the runs the comparison reports.
struct IpiConfig {
    bool x2apic;
    bool ipiv;
    const char* label;  // the cover letter's column name
};
inline constexpr IpiConfig kIpiConfigs[] = {{false, false, "xAPIC w/o IPIv"},
                                            {false, true, "xAPIC w/ IPIv"},
                                            {true, false, "x2APIC w/o IPIv"},
                                            {true, true, "x2APIC w/ IPIv"}};
// The four configurations of base.workload, `runs` runs each, in kIpiConfigs order; each
// configuration's runs are those `vtxsim run` makes with the same options and seed.
std::vector<RunSpec> comparison_specs(const RunSpec& base, unsigned runs);
std::vector<RunSpec> ipi_comparison_specs(const RunSpec& base, unsigned runs);

// Simulates one run in this process (call at most once per process).
RunOutcome run_in_process(const RunSpec& spec);
// SIGINT or SIGTERM reached the parent while runs were going on: the children were stopped
// and reaped; nothing was written.
class Interrupted : public std::runtime_error {
public:
    Interrupted(int signal, std::size_t finished, std::size_t total);
    int signal() const { return m_signal; }

private:
    int m_signal;
};

// Simulates each run in its own child process, `jobs` at a time; outcomes in order. The
// children die with the parent (PR_SET_PDEATHSIG); SIGINT / SIGTERM to the parent stop them
// and throw Interrupted.
// `on_done(index, outcome)`, if given, is called as each run finishes (in completion order).
std::vector<RunOutcome> run_many(const std::vector<RunSpec>& specs, unsigned jobs,
                                 const std::function<void(std::size_t, const RunOutcome&)>& on_done = {});

}  // namespace vtx::sim
