// Results that users rely on: exit counts explain the numbers, same seed gives the same
// output, and the IPIv comparison reproduces the published table (read from the training
// file, never written in code).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>

#include "cli_support.hpp"
#include "sim/options.hpp"

using vtx::test::read_json;
using vtx::test::temp_path;
using vtx::test::vtxsim;

namespace {
nlohmann::json run_json(std::vector<std::string> args) {
    const std::string out = temp_path("run.json");
    args.push_back("--json");
    args.push_back(out);
    const auto r = vtxsim(args);
    REQUIRE(r.status == 0);
    auto j = read_json(out);
    ::unlink(out.c_str());
    return j;
}
double exits_per_iteration(const nlohmann::json& j, const std::string& reason, std::uint64_t total) {
    return j["exits"].contains(reason) ? j["exits"][reason].get<double>() / static_cast<double>(total) : 0.0;
}
std::uint64_t total_iterations(const nlohmann::json& j) {
    // ipi runs passes of 64, 128, ... iterations up to the reported one: 2 * last - 64.
    std::uint64_t t = 0;
    for (const auto& n : j["iterations"]) t += 2 * n.get<std::uint64_t>() - 64;
    return t;
}
}  // namespace

TEST_CASE("run --json has the documented fields", "[results]") {
    const auto j = run_json({"run", "ipi", "--runs", "2", "--set", "workload.goal=200000"});
    for (const char* k : {"workload", "apic", "ipiv", "profile", "seed", "runs", "iterations", "mean",
                          "stddev", "exits", "notifications", "host_seconds", "config"})
        CHECK(j.contains(k));
    CHECK(j["runs"].size() == 2);
    CHECK(j["config"]["costs"].contains("vmx.exit_save_guest"));
    CHECK(j["config"]["knobs"]["kvm.enable_ipiv"] == "on");
}

TEST_CASE("exit counts explain the numbers", "[results]") {
    SECTION("x2APIC without IPIv: one WRMSR exit per IPI, no APIC-write exits") {
        const auto j = run_json({"run", "ipi", "--apic", "x2apic", "--ipiv", "off", "--set", "workload.goal=300000"});
        const auto n = total_iterations(j);
        CHECK(exits_per_iteration(j, "32", n) == Approx(1.0).margin(0.01));
        CHECK(exits_per_iteration(j, "56", n) == 0.0);
    }
    SECTION("xAPIC without IPIv: one APIC-write exit per IPI") {
        const auto j = run_json({"run", "ipi", "--apic", "xapic", "--ipiv", "off", "--set", "workload.goal=300000"});
        const auto n = total_iterations(j);
        CHECK(exits_per_iteration(j, "56", n) == Approx(1.0).margin(0.01));
        CHECK(exits_per_iteration(j, "44", n) == 0.0);
    }
    SECTION("with IPIv: no exit on the sender, one notification per IPI") {
        for (const char* apic : {"xapic", "x2apic"}) {
            const auto j = run_json({"run", "ipi", "--apic", apic, "--ipiv", "on", "--set", "workload.goal=300000"});
            CHECK(j["exits"].empty());
            CHECK(j["notifications"].get<double>() == Approx(static_cast<double>(total_iterations(j))).margin(1));
        }
    }
}

TEST_CASE("the same seed gives the same output byte for byte", "[results]") {
    auto a = run_json({"run", "ipi", "--runs", "3", "--seed", "11", "--set", "workload.goal=200000"});
    auto b = run_json({"run", "ipi", "--runs", "3", "--seed", "11", "--set", "workload.goal=200000"});
    auto c = run_json({"run", "ipi", "--runs", "3", "--seed", "12", "--set", "workload.goal=200000"});
    a.erase("host_seconds");
    b.erase("host_seconds");
    CHECK(a.dump() == b.dump());
    CHECK(a["runs"] != c["runs"]);
}

TEST_CASE("compare ipi reproduces the IPIv cover-letter table", "[results][published]") {
    const std::string out = temp_path("compare.json");
    REQUIRE(vtxsim({"compare", "ipi", "--runs", "20", "--json", out}).status == 0);
    const auto j = read_json(out);
    ::unlink(out.c_str());
    const auto training = vtx::sim::load_training(vtx::sim::default_training_file());
    REQUIRE(j["configs"].size() == 4);
    std::map<std::string, double> sim_mean;
    for (const auto& c : j["configs"]) {
        const std::string key = c["apic"].get<std::string>() + (c["ipiv"].get<bool>() ? "+ipiv" : "");
        sim_mean[key] = c["mean"];
        const double sd = c["stddev"];
        CHECK(sd >= 50.0);
        CHECK(sd <= 250.0);
        CHECK(c["runs"].size() == 20);
    }
    std::map<std::string, double> pub;
    for (const auto& col : training.columns) pub[col.apic + (col.ipiv ? "+ipiv" : "")] = col.mean;
    for (const auto& [key, m] : pub) {
        INFO(key);
        CHECK(std::fabs(sim_mean.at(key) - m) / m < 0.03);
    }
    const double pub_x = 100.0 * (pub["xapic"] - pub["xapic+ipiv"]) / pub["xapic"];
    const double pub_x2 = 100.0 * (pub["x2apic"] - pub["x2apic+ipiv"]) / pub["x2apic"];
    CHECK(std::fabs(j["reduction_percent"]["xapic"].get<double>() - pub_x) < 2.0);
    CHECK(std::fabs(j["reduction_percent"]["x2apic"].get<double>() - pub_x2) < 2.0);
}

