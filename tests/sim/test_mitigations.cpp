// The host kernel's speculative-execution mitigations on the VM entry/exit path
// (kvm.mitigations, kvm.host_kernel; docs/vmm.md "Mitigations"): which steps run for which
// guest, kernel and CPU, and what they cost the IPI round trip.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cli_support.hpp"

using vtx::test::read_json;
using vtx::test::temp_path;
using vtx::test::vtxsim;

namespace {

struct Outcome {
    double mean = 0;
    std::uint64_t exits = 0, wrmsrs = 0, rdmsrs = 0, pbrsb = 0, bhb = 0, ibpbs = 0;
};

std::uint64_t stat(const nlohmann::json& j, const char* name) {
    return j["stats"].contains(name) ? j["stats"][name]["value"].get<std::uint64_t>() : 0;
}

Outcome run(std::vector<std::string> args) {
    const std::string json = temp_path("mitigations.json");
    args.insert(args.begin(), "run");
    args.push_back("--json");
    args.push_back(json);
    REQUIRE(vtxsim(args).status == 0);
    const auto j = read_json(json);
    ::unlink(json.c_str());
    Outcome o;
    o.mean = j["mean"];
    for (const auto& [reason, n] : j["exits"].items()) o.exits += n.get<std::uint64_t>();
    o.wrmsrs = stat(j, "host.spec_ctrl_wrmsrs");
    o.rdmsrs = stat(j, "host.spec_ctrl_rdmsrs");
    o.pbrsb = stat(j, "host.pbrsb_guards");
    o.bhb = stat(j, "host.bhb_clears");
    o.ibpbs = stat(j, "host.ibpbs");
    return o;
}

}  // namespace

TEST_CASE("a guest that never writes SPEC_CTRL on a default 5.13 host: two WRMSRs per exit, nothing else",
          "[mitigations]") {
    // kvm-unit-tests' guest keeps SPEC_CTRL 0; the host's is IBRS (eIBRS part, mitigations=auto).
    const Outcome on = run({"vmcall", "--runs", "1"});
    REQUIRE(on.exits > 0);
    // Every VM entry loads the guest's value and every exit restores the host's (the
    // launch adds an entry without a preceding exit; the guest's end an exit without entry).
    CHECK(on.wrmsrs >= 2 * on.exits - 2);
    CHECK(on.wrmsrs <= 2 * on.exits + 2);
    CHECK(on.rdmsrs == 0);  // its writes stay intercepted: never read back
    CHECK(on.pbrsb == 0);   // no PBRSB guard before 6.0
    CHECK(on.bhb == 0);
    // mitigations=off: the host's SPEC_CTRL is 0 too, nothing to switch.
    const Outcome off = run({"vmcall", "--runs", "1", "--set", "kvm.mitigations=off"});
    CHECK(off.wrmsrs == 0);
    CHECK(off.mean < on.mean);
    CHECK(on.mean - off.mean == Approx(500).margin(1));  // host.spec_ctrl_wrmsr twice, per VMCALL
}

TEST_CASE("newer host kernels: the LFENCE and PBRSB guard from 6.0, BHI by CPU from 6.9", "[mitigations]") {
    const Outcome k60 = run({"vmcall", "--runs", "1", "--set", "kvm.host_kernel=6.0"});
    CHECK(k60.pbrsb > 0);  // both profiles are PBRSB-affected
    CHECK(k60.pbrsb >= k60.exits - 1);
    CHECK(k60.bhb == 0);
    // 6.9 on spr (BHI_CTRL): BHI_DIS_S in the host's SPEC_CTRL, no loop.
    const Outcome spr = run({"vmcall", "--runs", "1", "--set", "kvm.host_kernel=6.9"});
    CHECK(spr.bhb == 0);
    CHECK(spr.pbrsb > 0);
    // 6.9 on icx (no BHI_CTRL): the BHB-clearing loop after every exit.
    const Outcome icx = run({"vmcall", "--runs", "1", "--profile", "icx", "--set", "kvm.host_kernel=6.9"});
    CHECK(icx.bhb >= icx.exits - 1);
    // With mitigations off the 6.9 host guards nothing (the LFENCE stays: it is not a mitigation switch).
    const Outcome off = run({"vmcall", "--runs", "1", "--profile", "icx", "--set", "kvm.host_kernel=6.9", "--set",
                             "kvm.mitigations=off"});
    CHECK(off.bhb == 0);
    CHECK(off.pbrsb == 0);
    CHECK(off.mean < icx.mean);
}

