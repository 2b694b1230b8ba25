// `apic_fuzz`: seeded random guest writes to the local APIC (docs/reliability.md "Guest
// APIC writes"): every vCPU runs `workload.ops` operations drawn from the seed, each one of
//   - an ICR write with random fields: any vector (illegal ones below 16 included), every
//     delivery mode but start-up, physical or logical, assert or de-assert, edge or level,
//     any shorthand, a random destination (an existing APIC ID, a missing one, broadcast,
//     a random logical mask), and now and then reserved bits set;
//   - a write of a random value to a random APIC register (xAPIC: MMIO to the APIC page;
//     x2APIC: WRMSR of a random MSR in 800H-8FFH, 64-bit values included);
//   - a read of a random register (x2APIC: RDMSR of a random MSR in 800H-8FFH);
//   - an EOI, a SELF IPI (x2APIC), or a little computation.
// Handlers are installed for every vector: exceptions are counted (#GP, vector 13, is the
// architectural answer to a bad x2APIC MSR access; its handler skips the RDMSR or WRMSR),
// NMIs counted, interrupts counted and EOIed. The answers must be architectural whatever the path (virtualized by the
// processor, by IPI virtualization, or emulated by KVM after a VM exit): the run ends
// without a simulation error, and the per-vCPU #GP counts are the same with IPIv on and off
// (IPI virtualization changes how an IPI is delivered, not which instructions fault).
//
// What keeps a run finite and its answers comparable, not what the architecture allows
// (each a named restriction): no IPI with vector 13, which the #GP handler would take for a
// fault (8DH instead; the other illegal vectors below 16 are sent);
// no start-up IPIs (an AP restarted at a vector with no code); INIT only to one vCPU by
// physical APIC ID and never to vCPU 0 (its program's end ends the run); the LVT entries
// always masked (no timer storm); the spurious-vector register keeps the APIC enabled and
// TPR writes are 0 (a masked or disabled APIC would hold IPIs back, which the protocol
// checker would report as late); an xAPIC ID write sets a vCPU's ID to itself or to itself
// + 80H (never 0, vCPU 0's, which keeps its own), so APICv inhibits are exercised.
#include <memory>
#include <string>
#include <vector>

#include "apic/registers.hpp"
#include "cpu/flow_encodings.hpp"
#include "model/error.hpp"
#include "model/rng.hpp"
#include "workloads/kut.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint8_t kVectorNmi = 2;
constexpr std::uint8_t kVectorGp = 13;
constexpr std::uint8_t kFirstInterruptVector = 32;
constexpr std::uint32_t kGpStandIn = 0x8D;  // what an IPI drawn with vector 13 gets instead
constexpr std::uint32_t kXapicIdBump = 0x80;  // an xAPIC ID write's other choice: own ID + 80H
constexpr std::uint32_t kLvtMasked = 1u << 16;
constexpr std::uint32_t kSvrApicEnabled = 1u << 8;
constexpr std::uint64_t kDefaultOps = 200;
constexpr unsigned kMaxVcpus = 64;  // INIT targets and xAPIC IDs + 80H stay below 0xFF

