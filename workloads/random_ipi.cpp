// `random_ipi` and `overcommit`: seeded random unicast cross-CPU calls among N vCPUs, at any
// size the APIC mode allows, sent the way a Linux guest sends them (workloads/linux_smp.hpp:
// smp_call_function_single over the call-single queue, Linux 4.14).
//
// Every vCPU runs a plan drawn from the seed: `ipis` steps, each "call a function on a
// random other vCPU `count` times (1..burst), then compute a random while (0..20000
// cycles)". With workload.burst=1 every call waits for the function to have run
// (smp_call_function_single(cpu, f, info, 1)); with a larger burst the calls do not wait
// (wait=0: the per-CPU csd is reused once the target has dequeued it). `random_ipi` vCPUs
// other than 0 sleep at random after a step (halt_percent): the task blocks until a task
// on a lower-numbered vCPU (drawn from the seed) wakes it, so the vCPU queues itself on
// that waker's wake list and HLTs; the waker, at its next step end, sends it a reschedule
// IPI (Linux's ttwu_queue / smp_send_reschedule). After its plan a vCPU idles (HLT) until
// every call meant for it has run, waking its sleepers, then counts itself done; vCPU 0
// returns once everyone is done. The result: the VM's time to completion (vCPU 0's clock,
// from its start to everyone done) per step of a plan. `overcommit` is the same traffic with
// waiting calls and no halts on fewer physical CPUs than vCPUs (--pcpus): the host
// scheduler preempts vCPUs (SN := 1) and calls reach preempted targets.
//
// The check, in O(vCPUs) guest memory so that 4096 vCPUs fit: the called function records,
// on the target, how many calls it ran and a digest (sum of a mix of the call's id: sender
// and sequence number); each must equal what the plan sent to that target, so a call lost
// or run twice shows. Linux sends a call IPI only when the target's queue was empty and
// drains the whole queue per interrupt, so no call IPI can coalesce: each target's handler
// count (irq_call_count, kept by the guest) must equal the call IPIs sent to it. Reschedule
// IPIs may coalesce (received <= sent), and KVM can only have coalesced those.
//
// `random_ipi --set workload.id_change_percent=P` (xAPIC, at most 127 vCPUs): after a step, a
// vCPU changes its own xAPIC ID with probability P %, between its number and its number +
// 128 (linux_smp's dynamic APIC IDs: senders look the ID up under a guest rwlock), a stress
// of the VMM's APIC map and of its APICv inhibit; the checks above are unchanged (every
// call still reaches its CPU exactly once).
#include <memory>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "model/rng.hpp"
#include "workloads/linux_smp.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint64_t kLine = 64;
constexpr std::uint64_t kMaxComputeCycles = 20000;
constexpr unsigned kIdToggle = 128;  // id_change_percent: a vCPU's xAPIC ID is its number, or its number + 128

// splitmix64's finalizer: a call id's contribution to the target's digest.
std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

class RandomCalls : public Workload {
public:
    explicit RandomCalls(bool overcommit) : m_overcommit(overcommit), m_name(overcommit ? "overcommit" : "random_ipi") {
        if (overcommit) m_ipis = 20, m_halt_percent = 0;
    }

