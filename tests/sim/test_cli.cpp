#include <filesystem>
#include <sstream>

#include <catch2/catch.hpp>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include <fstream>
#include <sstream>

#include "cli_support.hpp"
#include "sim/cli.hpp"
#include "sim/options.hpp"

using vtx::test::vtxsim;

TEST_CASE("help lists the subcommands and exits 0", "[cli]") {
    CHECK(vtxsim({"--help"}).status == 0);
    CHECK(vtxsim({"run", "--help"}).status == 0);
    CHECK(vtxsim({"compare", "--help"}).status == 0);
}

TEST_CASE("an unknown option or subcommand is one clear line and exit 2", "[cli]") {
    auto r = vtxsim({"--bogus"});
    CHECK(r.status == 2);
    CHECK(r.err == "vtxsim: unknown option '--bogus' (see `vtxsim --help`)\n");
    r = vtxsim({"frobnicate"});
    CHECK(r.status == 2);
    CHECK(r.err.find("unknown subcommand 'frobnicate'") != std::string::npos);
    r = vtxsim({"run", "ipi", "--bogus"});
    CHECK(r.status == 2);
    CHECK(r.err.find("bogus") != std::string::npos);
}

TEST_CASE("bad run arguments name what is wrong", "[cli]") {
    auto r = vtxsim({"run", "nosuchworkload"});
    CHECK(r.status == 2);
    CHECK(r.err.find("unknown workload \"nosuchworkload\"") != std::string::npos);
    r = vtxsim({"run", "ipi", "--apic", "x3apic"});
    CHECK(r.status == 2);
    CHECK(r.err.find("--apic must be xapic or x2apic") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "cost.guest.nope=3"});
    CHECK(r.status == 2);
    CHECK(r.err.find("unknown cost \"guest.nope\"") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "cost.guest.pause=abc"});
    CHECK(r.status == 2);
    CHECK(r.err.find("must be a finite number of cycles") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "kvm.enable_teleport=on"});
    CHECK(r.status == 2);
    CHECK(r.err.find("unknown VMM knob \"kvm.enable_teleport\"") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "kvm.x2apic_icr_fastpath=maybe"});
    CHECK(r.status == 2);
    CHECK(r.err.find("expected on or off") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "nonsense"});
    CHECK(r.status == 2);
    CHECK(r.err.find("expected KEY=VALUE") != std::string::npos);
}

TEST_CASE("asking for IPIv on a profile without it is a clear error", "[cli]") {
    auto r = vtxsim({"run", "ipi", "--profile", "icx", "--ipiv", "on"});
    CHECK(r.status == 2);
    CHECK(r.err.find("profile \"icx\" has no IPI virtualization") != std::string::npos);
    r = vtxsim({"compare", "ipi", "--profile", "icx"});
    CHECK(r.status == 2);
}

TEST_CASE("a broken profile file gives a message naming file and entry", "[cli]") {
    nlohmann::json j = vtx::test::read_json(vtx::sim::profile_dir() + "/spr.json");
    j["costs"][3]["cycles"] = -1;
    const std::string path = vtx::test::temp_path("broken.json");
    std::ofstream(path) << j.dump();
    auto r = vtxsim({"run", "ipi", "--profile", path});
    CHECK(r.status == 2);
    const std::string name = j["costs"][3]["name"];
    CHECK(r.err.find("profile " + path + ": cost \"" + name + "\": cycles must not be negative") !=
          std::string::npos);
    r = vtxsim({"run", "ipi", "--profile", "nosuchprofile"});
    CHECK(r.status == 2);
    CHECK(r.err.find("no profile \"nosuchprofile\"") != std::string::npos);
    ::unlink(path.c_str());
}

TEST_CASE("a config file takes the same keys and refuses unknown ones", "[cli]") {
    const std::string good = vtx::test::temp_path("good.cfg"), bad = vtx::test::temp_path("bad.cfg");
    const std::string out = vtx::test::temp_path("cfg.json");
    std::ofstream(good) << "apic = xapic\nipiv = off\nset = workload.goal=100000\nseed = 7\n";
    std::ofstream(bad) << "apic = xapic\nwarp = 9\n";
    auto r = vtxsim({"run", "ipi", "--config", good, "--json", out});
    REQUIRE(r.status == 0);
    const auto j = vtx::test::read_json(out);
    CHECK(j["apic"] == "xapic");
    CHECK(j["ipiv"] == false);
    CHECK(j["seed"] == 7);
    r = vtxsim({"run", "ipi", "--config", bad});
    CHECK(r.status == 2);
    CHECK(r.err.find("warp") != std::string::npos);
    ::unlink(good.c_str());
    ::unlink(bad.c_str());
    ::unlink(out.c_str());
}