TEST_CASE("overcommit loses no IPI", "[results][overcommit]") {
    for (const char* apic : {"xapic", "x2apic"})
        for (const char* ipiv : {"on", "off"}) {
            INFO(apic << " ipiv " << ipiv);
            const auto j = run_json({"run", "overcommit", "--vcpus", "4", "--pcpus", "2", "--apic", apic, "--ipiv",
                                     ipiv, "--set", "kvm.sched_slice_cycles=20000", "--set", "workload.ipis=10"});
            CHECK(j["checks_ok"] == true);
            // vCPUs sharing a CPU are preempted by the scheduler tick: external-interrupt exits.
            CHECK(j["exits"].contains("1"));
        }
}

TEST_CASE("ipi_halt wakes a halted target through the posted-interrupt wakeup vector", "[results]") {
    const auto on = run_json({"run", "ipi_halt", "--ipiv", "on", "--set", "workload.goal=100000"});
    CHECK(on["checks_ok"] == true);
    const auto n = total_iterations(on);
    // The target halts every time (HLT exit), and with IPIv every IPI to the blocked vCPU
    // is a notification on the wakeup vector (NV was switched to 0xF1 when it blocked).
    CHECK(exits_per_iteration(on, "12", n) >= 1.0);
    CHECK(on["notifications"].get<double>() == Approx(static_cast<double>(n)).margin(2));
    const auto off = run_json({"run", "ipi_halt", "--ipiv", "off", "--set", "workload.goal=100000"});
    CHECK(off["checks_ok"] == true);
    // Without IPIv KVM wakes the blocked vCPU directly: no notification IPI at all.
    CHECK(off["notifications"] == 0);
}

TEST_CASE("run --timeline writes a trace-event timeline of guest runs and exits", "[results]") {
    const std::string tl = temp_path("timeline.json");
    REQUIRE(vtxsim({"run", "ipi", "--ipiv", "off", "--set", "workload.goal=1", "--timeline", tl}).status == 0);
    const auto j = read_json(tl);
    ::unlink(tl.c_str());
    std::ifstream vcd_in(tl + ".vcd");
    const std::string vcd((std::istreambuf_iterator<char>(vcd_in)), std::istreambuf_iterator<char>());
    ::unlink((tl + ".vcd").c_str());
    CHECK(vcd.find("$var wire 1 g0 cpu0_guest $end") != std::string::npos);
    CHECK(vcd.find("b00100000 r0") != std::string::npos);  // exit reason 32 (WRMSR) on cpu0
    int begins = 0, ends = 0, wrmsr_exits = 0, accepts = 0;
    for (const auto& e : j["traceEvents"]) {
        const std::string ph = e["ph"];
        begins += ph == "B";
        ends += ph == "E";
        if (ph == "i" && e["cat"] == "vmx" && e["args"]["reason"] == 32) ++wrmsr_exits;
        if (ph == "i" && e["cat"] == "apic") ++accepts;
    }
    CHECK(begins > 0);
    CHECK(begins == ends);
    CHECK(wrmsr_exits >= 64);  // one per IPI of the 64-iteration pass
    CHECK(accepts >= 64);
}

TEST_CASE("the report counts IPIv's notifications apart from KVM's", "[results]") {
    // With LAST_PID_POINTER_INDEX = 0 IPIv declines every IPI to vCPU 1 (APIC-write exits)
    // and KVM posts and notifies: the processor sent none.
    const auto j = run_json({"run", "ipi", "--set", "vmcs.LAST_PID_POINTER_INDEX=0", "--set", "workload.goal=200000"});
    const auto n = total_iterations(j);
    CHECK(j["notifications"] == 0);
    CHECK(j["kvm_notifications"].get<double>() == Approx(static_cast<double>(n)).margin(2));
    const auto ipiv = run_json({"run", "ipi", "--set", "workload.goal=200000"});
    CHECK(ipiv["notifications"].get<double>() == Approx(static_cast<double>(total_iterations(ipiv))).margin(1));
    CHECK(ipiv["kvm_notifications"] == 0);
}