    void setup(vmm::Kvm&, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        check_vcpus(m_name, cfg);
        m_n = cfg.vcpus;
        if (m_overcommit) {
            check_params(m_name, cfg, {"ipis"});
        } else {
            check_params(m_name, cfg, {"ipis", "burst", "halt_percent", "id_change_percent"});
        }
        for (const auto& [key, value] : cfg.params) {
            if (key == "ipis") m_ipis = parse_param(m_name, key, value, 1, 1u << 20);
            if (key == "burst") m_burst = parse_param(m_name, key, value, 1, 16);
            if (key == "halt_percent") m_halt_percent = parse_param(m_name, key, value, 0, 100);
            if (key == "id_change_percent") m_id_change_percent = parse_param(m_name, key, value, 0, 100);
        }
        if (m_id_change_percent > 0) {
            if (cfg.x2apic)
                throw model::ConfigError(m_name + ": workload.id_change_percent needs xAPIC mode (--apic xapic): the x2APIC "
                                         "ID register is read-only (SDM 11.12.5.1)");
            if (m_n > kIdToggle - 1)
                throw model::ConfigError(m_name + ": workload.id_change_percent runs on at most " +
                                         std::to_string(kIdToggle - 1) + " vCPUs (each toggles between its number and "
                                         "its number + 128; 255 is the broadcast ID), not --vcpus " + std::to_string(m_n));
        }
        m_kernel = std::make_unique<linux_smp::Kernel>(vm, m_n, cfg.x2apic);
        if (m_id_change_percent > 0) m_kernel->enable_dynamic_apic_ids();
        m_record = m_kernel->add_function([this](cpu::GuestCpu& g, unsigned self, std::uint64_t id) {
            g.store64(handled(self), g.load64(handled(self)) + 1);
            g.store64(digest(self), g.load64(digest(self)) + mix(id));
        });
        // Each vCPU's plan is a stream of its own, drawn here once for the expected counts and
        // again by the vCPU as it runs (not stored: O(1) memory per vCPU at any length).
        model::Rng rng(cfg.seed);
        m_plan_seed.resize(m_n);
        for (auto& seed : m_plan_seed) seed = rng.next_u64();
        m_expected_count.assign(m_n, 0);
        m_expected_digest.assign(m_n, 0);
        for (unsigned s = 0; s < m_n; ++s) {
            std::uint64_t seq = 0;
            model::SplitMix64 plan(m_plan_seed[s]);
            for (std::uint64_t k = 0; k < m_ipis; ++k) {
                const Step st = draw_step(plan, s);
                for (unsigned c = 0; c < st.count; ++c) {
                    ++m_expected_count[st.target];
                    m_expected_digest[st.target] += mix(call_id(s, seq++));
                }
            }
        }
        m_stats = vm.alloc_guest(kLine * m_n, kLine);
        m_done = vm.alloc_guest(kLine, kLine);
        m_wake = vm.alloc_guest(kLine * m_n, kLine);
        m_nodes = vm.alloc_guest(kLine * m_n, kLine);
        create_vcpus(vm, cfg, [this](cpu::GuestCpu& g, unsigned i) { vcpu_main(g, i); });
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        auto& mem = kvm.platform().memory();
        auto peek = [&](std::uint64_t gpa) { return mem.peek64(vm.gpa_to_hpa(gpa)); };
        std::uint64_t calls = 0, ran = 0, ipis = 0, handled_ipis = 0, resched = 0, resched_handled = 0, bad = 0;
        std::string off;
        for (unsigned t = 0; t < m_n; ++t) {
            const std::uint64_t got = peek(handled(t));
            const std::uint64_t sum = peek(digest(t));
            const std::uint64_t sent_ipis = m_kernel->call_ipis_sent_to(t);
            const std::uint64_t got_ipis = m_kernel->irq_call_count(t);
            resched += m_kernel->resched_ipis_sent_to(t);
            resched_handled += m_kernel->irq_resched_count(t);
            calls += m_expected_count[t];
            ran += got;
            ipis += sent_ipis;
            handled_ipis += got_ipis;
            if (got != m_expected_count[t] || sum != m_expected_digest[t] || got_ipis != sent_ipis) {
                if (++bad <= 8)
                    off += " vCPU " + std::to_string(t) + ": calls " + std::to_string(got) + "/" +
                           std::to_string(m_expected_count[t]) + (sum != m_expected_digest[t] ? " (digest differs)" : "") +
                           ", IPIs handled " + std::to_string(got_ipis) + "/" + std::to_string(sent_ipis) + ";";
            }
        }
        const std::uint64_t coalesced = kvm.coalesced_interrupts();
        std::uint64_t preemptions = 0;
        for (unsigned c = 0; c < kvm.platform().cpu_count(); ++c) preemptions += kvm.scheduler(c).preemptions();
        // Reschedule IPIs may coalesce (a sleeper woken by a call still gets its waker's
        // IPI later, perhaps while another is pending); call-function IPIs never do.
        // With APICv inactive KVM sets every IRR bit itself and sees each coalescing.
        const bool apicv = kvm.params().enable_apicv && !vm.apicv_inhibited();
        const bool resched_ok = resched_handled <= resched && (apicv ? coalesced <= resched - resched_handled
                                                                      : coalesced == resched - resched_handled);
        r.ok = bad == 0 && resched_ok && calls > 0;
        r.check = std::to_string(ran) + " of " + std::to_string(calls) + " calls ran exactly once (count and digest per "
                  "target), " + std::to_string(handled_ipis) + " of " + std::to_string(ipis) + " call IPIs handled; " +
                  std::to_string(resched_handled) + " of " + std::to_string(resched) + " reschedule IPIs handled (" +
                  std::to_string(coalesced) + " coalesced by KVM); " + std::to_string(m_halts) + " halts, " +
                  std::to_string(preemptions) + " preemptions" +
                  (m_id_change_percent > 0 ? ", " + std::to_string(m_kernel->apic_id_changes()) + " xAPIC ID changes" : "") +
                  (bad ? ";" + off : "");
        r.iterations = r.total_iterations = calls;
        r.cycles_per_iteration = m_cycles;
        r.values["calls"] = static_cast<double>(calls);
        r.values["ipis"] = static_cast<double>(ipis);
        r.values["reschedule_ipis"] = static_cast<double>(resched);
        r.values["coalesced"] = static_cast<double>(coalesced);
        r.values["halts"] = static_cast<double>(m_halts);
        r.values["preemptions"] = static_cast<double>(preemptions);
        if (m_id_change_percent > 0) r.values["apic_id_changes"] = static_cast<double>(m_kernel->apic_id_changes());
        return r;
    }

private:
    struct Step {
        unsigned target = 0;
        std::uint32_t compute = 0;
        std::uint8_t count = 1;
        bool halt = false;
        unsigned waker = 0;  // who wakes this vCPU after the step (halt), a lower-numbered vCPU
        bool change_id = false;  // id_change_percent: toggle this vCPU's xAPIC ID after the step
    };
    static std::uint64_t call_id(unsigned sender, std::uint64_t seq) { return (std::uint64_t{sender} << 32) | seq; }
    Step draw_step(model::SplitMix64& plan, unsigned s) const {
        Step st;
        st.target = static_cast<unsigned>(plan.below(m_n - 1));
        if (st.target >= s) ++st.target;
        st.count = static_cast<std::uint8_t>(1 + plan.below(m_burst));
        st.compute = static_cast<std::uint32_t>(plan.below(kMaxComputeCycles));
        st.halt = s != 0 && plan.below(100) < m_halt_percent;
        if (st.halt) st.waker = static_cast<unsigned>(plan.below(s));
        // Drawn only when enabled: other plans stay as they were.
        if (m_id_change_percent > 0) st.change_id = plan.below(100) < m_id_change_percent;
        return st;
    }
    // Per target, one line: calls run, digest.
    std::uint64_t handled(unsigned t) const { return m_stats + kLine * t; }
    std::uint64_t digest(unsigned t) const { return m_stats + kLine * t + 8; }

