#pragma once
// What a protocol checker (`vtxsim run --check`, sim/protocol_check.hpp) observes of a run:
// a guest's IPI as its program writes it (an ICR, ICR2 or SELF IPI write, before anything
// decides whether IPI virtualization, a VM exit or the physical APIC handles it), and the
// delivery of an external interrupt through a guest's IDT. Between the two lies every path
// the checker holds to account: IPIv, KVM's exits, PIR, ON, SN, NV, the wakeup list, IRR
// and ISR.
#include <cstdint>

namespace vtx::cpu {

class GuestContext;

class InterruptObserver {
public:
    virtual ~InterruptObserver() = default;
    // A write of an APIC register that sends an IPI or prepares one: `offset` 0x300 (ICR;
    // x2APIC: the 64-bit value), 0x310 (xAPIC ICR2) or 0x3F0 (x2APIC SELF IPI).
    virtual void ipi_register_written(const GuestContext& sender, bool x2apic, std::uint32_t offset,
                                      std::uint64_t value, double cycle) = 0;
    // An external interrupt (vector 32-255) delivered through the guest's IDT.
    virtual void interrupt_delivered(const GuestContext& target, std::uint8_t vector, double cycle) = 0;
    // A posted-interrupt notification sent for the descriptor at `pid` with vector `nv`
    // (by IPI virtualization, or by the VMM's vmx_deliver_posted_interrupt).
    virtual void notification_sent(std::uint64_t pid, std::uint8_t nv, double cycle) {
        (void)pid, (void)nv, (void)cycle;
    }
};

}  // namespace vtx::cpu