TEST_CASE("VMCS values set by a user get the architectural answer", "[cli][vmcs]") {
    // Input errors found inside the simulation (a SystemC thread) keep their kind: exit 2.
    auto r = vtxsim({"run", "ipi", "--set", "vmcs.VM_EXIT_REASON=5"});
    CHECK(r.status == 2);
    CHECK(r.err.find("VMWRITE failed with VMfailValid(13") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "vmcs.CPU_BASED_VM_EXEC_CONTROL=0x80000000"});
    CHECK(r.status == 2);
    CHECK(r.err.find("VM entry failed with VM-instruction error 7") != std::string::npos);
    CHECK(r.err.find("after --set vmcs.CPU_BASED_VM_EXEC_CONTROL") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "vmcs.GUEST_ACTIVITY_STATE=7"});
    CHECK(r.status == 2);
    CHECK(r.err.find("VM entry failed (exit reason 33)") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "vmcs.NO_SUCH_FIELD=1"});
    CHECK(r.status == 2);
    CHECK(r.err.find("unknown VMCS field \"NO_SUCH_FIELD\"") != std::string::npos);
    // A last PID-pointer index of 0 makes IPIv decline the IPI to vCPU 1: an APIC-write
    // exit (56) per IPI, then KVM delivers it.
    const std::string out = vtx::test::temp_path("lastpid.json");
    r = vtxsim({"run", "ipi", "--set", "vmcs.LAST_PID_POINTER_INDEX=0", "--set", "workload.goal=1", "--json", out});
    REQUIRE(r.status == 0);
    const auto j = vtx::test::read_json(out);
    ::unlink(out.c_str());
    CHECK(j["exits"]["56"].get<int>() >= 64);
    CHECK(j["checks_ok"] == true);
}

TEST_CASE("counts are whole numbers within their bounds: nothing wraps", "[cli]") {
    struct Row {
        std::vector<std::string> args;
        const char* says;
    };
    const Row rows[] = {
        {{"run", "ipi", "--runs", "-1"}, "--runs: \"-1\" is not a whole number from 1"},
        {{"run", "ipi", "--runs", "99999999999999999999"}, "--runs"},
        {{"compare", "ipi", "--runs", "0"}, "--runs: \"0\""},
        {{"run", "ipi", "--jobs", "0"}, "--jobs: \"0\""},
        {{"run", "ipi", "--seed", "-3"}, "--seed: \"-3\""},
        {{"run", "ipi", "--vcpus", "-2"}, "--vcpus: \"-2\""},
        {{"run", "ipi", "--pcpus", "0"}, "--pcpus: \"0\""},
        {{"run", "ipi", "--vcpus", "1"}, "ipi: runs on exactly 2 vCPUs"},
        {{"run", "ipi", "--set", "cost.vmx.vmread=nan"}, "must be a finite number of cycles"},
        {{"run", "ipi", "--set", "cost.vmx.vmread=1e300"}, "must be a finite number of cycles"},
    };
    for (const Row& row : rows) {
        std::string line;
        for (const auto& a : row.args) line += a + " ";
        INFO(line);
        const auto r = vtxsim(row.args);
        CHECK(r.status == 2);
        CHECK(r.err.find(row.says) != std::string::npos);
    }
}

TEST_CASE("a profile clock outside 1 MHz .. 100 GHz is refused with the file named", "[cli]") {
    const std::string bad = vtx::test::temp_path("fast.json");
    {
        std::ifstream in(std::string(VTX_SOURCE_DIR) + "/profiles/spr.json");
        std::stringstream ss;
        ss << in.rdbuf();
        std::string text = ss.str();
        const auto at = text.find("\"core_ghz\"");
        REQUIRE(at != std::string::npos);
        const auto colon = text.find(':', at), end = text.find_first_of(",\n}", colon);
        text.replace(colon + 1, end - colon - 1, " 1e300");
        std::ofstream(bad) << text;
    }
    const auto r = vtxsim({"run", "ipi", "--profile", bad});
    ::unlink(bad.c_str());
    CHECK(r.status == 2);
    CHECK(r.err.find("core_ghz must be between") != std::string::npos);
    CHECK(r.err.find("fast.json") != std::string::npos);
}

