#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "pid/descriptor.hpp"
#include "pid/pid_test_support.hpp"

using namespace vtx;
using namespace vtx::pid;
using namespace vtx::pid::test;

TEST_CASE("PID fields sit at their architectural bit positions in memory", "[pid]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    pid.initialize(kPostedIntrVector, ndst_for_xapic(0x03));
    pid.set_sn();
    for (std::uint8_t v : {0, 63, 64, 130, 255}) pid.ipiv_set_pir(v);
    pid.kvm_test_and_set_on();

    // PIR: bit v of the 256-bit field at offset 0.
    CHECK(t.mem.peek64(t.pid_address + 0) == ((1ull << 0) | (1ull << 63)));
    CHECK(t.mem.peek64(t.pid_address + 8) == (1ull << 0));
    CHECK(t.mem.peek64(t.pid_address + 16) == (1ull << (130 - 128)));
    CHECK(t.mem.peek64(t.pid_address + 24) == (1ull << 63));
    // NotifyInfo at offset 32: ON bit 256, SN bit 257, NV bits 279:272, NDST bits 319:288.
    const std::uint64_t expected_control =
        (1ull << (256 - 256)) | (1ull << (257 - 256)) | (std::uint64_t{0xF2} << (272 - 256)) |
        (std::uint64_t{0x0300} << (288 - 256));
    CHECK(t.mem.peek64(t.pid_address + 32) == expected_control);
    CHECK(t.mem.peek64(t.pid_address + 40) == 0);  // bits 383:320 are software/reserved
    // Byte-level: NV is byte 34, the xAPIC ID (NDST[15:8] = PID[303:296]) is byte 37.
    std::uint8_t byte = 0;
    t.mem.peek(t.pid_address + 34, &byte, 1);
    CHECK(byte == 0xF2);
    t.mem.peek(t.pid_address + 37, &byte, 1);
    CHECK(byte == 0x03);

    // The constants name the same positions.
    STATIC_REQUIRE(kPidOnBit == 256);
    STATIC_REQUIRE(kPidSnBit == 257);
    STATIC_REQUIRE(kPidNvLowBit == 272);
    STATIC_REQUIRE(kPidNvHighBit == 279);
    STATIC_REQUIRE(kPidNdstLowBit == 288);
    STATIC_REQUIRE(kPidNdstHighBit == 319);
    STATIC_REQUIRE(kPidNotificationInfoOffset == 32);
    STATIC_REQUIRE(kPirBytes == 32);
    STATIC_REQUIRE(kPidAlignment == 64);

    // And the reads decode them.
    CHECK(pid.on());
    CHECK(pid.sn());
    CHECK(pid.pi_test_on());
    CHECK(pid.pi_test_sn());
    CHECK(pid.nv() == 0xF2);
    CHECK(pid.ndst() == 0x0300);
    CHECK(pid.pir_bit(130));
    CHECK_FALSE(pid.pir_bit(131));
    CHECK(pid.pir().vectors() == std::vector<std::uint8_t>{0, 63, 64, 130, 255});
}

TEST_CASE("reads decode values written straight into memory", "[pid]") {
    TwoAgents t;
    t.mem.poke64(t.pid_address + 16, 1ull << 5);                             // vector 133
    t.mem.poke64(t.pid_address + 32, (std::uint64_t{0xABCD1234} << 32) | (0x41ull << 16) | 0x2);
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    CHECK(pid.pir_bit(133));
    CHECK(pid.pir().count() == 1);
    CHECK_FALSE(pid.pir_empty());
    CHECK_FALSE(pid.on());
    CHECK(pid.sn());
    CHECK(pid.nv() == 0x41);
    CHECK(pid.ndst() == 0xABCD1234u);
}

