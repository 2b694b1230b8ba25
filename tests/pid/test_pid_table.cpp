#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "pid/descriptor.hpp"
#include "pid/pid_table.hpp"
#include "pid/pid_test_support.hpp"

using namespace vtx;
using namespace vtx::pid;
using namespace vtx::pid::test;

namespace {
constexpr unsigned kWidth = 46;  // a typical MAXPHYADDR
}

TEST_CASE("PID-pointer table install writes the address with the valid bit in one store",
          "[pid][table]") {
    TwoAgents t;
    const std::uint64_t base = t.mem.allocate(table_bytes(16), kPidTableAlignment);
    PidPointerTable table(t.agent0, base, 16);
    CHECK(table.entries() == 16);
    CHECK(table.last_index() == 15);
    CHECK(table.entry_address(3) == base + 24);

    std::vector<Access> log;
    record_accesses(t.agent0, log);
    const std::uint64_t before = t.mem.locked_operations();
    table.install(3, t.pid_address);
    REQUIRE(log.size() == 1);
    CHECK(log[0].op == model::MemOp::Write);
    CHECK(log[0].address == base + 3 * 8);
    CHECK(log[0].size == 8);
    CHECK(t.mem.locked_operations() == before);
    CHECK(t.mem.peek64(base + 24) == (t.pid_address | 1));
    CHECK(t.mem.peek64(base + 16) == 0);
    CHECK(t.mem.peek64(base + 32) == 0);

    const PidTableEntry e = table.read(3);
    CHECK(e.raw == (t.pid_address | kPidTableEntryValid));
    CHECK(e.valid());
    CHECK(e.reserved_bits_clear());
    CHECK(e.descriptor_address() == t.pid_address);
    CHECK(e.usable(kWidth));

    // Entries never installed read as invalid (KVM's table is zeroed).
    CHECK_FALSE(table.read(4).valid());
    CHECK_FALSE(table.read(4).usable(kWidth));

    log.clear();
    table.clear(3);
    REQUIRE(log.size() == 1);
    CHECK(log[0].op == model::MemOp::Write);
    CHECK(t.mem.peek64(base + 24) == 0);
    CHECK_FALSE(table.read(3).valid());
}

TEST_CASE("PID-pointer table rejects misaligned addresses and out-of-range indices", "[pid][table]") {
    TwoAgents t;
    const std::uint64_t base = t.mem.allocate(model::kPageSize, kPidTableAlignment);
    CHECK_THROWS_AS(PidPointerTable(t.agent0, base + 8, 4), PidError);
    CHECK_THROWS_AS(PidPointerTable(t.agent0, base, 0), PidError);
    PidPointerTable table(t.agent0, base, 4);
    CHECK_THROWS_AS(table.install(0, t.pid_address + 8), PidError);
    CHECK_THROWS_AS(table.install(0, t.pid_address | 1), PidError);
    CHECK_THROWS_AS(table.install(4, t.pid_address), PidError);
    CHECK_THROWS_AS(table.read(4), PidError);
    CHECK_THROWS_AS(table.clear(4), PidError);
    CHECK(t.mem.peek64(base) == 0);  // nothing was written by a rejected install
    try {
        table.install(1, 0x200010);
        FAIL("no exception");
    } catch (const PidError& e) {
        const std::string what = e.what();
        CHECK(what.find("0x200010") != std::string::npos);
        CHECK(what.find("index 1") != std::string::npos);
    }
}

TEST_CASE("PID-pointer table entry usability follows IPIv step 4", "[pid][table]") {
    const std::uint64_t pid = 0x12345640;  // 64-byte aligned
    // Usable: entry[5:0] = 000001b and nothing at or above the width.
    CHECK(PidTableEntry{pid | 1}.usable(kWidth));
    // Valid bit 0: not usable.
    const PidTableEntry invalid{pid};
    CHECK_FALSE(invalid.valid());
    CHECK_FALSE(invalid.usable(kWidth));
    // Each reserved bit 5:1 makes it unusable, even with the valid bit.
    for (unsigned bit = 1; bit <= 5; ++bit) {
        INFO("reserved bit " << bit);
        const PidTableEntry e{pid | 1 | (std::uint64_t{1} << bit)};
        CHECK(e.valid());
        CHECK_FALSE(e.reserved_bits_clear());
        CHECK_FALSE(e.usable(kWidth));
        // The address itself is unaffected by the low bits (GAP reading: entry[63:6]).
        CHECK(e.descriptor_address() == pid);
    }
    // Address bits beyond the physical-address width.
    const PidTableEntry top{(std::uint64_t{1} << kWidth) | pid | 1};
    CHECK_FALSE(top.usable(kWidth));
    CHECK(top.usable(kWidth + 1));
    const PidTableEntry highest_ok{(std::uint64_t{1} << (kWidth - 1)) | pid | 1};
    CHECK(highest_ok.usable(kWidth));
    CHECK_FALSE(PidTableEntry{(std::uint64_t{1} << 63) | pid | 1}.usable(52));
    CHECK(PidTableEntry{(std::uint64_t{1} << 63) | pid | 1}.usable(64));
    CHECK_THROWS_AS(PidTableEntry{pid | 1}.usable(0), PidError);
    CHECK_THROWS_AS(PidTableEntry{pid | 1}.usable(65), PidError);
    // The descriptor address masks exactly bits 5:0.
    CHECK(PidTableEntry{0xFFFF'FFFF'FFFF'FFFFull}.descriptor_address() == 0xFFFF'FFFF'FFFF'FFC0ull);
    CHECK(PidTableEntry::for_descriptor(pid).raw == (pid | kPidTableEntryValid));
    STATIC_REQUIRE(kPidTableEntryValid == 1);
    STATIC_REQUIRE(kPidTableEntryReservedMask == 0x3E);
}

TEST_CASE("PID-pointer table sizes", "[pid][table]") {
    STATIC_REQUIRE(table_bytes(1) == 8);
    STATIC_REQUIRE(table_bytes(4096) == 32 * 1024);  // KVM_MAX_VCPU_IDS: 32 KiB
    CHECK(table_allocation_bytes(1) == 4096);
    CHECK(table_allocation_bytes(512) == 4096);
    CHECK(table_allocation_bytes(513) == 8192);
    CHECK(table_allocation_bytes(1025) == 16384);  // 3 pages of entries -> order 2
    CHECK(table_allocation_bytes(4096) == 32768);
}

TEST_CASE("a table entry leads to a descriptor that an IPIv posting reaches", "[pid][table]") {
    TwoAgents t;
    const std::uint64_t base = t.mem.allocate(table_bytes(8), kPidTableAlignment);
    PidPointerTable table(t.agent0, base, 8);
    PostedInterruptDescriptor target(t.agent0, t.pid_address);
    target.initialize(kPostedIntrVector, ndst_for_xapic(5));
    table.install(5, t.pid_address);

    // What the processor does for virtual APIC ID 5 (steps 3-7), seen from agent 1.
    const PidTableEntry entry{t.agent1.read64(table.address() + 5 * kPidTableEntryBytes)};
    REQUIRE(entry.usable(kWidth));
    PostedInterruptDescriptor pid(t.agent1, entry.descriptor_address());
    pid.ipiv_set_pir(0x80);
    const IpivNotification n = pid.ipiv_update_notification();
    CHECK(n.send_notify);
    CHECK(apic_id_from_ndst(n.ndst, false) == 5);
    CHECK(target.pir_bit(0x80));
    CHECK(target.on());
}