    // ---- the idle side: a vCPU "halts" when its task blocks until another CPU's task wakes
    // it (a wait queue, Linux's ttwu_queue): it queues its wake node on the waker's wake
    // list and HLTs; the waker drains its list at its next step end (or at once when idle)
    // and sends each sleeper a reschedule IPI. Wakers have lower numbers than their
    // sleepers and vCPU 0 never sleeps, so every sleeper is woken.
    // Per vCPU, one line each: wake list head (+0) and idle flag (+8); wake node: next
    // (+0) and queued flag (+8).
    std::uint64_t wake_head(unsigned w) const { return m_wake + kLine * w; }
    std::uint64_t idle_flag(unsigned w) const { return m_wake + kLine * w + 8; }
    std::uint64_t node(unsigned x) const { return m_nodes + kLine * x; }
    unsigned node_owner(std::uint64_t n) const { return static_cast<unsigned>((n - m_nodes) / kLine); }

    void sleep(cpu::GuestCpu& g, unsigned self, unsigned waker) {
        g.cli();
        if (g.load64(node(self) + 8) == 0) {
            g.store64(node(self) + 8, 1);
            std::uint64_t first = g.load64(wake_head(waker));
            for (;;) {  // llist_add
                g.store64(node(self), first);
                const std::uint64_t seen = g.lock_cmpxchg(wake_head(waker), first, node(self));
                if (seen == first) break;
                first = seen;
            }
            if (g.load64(idle_flag(waker))) m_kernel->send_reschedule(g, waker);
        }
        ++m_halts;
        g.sti_hlt();
    }