TEST_CASE("NDST formats for xAPIC and x2APIC", "[pid]") {
    STATIC_REQUIRE(ndst_for_xapic(0x00) == 0x0000);
    STATIC_REQUIRE(ndst_for_xapic(0x01) == 0x0100);
    STATIC_REQUIRE(ndst_for_xapic(0xFF) == 0xFF00);
    STATIC_REQUIRE(ndst_for_x2apic(0x12345678) == 0x12345678);
    STATIC_REQUIRE(apic_id_from_ndst(0x0700, false) == 0x07);
    STATIC_REQUIRE(apic_id_from_ndst(0xAB00, false) == 0xAB);
    // xAPIC uses only NDST[15:8]: other bits are ignored.
    STATIC_REQUIRE(apic_id_from_ndst(0xFFFF12FF, false) == 0x12);
    STATIC_REQUIRE(apic_id_from_ndst(0x00000107, true) == 0x107);
    for (unsigned id = 0; id < 256; ++id)
        CHECK(apic_id_from_ndst(ndst_for_xapic(static_cast<std::uint8_t>(id)), false) == id);
}

TEST_CASE("a misaligned descriptor address is rejected with a clear message", "[pid]") {
    TwoAgents t;
    CHECK_THROWS_AS(PostedInterruptDescriptor(t.agent0, t.pid_address + 0x20), PidError);
    CHECK_THROWS_AS(PostedInterruptDescriptor(t.agent0, t.pid_address + 1), PidError);
    CHECK_NOTHROW(PostedInterruptDescriptor(t.agent0, t.pid_address + 64));
    try {
        PostedInterruptDescriptor bad(t.agent0, 0x1008);
        FAIL("no exception");
    } catch (const PidError& e) {
        const std::string what = e.what();
        CHECK(what.find("0x1008") != std::string::npos);
        CHECK(what.find("64-byte aligned") != std::string::npos);
    }
}

TEST_CASE("set-up writers change one field and keep the others", "[pid]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    // initialize resets a dirty descriptor, including the software bits.
    t.mem.poke64(t.pid_address + 8, ~0ull);
    t.mem.poke64(t.pid_address + 32, ~0ull);
    t.mem.poke64(t.pid_address + 56, ~0ull);
    pid.initialize(kPostedIntrVector, ndst_for_x2apic(5));
    CHECK(pid.pir_empty());
    CHECK(t.mem.peek64(t.pid_address + 56) == 0);
    CHECK_FALSE(pid.on());
    CHECK_FALSE(pid.sn());
    CHECK(pid.nv() == kPostedIntrVector);
    CHECK(pid.ndst() == 5);

    pid.ipiv_set_pir(77);
    pid.kvm_test_and_set_on();
    pid.set_sn();
    CHECK(pid.sn());
    pid.set_nv(kWakeupVector);
    pid.set_ndst(ndst_for_x2apic(0x10009));
    CHECK(pid.nv() == kWakeupVector);
    CHECK(pid.ndst() == 0x10009u);
    CHECK(pid.on());
    CHECK(pid.sn());
    pid.clear_sn();
    CHECK_FALSE(pid.sn());
    CHECK(pid.on());
    CHECK(pid.nv() == kWakeupVector);
    CHECK(pid.pir().vectors() == std::vector<std::uint8_t>{77});
}

TEST_CASE("set-up writers use locked cmpxchg and reads use no locked operation", "[pid]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    std::vector<Access> log;
    record_accesses(t.agent0, log);

    pid.initialize(kPostedIntrVector, 0);
    REQUIRE(log.size() == 3);
    CHECK(log[0].op == model::MemOp::LockedFetchAndClear);
    CHECK(log[0].address == t.pid_address);
    CHECK(log[0].size == 64);
    CHECK(log[1].op == model::MemOp::Read);
    CHECK(log[2].op == model::MemOp::LockedCmpxchg);
    CHECK(log[2].address == t.pid_address + 32);
    CHECK(log[2].size == 8);
    CHECK(t.mem.locked_operations() == 2);

    for (auto op : {&PostedInterruptDescriptor::set_sn, &PostedInterruptDescriptor::clear_sn}) {
        log.clear();
        (pid.*op)();
        REQUIRE(log.size() == 2);
        CHECK(log[1].op == model::MemOp::LockedCmpxchg);
        CHECK(log[1].address == t.pid_address + 32);
    }
    pid.set_nv(kWakeupVector);
    pid.set_ndst(9);
    CHECK(t.mem.locked_operations() == 6);

    const std::uint64_t before = t.mem.locked_operations();
    (void)pid.pir();
    (void)pid.pir_bit(3);
    (void)pid.pir_empty();
    (void)pid.on();
    (void)pid.sn();
    (void)pid.nv();
    (void)pid.ndst();
    (void)pid.pi_test_on();
    (void)pid.pi_test_sn();
    CHECK(t.mem.locked_operations() == before);
}

