// Posting and receiving with one agent at a time: IPIv steps 5-6, KVM's
// __vmx_deliver_posted_interrupt, posted-interrupt processing and KVM's PIR sync.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "pid/descriptor.hpp"
#include "pid/pid_test_support.hpp"

using namespace vtx;
using namespace vtx::pid;
using namespace vtx::pid::test;

TEST_CASE("IPIv posting with ON 0 and SN 0 sets PIR and ON and notifies", "[pid][ipiv]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    pid.initialize(kPostedIntrVector, ndst_for_xapic(2));
    std::vector<Access> log;
    record_accesses(t.agent0, log);
    const std::uint64_t before = t.mem.locked_operations();

    CHECK_FALSE(pid.ipiv_set_pir(0x31));
    REQUIRE(log.size() == 1);
    CHECK(log[0].op == model::MemOp::LockedBts);
    CHECK(log[0].address == t.pid_address);
    CHECK(pid.pir_bit(0x31));
    CHECK_FALSE(pid.on());  // another agent may see PIR[V] = 1 before ON changes

    log.clear();
    const IpivNotification n = pid.ipiv_update_notification();
    CHECK(n.send_notify);
    CHECK(n.nv == kPostedIntrVector);
    CHECK(n.ndst == ndst_for_xapic(2));
    CHECK(pid.on());
    CHECK(pid.pir().vectors() == std::vector<std::uint8_t>{0x31});
    // Step 6 is one locked RMW on the 8 bytes at +32.
    std::vector<Access> locked;
    for (const Access& a : log)
        if (model::is_locked(a.op)) locked.push_back(a);
    REQUIRE(locked.size() == 1);
    CHECK(locked[0].op == model::MemOp::LockedCmpxchg);
    CHECK(locked[0].address == t.pid_address + kPidNotificationInfoOffset);
    CHECK(locked[0].size == 8);
    CHECK(t.mem.locked_operations() - before == 2);
    // Nothing outside ON changed in NotifyInfo.
    CHECK(t.mem.peek64(t.pid_address + 32) ==
          NotificationInfo{}.with_on(true).with_nv(kPostedIntrVector).with_ndst(ndst_for_xapic(2)).raw);
}

TEST_CASE("IPIv posting with SN 1 sets PIR but neither ON nor a notification", "[pid][ipiv]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    pid.initialize(kPostedIntrVector, ndst_for_x2apic(7));
    pid.set_sn();
    const std::uint64_t control = t.mem.peek64(t.pid_address + 32);
    const std::uint64_t before = t.mem.locked_operations();

    pid.ipiv_set_pir(0x40);
    const IpivNotification n = pid.ipiv_update_notification();
    CHECK_FALSE(n.send_notify);
    CHECK(pid.pir_bit(0x40));
    CHECK_FALSE(pid.on());
    CHECK(pid.sn());
    CHECK(t.mem.peek64(t.pid_address + 32) == control);
    // Both steps are still one locked RMW each (NotifyInfo is stored back unchanged).
    CHECK(t.mem.locked_operations() - before == 2);
}

TEST_CASE("IPIv posting with ON already 1 sends no second notification", "[pid][ipiv]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    pid.initialize(kPostedIntrVector, ndst_for_xapic(1));
    pid.ipiv_set_pir(0x30);
    REQUIRE(pid.ipiv_update_notification().send_notify);
    const std::uint64_t control = t.mem.peek64(t.pid_address + 32);

    pid.ipiv_set_pir(0x50);
    CHECK_FALSE(pid.ipiv_update_notification().send_notify);
    CHECK(t.mem.peek64(t.pid_address + 32) == control);
    // Posting the same vector again: PIR unchanged, still no notification.
    CHECK(pid.ipiv_set_pir(0x50));
    CHECK_FALSE(pid.ipiv_update_notification().send_notify);
    CHECK(pid.pir().vectors() == std::vector<std::uint8_t>{0x30, 0x50});
}

TEST_CASE("KVM posting sets PIR then ON and reports bits already set", "[pid][kvm]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    pid.initialize(kPostedIntrVector, ndst_for_xapic(1));
    std::vector<Access> log;
    record_accesses(t.agent0, log);
    const std::uint64_t before = t.mem.locked_operations();

    CHECK_FALSE(pid.kvm_test_and_set_pir(0x61));
    CHECK_FALSE(pid.kvm_test_and_set_on());  // caller sends the notification
    REQUIRE(log.size() == 2);
    CHECK(log[0].op == model::MemOp::LockedBts);
    CHECK(log[1].op == model::MemOp::LockedBts);
    CHECK(t.mem.locked_operations() - before == 2);
    CHECK(pid.pir_bit(0x61));
    CHECK(pid.on());

    // Same vector again: test_and_set_pir reports it was set, so the caller stops there.
    CHECK(pid.kvm_test_and_set_pir(0x61));
    // A different vector: PIR was clear, but ON was set: the caller stops there.
    CHECK_FALSE(pid.kvm_test_and_set_pir(0x62));
    CHECK(pid.kvm_test_and_set_on());
}

TEST_CASE("KVM posting ignores SN", "[pid][kvm]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    pid.initialize(kPostedIntrVector, ndst_for_xapic(1));
    pid.set_sn();
    CHECK_FALSE(pid.kvm_test_and_set_pir(0x70));
    CHECK_FALSE(pid.kvm_test_and_set_on());
    CHECK(pid.on());
    CHECK(pid.sn());
    CHECK(pid.nv() == kPostedIntrVector);
}

