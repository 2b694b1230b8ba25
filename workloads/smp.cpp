// Multi-vCPU workloads around the interrupt paths that are not unicast-physical-fixed:
//
//   ap_boot    vCPU 0 (the BSP) starts vCPUs 1..N-1, which begin UNINITIALIZED, with
//              INIT-SIPI-SIPI through its ICR (the MP start-up protocol, scaled delays).
//              Their code sits at the SIPI vector << 12 (kvm_vcpu_deliver_sipi_vector:
//              CS.base = vector << 12, RIP = 0). Each AP reads its APIC ID, counts itself
//              online once and parks (CLI; HLT). Checks: every AP came online exactly once;
//              the second SIPI of each pair is ignored (the AP is no longer waiting).
//              cycles_per_iteration: BSP TSC ticks from the first INIT until the last AP
//              is online, per AP.
//   multicast  vCPU 0 sends fixed IPIs in logical destination mode to a seeded random
//              non-empty set of the other vCPUs of one random cluster and waits until every
//              member has handled it: the xAPIC flat model up to 8 vCPUs, the xAPIC cluster
//              model (15 clusters of 4) up to 60, x2APIC clusters of 16 up to 4096.
//   broadcast  vCPU 0 sends fixed IPIs with the all-excluding-self shorthand and waits
//              until every other vCPU has handled it.
//
// In multicast and broadcast the targets busy-idle; their handler counts the reception in
// their own line and in a shared acknowledgement count, then EOIs. The check is that every
// target received each IPI sent to it exactly once. Measured as do_test() passes:
// cycles_per_iteration is per IPI sent.
#include <algorithm>
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
constexpr std::uint8_t kGroupVector = 0x50;
constexpr std::uint64_t kApTrampoline = kApTrampolineVector << 12;  // CS.base after the SIPI
constexpr std::uint64_t kDefaultSipiDelay = 20000;                  // cycles ("200 us", scaled)
constexpr unsigned kInitToSipiFactor = 10;                           // "10 ms" vs "200 us"
constexpr unsigned kXapicFlatMaxVcpus = 8;     // flat model: one LDR bit per APIC
constexpr unsigned kXapicClusterSize = 4;      // xAPIC cluster model: 4 member bits ...
constexpr unsigned kXapicClusterMaxVcpus = 60;  // ... in 15 clusters (cluster 15 is broadcast)
constexpr unsigned kXapicClusterShift = 4;     // cluster in bits 7:4 of the 8-bit logical ID
constexpr unsigned kX2apicClusterSize = 16;    // x2APIC: ID[31:4] cluster, ID[3:0] member bit
constexpr unsigned kX2apicClusterShift = 16;   // cluster in bits 31:16 of the destination

// ---- ap_boot ---------------------------------------------------------------------------
class ApBoot : public Workload {
public:
    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        m_n = cfg.vcpus;
        check_vcpus("ap_boot", cfg);
        for (const auto& [key, value] : cfg.params) {
            if (key == "sipi_delay")
                m_sipi_delay = parse_param("ap_boot", key, value);
            else
                throw model::ConfigError("ap_boot: unknown parameter workload." + key + " (known: sipi_delay)");
        }
        m_x2apic = cfg.x2apic;
        m_online = vm.alloc_guest(kLine, kLine);
        m_ap_lines = vm.alloc_guest(kLine * m_n, kLine);
        vm.create_vcpu(0, 0).set_entry_point(kBspEntry);
        for (unsigned i = 1; i < m_n; ++i) vm.create_vcpu(i, i % cfg.pcpus, /*start_runnable=*/false);
        vm.add_code(kBspEntry, [this](cpu::GuestCpu& g) { bsp_main(g); });
        vm.add_code(kApTrampoline, [this](cpu::GuestCpu& g) { ap_main(g); });
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        auto& mem = kvm.platform().memory();
        unsigned once = 0;
        std::string off;
        for (unsigned i = 1; i < m_n; ++i) {
            const std::uint64_t n = mem.peek64(vm.gpa_to_hpa(ap_line(i)));
            if (n == 1)
                ++once;
            else
                off += " AP " + std::to_string(i) + " came online " + std::to_string(n) + " times;";
        }
        const std::uint64_t online = mem.peek64(vm.gpa_to_hpa(m_online));
        r.ok = once == m_n - 1 && online == m_n - 1 && m_bad_id == 0;
        r.check = std::to_string(once) + " of " + std::to_string(m_n - 1) + " APs came online exactly once" + off;
        if (m_bad_id) r.check += " " + std::to_string(m_bad_id) + " APs read an unexpected APIC ID;";
        r.iterations = r.total_iterations = m_n - 1;
        r.cycles_per_iteration = static_cast<double>(m_ticks) / static_cast<double>(m_n - 1);
        return r;
    }