    void wake_sleepers(cpu::GuestCpu& g, unsigned self) {
        if (g.load64(wake_head(self)) == 0) return;
        for (std::uint64_t n = g.xchg(wake_head(self), 0); n;) {
            const std::uint64_t next = g.load64(n);
            g.store64(n + 8, 0);
            m_kernel->send_reschedule(g, node_owner(n));
            n = next;
        }
    }

    // After its plan: wake sleepers, count itself done once every call meant for it has
    // run, and idle (HLT, idle flag set) until there is something to do; vCPU 0 returns
    // once all are done (ending the simulation), the others keep running calls.
    void finish(cpu::GuestCpu& g, unsigned self) {
        bool counted = false;
        for (;;) {
            wake_sleepers(g, self);
            if (!counted && g.load64(handled(self)) == m_expected_count[self]) {
                counted = true;
                if (g.lock_add(m_done, 1) + 1 == m_n && self != 0 && g.load64(idle_flag(0)))
                    m_kernel->send_reschedule(g, 0);
            }
            if (counted && g.load64(m_done) == m_n) {
                if (self == 0) return;
                g.idle_loop();
            }
            g.cli();
            g.store64(idle_flag(self), 1);
            if (g.load64(wake_head(self)) == 0 && g.load64(m_done) != m_n &&
                (counted || g.load64(handled(self)) < m_expected_count[self]))
                g.sti_hlt();
            else
                g.sti();
            g.store64(idle_flag(self), 0);
        }
    }

    void vcpu_main(cpu::GuestCpu& g, unsigned self) {
        m_kernel->install(g, self);
        g.sti();
        const std::uint64_t t1 = g.rdtsc();
        std::uint64_t seq = 0;
        model::SplitMix64 plan(m_plan_seed[self]);
        bool id_toggled = false;
        for (std::uint64_t k = 0; k < m_ipis; ++k) {
            const Step st = draw_step(plan, self);
            for (unsigned c = 0; c < st.count; ++c)
                m_kernel->call_single(g, self, st.target, m_record, call_id(self, seq++), m_burst == 1);
            g.compute(st.compute);
            if (st.change_id) {
                id_toggled = !id_toggled;
                m_kernel->change_apic_id(g, self, id_toggled ? self + kIdToggle : self);
            }
            wake_sleepers(g, self);
            if (st.halt) sleep(g, self, st.waker);
        }
        finish(g, self);  // vCPU 0 returns once every vCPU is done
        // The VM's time to completion, per step of a vCPU's plan.
        m_cycles = static_cast<double>(g.rdtsc() - t1) / static_cast<double>(m_ipis);
    }

    bool m_overcommit;
    std::string m_name;
    unsigned m_n = 4;
    std::uint64_t m_ipis = 30, m_burst = 1, m_halt_percent = 25, m_id_change_percent = 0;
    std::unique_ptr<linux_smp::Kernel> m_kernel;
    std::uint64_t m_record = 0;
    std::vector<std::uint64_t> m_plan_seed;
    std::vector<std::uint64_t> m_expected_count, m_expected_digest;
    std::uint64_t m_stats = 0, m_done = 0, m_wake = 0, m_nodes = 0;
    std::uint64_t m_halts = 0;
    double m_cycles = 0;
};

}  // namespace

std::unique_ptr<Workload> make_random_ipi() { return std::make_unique<RandomCalls>(false); }
std::unique_ptr<Workload> make_overcommit() { return std::make_unique<RandomCalls>(true); }

}  // namespace vtx::workloads
