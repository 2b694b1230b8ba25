// `vector_storm`: a seeded random mix of raw IPIs among N vCPUs (default 4) with random
// halts, one vector per sender (kvm-unit-tests style, no guest kernel), for checking that no
// interrupt is lost or delivered twice and that same-vector coalescing is accounted for
// exactly. The vector per sender limits it to 16 vCPUs; `random_ipi` is the Linux-shaped
// traffic at any size.
//
// Every vCPU runs a plan drawn from the seed: `ipis` steps, each "send a burst of 1..burst
// fixed physical IPIs (vector 0x40 + sender) back to back to a random other vCPU, then
// compute a random while". With workload.burst=1 the sender waits until the target has
// handled the IPI before going on (so at most one IPI of a vector is ever outstanding
// for a target and none can coalesce); with a larger burst it does not wait, and IPIs of
// the same vector may coalesce while one is pending. vCPUs other than 0 halt at random
// after a step (CLI; flag "halted"; STI; HLT); whoever finishes a step wakes halted vCPUs
// with a wake IPI (vector 0x80 + waker, at most one outstanding per waker and target),
// and vCPU 0, which never halts, keeps doing so until everyone is done. A sender ends with
// a fence IPI (vector 0x30 + sender, below every data vector so it is handled after any
// data IPI of the same sender still pending) to each other vCPU and waits for it.
//
// The check: wake and fence IPIs are received exactly as sent; every data IPI sent was
// received exactly once, except those absorbed by coalescing (sent - received); where
// KVM sees every coalescing (APICv inactive: it sets the IRR itself) their number must
// equal Kvm::coalesced_interrupts(); with APICv active the processor also coalesces in
// the vIRR and PIR (posted-interrupt processing, IPIv), out of KVM's sight, so the
// missing ones must be at least KVM's count, and none with burst=1 (docs/vmm.md).
#include <memory>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "model/rng.hpp"
#include "workloads/kut.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint64_t kLine = 64;
constexpr std::uint8_t kFenceVector = 0x30, kDataVector = 0x40, kWakeVector = 0x80;
constexpr unsigned kMaxVcpus = 16;  // fence vectors 0x30 + sender stay below the data vectors
// The control word: bit v = vCPU v is halted (or about to be), bits 63:32 = vCPUs done. One
// word, so that vCPU 0's wait reads everything it waits for with a single load.
constexpr unsigned kDoneShift = 32;
constexpr std::uint64_t kDefaultIpis = 30, kDefaultBurst = 1, kDefaultHaltPercent = 25;
constexpr std::uint64_t kMaxComputeCycles = 20000;

