// The protocol checker (`vtxsim run --check`, sim/protocol_check.hpp): correct runs of every
// IPI path give no finding; a VMM with one step of the posted-interrupt protocol left out
// (kvm.inject_bug) is caught.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_support.hpp"

using vtx::test::read_json;
using vtx::test::temp_path;
using vtx::test::vtxsim;

namespace {

struct Checked {
    int status = 0;
    std::string out;  // what run printed
};

// Runs `vtxsim run ... --check`; the findings are printed on standard output, which is
// captured in a file meanwhile.
Checked run_checked(const std::vector<std::string>& args) {
    const std::string out = temp_path("check_out.txt");
    std::fflush(stdout);
    const int saved = ::dup(1);
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(saved >= 0);
    REQUIRE(fd >= 0);
    ::dup2(fd, 1);
    ::close(fd);
    std::vector<std::string> a = {"run"};
    a.insert(a.end(), args.begin(), args.end());
    a.push_back("--check");
    const int status = vtxsim(a).status;
    std::fflush(stdout);
    ::dup2(saved, 1);
    ::close(saved);
    Checked c{status, vtx::test::slurp(out)};
    ::unlink(out.c_str());
    return c;
}

}  // namespace

TEST_CASE("protocol check: correct runs of every IPI path have no finding", "[check][protocol]") {
    const std::vector<std::vector<std::string>> runs = {
        {"ipi", "--ipiv", "on"},
        {"ipi", "--ipiv", "off", "--apic", "xapic"},
        {"ipi_halt", "--set", "kvm.halt_poll_ns=0", "--ipiv", "on"},
        {"ipi_halt", "--set", "kvm.halt_poll_ns=0", "--ipiv", "off"},
        {"random_ipi", "--vcpus", "16"},
        {"overcommit", "--vcpus", "6", "--pcpus", "2"},
        {"multicast", "--vcpus", "8", "--apic", "xapic"},
        {"broadcast", "--vcpus", "8"},
        {"vector_storm", "--vcpus", "8", "--apic", "xapic", "--ipiv", "off"},
    };
    for (const auto& r : runs) {
        std::string label;
        for (const auto& a : r) label += a + " ";
        INFO(label);
        const Checked c = run_checked(r);
        CHECK(c.status == 0);
        CHECK(c.out.find(", 0 findings") != std::string::npos);
        CHECK(c.out.find("lost:") == std::string::npos);
    }
}

TEST_CASE("protocol check: no NV switch to the wakeup vector on block is caught (a lost IPI)", "[check][protocol]") {
    const Checked c = run_checked({"ipi_halt", "--set", "kvm.halt_poll_ns=0", "--ipiv", "on", "--set",
                                   "kvm.inject_bug=no_wakeup_vector", "--max-sim-time", "0.02"});
    CHECK(c.status != 0);
    CHECK(c.out.find("lost: vector 0x20 from vm0.vcpu0") != std::string::npos);
    CHECK(c.out.find("never reached vm0.vcpu1") != std::string::npos);
    CHECK(c.out.find("mp_state 3") != std::string::npos);  // the target still halted
}

TEST_CASE("protocol check: no sync_pir_to_irr before VM entry is caught (a lost IPI)", "[check][protocol]") {
    for (const char* ipiv : {"on", "off"}) {
        INFO(ipiv);
        const Checked c = run_checked({"ipi_halt", "--set", "kvm.halt_poll_ns=0", "--ipiv", ipiv, "--set",
                                       "kvm.inject_bug=no_pir_sync", "--max-sim-time", "0.02"});
        CHECK(c.status != 0);
        CHECK(c.out.find("lost: vector 0x20") != std::string::npos);
    }
}

TEST_CASE("protocol check: no ON re-check after the NV switch on block is caught (a lost IPI)", "[check][protocol]") {
    const Checked c = run_checked({"random_ipi", "--vcpus", "64", "--set", "workload.ipis=2000", "--set",
                                   "kvm.halt_poll_ns=0", "--set", "kvm.inject_bug=no_on_recheck", "--max-sim-time", "0.5"});
    CHECK(c.status != 0);
    CHECK(c.out.find("lost: vector") != std::string::npos);
    CHECK(c.out.find("mp_state 3") != std::string::npos);  // a halted vCPU never woken
    // The same run without the bug: no finding, every call ran once.
    const Checked ok = run_checked({"random_ipi", "--vcpus", "64", "--set", "workload.ipis=2000", "--set", "kvm.halt_poll_ns=0"});
    CHECK(ok.status == 0);
    CHECK(ok.out.find(", 0 findings") != std::string::npos);
}