TEST_CASE("fetch_and_clear returns exactly the posted vectors and zeroes PIR", "[pid][receive]") {
    TwoAgents t;
    PostedInterruptDescriptor sender(t.agent0, t.pid_address);
    PostedInterruptDescriptor receiver(t.agent1, t.pid_address);
    sender.initialize(kPostedIntrVector, ndst_for_xapic(1));
    const std::vector<std::uint8_t> posted{0x20, 0x21, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFE, 0xFF};
    for (std::uint8_t v : posted) sender.ipiv_set_pir(v);
    REQUIRE(sender.ipiv_update_notification().send_notify);

    std::vector<Access> log;
    record_accesses(t.agent1, log);
    const std::uint64_t before = t.mem.locked_operations();
    CHECK(receiver.clear_on());
    const Pir got = receiver.fetch_and_clear_pir();
    t.agent1.before_access = nullptr;
    CHECK(got.vectors() == posted);
    CHECK(highest_vector(got) == std::optional<std::uint8_t>(0xFF));
    CHECK(receiver.pir_empty());
    for (std::uint64_t off = 0; off < kPirBytes; off += 8) CHECK(t.mem.peek64(t.pid_address + off) == 0);
    // Posted-interrupt processing: one locked AND on ON, one locked 32-byte fetch-and-clear.
    REQUIRE(log.size() == 2);
    CHECK(log[0].op == model::MemOp::LockedAnd);
    CHECK(log[0].address == t.pid_address + 32);
    CHECK(log[1].op == model::MemOp::LockedFetchAndClear);
    CHECK(log[1].address == t.pid_address);
    CHECK(log[1].size == kPirBytes);
    CHECK(t.mem.locked_operations() - before == 2);
    // clear_on touched only ON.
    CHECK(t.mem.peek64(t.pid_address + 32) ==
          NotificationInfo{}.with_nv(kPostedIntrVector).with_ndst(ndst_for_xapic(1)).raw);
    // An empty PIR fetches nothing.
    CHECK_FALSE(receiver.clear_on());
    CHECK(receiver.fetch_and_clear_pir().empty());
}

TEST_CASE("clear_on leaves SN NV NDST and reserved bits untouched", "[pid][receive]") {
    TwoAgents t;
    const std::uint64_t control = ~0ull;  // every bit set, including reserved ones
    t.mem.poke64(t.pid_address + 32, control);
    PostedInterruptDescriptor pid(t.agent1, t.pid_address);
    CHECK(pid.clear_on());
    CHECK(t.mem.peek64(t.pid_address + 32) == (control & ~1ull));
}

TEST_CASE("kvm_sync_pir_words xchgs only the non-zero 32-bit words", "[pid][kvm]") {
    TwoAgents t;
    PostedInterruptDescriptor pid(t.agent0, t.pid_address);
    pid.initialize(kPostedIntrVector, ndst_for_xapic(1));
    // Vectors in words 1 (0x21), 2 (0x40, 0x5F) and 7 (0xE0, 0xFF); words 0, 3-6 empty.
    const std::vector<std::uint8_t> posted{0x21, 0x40, 0x5F, 0xE0, 0xFF};
    for (std::uint8_t v : posted) pid.kvm_test_and_set_pir(v);

    std::vector<Access> log;
    record_accesses(t.agent1, log);
    PostedInterruptDescriptor receiver(t.agent1, t.pid_address);
    const std::uint64_t before = t.mem.locked_operations();
    const Pir got = receiver.kvm_sync_pir_words();
    t.agent1.before_access = nullptr;
    CHECK(got.vectors() == posted);
    CHECK(highest_vector(got) == std::optional<std::uint8_t>(0xFF));
    CHECK(receiver.pir_empty());
    CHECK(t.mem.locked_operations() - before == 3);
    std::vector<std::uint64_t> xchg_addresses;
    unsigned reads = 0;
    for (const Access& a : log) {
        if (a.op == model::MemOp::LockedXchg) {
            CHECK(a.size == 4);
            xchg_addresses.push_back(a.address - t.pid_address);
        } else {
            CHECK(a.op == model::MemOp::Read);
            ++reads;
        }
    }
    CHECK(reads == 8);
    CHECK(xchg_addresses == std::vector<std::uint64_t>{4, 8, 28});
    // Nothing pending: no locked operation at all.
    CHECK(receiver.kvm_sync_pir_words().empty());
    CHECK(t.mem.locked_operations() - before == 3);
}

TEST_CASE("KVM vmx_sync_pir_to_irr sequence with ON tested first", "[pid][kvm]") {
    TwoAgents t;
    PostedInterruptDescriptor sender(t.agent0, t.pid_address);
    PostedInterruptDescriptor receiver(t.agent1, t.pid_address);
    sender.initialize(kPostedIntrVector, ndst_for_xapic(1));
    REQUIRE_FALSE(sender.kvm_test_and_set_pir(0x99));
    REQUIRE_FALSE(sender.kvm_test_and_set_on());
    REQUIRE(receiver.pi_test_on());
    CHECK(receiver.clear_on());
    CHECK(receiver.kvm_sync_pir_words().vectors() == std::vector<std::uint8_t>{0x99});
    CHECK_FALSE(receiver.pi_test_on());
    // The next posting notifies again.
    CHECK_FALSE(sender.kvm_test_and_set_pir(0x99));
    CHECK_FALSE(sender.kvm_test_and_set_on());
}
