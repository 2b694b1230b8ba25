// IPIv set-up by the VMM: vCPU IDs against kvm.max_vcpu_ids, the PID-pointer table
// (kvm_arch_vcpu_precreate, vmx_vcpu_create, init_vmcs) and the CPU-profile gate.
#include <string>

#include <catch2/catch.hpp>

#include "common/kvm_rig.hpp"
#include "model/error.hpp"
#include "model/memory.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/fields.hpp"

using namespace vtx;
using test::KvmRig;
using vmcs::Field;

namespace {
constexpr std::uint64_t kPidTableEntryValid = 1;  // PID_TABLE_ENTRY_VALID
std::uint64_t table_entry(KvmRig& rig, unsigned index) {
    return rig.platform().memory().peek64(rig.vm().pid_table() + 8 * std::uint64_t{index});
}
}  // namespace

TEST_CASE("a vCPU ID at or above kvm.max_vcpu_ids is refused with a ConfigError") {
    vmm::KvmParams p;
    p.max_vcpu_ids = 8;
    KvmRig rig(1, p);
    CHECK_NOTHROW(rig.vm().create_vcpu(7, 0));
    try {
        rig.vm().create_vcpu(8, 0);
        FAIL("vCPU ID 8 was accepted with max_vcpu_ids 8");
    } catch (const model::ConfigError& e) {
        const std::string what = e.what();
        CHECK(what.find("vCPU ID 8") != std::string::npos);
        CHECK(what.find("kvm.max_vcpu_ids") != std::string::npos);
    }
    CHECK(rig.vm().vcpus().size() == 1);
}

TEST_CASE("kvm.max_vcpu_ids outside 1..4096 is a ConfigError naming the knob") {
    vmm::KvmParams p;
    CHECK_THROWS_AS(p.set("max_vcpu_ids", "0", "test"), model::ConfigError);
    CHECK_THROWS_AS(p.set("max_vcpu_ids", "4097", "test"), model::ConfigError);
    CHECK_THROWS_WITH(p.set("max_vcpu_ids", "many", "test"), Catch::Contains("kvm.max_vcpu_ids"));
    p.set("max_vcpu_ids", "64", "test");
    CHECK(p.max_vcpu_ids == 64);
}

TEST_CASE("PID-pointer table: an entry (PID address | valid) per vCPU at creation, LAST_PID_POINTER_INDEX = max_vcpu_ids - 1") {
    vmm::KvmParams p;  // IPIv on
    p.max_vcpu_ids = 16;
    KvmRig rig(3, p);
    rig.add_vcpu(0, 0, [](cpu::GuestCpu& g) { g.compute(10000); });
    rig.add_vcpu(1, 1, [](cpu::GuestCpu& g) { g.idle_loop(); });
    rig.add_vcpu(5, 2, [](cpu::GuestCpu& g) { g.idle_loop(); });
    REQUIRE(rig.vm().pid_table() != 0);
    CHECK(rig.vm().pid_table() % model::kPageSize == 0);
    // Installed at vCPU creation, before anything ran.
    for (unsigned i = 0; i < 16; ++i) {
        INFO("entry " << i);
        vmm::Vcpu* v = nullptr;
        for (auto& c : rig.vm().vcpus())
            if (c->id() == i) v = c.get();
        CHECK(table_entry(rig, i) == (v ? (v->pi_desc() | kPidTableEntryValid) : 0));
    }
    REQUIRE(rig.run());
    for (auto& v : rig.vm().vcpus()) {
        INFO("vCPU " << v->id());
        const auto& vmcs = v->context().vmcs;
        CHECK(vmcs.hw_read(Field::PidPointerTable) == rig.vm().pid_table());
        CHECK(vmcs.hw_read(Field::LastPidPointerIndex) == 15);
        CHECK((vmcs.hw_read(Field::TertiaryVmExecControl) & vmcs::kTertiaryIpiVirt) != 0);
    }
}

TEST_CASE("without IPIv the VMM allocates no PID-pointer table and clears the tertiary IPIv bit") {
    vmm::KvmParams p;
    p.enable_ipiv = false;
    KvmRig rig(2, p);
    rig.add_vcpu(0, 0, [](cpu::GuestCpu& g) { g.compute(10000); });
    rig.add_vcpu(1, 1, [](cpu::GuestCpu& g) { g.idle_loop(); });
    CHECK(rig.vm().pid_table() == 0);
    REQUIRE(rig.run());
    for (auto& v : rig.vm().vcpus())
        CHECK((v->context().vmcs.hw_read(Field::TertiaryVmExecControl) & vmcs::kTertiaryIpiVirt) == 0);
}

TEST_CASE("kvm.enable_ipiv=on with profile icx is a clear ConfigError") {
    vmm::KvmParams p;
    p.enable_ipiv = true;
    try {
        KvmRig rig(2, p, true, "icx");
        FAIL("the VMM accepted IPIv on a profile without it");
    } catch (const model::ConfigError& e) {
        const std::string what = e.what();
        CHECK(what.find("kvm.enable_ipiv") != std::string::npos);
        CHECK(what.find("icx") != std::string::npos);
    }
}

TEST_CASE("profile icx runs with kvm.enable_ipiv=off") {
    vmm::KvmParams p;
    p.enable_ipiv = false;
    KvmRig rig(1, p, true, "icx");
    rig.add_vcpu(0, 0, [](cpu::GuestCpu& g) { g.compute(1000); });
    REQUIRE(rig.run());
}