TEST_CASE("a Linux guest writes IBRS at boot: KVM reads SPEC_CTRL back after every exit, and writes it only on a mismatch",
          "[mitigations]") {
    const std::vector<std::string> bench = {"ipi_bench", "--runs", "1", "--ipiv", "off", "--set", "workload.times=200"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = bench;
        a.insert(a.end(), extra.begin(), extra.end());
        return run(a);
    };
    const Outcome auto513 = with({});
    REQUIRE(auto513.exits > 0);
    CHECK(auto513.rdmsrs >= auto513.exits - 2);
    CHECK(auto513.wrmsrs == 0);  // guest IBRS == host IBRS
    // 6.9 on spr: the host's value has BHI_DIS_S, the guest's not: a WRMSR each way.
    const Outcome bhi = with({"--set", "kvm.host_kernel=6.9"});
    CHECK(bhi.wrmsrs >= 2 * bhi.exits - 4);
    // mitigations=off on the host: host 0, guest IBRS: a WRMSR each way too.
    const Outcome off = with({"--set", "kvm.mitigations=off"});
    CHECK(off.wrmsrs >= 2 * off.exits - 4);
}

TEST_CASE("IBPB when a CPU loads another vCPU's VMCS, only with mitigations on", "[mitigations]") {
    const std::vector<std::string> shared = {"overcommit", "--vcpus", "4", "--pcpus", "2", "--runs", "1"};
    auto with = [&](const char* setting) {
        std::vector<std::string> a = shared;
        a.push_back("--set");
        a.push_back(setting);
        return run(a);
    };
    const Outcome on = with("kvm.mitigations=auto");
    CHECK(on.ibpbs > 0);
    const Outcome off = with("kvm.mitigations=off");
    CHECK(off.ibpbs == 0);
    // Dedicated CPUs never switch VMCS.
    CHECK(run({"ipi", "--runs", "1"}).ibpbs == 0);
}

TEST_CASE("IPI virtualization leaves the sender no exit, so the mitigations cost its IPIs nothing", "[mitigations]") {
    const Outcome ipiv_on = run({"ipi", "--runs", "2", "--ipiv", "on"});
    const Outcome ipiv_off_mit = run({"ipi", "--runs", "2", "--ipiv", "on", "--set", "kvm.mitigations=off"});
    CHECK(ipiv_on.mean == ipiv_off_mit.mean);
    const Outcome exits_on = run({"ipi", "--runs", "2", "--ipiv", "off"});
    const Outcome exits_off = run({"ipi", "--runs", "2", "--ipiv", "off", "--set", "kvm.mitigations=off"});
    CHECK(exits_off.mean < exits_on.mean);
}

TEST_CASE("mitigation knobs refuse what they do not know", "[mitigations][cli]") {
    auto r = vtxsim({"run", "ipi", "--set", "kvm.mitigations=on"});
    CHECK(r.status == 2);
    CHECK(r.err.find("kvm.mitigations = \"on\": expected auto or off") != std::string::npos);
    r = vtxsim({"run", "ipi", "--set", "kvm.host_kernel=5.4"});
    CHECK(r.status == 2);
    CHECK(r.err.find("expected 5.13, 6.0 or 6.9") != std::string::npos);
}

// ---- uipi (user interrupts between two guest threads; tests/cpu/test_senduipi.cpp has the semantics)
TEST_CASE("uipi: every SENDUIPI reaches the receiver's handler, with IPIv without any exit, without it one APIC-write exit each",
          "[uintr][workload]") {
    const std::string json = temp_path("uipi.json");
    for (const char* apic : {"x2apic", "xapic"}) {
        INFO(apic);
        REQUIRE(vtxsim({"run", "uipi", "--apic", apic, "--ipiv", "on", "--json", json}).status == 0);
        auto j = read_json(json);
        CHECK(j["checks_ok"] == true);
        CHECK(j["exits"].empty());
        const std::uint64_t sent = stat(j, "uintr.senduipi");
        CHECK(sent > 0);
        CHECK(stat(j, "uintr.delivered") == sent);
        CHECK(stat(j, "uintr.notifications") == sent);
        CHECK(stat(j, "ipiv.virtualized") == sent);
        const double with_ipiv = j["mean"];
        REQUIRE(vtxsim({"run", "uipi", "--apic", apic, "--ipiv", "off", "--json", json}).status == 0);
        j = read_json(json);
        CHECK(j["checks_ok"] == true);
        CHECK(j["exits"]["56"].get<std::uint64_t>() == stat(j, "uintr.senduipi"));  // APIC-write, one per SENDUIPI
        CHECK(stat(j, "ipiv.virtualized") == 0);
        CHECK(j["mean"].get<double>() > with_ipiv);
    }
    ::unlink(json.c_str());
    auto r = vtxsim({"run", "uipi", "--profile", "icx", "--ipiv", "off"});
    CHECK(r.status == 2);
    CHECK(r.err.find("has no user interrupts") != std::string::npos);
    r = vtxsim({"run", "uipi", "--set", "kvm.enable_apicv=off", "--ipiv", "off"});
    CHECK(r.status == 2);
    CHECK(r.err.find("needs APICv") != std::string::npos);
    CHECK(vtxsim({"run", "uipi", "--vcpus", "3"}).status == 2);
}