TEST_CASE("output that cannot be written is an error, never a silent exit 0", "[cli][output]") {
    auto r = vtxsim({"run", "ipi", "--set", "workload.goal=1", "--json", "/dev/full"});
    CHECK(r.status == 2);
    CHECK(r.err.find("cannot write /dev/full") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "workload.goal=1", "--csv", "/nonexistent-dir/out.csv"});
    CHECK(r.status == 2);
    CHECK(r.err.find("cannot write /nonexistent-dir/out.csv") != std::string::npos);
}

TEST_CASE("compare --csv writes every run of every configuration", "[cli][output]") {
    const std::string csv = vtx::test::temp_path("compare.csv");
    REQUIRE(vtxsim({"compare", "ipi", "--runs", "2", "--set", "workload.goal=100000", "--csv", csv}).status == 0);
    std::ifstream in(csv);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    ::unlink(csv.c_str());
    REQUIRE(lines.size() == 1 + 4 * 2);
    CHECK(lines[0] == "apic,ipiv,run,cycles_per_iteration");
    CHECK(lines[1].rfind("xapic,off,1,", 0) == 0);
    CHECK(lines[8].rfind("x2apic,on,2,", 0) == 0);
}

TEST_CASE("options a subcommand does not use are refused, never ignored", "[cli]") {
    const std::vector<std::vector<std::string>> rows = {
        {"bench", "--csv", "x.csv"}, {"bench", "--trace"}, {"bench", "--jobs", "2"},
        {"compare", "ipi", "--stats", "s.txt"}, {"calibrate", "--json", "c.json"}};
    for (const auto& args : rows) {
        INFO(args[0] << " " << args[1]);
        const auto r = vtxsim(args);
        CHECK(r.status == 2);
        CHECK(r.err.find("does not use it") != std::string::npos);
    }
}

TEST_CASE("SIGINT to vtxsim stops its simulation processes and writes nothing", "[cli][signals]") {
    // The test process adopts orphans (child subreaper), so a simulation process that
    // outlived vtxsim would show up as its child after vtxsim exits.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    const std::string json = vtx::test::temp_path("interrupted.json");
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::vector<std::string> args = {"vtxsim", "compare", "ipi", "--runs", "40", "--set", "workload.goal=67108864",
                                         "--json", json};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        std::fclose(stdout);
        ::_exit(vtx::sim::run_cli(static_cast<int>(argv.size()), argv.data()));
    }
    ::usleep(500000);
    ::kill(pid, SIGINT);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + SIGINT);
    ::usleep(100000);
    int other = 0;
    CHECK(::waitpid(-1, &other, WNOHANG) == -1);  // no orphaned simulation process
    CHECK(errno == ECHILD);
    CHECK(::access(json.c_str(), F_OK) != 0);  // nothing written
}

TEST_CASE("a run over its time budgets stops with a clear message", "[cli][budget]") {
    auto r = vtxsim({"run", "ipi", "--set", "workload.goal=1000000000000", "--max-sim-time", "0.0001"});
    CHECK(r.status == 1);
    CHECK(r.err.find("did not finish within") != std::string::npos);
    CHECK(r.err.find("--max-sim-time") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "workload.goal=1000000000000", "--max-host-time", "0.3"});
    CHECK(r.status == 1);
    CHECK(r.err.find("exceeded --max-host-time") != std::string::npos);
    r = vtxsim({"run", "ipi", "--max-host-time", "-1"});
    CHECK(r.status == 2);
    CHECK(r.err.find("--max-host-time") != std::string::npos);
}