class ApicFuzz : public Workload {
public:
    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        check_vcpus("apic_fuzz", cfg);
        if (cfg.vcpus > kMaxVcpus)
            throw model::ConfigError("apic_fuzz: --vcpus " + std::to_string(cfg.vcpus) + ": at most " +
                                     std::to_string(kMaxVcpus) + " (an xAPIC ID + 80H stays below the broadcast ID)");
        check_params("apic_fuzz", cfg, {"ops"});
        if (auto it = cfg.params.find("ops"); it != cfg.params.end())
            m_ops = parse_param("apic_fuzz", "ops", it->second, 1, 1u << 20);
        m_n = cfg.vcpus;
        m_x2apic = cfg.x2apic;
        m_seed = cfg.seed;
        m_done = vm.alloc_guest(64, 64);
        m_counts.assign(m_n, {});
        create_vcpus(vm, cfg, [this](cpu::GuestCpu& g, unsigned i) { vcpu_main(g, i); });
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        std::uint64_t gp = 0, nmis = 0, interrupts = 0, ops = 0;
        std::string per_vcpu;
        for (unsigned i = 0; i < m_n; ++i) {
            const Counts& c = m_counts[i];
            gp += c.gp;
            nmis += c.nmis;
            interrupts += c.interrupts;
            ops += c.ops;
            r.values["gp.vcpu" + std::to_string(i)] = static_cast<double>(c.gp);
            r.values["finished.vcpu" + std::to_string(i)] = c.ops == m_ops ? 1 : 0;
            per_vcpu += " " + std::to_string(c.gp);
        }
        const std::uint64_t done = kvm.platform().memory().peek64(vm.gpa_to_hpa(m_done));
        r.ok = m_counts[0].ops == m_ops;
        r.check = std::to_string(ops) + " APIC operations (" + std::to_string(done) + " of " + std::to_string(m_n - 1) +
                  " other vCPUs finished; the rest were sent INIT), " + std::to_string(gp) + " #GP (per vCPU:" +
                  per_vcpu + "), " + std::to_string(nmis) + " NMIs, " + std::to_string(interrupts) + " interrupts";
        r.iterations = r.total_iterations = ops;
        r.values["gp"] = static_cast<double>(gp);
        r.values["nmis"] = static_cast<double>(nmis);
        r.values["interrupts"] = static_cast<double>(interrupts);
        return r;
    }