TEST_CASE("protocol check: a stale entry in KVM's physical APIC map is caught (misrouted and lost IPIs)",
          "[check][protocol]") {
    const Checked c = run_checked({"random_ipi", "--vcpus", "8", "--ipiv", "off", "--set",
                                   "kvm.inject_bug=stale_phys_map", "--max-sim-time", "0.02"});
    CHECK(c.status != 0);
    CHECK(c.out.find("misrouted: vector 0xfb delivered to") != std::string::npos);
    CHECK(c.out.find("lost: vector 0xfb") != std::string::npos);
}

TEST_CASE("protocol check: no SN when a vCPU is preempted is caught (notifications for preempted vCPUs)",
          "[check][protocol]") {
    const std::vector<std::string> base = {"overcommit", "--vcpus", "8", "--pcpus", "2", "--set", "workload.ipis=2000",
                                           "--max-sim-time", "0.5"};
    const Checked ok = run_checked(base);
    CHECK(ok.out.find(", 0 findings") != std::string::npos);
    std::vector<std::string> bad = base;
    bad.insert(bad.end(), {"--set", "kvm.inject_bug=no_sn_on_preempt"});
    const Checked c = run_checked(bad);
    CHECK(c.status != 0);
    CHECK(c.out.find(": SN should have suppressed it") != std::string::npos);
}

TEST_CASE("protocol check: a PID-pointer table entry installed before its descriptor's NV and SN is caught",
          "[check][protocol]") {
    // Overcommit: a vCPU waiting for its first slice has never been loaded; IPIv posts to
    // its descriptor all the same.
    const Checked c = run_checked({"overcommit", "--vcpus", "8", "--pcpus", "2", "--set", "workload.ipis=2000",
                                   "--max-sim-time", "0.5", "--set", "kvm.inject_bug=pid_before_init"});
    CHECK(c.status != 0);
    CHECK(c.out.find("notification with vector 0x0 for vm0.vcpu") != std::string::npos);
}

namespace {
// xAPIC with IPIv: vCPU 1 takes APIC ID 5, then vCPU 0 sends to its old ID 1, which no vCPU
// has any more. KVM inhibits APICv (and so IPIv) on the ID change and delivers nothing; with
// IPIv left on, the PID-pointer table (indexed by vCPU ID) still leads to vCPU 1.
std::string id_change_scenario(const std::string& bug) {
    return "name: xapic-id-change\nplatform:\n  apic: xapic\n  pcpus: 2\n  set: [kvm.enable_ipiv=on, kvm.inject_bug=" + bug +
           "]\nmemory: {ready: 0}\nvcpus:\n  - id: 0\n    program:\n      - spin_until: {addr: ready, eq: 1}\n"
           "      - send_ipi: {vector: 0x40, dest: 1}\n      - compute: 50000\n  - id: 1\n    pcpu: 1\n"
           "    handlers:\n      0x40: [eoi]\n    program:\n      - sti\n      - apic_write: {reg: 0x20, value: 0x05000000}\n"
           "      - store: {addr: ready, value: 1}\n      - idle\n";
}


// `vtxsim check F --protocol` on a scenario given as text: its exit status and report.
std::pair<int, std::string> check_protocol(const std::string& text) {
    const std::string f = temp_path("protocol.yaml"), json = temp_path("protocol.json");
    {
        std::FILE* out = std::fopen(f.c_str(), "w");
        REQUIRE(out);
        std::fwrite(text.data(), 1, text.size(), out);
        std::fclose(out);
    }
    const int status = vtxsim({"check", f, "--protocol", "--json", json}).status;
    const auto j = read_json(json);
    ::unlink(f.c_str());
    ::unlink(json.c_str());
    REQUIRE(j.size() == 1);
    return {status, j[0]["report"].get<std::string>()};
}
}  // namespace

TEST_CASE("protocol check: IPIv left on after an xAPIC ID change is caught (an IPI to the old ID delivered)",
          "[check][protocol]") {
    for (const std::string bug : {"none", "ipiv_after_id_change"}) {
        INFO(bug);
        const auto [status, report] = check_protocol(id_change_scenario(bug));
        if (bug == "none") {
            CHECK(status == 0);
            CHECK(report.find("protocol check: 0 findings") != std::string::npos);
        } else {
            CHECK(status == 1);
            CHECK(report.find("misrouted: vector 0x40 delivered to vm0.vcpu1, which no IPI with it targeted, while an IPI "
                              "with it (ICR 0x100000000004040) addressed no vCPU") != std::string::npos);
        }
    }
}