TEST_CASE("compare WORKLOAD: the four configurations in the workload's metric, refused ones named", "[cli][compare]") {
    const std::string json = vtx::test::temp_path("compare_w.json");
    const std::string csv = vtx::test::temp_path("compare_w.csv");
    REQUIRE(vtxsim({"compare", "x2apic_self_ipi_sti_hlt", "--runs", "2", "--set", "workload.goal=20000", "--json",
                    json, "--csv", csv})
                .status == 0);
    const auto j = vtx::test::read_json(json);
    ::unlink(json.c_str());
    CHECK(j["workload"] == "x2apic_self_ipi_sti_hlt");
    CHECK(j["metric"] == "cycles per iteration");
    REQUIRE(j["configs"].size() == 4);
    // The x2APIC-only test is refused in xAPIC mode, with the workload's reason.
    for (int k : {0, 1}) CHECK(j["configs"][k]["refused"].get<std::string>().find("x2APIC") != std::string::npos);
    for (int k : {2, 3}) {
        CHECK(j["configs"][k]["runs"].size() == 2);
        CHECK(j["configs"][k]["mean"].get<double>() > 0);
    }
    CHECK(j["reduction_percent"].contains("x2apic"));
    CHECK(!j["reduction_percent"].contains("xapic"));
    CHECK(j["checks_ok"] == true);
    std::ifstream in(csv);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    ::unlink(csv.c_str());
    CHECK(lines.size() == 1 + 2 * 2);  // the refused configurations have no runs
}

TEST_CASE("compare with vCPUs a workload refuses in every configuration, or an unknown workload, exits 2", "[cli][compare]") {
    auto r = vtxsim({"compare", "ipi", "--vcpus", "3", "--runs", "1"});
    CHECK(r.status == 2);
    CHECK(r.err.find("exactly 2 vCPUs") != std::string::npos);
    r = vtxsim({"compare", "nosuch"});
    CHECK(r.status == 2);
    CHECK(r.err.find("unknown workload \"nosuch\"") != std::string::npos);
    r = vtxsim({"compare", "random_ipi", "--training", "x.json"});
    CHECK(r.status == 2);
    CHECK(r.err.find("--training") != std::string::npos);
}

TEST_CASE("bench --scale: host time per IPI and memory per vCPU at each size", "[cli][bench]") {
    const std::string json = vtx::test::temp_path("scale.json");
    REQUIRE(vtxsim({"bench", "--scale", "--scale-vcpus", "2,8", "--scale-calls", "256", "--json", json}).status == 0);
    const auto j = vtx::test::read_json(json);
    ::unlink(json.c_str());
    REQUIRE(j["scale"].size() == 2);
    CHECK(j["scale"][0]["vcpus"] == 2);
    CHECK(j["scale"][1]["vcpus"] == 8);
    for (const auto& row : j["scale"]) {
        CHECK(row["calls"].get<double>() >= 256);
        CHECK(row["ipis"].get<double>() > 0);
        CHECK(row["peak_rss_kib"].get<double>() > 0);
        CHECK(row["kib_per_vcpu"].get<double>() > 0);
        CHECK(row["floor_ns_per_call"].get<double>() > 0);  // the floor at that size, measured beside it
        CHECK(row["call_floor_ratio"].get<double>() > 0);
    }
    CHECK(j["floor_ns"].get<double>() > 0);
}

TEST_CASE("bench --scale refuses sizes out of range and its options without --scale", "[cli][bench]") {
    auto r = vtxsim({"bench", "--scale", "--scale-vcpus", "1,64"});
    CHECK(r.status == 2);
    CHECK(r.err.find("--scale-vcpus") != std::string::npos);
    r = vtxsim({"bench", "--scale", "--scale-vcpus", "4097"});
    CHECK(r.status == 2);
    r = vtxsim({"bench", "--scale-calls", "10"});
    CHECK(r.status == 2);
    CHECK(r.err.find("needs --scale") != std::string::npos);
}

// ---- scenario files (vtxsim check)
namespace {
std::string scenario_file(const std::string& name, const std::string& text) {
    const std::string path = vtx::test::temp_path(name);
    std::ofstream(path) << text;
    return path;
}
// `vtxsim check FILE --json`: its exit status and the one scenario's report; removes FILE.
std::pair<int, std::string> check_report(const std::string& f) {
    const std::string json = vtx::test::temp_path("check.json");
    const int status = vtxsim({"check", f, "--json", json}).status;
    const auto j = vtx::test::read_json(json);
    ::unlink(json.c_str());
    ::unlink(f.c_str());
    REQUIRE(j.size() == 1);
    CHECK(j[0]["ok"] == (status == 0));
    return {status, j[0]["report"].get<std::string>()};
}

const char* kGoodHead = R"(name: t
platform: {apic: x2apic, pcpus: 2}
memory: {flag: 0}
)";
}  // namespace

