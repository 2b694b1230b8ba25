#pragma once
// A two-vCPU IPI scenario for the VMM path tests: vCPU 0 sends `count` fixed, physical
// IPIs to vCPU 1 (vector 0x40 + i % 16) and waits after each until vCPU 1's handler has
// counted it; vCPU 1 busy-idles or halts between IPIs. Both sides log what they see (the
// sender the TSC before each send, the receiver the vector and TSC of each delivery), so
// a test can check who received which vector when.
#include <cstdint>
#include <utility>
#include <vector>

#include "common/kvm_rig.hpp"
#include "cpu/guest_context.hpp"

namespace vtx::test {

inline constexpr std::uint8_t kPingVector = 0x40;
inline constexpr unsigned kPingVectors = 16;
inline constexpr std::uint32_t kMsrX2apicIcr = 0x830, kMsrX2apicEoi = 0x80B;
inline constexpr std::uint32_t kApicIcrLo = 0x300, kApicIcrHi = 0x310, kApicEoi = 0xB0, kApicIdOffset = 0x20;
inline constexpr std::uint32_t kIcrAssert = 1u << 14;

// The guest's ICR write: x2APIC WRMSR 0x830; xAPIC ICR2 then ICR (MMIO).
inline void send_ipi(cpu::GuestCpu& g, bool x2apic, std::uint32_t icr_lo, std::uint32_t dest) {
    if (x2apic) {
        g.wrmsr(kMsrX2apicIcr, (std::uint64_t{dest} << 32) | icr_lo);
    } else {
        g.mmio_write32(cpu::kGuestApicBase + kApicIcrHi, dest << 24);
        g.mmio_write32(cpu::kGuestApicBase + kApicIcrLo, icr_lo);
    }
}

inline void send_eoi(cpu::GuestCpu& g, bool x2apic) {
    if (x2apic)
        g.wrmsr(kMsrX2apicEoi, 0);
    else
        g.mmio_write32(cpu::kGuestApicBase + kApicEoi, 0);
}

struct PingLog {
    std::vector<std::uint64_t> send_tsc;                      // before each ICR write
    std::vector<std::pair<std::uint8_t, std::uint64_t>> recv;  // vector, TSC in the handler
    unsigned count = 0;

    // Every IPI was received once, with the vector sent, after it was sent and before
    // the next one was.
    bool in_order() const {
        if (send_tsc.size() != count || recv.size() != count) return false;
        for (unsigned i = 0; i < count; ++i) {
            if (recv[i].first != kPingVector + i % kPingVectors) return false;
            if (recv[i].second <= send_tsc[i]) return false;
            if (i + 1 < count && recv[i].second >= send_tsc[i + 1]) return false;
        }
        return true;
    }
};

// vCPU 0 on CPU 0 sends, vCPU 1 on CPU 1 receives. `gap_cycles`: work before each IPI (lets
// a halting target go back to sleep).
inline void add_ping(KvmRig& rig, unsigned count, bool target_halts, PingLog& log, std::uint64_t gap_cycles = 0) {
    const bool x2apic = rig.vm().x2apic();
    const std::uint64_t counter = rig.alloc_line();
    const std::uint64_t ready = rig.alloc_line();
    log.count = count;
    rig.add_vcpu(0, 0, [=, &log](cpu::GuestCpu& g) {
        g.spin_until([&] { return g.load64(ready) != 0; }, ready);
        for (unsigned i = 0; i < count; ++i) {
            if (gap_cycles) g.compute(gap_cycles);
            log.send_tsc.push_back(g.rdtsc());
            send_ipi(g, x2apic, kIcrAssert | (kPingVector + i % kPingVectors), 1);
            g.spin_until([&] { return g.load64(counter) >= i + 1; }, counter);
        }
        if (gap_cycles) g.compute(gap_cycles);  // the target halts again before the end
    });
    rig.add_vcpu(1, 1, [=, &log](cpu::GuestCpu& g) {
        for (unsigned v = 0; v < kPingVectors; ++v)
            g.set_handler(static_cast<std::uint8_t>(kPingVector + v), [=, &log](cpu::GuestCpu& c, std::uint8_t vec) {
                log.recv.emplace_back(vec, c.rdtsc());
                c.lock_add(counter, 1);
                send_eoi(c, x2apic);
            });
        g.sti();
        g.store64(ready, 1);
        if (target_halts) {
            for (;;) g.hlt();
        }
        g.idle_loop();
    });
}

}  // namespace vtx::test