TEST_CASE("outputs name shipped files relative to the checkout, never by absolute path", "[results]") {
    const auto j = run_json({"run", "ipi", "--set", "workload.goal=1"});
    CHECK(j["config"]["profile_file"] == "profiles/spr.json");
    CHECK(vtx::sim::display_path(vtx::sim::default_training_file()) == "profiles/training/kvm-ipiv-cover-letter.json");
}

// The host's wakeup of a halted vCPU (kvm.host_idle): which path, which IPI.
namespace {
std::uint64_t stat(const nlohmann::json& j, const std::string& name) {
    return j["stats"].contains(name) ? j["stats"][name]["value"].get<std::uint64_t>() : 0;
}
}  // namespace

TEST_CASE("ipi_halt without IPIv, idle host CPUs in C1: KVM's wakeup is a reschedule IPI the idle CPU leaves C1 for", "[results][wakeup]") {
    const auto j = run_json({"run", "ipi_halt", "--ipiv", "off", "--set", "kvm.halt_poll_ns=0", "--set",
                             "workload.goal=100000"});
    CHECK(j["checks_ok"] == true);
    const auto n = total_iterations(j);
    // Every IPI finds the target blocked on the other CPU: one reschedule IPI each.
    CHECK(stat(j, "host.wakeups_reschedule_ipi") == n);
    CHECK(stat(j, "host.wakeups_polling") == 0);
    CHECK(stat(j, "kvm.pi_wakeups") == 0);
}

TEST_CASE("ipi_halt without IPIv, kvm.host_idle=poll: the wakeup is a store the polling idle loop sees, no IPI", "[results][wakeup]") {
    const auto j = run_json({"run", "ipi_halt", "--ipiv", "off", "--set", "kvm.host_idle=poll", "--set",
                             "kvm.halt_poll_ns=0", "--set", "workload.goal=100000"});
    CHECK(j["checks_ok"] == true);
    CHECK(stat(j, "host.wakeups_polling") == total_iterations(j));
    CHECK(stat(j, "host.wakeups_reschedule_ipi") == 0);
}

TEST_CASE("ipi_halt with IPIv: the notification on the wakeup vector wakes the vCPU on its own CPU, no reschedule IPI", "[results][wakeup]") {
    const auto j = run_json({"run", "ipi_halt", "--ipiv", "on", "--set", "kvm.halt_poll_ns=0", "--set",
                             "workload.goal=100000"});
    CHECK(j["checks_ok"] == true);
    // (The first IPI can reach the target before its first HLT.)
    CHECK(static_cast<double>(stat(j, "kvm.pi_wakeups")) == Approx(static_cast<double>(total_iterations(j))).margin(1));
    CHECK(stat(j, "host.wakeups_reschedule_ipi") == 0);
}

TEST_CASE("ipi_halt: with idle CPUs in C1 IPI virtualization saves the sender's exit, with polling idle CPUs it does not", "[results][wakeup]") {
    auto mean = [](const std::vector<std::string>& args) {
        std::vector<std::string> a = {"run", "ipi_halt", "--runs", "2", "--set", "workload.goal=100000", "--set",
                                      "kvm.halt_poll_ns=0"};
        a.insert(a.end(), args.begin(), args.end());
        const auto j = run_json(a);
        return j["mean"].get<double>();
    };
    CHECK(mean({"--ipiv", "on"}) < mean({"--ipiv", "off"}));
    // idle=poll: KVM's software wakeup needs no IPI, IPIv's notification crosses the interconnect.
    CHECK(mean({"--ipiv", "on", "--set", "kvm.host_idle=poll"}) > mean({"--ipiv", "off", "--set", "kvm.host_idle=poll"}));
}

TEST_CASE("ipi_halt with KVM's halt polling (the default): the halted vCPU finds the posted IPI while polling", "[results][wakeup]") {
    for (const char* ipiv : {"on", "off"}) {
        INFO("ipiv " << ipiv);
        const auto j = run_json({"run", "ipi_halt", "--ipiv", ipiv, "--set", "workload.goal=100000"});
        CHECK(j["checks_ok"] == true);
        const auto n = total_iterations(j);
        // The first halt blocks (a vCPU's poll time starts at 0) and grows it to 10 us; every
        // later one polls and finds the IPI: no block, no wakeup vector, no reschedule IPI.
        CHECK(static_cast<double>(stat(j, "kvm.halt_poll_successes")) == Approx(static_cast<double>(n)).margin(2));
        CHECK(stat(j, "kvm.pi_wakeups") <= 1);
        CHECK(stat(j, "host.wakeups_reschedule_ipi") <= 1);
    }
    // The poller sees IPIv's posting in the PID directly: IPIv saves the sender's exit.
    const auto on = run_json({"run", "ipi_halt", "--ipiv", "on", "--runs", "2", "--set", "workload.goal=100000"});
    const auto off = run_json({"run", "ipi_halt", "--ipiv", "off", "--runs", "2", "--set", "workload.goal=100000"});
    CHECK(on["mean"].get<double>() < off["mean"].get<double>());
}