TEST_CASE("check: a scenario whose expectation fails exits 1 and names the expectation and its line", "[cli][check]") {
    const std::string f = scenario_file("fail.yaml", std::string(kGoodHead) + R"(vcpus:
  - id: 0
    program:
      - store: {addr: flag, value: 7}
expect:
  - {memory: {flag: 8}}
  - {memory: {flag: 7}}
)");
    const auto [status, report] = check_report(f);
    CHECK(status == 1);
    CHECK(report.find("1 of 2 expectations hold") != std::string::npos);
    CHECK(report.find("FAIL  memory flag == 8: got 0x7 (" + f + ":9)") != std::string::npos);
    CHECK(report.find("ok    memory flag == 7") != std::string::npos);
}

TEST_CASE("check: a failing expectation says between which steps its value departed, or that it never held",
          "[cli][check]") {
    const std::string f = scenario_file("depart.yaml", std::string(kGoodHead) + R"(vcpus:
  - id: 0
    program:
      - store: {addr: flag, value: 7}
      - cpuid: 0
      - store: {addr: flag, value: 9}
expect:
  - {memory: {flag: 7}}
  - {memory: {flag: 5}}
  - {vcpu: 0, exits: {CPUID: 0}}
)");
    const std::string json = vtx::test::temp_path("depart.json");
    REQUIRE(vtxsim({"check", f, "--json", json}).status == 1);
    const auto j = vtx::test::read_json(json);
    ::unlink(json.c_str());
    ::unlink(f.c_str());
    const std::string report = j[0]["report"];
    // flag == 7 held after the first store and departed at the second.
    const auto seven = report.find("FAIL  memory flag == 7: got 0x9");
    REQUIRE(seven != std::string::npos);
    const std::string after_seven = report.substr(seven, report.find("FAIL  memory flag == 5") - seven);
    CHECK(after_seven.find("as expected until it changed between") != std::string::npos);
    CHECK(after_seven.find("write") != std::string::npos);  // the second store is the step that did it
    // flag == 5 never held; it last changed at the second store.
    const auto five = report.find("FAIL  memory flag == 5: got 0x9");
    REQUIRE(five != std::string::npos);
    const std::string after_five = report.substr(five, report.find("FAIL  vCPU 0 exits") - five);
    CHECK(after_five.find("never as expected: 0x0 when the run began") != std::string::npos);
    CHECK(after_five.find("last changed between") != std::string::npos);
    // The CPUID exit: departed where the VM exit happened.
    const auto exits = report.find("FAIL  vCPU 0 exits CPUID == 0: got 0x1");
    REQUIRE(exits != std::string::npos);
    CHECK(report.find("VM exit", exits) != std::string::npos);
}

TEST_CASE("check: a bad scenario file is one message with file, line and field, and exit 2", "[cli][check]") {
    struct Case {
        std::string body, message;
    };
    const std::vector<Case> cases = {
        {"vcpus:\n  - id: 0\n    program:\n      - jump: 3\n", ":7: vcpus[0].program[0]: unknown instruction \"jump\""},
        {"vcpus:\n  - id: 1\n    program: [nop]\n", ":5: vcpus: no vCPU 0"},
        {"vcpus:\n  - id: 0\n    program:\n      - store: {addr: flagg, value: 1}\n",
         ":7: vcpus[0].program[0].store.addr: \"flagg\" is neither a name under memory: nor an address"},
        {"vcpus:\n  - id: 0\n    program: [nop]\nexpect:\n  - {vcpu: 0, exits: {NO_SUCH: 1}}\n",
         ":8: expect[0].exits: \"NO_SUCH\" is not an exit reason"},
        {"vcpus:\n  - id: 0\n    program: [nop]\nexpect:\n  - {at: there, memory: {flag: 1}}\n",
         ":8: expect[0].at: no program has the check point \"there\""},
        {"vcpus:\n  - id: 0\n    pcpu: 2\n    program: [nop]\n", ":6: vcpus[0].pcpu: CPU 2 of 2 (platform.pcpus)"},
        {"vcpus:\n  - id: 0\n    program:\n      - send_ipi: {vector: 0x140}\n",
         ":7: vcpus[0].program[0].send_ipi.vector: \"0x140\" is not a whole number from 0 to 255"},
        {"vcpus: [ {id: 0, program: [nop] }\n", ":5: not valid YAML"},
        // host-side events
        {"vcpus:\n  - id: 0\n    program: [nop]\nhost:\n  - {at: 5, block: {vcpu: 3, cycles: 10}}\n",
         ":8: host[0].block.vcpu: no vCPU 3 in vcpus"},
        {"vcpus:\n  - id: 0\n    program: [nop]\nhost:\n  - {at: 50, check: a}\n  - {at: 5, check: b}\n",
         ":9: host[1].at: events are listed in time order (the one before is at 50)"},
        {"vcpus:\n  - id: 0\n    program: [nop]\nhost:\n  - {at: 5, set_apic_id: {vcpu: 0, id: 3}}\n",
         ":8: host[0].set_apic_id: an x2APIC guest's APIC ID is its vCPU ID"},
        {"vcpus:\n  - id: 0\n    program: [nop]\nhost:\n  - {at: 5, host_ipi: {pcpu: 0}, check: a}\n",
         ":8: host[0]: expected `at:` and one action"},
        {"vcpus:\n  - id: 0\n    program: [nop]\nhost:\n  - {at: 5, msi: {vector: 0x40, shorthand: self}}\n",
         ":8: host[0].msi: unknown key \"shorthand\""},
    };
    for (const auto& c : cases) {
        INFO(c.body);
        const std::string f = scenario_file("bad.yaml", std::string(kGoodHead) + c.body);
        const auto r = vtxsim({"check", f});
        ::unlink(f.c_str());
        CHECK(r.status == 2);
        CHECK(r.err.find(f + c.message) != std::string::npos);
    }
}

