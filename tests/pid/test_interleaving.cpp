// Two agents on one descriptor: the before_access hook of one DirectMemoryPort runs the
// other agent's operations between two of its accesses, at every possible point.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "pid/descriptor.hpp"
#include "pid/pid_test_support.hpp"

using namespace vtx;
using namespace vtx::pid;
using namespace vtx::pid::test;

namespace {

enum class Sender { Ipiv, Kvm };
enum class Receiver { PostedInterruptProcessing, KvmSyncPirToIrr };

const char* name(Sender s) { return s == Sender::Ipiv ? "IPIv" : "KVM"; }
const char* name(Receiver r) {
    return r == Receiver::PostedInterruptProcessing ? "posted-interrupt processing"
                                                    : "vmx_sync_pir_to_irr";
}

// The sender's whole posting flow; returns whether it sends a notification.
bool post(PostedInterruptDescriptor& pid, Sender how, std::uint8_t vector) {
    if (how == Sender::Ipiv) {
        pid.ipiv_set_pir(vector);                       // step 5: first locked RMW
        return pid.ipiv_update_notification().send_notify;  // step 6: second locked RMW
    }
    if (pid.kvm_test_and_set_pir(vector)) return false;  // __vmx_deliver_posted_interrupt
    if (pid.kvm_test_and_set_on()) return false;
    return true;
}

// The receiver's flow; returns the vectors it moved to the virtual IRR.
Pir receive(PostedInterruptDescriptor& pid, Receiver how) {
    if (how == Receiver::PostedInterruptProcessing) {
        pid.clear_on();                    // SDM 29.6 step 3
        return pid.fetch_and_clear_pir();  // step 5
    }
    if (!pid.pi_test_on()) return Pir{};  // KVM vmx_sync_pir_to_irr()
    pid.clear_on();
    return pid.kvm_sync_pir_words();
}

// Runs `action` once, before access number `k` (0-based) that `port` makes.
void run_before_access(model::DirectMemoryPort& port, unsigned k, bool& fired,
                       std::function<void()> action) {
    auto count = std::make_shared<unsigned>(0);
    port.before_access = [count, k, &fired, action](const model::MemRequest&) {
        if (!fired && (*count)++ == k) {
            fired = true;
            action();
        }
    };
}

// Delivery bookkeeping: how often each vector reached the virtual IRR.
struct Delivered {
    std::map<unsigned, unsigned> times;
    void add(const Pir& p) {
        for (std::uint8_t v : p.vectors()) ++times[v];
    }
};

}  // namespace

TEST_CASE("receiver running between the two IPIv steps loses no vector", "[pid][interleave]") {
    TwoAgents t;
    PostedInterruptDescriptor sender(t.agent0, t.pid_address);
    PostedInterruptDescriptor receiver(t.agent1, t.pid_address);
    sender.initialize(kPostedIntrVector, ndst_for_xapic(1));

    // The sender sets PIR[33] (first atomic step). Before its second step starts, the
    // receiver clears ON and fetch-and-clears PIR (e.g. processing an earlier notification).
    Pir fetched;
    bool fired = false;
    REQUIRE_FALSE(sender.ipiv_set_pir(33));
    run_before_access(t.agent0, 0, fired, [&] {
        receiver.clear_on();
        fetched = receiver.fetch_and_clear_pir();
    });
    const IpivNotification n = sender.ipiv_update_notification();
    REQUIRE(fired);
    // The fetch delivered vector 33. The sender then saw ON = 0, set it, and notifies.
    CHECK(fetched.vectors() == std::vector<std::uint8_t>{33});
    CHECK(n.send_notify);
    CHECK(sender.on());
    CHECK(sender.pir_empty());
    // The notification's processing then finds nothing: a harmless spurious notification.
    receiver.clear_on();
    CHECK(receiver.fetch_and_clear_pir().empty());
}

TEST_CASE("receiver running before the PIR step leaves the vector for the notification",
          "[pid][interleave]") {
    TwoAgents t;
    PostedInterruptDescriptor sender(t.agent0, t.pid_address);
    PostedInterruptDescriptor receiver(t.agent1, t.pid_address);
    sender.initialize(kPostedIntrVector, ndst_for_xapic(1));
    Pir fetched;
    bool fired = false;
    run_before_access(t.agent0, 0, fired, [&] {
        receiver.clear_on();
        fetched = receiver.fetch_and_clear_pir();
    });
    REQUIRE_FALSE(sender.ipiv_set_pir(33));
    REQUIRE(fired);
    CHECK(fetched.empty());
    const IpivNotification n = sender.ipiv_update_notification();
    // The vector remains in PIR with ON = 1, and the notification delivers it.
    CHECK(n.send_notify);
    CHECK(sender.on());
    CHECK(sender.pir_bit(33));
    receiver.clear_on();
    CHECK(receiver.fetch_and_clear_pir().vectors() == std::vector<std::uint8_t>{33});
}

