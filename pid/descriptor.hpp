#pragma once
// PostedInterruptDescriptor: a view over a 64-byte PID in simulated memory, reached only
// through a MemoryPort. Every operation that changes the descriptor is built on the
// port's locked read-modify-write operations, because software may change a PID while a
// logical processor uses it and "all such changes must use locked read-modify-write
// instructions" (SDM Vol. 3 section 29.6; vtx-semantics.md section 6.1). The view holds
// no state of its own: two views of the same address on two ports are two agents.
//
// Which flow uses what (vtx-semantics.md sections 5.3, 6.2, 6.3; kvm-reference.md 1.5, 1.7):
//   IPIv (hardware sender):   ipiv_set_pir(v), then ipiv_update_notification()
//   KVM (software sender):    kvm_test_and_set_pir(v), then kvm_test_and_set_on()
//   Posted-interrupt processing (hardware receiver): clear_on(), fetch_and_clear_pir()
//   KVM vmx_sync_pir_to_irr() (software receiver):   pi_test_on(), clear_on(),
//                                                    kvm_sync_pir_words()
#include <cstdint>

#include "model/memory.hpp"
#include "pid/layout.hpp"

namespace vtx::pid {

// Result of the second IPIv posting step: whether to send the notification and where.
// NV and NDST are those read by the same locked RMW that decided SendNotify.
struct IpivNotification {
    bool send_notify = false;
    std::uint8_t nv = 0;
    std::uint32_t ndst = 0;
};

class PostedInterruptDescriptor {
public:
    // Throws PidError if `address` is not 64-byte aligned.
    PostedInterruptDescriptor(model::MemoryPort& port, std::uint64_t address);

    std::uint64_t address() const { return m_address; }
    std::uint64_t pir_address() const { return m_address + kPirOffset; }
    std::uint64_t notification_info_address() const { return m_address + kPidNotificationInfoOffset; }

    // --- Reads (plain loads; no locked operation) ---
    bool pir_bit(std::uint8_t vector) const;
    Pir pir() const;
    bool pir_empty() const;
    NotificationInfo notification_info() const;
    bool on() const { return notification_info().on(); }
    bool sn() const { return notification_info().sn(); }
    std::uint8_t nv() const { return notification_info().nv(); }
    std::uint32_t ndst() const { return notification_info().ndst(); }
    // KVM's names for the ON / SN tests (posted_intr.h pi_test_on / pi_test_sn).
    bool pi_test_on() const { return on(); }
    bool pi_test_sn() const { return sn(); }

    // --- Set-up writers (VMM) ---
    // Resets the whole descriptor with one locked 64-byte fetch-and-clear (PIR, ON, SN and
    // the software bits become 0), then installs NV and NDST with a locked cmpxchg.
    void initialize(std::uint8_t nv, std::uint32_t ndst);
    // cmpxchg loops on NotifyInfo that change one field and leave the rest untouched (as
    // KVM's vmx_vcpu_pi_load() / pi_enable_wakeup_handler() update pi_desc.control).
    void set_nv(std::uint8_t nv);
    void set_ndst(std::uint32_t ndst);
    void set_sn();
    void clear_sn();
    // The general form: replaces NotifyInfo by change(old) with a read + locked-cmpxchg
    // loop, retrying while another agent changed it in between. Returns the value the
    // successful cmpxchg replaced. `change` may be called several times.
    template <class Change>
    NotificationInfo update_notification_info(Change change);

    // --- IPI virtualization, steps 5 and 6 (two separate atomic operations) ---
    // Step 5: one locked RMW on the PIR setting PIR[vector]. Returns the old bit (the
    // pseudocode ignores it).
    bool ipiv_set_pir(std::uint8_t vector);
    // Step 6: one locked RMW on NotifyInfo: if ON = 0 and SN = 0 then ON := 1 and
    // SendNotify = 1, else no change and SendNotify = 0. The RMW is a read followed by a
    // locked cmpxchg, retried if another agent changed NotifyInfo in between; when nothing
    // changes, the cmpxchg writes the old value back (the pseudocode always stores
    // NotifyInfo back), so the step is one locked operation when uncontended.
    IpivNotification ipiv_update_notification();

    // --- KVM posting (__vmx_deliver_posted_interrupt). KVM ignores SN here. ---
    bool kvm_test_and_set_pir(std::uint8_t vector);  // locked bts; true = was already set
    bool kvm_test_and_set_on();                      // locked bts of bit 256

    // --- Receive side ---
    // Clears ON with one locked AND, leaving every other bit untouched (posted-interrupt
    // processing step 3; KVM pi_clear_on). Returns the old ON.
    bool clear_on();
    // Reads and clears the 32-byte PIR as one locked access, so no agent can change a PIR
    // bit between the read and the clear (posted-interrupt processing step 5).
    Pir fetch_and_clear_pir();
    // KVM __kvm_apic_update_irr(): for each of the 8 32-bit PIR words, a plain read and,
    // if it is non-zero, xchg(word, 0). Returns the vectors taken.
    Pir kvm_sync_pir_words();

private:
    model::MemoryPort& m_port;
    std::uint64_t m_address;
};

template <class Change>
NotificationInfo PostedInterruptDescriptor::update_notification_info(Change change) {
    const std::uint64_t where = notification_info_address();
    std::uint64_t old = m_port.read64(where);
    for (;;) {
        const NotificationInfo desired = change(NotificationInfo{old});
        const std::uint64_t seen = m_port.locked_cmpxchg(where, old, desired.raw);
        if (seen == old) return NotificationInfo{old};
        old = seen;
    }
}

}  // namespace vtx::pid