TEST_CASE("check: a host event the run never reaches fails the scenario, naming its line", "[cli][check]") {
    const std::string f = scenario_file("late.yaml", std::string(kGoodHead) + R"(vcpus:
  - id: 0
    program: [nop]
host:
  - {at: 100000000, host_ipi: {pcpu: 0}}
)");
    const auto [status, report] = check_report(f);
    CHECK(status == 1);
    CHECK(report.find("FAIL  host event at cycle 100000000: never ran, the run ended first (" + f + ":8)") !=
          std::string::npos);
    CHECK(report.find("0 of 1 expectations hold") != std::string::npos);
}

TEST_CASE("check: the repository's scenario files all hold", "[cli][check]") {
    const std::string dir = std::string(VTX_SOURCE_DIR) + "/tests/scenarios/";
    const auto r = vtxsim({"check", dir + "ipiv_unicast_x2apic.yaml", dir + "xapic_exit_path.yaml"});
    CHECK(r.status == 0);
}

// ---- sweep and plot
namespace {
using vtx::test::slurp;
std::vector<std::string> sweep_args(const std::string& out, const std::string& apic_values) {
    return {"sweep", "ipi", "--grid", "apic=" + apic_values, "--grid", "ipiv=off,on", "--runs", "2",
            "--set", "workload.goal=50000", "--out", out, "--seed", "7"};
}
}  // namespace

TEST_CASE("sweep: per point config, stats and results, and results.csv and results.json for the sweep", "[cli][sweep]") {
    const std::string out = vtx::test::temp_path("sweep1");
    REQUIRE(vtxsim(sweep_args(out, "xapic,x2apic")).status == 0);
    const std::string csv = slurp(out + "/results.csv");
    std::vector<std::string> lines;
    std::stringstream ss(csv);
    for (std::string l; std::getline(ss, l);) lines.push_back(l);
    REQUIRE(lines.size() == 1 + 4);
    CHECK(lines[0] == "apic,ipiv,runs,mean,stddev,min,max,checks_ok");
    CHECK(lines[1].rfind("xapic,off,2,", 0) == 0);
    CHECK(lines[4].rfind("x2apic,on,2,", 0) == 0);
    const auto j = vtx::test::read_json(out + "/results.json");
    REQUIRE(j["points"].size() == 4);
    CHECK(j["sweep"]["workload"] == "ipi");
    for (const auto& p : j["points"]) {
        CHECK(p["mean"].get<double>() > 0);
        CHECK(p["cycles"].size() == 2);
        CHECK(p["checks_ok"] == true);
    }
    // IPI virtualization lowers the ipi round trip in both APIC modes.
    CHECK(j["points"][1]["mean"].get<double>() < j["points"][0]["mean"].get<double>());
    CHECK(j["points"][3]["mean"].get<double>() < j["points"][2]["mean"].get<double>());
    const std::string point = out + "/points/apic=x2apic__ipiv=on";
    CHECK(vtx::test::read_json(point + "/config.json")["apic"] == "x2apic");
    CHECK(slurp(point + "/stats.txt").find("sim.cycles") != std::string::npos);
    CHECK(vtx::test::read_json(point + "/results.json")["runs"].size() == 2);
    std::filesystem::remove_all(out);
}