TEST_CASE("a set-up writer retries when another agent changes NotifyInfo in between", "[pid]") {
    TwoAgents t;
    PostedInterruptDescriptor vmm(t.agent0, t.pid_address);
    PostedInterruptDescriptor other(t.agent1, t.pid_address);
    vmm.initialize(kPostedIntrVector, ndst_for_xapic(1));
    // Between the VMM's read and its cmpxchg, agent 1 sets ON (a sender posting).
    bool fired = false;
    t.agent0.before_access = [&](const model::MemRequest& r) {
        if (!fired && r.op == model::MemOp::LockedCmpxchg) {
            fired = true;
            other.kvm_test_and_set_on();
        }
    };
    const std::uint64_t before = t.mem.locked_operations();
    vmm.set_nv(kWakeupVector);
    CHECK(fired);
    // The first cmpxchg failed, the second one succeeded: ON was not lost.
    CHECK(t.mem.locked_operations() - before == 3);  // cmpxchg, other's bts, cmpxchg
    CHECK(vmm.on());
    CHECK(vmm.nv() == kWakeupVector);
    CHECK(vmm.ndst() == ndst_for_xapic(1));
}

TEST_CASE("Pir value helpers and highest_vector", "[pid]") {
    Pir p;
    CHECK(p.empty());
    CHECK_FALSE(highest_vector(p).has_value());
    p.set(16);
    CHECK(highest_vector(p) == std::optional<std::uint8_t>(16));
    p.set(200);
    p.set(64);
    CHECK(highest_vector(p) == std::optional<std::uint8_t>(200));
    p.set(255);
    CHECK(highest_vector(p) == std::optional<std::uint8_t>(255));
    CHECK(p.count() == 4);
    CHECK(p.vectors() == std::vector<std::uint8_t>{16, 64, 200, 255});
    p.reset(255);
    CHECK_FALSE(p.test(255));
    Pir q;
    q.set(0);
    q |= p;
    CHECK(q.vectors() == std::vector<std::uint8_t>{0, 16, 64, 200});
    CHECK(highest_vector(q) == std::optional<std::uint8_t>(200));
    Pir zero_only;
    zero_only.set(0);
    CHECK(highest_vector(zero_only) == std::optional<std::uint8_t>(0));
}

TEST_CASE("NotificationInfo encodes and decodes every field", "[pid]") {
    const NotificationInfo i =
        NotificationInfo{}.with_on(true).with_sn(true).with_nv(0xEC).with_ndst(0xDEADBEEF);
    CHECK(i.raw == (0x1ull | 0x2ull | (0xECull << 16) | (0xDEADBEEFull << 32)));
    CHECK(i.on());
    CHECK(i.sn());
    CHECK(i.nv() == 0xEC);
    CHECK(i.ndst() == 0xDEADBEEFu);
    const NotificationInfo j = i.with_on(false).with_nv(0x01).with_ndst(0);
    CHECK(j.raw == (0x2ull | (0x01ull << 16)));
    // Reserved bits of the control word survive field updates.
    const NotificationInfo r{(1ull << 5) | (1ull << 25)};
    CHECK(r.with_sn(true).with_nv(0xFF).with_ndst(1).with_on(true).raw ==
          ((1ull << 5) | (1ull << 25) | 0x3ull | (0xFFull << 16) | (1ull << 32)));
}