class VectorStorm : public Workload {
public:
    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        m_n = cfg.vcpus;
        if (m_n < 2 || m_n > kMaxVcpus)
            throw model::ConfigError("vector_storm: --vcpus " + std::to_string(m_n) + ": must be 2.." +
                                     std::to_string(kMaxVcpus) + " (a data vector 0x40 + sender per vCPU, below the "
                                     "wake vectors 0x80 + sender; random_ipi runs any size)");
        for (const auto& [key, value] : cfg.params) {
            if (key == "ipis")
                m_ipis = parse_param("vector_storm", key, value, 1, 1u << 20);
            else if (key == "burst")
                m_burst = parse_param("vector_storm", key, value, 1, 16);
            else if (key == "halt_percent")
                m_halt_percent = parse_param("vector_storm", key, value, 0, 100);
            else
                throw model::ConfigError("vector_storm: unknown parameter workload." + key +
                                         " (known: ipis, burst, halt_percent)");
        }
        m_x2apic = cfg.x2apic;
        model::Rng rng(cfg.seed);
        m_plan.assign(m_n, {});
        for (unsigned s = 0; s < m_n; ++s)
            for (std::uint64_t k = 0; k < m_ipis; ++k) {
                Step st;
                st.target = static_cast<unsigned>(rng.below(m_n - 1));
                if (st.target >= s) ++st.target;
                st.count = 1 + static_cast<unsigned>(rng.below(m_burst));
                st.compute = rng.below(kMaxComputeCycles);
                st.halt = s != 0 && rng.below(100) < m_halt_percent;
                m_plan[s].push_back(st);
            }
        m_ctrl = vm.alloc_guest(kLine, kLine);
        m_data = vm.alloc_guest(kLine * m_n * m_n, kLine);
        m_wake_sent = vm.alloc_guest(kLine * m_n * m_n, kLine);
        m_wake_recv = vm.alloc_guest(kLine * m_n * m_n, kLine);
        m_fence = vm.alloc_guest(kLine * m_n * m_n, kLine);
        create_vcpus(vm, cfg, [this](cpu::GuestCpu& g, unsigned i) { vcpu_main(g, i); });
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        auto& mem = kvm.platform().memory();
        auto peek = [&](std::uint64_t gpa) { return mem.peek64(vm.gpa_to_hpa(gpa)); };
        std::uint64_t sent = 0, received = 0, wakes = 0, bad_pairs = 0;
        std::string off;
        for (unsigned t = 0; t < m_n; ++t)
            for (unsigned s = 0; s < m_n; ++s) {
                if (s == t) continue;
                std::uint64_t expected = 0;
                for (const auto& st : m_plan[s]) expected += st.target == t ? st.count : 0;
                const std::uint64_t got = peek(pair(m_data, t, s));
                sent += expected;
                received += got;
                const std::uint64_t wake_sent = peek(pair(m_wake_sent, s, t));
                const std::uint64_t wake_got = peek(pair(m_wake_recv, t, s));
                wakes += wake_sent;
                const bool ok = got <= expected && (expected == 0 || got > 0) && wake_got == wake_sent &&
                                peek(pair(m_fence, t, s)) == 1;
                if (!ok) {
                    ++bad_pairs;
                    off += " " + std::to_string(s) + "->" + std::to_string(t) + ": data " + std::to_string(got) + "/" +
                           std::to_string(expected) + ", wakes " + std::to_string(wake_got) + "/" +
                           std::to_string(wake_sent) + ", fence " + std::to_string(peek(pair(m_fence, t, s))) + ";";
                }
            }
        const std::uint64_t missing = sent - received;
        const std::uint64_t coalesced = kvm.coalesced_interrupts();
        const bool apicv = kvm.params().enable_apicv && !vm.apicv_inhibited();
        bool coalescing_ok;
        std::string rule;
        if (!apicv) {
            coalescing_ok = missing == coalesced;
            rule = "= coalesced by KVM";
        } else if (m_burst == 1) {
            coalescing_ok = missing == 0 && coalesced == 0;
            rule = "= 0 (burst 1)";
        } else {
            coalescing_ok = missing >= coalesced;
            rule = ">= coalesced by KVM (the processor coalesces too)";
        }
        r.ok = bad_pairs == 0 && coalescing_ok && sent > 0;
        r.check = std::to_string(received) + " of " + std::to_string(sent) + " IPIs received, " + std::to_string(missing) +
                  " missing " + rule + " (" + std::to_string(coalesced) + "); " + std::to_string(wakes) +
                  " wake IPIs and the fences received exactly once; " + std::to_string(m_halts) + " halts" + off;
        r.iterations = r.total_iterations = sent;
        r.cycles_per_iteration = m_cycles;
        r.values["coalesced"] = static_cast<double>(coalesced);
        r.values["missing"] = static_cast<double>(missing);
        r.values["halts"] = static_cast<double>(m_halts);
        r.values["wakes"] = static_cast<double>(wakes);
        return r;
    }