private:
    std::uint64_t ap_line(unsigned id) const { return m_ap_lines + kLine * id; }

    void bsp_main(cpu::GuestCpu& g) {
        kut::Lib lib(g, m_x2apic);
        const std::uint64_t t1 = g.rdtsc();
        // INIT (assert) to each AP, wait; then SIPI, short wait, SIPI again.
        for (unsigned i = 1; i < m_n; ++i)
            lib.apic_icr_write(kut::kApicIntAssert | kut::kApicDestPhysical | kut::kApicDmInit, i);
        g.compute(m_sipi_delay * kInitToSipiFactor);
        for (int round = 0; round < 2; ++round) {
            for (unsigned i = 1; i < m_n; ++i)
                lib.apic_icr_write(kut::kApicDestPhysical | kut::kApicDmStartup | kApTrampolineVector, i);
            g.compute(m_sipi_delay);
        }
        g.spin_until([&] { return g.load64(m_online) >= m_n - 1; }, m_online);
        m_ticks = g.rdtsc() - t1;
    }

    void ap_main(cpu::GuestCpu& g) {
        kut::Lib lib(g, m_x2apic);
        const std::uint32_t id = lib.apic_id();
        if (id == 0 || id >= m_n) {
            ++m_bad_id;
        } else {
            g.lock_add(ap_line(id), 1);
        }
        g.lock_add(m_online, 1);
        g.cli();
        for (;;) g.hlt();  // parked: HLT with interrupts disabled
    }

    unsigned m_n = 4;
    bool m_x2apic = true;
    std::uint64_t m_sipi_delay = kDefaultSipiDelay;
    std::uint64_t m_online = 0, m_ap_lines = 0;
    std::uint64_t m_ticks = 0;
    unsigned m_bad_id = 0;
};

// ---- multicast, broadcast ------------------------------------------------------------------
class GroupIpi : public Workload {
public:
    explicit GroupIpi(bool broadcast) : m_broadcast(broadcast) {}

    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        m_n = cfg.vcpus;
        m_x2apic = cfg.x2apic;
        check_vcpus(name(), cfg);
        if (!m_broadcast && !m_x2apic && m_n > kXapicClusterMaxVcpus)
            throw model::ConfigError(std::string(name()) + ": --vcpus " + std::to_string(m_n) +
                                     " in xAPIC mode: logical destinations address at most " +
                                     std::to_string(kXapicClusterMaxVcpus) +
                                     " vCPUs (flat model: 8; cluster model: 15 clusters of 4), use --apic x2apic");
        // The logical model: xAPIC flat (one bit per vCPU, up to 8), xAPIC cluster (4 per
        // cluster), x2APIC cluster (16 per cluster, the IDs' own).
        m_cluster_size = m_x2apic ? kX2apicClusterSize : m_n <= kXapicFlatMaxVcpus ? m_n : kXapicClusterSize;
        if (!cfg.params.empty())
            throw model::ConfigError(std::string(name()) + ": unknown parameter workload." + cfg.params.begin()->first +
                                     " (this workload has none besides workload.goal)");
        m_goal = cfg.goal;
        m_rng = model::Rng(cfg.seed);
        m_acks = vm.alloc_guest(kLine, kLine);
        m_active = vm.alloc_guest(kLine, kLine);
        m_counts = vm.alloc_guest(kLine * m_n, kLine);
        m_expected.assign(m_n, 0);
        for (unsigned i = 0; i < m_n; ++i) {
            vmm::Vcpu& v = vm.create_vcpu(i, i % cfg.pcpus);
            v.set_entry_point(kBspEntry + 0x1000 * i);
            vm.add_code(kBspEntry + 0x1000 * i, [this, i](cpu::GuestCpu& g) {
                if (i == 0)
                    bsp_main(g);
                else
                    target_main(g, i);
            });
        }
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        auto& mem = kvm.platform().memory();
        unsigned exact = 0;
        std::string off;
        for (unsigned i = 1; i < m_n; ++i) {
            const std::uint64_t got = mem.peek64(vm.gpa_to_hpa(count_line(i)));
            if (got == m_expected[i])
                ++exact;
            else
                off += " vCPU " + std::to_string(i) + " received " + std::to_string(got) + " of " +
                       std::to_string(m_expected[i]) + ";";
        }
        r.ok = exact == m_n - 1 && m_pass.total > 0;
        r.check = std::to_string(exact) + " of " + std::to_string(m_n - 1) + " targets received each " + name() +
                  " IPI sent to them exactly once (" + std::to_string(m_pass.total) + " IPIs sent)" + off;
        r.cycles_per_iteration = m_pass.per_iteration();
        r.iterations = m_pass.iterations;
        r.total_iterations = m_pass.total;
        return r;
    }