TEST_CASE("sweep: results depend on neither order nor parallelism, and an interrupted sweep resumes", "[cli][sweep]") {
    const std::string a = vtx::test::temp_path("sweepa"), b = vtx::test::temp_path("sweepb");
    REQUIRE(vtxsim(sweep_args(a, "xapic,x2apic")).status == 0);
    auto args = sweep_args(b, "x2apic,xapic");  // the other order, one job
    args.insert(args.end(), {"--jobs", "1"});
    REQUIRE(vtxsim(args).status == 0);
    for (const char* point : {"apic=xapic__ipiv=off", "apic=x2apic__ipiv=on"})
        CHECK(slurp(a + "/points/" + point + "/results.json") == slurp(b + "/points/" + point + "/results.json"));
    // Resume: a point without results runs again, the others are kept; same results.
    const std::string kept = slurp(a + "/results.csv");
    std::filesystem::remove(a + "/points/apic=x2apic__ipiv=off/results.json");
    REQUIRE(vtxsim(sweep_args(a, "xapic,x2apic")).status == 0);
    CHECK(slurp(a + "/results.csv") == kept);
    // Another sweep into the same directory is refused.
    auto other = sweep_args(a, "xapic");
    CHECK(vtxsim(other).status == 2);
    std::filesystem::remove_all(a);
    std::filesystem::remove_all(b);
}