private:
    struct Step {
        unsigned target = 0;
        unsigned count = 1;
        std::uint64_t compute = 0;
        bool halt = false;
    };
    // Counters, one line each: data[t][s] and fence[t][s] received by t from s;
    // wake_sent[w][t] by w to t; wake_recv[t][w] by t from w.
    std::uint64_t pair(std::uint64_t base, unsigned a, unsigned b) const { return base + kLine * (a * m_n + b); }
    std::uint64_t others_halted(std::uint64_t ctrl, unsigned self) const {
        return ctrl & ((std::uint64_t{1} << m_n) - 1) & ~(std::uint64_t{1} << self);
    }
    unsigned done_count(std::uint64_t ctrl) const { return static_cast<unsigned>(ctrl >> kDoneShift); }

    void install_handlers(cpu::GuestCpu& g, unsigned self) {
        for (unsigned s = 0; s < m_n; ++s) {
            auto count = [this, self, s](std::uint64_t base) {
                return [this, self, s, base](cpu::GuestCpu& c, std::uint8_t) {
                    c.lock_add(pair(base, self, s), 1);
                    kut::Lib(c, m_x2apic).eoi();
                };
            };
            g.set_handler(static_cast<std::uint8_t>(kDataVector + s), count(m_data));
            g.set_handler(static_cast<std::uint8_t>(kWakeVector + s), count(m_wake_recv));
            g.set_handler(static_cast<std::uint8_t>(kFenceVector + s), count(m_fence));
        }
    }

    // Wakes every other vCPU whose halted flag is set, unless this vCPU's previous wake IPI
    // to it is still outstanding (that one will wake it).
    void wake_halted(cpu::GuestCpu& g, kut::Lib& lib, unsigned self) {
        const std::uint64_t halted = others_halted(g.load64(m_ctrl), self);
        for (unsigned j = 0; j < m_n; ++j) {
            if (!((halted >> j) & 1u)) continue;
            const std::uint64_t sent = g.load64(pair(m_wake_sent, self, j));
            if (g.load64(pair(m_wake_recv, j, self)) < sent) continue;
            if (!g.lock_btr(m_ctrl, j)) continue;  // someone else won
            g.store64(pair(m_wake_sent, self, j), sent + 1);
            lib.apic_icr_write(kut::kApicIntAssert | (kWakeVector + self), j);
        }
    }

    void vcpu_main(cpu::GuestCpu& g, unsigned self) {
        kut::Lib lib(g, m_x2apic);
        install_handlers(g, self);
        g.sti();
        const std::uint64_t t1 = g.rdtsc();
        std::vector<std::uint64_t> sent(m_n, 0);
        for (const Step& st : m_plan[self]) {
            for (unsigned k = 0; k < st.count; ++k)
                lib.apic_icr_write(kut::kApicIntAssert | (kDataVector + self), st.target);
            sent[st.target] += st.count;
            if (m_burst == 1) {
                const std::uint64_t where = pair(m_data, st.target, self);
                const std::uint64_t want = sent[st.target];
                g.spin_until([&] { return g.load64(where) >= want; }, where);
            }
            g.compute(st.compute);
            wake_halted(g, lib, self);
            if (st.halt) {
                g.cli();
                g.lock_bts(m_ctrl, self);
                ++m_halts;
                g.sti_hlt();
                g.lock_btr(m_ctrl, self);  // woken by another IPI first
            }
        }
        // Fences: each other vCPU has handled every data IPI of ours once it handles this.
        for (unsigned t = 0; t < m_n; ++t) {
            if (t == self) continue;
            lib.apic_icr_write(kut::kApicIntAssert | (kFenceVector + self), t);
            const std::uint64_t where = pair(m_fence, t, self);
            g.spin_until([&] { return g.load64(where) >= 1; }, where);
        }
        if (self == 0)
            m_cycles = static_cast<double>(g.rdtsc() - t1) / static_cast<double>(m_plan[0].size());
        g.lock_add(m_ctrl, std::uint64_t{1} << kDoneShift);
        if (self != 0) g.idle_loop();
        // vCPU 0: wake halted vCPUs until everyone is done, then wait for the wakes in flight.
        for (;;) {
            std::uint64_t ctrl = 0;
            g.spin_until([&] {
                ctrl = g.load64(m_ctrl);
                return done_count(ctrl) == m_n || others_halted(ctrl, self) != 0;
            }, m_ctrl);
            if (done_count(ctrl) == m_n) break;
            wake_halted(g, lib, self);
        }
        for (unsigned w = 0; w < m_n; ++w)
            for (unsigned j = 0; j < m_n; ++j) {
                if (w == j) continue;
                const std::uint64_t want = g.load64(pair(m_wake_sent, w, j));
                const std::uint64_t where = pair(m_wake_recv, j, w);
                g.spin_until([&] { return g.load64(where) >= want; }, where);
            }
    }

    unsigned m_n = 4;
    std::uint64_t m_ipis = kDefaultIpis, m_burst = kDefaultBurst, m_halt_percent = kDefaultHaltPercent;
    bool m_x2apic = true;
    std::vector<std::vector<Step>> m_plan;
    std::uint64_t m_ctrl = 0, m_data = 0, m_wake_sent = 0, m_wake_recv = 0, m_fence = 0;
    std::uint64_t m_halts = 0;
    double m_cycles = 0;
};

}  // namespace

std::unique_ptr<Workload> make_vector_storm() { return std::make_unique<VectorStorm>(); }

}  // namespace vtx::workloads