TEST_CASE("protocol check: a migrated vCPU's NDST left at its old CPU is caught (a lost IPI)", "[check][protocol]") {
    // The scenario of a halted vCPU moved to CPU 2, with the bug and a time budget past the
    // late bound: its wakeup notification goes to CPU 1, whose wakeup list does not have it.
    std::string text = vtx::test::slurp(std::string(VTX_SOURCE_DIR) + "/tests/scenarios/host_migrate_halted_x2apic.yaml");
    const std::string from = "set: [kvm.enable_ipiv=on]";
    REQUIRE(text.find(from) != std::string::npos);
    text.replace(text.find(from), from.size(), "set: [kvm.enable_ipiv=on, kvm.inject_bug=stale_ndst]\n  max_sim_time: 0.01");
    const auto [status, report] = check_protocol(text);
    CHECK(status == 1);
    CHECK(report.find("lost: vector 0x40 from vm0.vcpu0") != std::string::npos);
}

TEST_CASE("protocol check: random cross-CPU calls while vCPU threads migrate (kvm.migrate_every) have no finding",
          "[check][protocol]") {
    for (const std::string apic : {"x2apic", "xapic"}) {
        INFO(apic);
        const Checked c = run_checked({"random_ipi", "--vcpus", "16", "--apic", apic, "--set", "kvm.migrate_every=200000"});
        CHECK(c.status == 0);
        CHECK(c.out.find(", 0 findings") != std::string::npos);
        CHECK(c.out.find("calls ran exactly once") != std::string::npos);
    }
    const auto r = vtxsim({"run", "ipi", "--set", "kvm.migrate_every=5"});
    CHECK(r.status == 2);
    CHECK(r.err.find("kvm.migrate_every") != std::string::npos);
}

TEST_CASE("protocol check: random calls while vCPUs change their xAPIC IDs, migrate and are preempted have no finding",
          "[check][protocol]") {
    // The stress of the issue at test size: halts (halt_percent's default), preemptions
    // (16 vCPUs on 12 CPUs), migrations and xAPIC ID changes (KVM's new map and APICv
    // inhibit; the kick's wait once hung here: the kicked vCPU was back in guest mode
    // before its kicker looked), IPIv on and off.
    for (const std::string ipiv : {"on", "off"}) {
        INFO("IPIv " + ipiv);
        const Checked c = run_checked({"random_ipi", "--vcpus", "16", "--pcpus", "12", "--apic", "xapic", "--ipiv", ipiv,
                                       "--set", "workload.ipis=100", "--set", "workload.id_change_percent=5", "--set",
                                       "kvm.migrate_every=200000"});
        CHECK(c.status == 0);
        CHECK(c.out.find(", 0 findings") != std::string::npos);
        CHECK(c.out.find("calls ran exactly once") != std::string::npos);
        CHECK(c.out.find(" 0 xAPIC ID changes") == std::string::npos);
        CHECK(c.out.find("xAPIC ID changes") != std::string::npos);
        CHECK(c.out.find(" 0 preemptions") == std::string::npos);
    }
    // Refused with the architectural reason: the x2APIC ID is read-only; a vCPU's second ID
    // is its number + 128, so at most 127 vCPUs.
    auto r = vtxsim({"run", "random_ipi", "--apic", "x2apic", "--set", "workload.id_change_percent=5"});
    CHECK(r.status == 2);
    CHECK(r.err.find("read-only") != std::string::npos);
    r = vtxsim({"run", "random_ipi", "--apic", "xapic", "--vcpus", "128", "--set", "workload.id_change_percent=5"});
    CHECK(r.status == 2);
    CHECK(r.err.find("at most 127 vCPUs") != std::string::npos);
}

TEST_CASE("protocol check: every scenario of the repository runs without a finding", "[check][protocol]") {
    std::vector<std::string> args = {"check", "--protocol"};
    for (const auto& e : std::filesystem::directory_iterator(std::string(VTX_SOURCE_DIR) + "/tests/scenarios"))
        if (e.path().extension() == ".yaml") args.push_back(e.path().string());
    std::sort(args.begin() + 2, args.end());
    REQUIRE(args.size() > 10);
    CHECK(vtxsim(args).status == 0);
}

TEST_CASE("protocol check: kvm.inject_bug refuses what it does not know", "[check][protocol][cli]") {
    const auto r = vtxsim({"run", "ipi", "--set", "kvm.inject_bug=everything"});
    CHECK(r.status == 2);
    CHECK(r.err.find("expected none, no_wakeup_vector, no_on_recheck, no_pir_sync, stale_phys_map, no_sn_on_preempt, "
                     "pid_before_init, ipiv_after_id_change or stale_ndst") != std::string::npos);
}