TEST_CASE("plot: an SVG and a PNG of a sweep, one series per configuration", "[cli][plot]") {
    const std::string out = vtx::test::temp_path("sweepp");
    REQUIRE(vtxsim({"sweep", "ipi_bench", "--grid", "vcpus=2,4", "--grid", "ipiv=off,on", "--runs", "2", "--set",
                    "workload.times=200", "--out", out})
                .status == 0);
    const std::string svg = out + "/plot.svg", png = out + "/plot.png";
    REQUIRE(vtxsim({"plot", out, "--out", svg}).status == 0);
    const std::string text = slurp(svg);
    CHECK(text.find("<svg") != std::string::npos);
    CHECK(text.find("</svg>") != std::string::npos);
    CHECK(text.find("ipiv=off") != std::string::npos);  // the series' titles
    CHECK(text.find("ipiv=on") != std::string::npos);
    CHECK(text.find("vcpus") != std::string::npos);     // the x axis
    REQUIRE(vtxsim({"plot", out, "--out", png}).status == 0);
    CHECK(slurp(png).substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
    CHECK(vtxsim({"plot", out, "--out", out + "/plot.pdf"}).status == 2);
    CHECK(vtxsim({"plot", out, "--out", svg, "--x", "ipiv"}).status == 2);  // not numbers
    std::filesystem::remove_all(out);
}

TEST_CASE("sweep refuses unknown keys, bad values and a missing --out with exit 2", "[cli][sweep]") {
    CHECK(vtxsim({"sweep", "ipi", "--grid", "colour=red", "--out", "/tmp/x"}).status == 2);
    CHECK(vtxsim({"sweep", "ipi", "--grid", "apic=xapic,x3apic", "--out", vtx::test::temp_path("bad")}).status == 2);
    CHECK(vtxsim({"sweep", "ipi", "--grid", "vcpus=2,0", "--out", vtx::test::temp_path("bad")}).status == 2);
    CHECK(vtxsim({"sweep", "ipi", "--grid", "apic=xapic"}).status == 2);
    CHECK(vtxsim({"sweep", "ipi", "--grid", "apic=xapic", "--grid", "apic=x2apic", "--out", "/tmp/x"}).status == 2);
}

// ---- explain: a golden file (regenerate after a deliberate change of costs or flows with
// `build/vtxsim explain tests/scenarios/x2apic_self_ipi.yaml --out tests/explain/x2apic_self_ipi.golden`).
TEST_CASE("explain: a self-IPI step by step matches its golden file", "[cli][explain]") {
    const std::string src = std::string(VTX_SOURCE_DIR);
    const std::string out = vtx::test::temp_path("explain.txt");
    REQUIRE(vtxsim({"explain", src + "/tests/scenarios/x2apic_self_ipi.yaml", "--out", out}).status == 0);
    const std::string got = slurp(out), want = slurp(src + "/tests/explain/x2apic_self_ipi.golden");
    ::unlink(out.c_str());
    // The first line names the file as given; the rest must be identical.
    REQUIRE(got.find('\n') != std::string::npos);
    CHECK(got.substr(got.find('\n')) == want.substr(want.find('\n')));
    CHECK(got.find("self-IPI virtualization") != std::string::npos);
    CHECK(got.find("vCPU 0: RVI 0x0->0x50, VIRR max -->0x50") != std::string::npos);
}

TEST_CASE("explain WORKLOAD: the last complete iteration of the cover letter's ipi, step by step", "[cli][explain]") {
    const std::string out = vtx::test::temp_path("explain3.txt");
    REQUIRE(vtxsim({"explain", "ipi", "--side-by-side", "--out", out}).status == 0);
    const std::string got = slurp(out);
    ::unlink(out.c_str());
    CHECK(got.find("ipi (x2apic, 2 vCPUs): IPIv off | IPIv on") == 0);
    CHECK(got.find("---- iteration ----") != std::string::npos);     // the window's marks
    CHECK(got.find("IPI virtualization ") != std::string::npos);      // right: virtualized
    CHECK(got.find("handle_fastpath_set_x2apic_icr") != std::string::npos);  // left: KVM's fastpath
    CHECK(got.find("VMLAUNCH") == std::string::npos);                 // not the start-up
}

TEST_CASE("explain --side-by-side: IPIv off and on in two columns", "[cli][explain]") {
    const std::string out = vtx::test::temp_path("explain2.txt");
    REQUIRE(vtxsim({"explain", std::string(VTX_SOURCE_DIR) + "/tests/scenarios/ipiv_unicast_x2apic.yaml",
                    "--side-by-side", "--out", out})
                .status == 0);
    const std::string got = slurp(out);
    ::unlink(out.c_str());
    CHECK(got.find("IPIv off | IPIv on") != std::string::npos);
    // Left: the WRMSR exits to KVM's fastpath; right: IPI virtualization, no exit.
    CHECK(got.find("IPI virtualization ") != std::string::npos);
    CHECK(got.find("| ") != std::string::npos);
}

TEST_CASE("plot --breakdown: a stacked bar per configuration of one explained round trip", "[cli][plot]") {
    const std::string svg = vtx::test::temp_path("breakdown.svg");
    REQUIRE(vtxsim({"plot", "--breakdown", "ipi", "--out", svg}).status == 0);
    const std::string text = slurp(svg);
    ::unlink(svg.c_str());
    CHECK(text.find("<svg") != std::string::npos);
    for (const char* label : {"xAPIC w/o IPIv", "xAPIC w/ IPIv", "x2APIC w/o IPIv", "x2APIC w/ IPIv"}) {
        INFO(label);
        CHECK(text.find(label) != std::string::npos);  // a bar per configuration
    }
    CHECK(text.find("memory accesses") != std::string::npos);  // a series per step
    CHECK(text.find("virtualized write to the APIC-access page") != std::string::npos);  // xAPIC's ICR write
    CHECK(vtxsim({"plot", "--breakdown", "ipi", "--out", svg, "--x", "vcpus"}).status == 2);
}

TEST_CASE("calibrate --report: elasticities, singular values and what the fit absorbs", "[cli][calibrate]") {
    const std::string out = vtx::test::temp_path("ident.txt");
    REQUIRE(vtxsim({"calibrate", "--report", "--runs", "1", "--out", out}).status == 0);
    const std::string text = slurp(out);
    ::unlink(out.c_str());
    CHECK(text.find("identifiability of the 4 fitted costs by the 4 training means") != std::string::npos);
    CHECK(text.find("singular values:") != std::string::npos);
    CHECK(text.find("condition number") != std::string::npos);
    for (const char* c : {"apic.bus_latency", "vmx.apic_access_virt", "vmx.ipiv_microcode", "kvm.exit_common_path"})
        CHECK(text.find(c) != std::string::npos);
    CHECK(text.find("mem.line_transfer") != std::string::npos);  // an assumed cost on every path
    CHECK(vtxsim({"calibrate", "--report", "--iterations", "3"}).status == 2);
}