private:
    struct Counts {
        std::uint64_t gp = 0, nmis = 0, interrupts = 0, exceptions = 0, ops = 0;
    };

    void install_handlers(cpu::GuestCpu& g, unsigned i) {
        for (unsigned v = 0; v < 256; ++v) {
            const auto vec = static_cast<std::uint8_t>(v);
            g.set_handler(vec, [this, i, vec](cpu::GuestCpu& c, std::uint8_t) {
                Counts& n = m_counts[i];
                if (vec == kVectorGp) {
                    ++n.gp;
                    // The fixup kvm-unit-tests' exception handlers do: skip the faulting
                    // instruction (only RDMSR and WRMSR fault here).
                    c.context().return_rip += cpu::kLenWrmsr;
                }
                else if (vec == kVectorNmi)
                    ++n.nmis;
                else if (vec < kFirstInterruptVector)
                    ++n.exceptions;
                else {
                    ++n.interrupts;
                    kut::Lib(c, m_x2apic).eoi();
                }
            });
        }
    }

    // The restrictions of the header on a register write: (offset, value) -> what is written.
    std::uint64_t tame(std::uint32_t offset, std::uint64_t value, unsigned i, model::Rng& rng) const {
        if (apic::lvt_at_offset(offset)) return value | kLvtMasked;
        if (offset == apic::kApicOffsetSelfIpi && (value & 0xFF) == kVectorGp) return (value & ~std::uint64_t{0xFF}) | kGpStandIn;
        if (offset == apic::kApicOffsetSvr) return value | kSvrApicEnabled;
        if (offset == apic::kApicOffsetTpr) return value & ~std::uint64_t{0xFF};  // TPR 0; other bits kept (#GP in x2APIC)
        if (offset == apic::kApicOffsetId && !m_x2apic) {
            const std::uint32_t id = (i == 0 || rng.below(2) == 0) ? i : i + kXapicIdBump;
            return std::uint64_t{id} << 24;
        }
        return value;
    }

    std::uint32_t random_icr(unsigned i, model::Rng& rng, std::uint32_t& dest) const {
        std::uint32_t icr = static_cast<std::uint32_t>(rng.below(256));
        if (icr == kVectorGp) icr = kGpStandIn;  // a handler cannot tell an IPI with vector 13 from a #GP
        // Delivery modes by weight (in 100): fixed 50, lowest priority 15, NMI 10, SMI 7,
        // the reserved 011b and 111b 8 each, INIT 2; never start-up.
        const std::uint64_t r = rng.below(100);
        const std::uint32_t mode = r < 50 ? 0 : r < 65 ? 1 : r < 75 ? 4 : r < 82 ? 2 : r < 90 ? 3 : r < 98 ? 7 : 5;
        icr |= mode << 8;
        if (rng.below(4) == 0) icr |= 1u << 11;  // logical
        if (rng.below(8) != 0) icr |= 1u << 14;  // assert (mostly)
        if (rng.below(8) == 0) icr |= 1u << 15;  // level
        if (rng.below(4) == 0) icr |= static_cast<std::uint32_t>(1 + rng.below(3)) << 18;  // a shorthand
        switch (rng.below(6)) {
            case 0: dest = m_x2apic ? 0xFFFFFFFFu : 0xFF; break;                               // broadcast
            case 1: dest = static_cast<std::uint32_t>(m_n + rng.below(16)); break;                // nobody
            case 2: dest = static_cast<std::uint32_t>(rng.next_u64() & (m_x2apic ? 0xFFFFFFFFu : 0xFFu)); break;
            default: dest = static_cast<std::uint32_t>(rng.below(m_n)); break;                  // a vCPU
        }
        if (rng.below(10) == 0) icr |= static_cast<std::uint32_t>(rng.next_u64()) & 0xFFF32000u;  // reserved bits
        if (mode == 5) {
            // INIT: one vCPU other than 0 and other than the sender, physical, no shorthand.
            icr &= ~((3u << 18) | (1u << 11));
            dest = 1 + static_cast<std::uint32_t>(rng.below(m_n - 1));
            if (dest == i) icr = (icr & ~(7u << 8));  // to itself: a fixed IPI instead
        }
        return icr;
    }

    void vcpu_main(cpu::GuestCpu& g, unsigned i) {
        install_handlers(g, i);
        kut::Lib lib(g, m_x2apic);
        model::Rng rng(m_seed * 0x9E3779B97F4A7C15ull + i + 1);
        g.sti();
        for (std::uint64_t k = 0; k < m_ops; ++k) {
            ++m_counts[i].ops;
            switch (rng.below(10)) {
                case 0:
                case 1:
                case 2:
                case 3: {
                    std::uint32_t dest = 0;
                    const std::uint32_t icr = random_icr(i, rng, dest);
                    lib.apic_icr_write(icr, dest);
                    break;
                }
                case 4:
                case 5: {
                    if (m_x2apic) {
                        const auto msr = static_cast<std::uint32_t>(0x800 + rng.below(0x100));
                        const std::uint64_t value = rng.below(2) ? rng.next_u64() & 0xFFFFFFFFu : rng.next_u64();
                        const std::uint64_t tamed = msr < 0x840 ? tame((msr - 0x800) << 4, value, i, rng) : value;
                        if (msr == 0x830) break;  // the ICR: random_icr's business (INIT restrictions)
                        g.wrmsr(msr, tamed);
                    } else {
                        const auto offset = static_cast<std::uint32_t>(rng.below(0x100) << 4) & 0xFF0;
                        if (offset == apic::kApicOffsetIcrLo) break;  // random_icr's business
                        const auto value = static_cast<std::uint32_t>(tame(offset, rng.next_u64() & 0xFFFFFFFFu, i, rng));
                        lib.apic_write(offset, value);
                    }
                    break;
                }
                case 6:
                    if (m_x2apic)
                        g.rdmsr(static_cast<std::uint32_t>(0x800 + rng.below(0x100)));
                    else
                        lib.apic_read(static_cast<std::uint32_t>(rng.below(0x100) << 4) & 0xFF0);
                    break;
                case 7: lib.eoi(); break;
                case 8:
                    if (m_x2apic) g.wrmsr(0x83F, tame(apic::kApicOffsetSelfIpi, rng.below(256), i, rng));  // SELF IPI
                    break;
                default: g.compute(rng.below(2000)); break;
            }
        }
        if (i != 0) {
            g.lock_add(m_done, 1);
            g.idle_loop();
        }
        // vCPU 0 waits a bounded while for the others (some may be waiting for SIPI).
        for (int k = 0; k < 200 && g.load64(m_done) < m_n - 1; ++k) g.compute(20000);
    }

    unsigned m_n = 0;
    bool m_x2apic = true;
    std::uint64_t m_seed = 1;
    std::uint64_t m_ops = kDefaultOps;
    std::uint64_t m_done = 0;
    std::vector<Counts> m_counts;
};

}  // namespace

std::unique_ptr<Workload> make_apic_fuzz() { return std::make_unique<ApicFuzz>(); }

}  // namespace vtx::workloads
