// The protocol checker (`vtxsim run --check`, sim/protocol_check.hpp): correct runs of every
// IPI path give no finding; a VMM with one step of the posted-interrupt protocol left out
// (kvm.inject_bug) is caught.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

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

TEST_CASE("protocol check: kvm.inject_bug refuses what it does not know", "[check][protocol][cli]") {
    const auto r = vtxsim({"run", "ipi", "--set", "kvm.inject_bug=everything"});
    CHECK(r.status == 2);
    CHECK(r.err.find("expected none, no_wakeup_vector, no_on_recheck, no_pir_sync or stale_phys_map") != std::string::npos);
}