private:
    const char* name() const { return m_broadcast ? "broadcast" : "multicast"; }
    std::uint64_t count_line(unsigned id) const { return m_counts + kLine * id; }
    // A vCPU's bit in its cluster's member mask (flat: its own bit of 8), and the cluster
    // part of a logical destination (xAPIC cluster model: bits 7:4 of the 8-bit
    // destination; x2APIC: bits 31:16). The destination is the cluster with the OR of
    // the members' bits.
    std::uint32_t logical_bit(unsigned id) const { return 1u << (id % m_cluster_size); }
    std::uint32_t cluster_field(unsigned cluster) const {
        if (m_x2apic) return cluster << kX2apicClusterShift;
        return m_n <= kXapicFlatMaxVcpus ? 0 : cluster << kXapicClusterShift;
    }

    void bsp_main(cpu::GuestCpu& g) {
        kut::Lib lib(g, m_x2apic);
        g.sti();
        // Wait until every target is up with interrupts enabled (smp_init's handshake).
        g.spin_until([&] { return g.load64(m_active) == m_n - 1; }, m_active);
        std::uint64_t acks = 0;
        m_pass = kut::do_test(g, m_goal, {}, [&] {
            std::uint32_t icr = kut::kApicIntAssert | kut::kApicDmFixed | kGroupVector;
            std::uint32_t dest = 0;
            unsigned members = 0;
            if (m_broadcast) {
                icr |= kut::kApicDestAllButSelf;
                for (unsigned i = 1; i < m_n; ++i) ++m_expected[i];
                members = m_n - 1;
            } else {
                icr |= kut::kApicDestLogical;
                // A random cluster, then a random non-empty subset of its vCPUs other than
                // vCPU 0 (one cluster: a random non-empty subset of vCPUs 1..N-1).
                const unsigned clusters = (m_n + m_cluster_size - 1) / m_cluster_size;
                const unsigned c = clusters == 1 ? 0 : static_cast<unsigned>(m_rng.below(clusters));
                const unsigned first = std::max(c * m_cluster_size, 1u);
                const unsigned last = std::min((c + 1) * m_cluster_size, m_n);  // exclusive
                const std::uint64_t set = 1 + m_rng.below((std::uint64_t{1} << (last - first)) - 1);
                for (unsigned i = first; i < last; ++i)
                    if ((set >> (i - first)) & 1u) {
                        dest |= logical_bit(i);
                        ++m_expected[i];
                        ++members;
                    }
                dest |= cluster_field(c);
            }
            lib.apic_icr_write(icr, dest);
            acks += members;
            g.spin_until([&] { return g.load64(m_acks) >= acks; }, m_acks, /*pause=*/false);
        });
    }

    void target_main(cpu::GuestCpu& g, unsigned self) {
        kut::Lib lib(g, m_x2apic);
        if (!m_broadcast && !m_x2apic) {
            // xAPIC logical mode: flat (DFR model 1111b, one bit per vCPU) or cluster
            // (DFR model 0000b, cluster in LDR[31:28], member bit in LDR[27:24]).
            const bool flat = m_n <= kXapicFlatMaxVcpus;
            lib.apic_write(kut::kApicDfr, flat ? kut::kApicDfrFlat : kut::kApicDfrCluster);
            lib.apic_write(kut::kApicLdr, (cluster_field(self / m_cluster_size) | logical_bit(self))
                                              << kut::kXapicLdrShift);
        }
        g.set_handler(kGroupVector, [this, self](cpu::GuestCpu& c, std::uint8_t) {
            c.lock_add(count_line(self), 1);
            c.lock_add(m_acks, 1);
            kut::Lib(c, m_x2apic).eoi();
        });
        g.sti();
        g.lock_add(m_active, 1);
        g.idle_loop();
    }

    bool m_broadcast;
    unsigned m_n = 4;
    unsigned m_cluster_size = 8;
    bool m_x2apic = true;
    std::uint64_t m_goal = 0;
    model::Rng m_rng;
    std::uint64_t m_acks = 0, m_active = 0, m_counts = 0;
    std::vector<std::uint64_t> m_expected;  // IPIs sent to each vCPU
    kut::PassResult m_pass;
};

}  // namespace

std::unique_ptr<Workload> make_ap_boot() { return std::make_unique<ApBoot>(); }
std::unique_ptr<Workload> make_multicast() { return std::make_unique<GroupIpi>(false); }
std::unique_ptr<Workload> make_broadcast() { return std::make_unique<GroupIpi>(true); }

}  // namespace vtx::workloads