TEST_CASE("every interleaving of a sender with a receiver delivers each vector once",
          "[pid][interleave]") {
    constexpr std::uint8_t kEarlier = 0x40;  // posted earlier: its notification is in flight
    constexpr std::uint8_t kVector = 33;
    for (Sender s : {Sender::Ipiv, Sender::Kvm}) {
        for (Receiver r : {Receiver::PostedInterruptProcessing, Receiver::KvmSyncPirToIrr}) {
            for (bool in_flight : {true, false}) {
                for (unsigned k = 0;; ++k) {
                    INFO("sender " << name(s) << ", receiver " << name(r) << ", earlier notification "
                                   << (in_flight ? "in flight" : "none") << ", receiver before sender access "
                                   << k);
                    TwoAgents t;
                    PostedInterruptDescriptor sender(t.agent0, t.pid_address);
                    PostedInterruptDescriptor receiver(t.agent1, t.pid_address);
                    sender.initialize(kPostedIntrVector, ndst_for_xapic(1));
                    unsigned notifications = 0;
                    if (in_flight) {
                        REQUIRE(post(sender, s, kEarlier));
                        ++notifications;
                    }
                    Delivered delivered;
                    bool fired = false;
                    run_before_access(t.agent0, k, fired, [&] { delivered.add(receive(receiver, r)); });
                    const bool notify = post(sender, s, kVector);
                    t.agent0.before_access = nullptr;
                    if (!fired) delivered.add(receive(receiver, r));  // the receiver runs last
                    // The receiver run above is the arrival of the earlier notification (or,
                    // without one, a VM entry / spurious run); each new notification makes one more.
                    if (notify) {
                        ++notifications;
                        delivered.add(receive(receiver, r));
                    }
                    CHECK(delivered.times[kVector] == 1);
                    CHECK(delivered.times[kEarlier] == (in_flight ? 1u : 0u));
                    CHECK(sender.pir_empty());
                    CHECK_FALSE(sender.on());
                    // A notification was needed exactly when the vector could not reach the
                    // receiver otherwise: never more than one per posting.
                    CHECK(notifications <= (in_flight ? 2u : 1u));
                    if (!fired) break;  // k ran past the sender's last access
                }
            }
        }
    }
}

TEST_CASE("two IPIv senders posting concurrently produce exactly one notification",
          "[pid][interleave]") {
    // Sender B (agent 1) runs its whole posting before each access of sender A (agent 0),
    // including between A's read of NotifyInfo and A's cmpxchg.
    for (Sender a_kind : {Sender::Ipiv, Sender::Kvm}) {
        for (Sender b_kind : {Sender::Ipiv, Sender::Kvm}) {
            for (unsigned k = 0;; ++k) {
                INFO("A " << name(a_kind) << ", B " << name(b_kind) << ", B before A's access " << k);
                TwoAgents t;
                PostedInterruptDescriptor a(t.agent0, t.pid_address);
                PostedInterruptDescriptor b(t.agent1, t.pid_address);
                a.initialize(kPostedIntrVector, ndst_for_xapic(4));
                bool fired = false;
                bool b_notified = false;
                run_before_access(t.agent0, k, fired, [&] { b_notified = post(b, b_kind, 34); });
                const bool a_notified = post(a, a_kind, 33);
                t.agent0.before_access = nullptr;
                if (!fired) b_notified = post(b, b_kind, 34);
                CHECK(int(a_notified) + int(b_notified) == 1);
                CHECK(a.pir().vectors() == std::vector<std::uint8_t>{33, 34});
                CHECK(a.on());
                if (!fired) break;
            }
        }
    }
}

TEST_CASE("a contended IPIv notification update retries its cmpxchg", "[pid][interleave]") {
    TwoAgents t;
    PostedInterruptDescriptor a(t.agent0, t.pid_address);
    PostedInterruptDescriptor b(t.agent1, t.pid_address);
    a.initialize(kPostedIntrVector, ndst_for_x2apic(9));
    REQUIRE_FALSE(a.ipiv_set_pir(33));
    // A has read NotifyInfo (ON = 0); B posts completely before A's cmpxchg.
    bool b_notified = false;
    bool fired = false;
    t.agent0.before_access = [&](const model::MemRequest& r) {
        if (!fired && r.op == model::MemOp::LockedCmpxchg) {
            fired = true;
            b.ipiv_set_pir(34);
            b_notified = b.ipiv_update_notification().send_notify;
        }
    };
    const std::uint64_t before = t.mem.locked_operations();
    const IpivNotification n = a.ipiv_update_notification();
    REQUIRE(fired);
    CHECK(b_notified);
    CHECK_FALSE(n.send_notify);  // the retry saw B's ON = 1
    // A: failed cmpxchg + successful cmpxchg; B: bts + cmpxchg.
    CHECK(t.mem.locked_operations() - before == 4);
    CHECK(a.pir().vectors() == std::vector<std::uint8_t>{33, 34});
    CHECK(a.on());
}

TEST_CASE("SN set between the IPIv steps suppresses the notification and KVM recovers the vector",
          "[pid][interleave]") {
    TwoAgents t;
    PostedInterruptDescriptor sender(t.agent0, t.pid_address);
    PostedInterruptDescriptor vmm(t.agent1, t.pid_address);
    sender.initialize(kPostedIntrVector, ndst_for_xapic(1));
    REQUIRE_FALSE(sender.ipiv_set_pir(0x55));
    // The target vCPU is preempted: vmx_vcpu_pi_put() sets SN between the two steps.
    bool fired = false;
    run_before_access(t.agent0, 0, fired, [&] { vmm.set_sn(); });
    const IpivNotification n = sender.ipiv_update_notification();
    REQUIRE(fired);
    CHECK_FALSE(n.send_notify);
    CHECK_FALSE(sender.on());
    CHECK(sender.pir_bit(0x55));
    // vmx_vcpu_pi_load(): clear SN, and if PIR is not empty set ON; then the VM-entry sync
    // moves the vector to the IRR.
    vmm.clear_sn();
    if (!vmm.pir_empty()) vmm.kvm_test_and_set_on();
    REQUIRE(vmm.pi_test_on());
    vmm.clear_on();
    CHECK(vmm.kvm_sync_pir_words().vectors() == std::vector<std::uint8_t>{0x55});
}
