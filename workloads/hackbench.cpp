// `hackbench`: the scheduler benchmark of rt-tests (hackbench.c, after Rusty Russell's
// original; the same as `perf bench sched messaging`) in process/pipe mode, `hackbench -p
// -g GROUPS -f FDS -l LOOPS -s DATASIZE`: each group has FDS sender and FDS receiver tasks;
// each receiver reads from its own pipe; every sender writes LOOPS messages of DATASIZE
// bytes to each receiver of its group; the result is the time until every task is done.
// Its IPIs are the guest kernel's wakeups: a writer that finds the reader asleep wakes it
// (try_to_wake_up), and when the reader's vCPU is idle in HLT that is a reschedule IPI; a
// reader that frees room in a full pipe wakes the writers waiting for it.
//
// The guest kernel model (named choices, docs/workloads.md):
// - Tasks are pinned: task i runs on vCPU i mod N (senders and receivers of a group
//   interleaved as hackbench creates them); no load balancing.
// - Each vCPU runs a scheduler loop: it runs a runnable task until the task blocks or,
//   with another task runnable, its time slice (workload.slice_us, default 3000: CFS's
//   minimum granularity on 8 CPUs) ends; with none runnable it idles in HLT (idle=halt)
//   with its idle flag set. A switch between tasks charges guest.context_switch.
// - Wakeups follow Linux 4.14's try_to_wake_up for CPUs that share the last-level cache:
//   the waker takes the target runqueue's lock, marks the task runnable, and sends a
//   reschedule IPI (linux_smp: RESCHEDULE_VECTOR) when the target vCPU is idle; a running
//   target is not preempted.
// - A pipe is a 64 KiB ring (PIPE_DEF_BUFFERS x 4 KiB) under a lock (the pipe mutex as a
//   spin lock); a message takes a slot of DATASIZE rounded up to 8 bytes (so that messages
//   never share a word); its copy touches the slot's cache lines (the writer stores them,
//   the reader loads them: the lines move between the two vCPUs); each read or write also
//   charges guest.syscall and guest.pipe_op. The first word of a message is its sender's
//   number: the reader sums them, so a lost or repeated message shows.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "workloads/linux_smp.hpp"
#include "workloads/workload.hpp"

namespace vtx::workloads {
namespace {

constexpr std::uint64_t kLine = 64;
constexpr std::uint64_t kPipeBytes = 16 * 4096;  // PIPE_DEF_BUFFERS pages
constexpr std::uint64_t kDefaultGroups = 10, kDefaultFds = 20, kDefaultLoops = 100, kDefaultDatasize = 100;
constexpr std::uint64_t kDefaultSliceUs = 3000;

enum class Step { Progress, Blocked, Done };

class Hackbench : public Workload {
public:
    void setup(vmm::Kvm& kvm, vmm::Vm& vm, const WorkloadConfig& cfg) override {
        check_vcpus("hackbench", cfg, 1);
        check_params("hackbench", cfg, {"groups", "fds", "loops", "datasize", "slice_us"});
        auto param = [&](const char* key, std::uint64_t def, std::uint64_t min, std::uint64_t max) {
            auto it = cfg.params.find(key);
            return it == cfg.params.end() ? def : parse_param("hackbench", key, it->second, min, max);
        };
        m_groups = static_cast<unsigned>(param("groups", kDefaultGroups, 1, 1000));
        m_fds = static_cast<unsigned>(param("fds", kDefaultFds, 1, 1000));
        m_loops = param("loops", kDefaultLoops, 1, 1u << 20);
        m_datasize = param("datasize", kDefaultDatasize, 1, kPipeBytes);
        m_slot = (m_datasize + 7) & ~std::uint64_t{7};
        m_ring_bytes = kPipeBytes / m_slot * m_slot;
        const std::uint64_t slice_us = param("slice_us", kDefaultSliceUs, 1, 1000000);
        m_slice_ticks = static_cast<std::uint64_t>(static_cast<double>(slice_us) * 1000.0 *
                                                   kvm.platform().profile().tsc_ghz);
        m_n = cfg.vcpus;
        m_kernel = std::make_unique<linux_smp::Kernel>(vm, m_n, cfg.x2apic);
        const unsigned tasks = m_groups * 2 * m_fds;
        m_tasks.resize(tasks);
        for (unsigned t = 0; t < tasks; ++t) {
            Task& k = m_tasks[t];
            const unsigned i = t % (2 * m_fds);
            k.sender = i < m_fds;
            k.group = t / (2 * m_fds);
            k.index = k.sender ? i : i - m_fds;
            k.cpu = t % m_n;
            k.remaining = m_loops * m_fds;  // a sender writes to fds receivers; a receiver reads from fds senders
        }
        m_waiting_writers.resize(m_groups * m_fds);
        m_rq = vm.alloc_guest(kLine * m_n, kLine);
        m_task_state = vm.alloc_guest(kLine * tasks, kLine);
        m_pipes = vm.alloc_guest(kLine * m_groups * m_fds, kLine);
        m_rings = vm.alloc_guest(kPipeBytes * m_groups * m_fds, kLine);
        m_sync = vm.alloc_guest(kLine, kLine);
        m_digest.assign(m_groups * m_fds, 0);
        m_on_cpu.assign(m_n, {});
        for (unsigned t = 0; t < tasks; ++t) m_on_cpu[m_tasks[t].cpu].push_back(t);
        auto& mem = kvm.platform().memory();
        for (unsigned c = 0; c < m_n; ++c) mem.poke64(vm.gpa_to_hpa(nr_running(c)), m_on_cpu[c].size());
        create_vcpus(vm, cfg, [this](cpu::GuestCpu& g, unsigned i) { vcpu_main(g, i); });
    }

    WorkloadResult result(vmm::Kvm& kvm, vmm::Vm& vm) override {
        WorkloadResult r;
        auto& mem = kvm.platform().memory();
        std::uint64_t sender_sum = 0;
        for (unsigned s = 0; s < m_fds; ++s) sender_sum += s;
        std::uint64_t bad = 0, unfinished = 0, resched = 0, resched_handled = 0;
        for (unsigned p = 0; p < m_groups * m_fds; ++p) {
            const bool empty = mem.peek64(vm.gpa_to_hpa(pipe_bytes(p))) == 0;
            if (m_digest[p] != m_loops * sender_sum || !empty) ++bad;
        }
        for (const Task& k : m_tasks) unfinished += k.remaining != 0;
        const std::uint64_t messages = std::uint64_t{m_groups} * m_fds * m_fds * m_loops;
        for (unsigned c = 0; c < m_n; ++c) {
            resched += m_kernel->resched_ipis_sent_to(c);
            resched_handled += m_kernel->irq_resched_count(c);
        }
        const std::uint64_t coalesced = kvm.coalesced_interrupts();
        const bool apicv = kvm.params().enable_apicv && !vm.apicv_inhibited();
        const bool ipis_ok = resched_handled <= resched && (apicv ? coalesced <= resched - resched_handled
                                                                  : coalesced == resched - resched_handled);
        r.ok = bad == 0 && unfinished == 0 && ipis_ok && m_finished;
        r.check = std::to_string(m_groups) + " groups x " + std::to_string(m_fds) + " senders x " +
                  std::to_string(m_fds) + " receivers, " + std::to_string(m_loops) + " loops: " +
                  std::to_string(messages) + " messages of " + std::to_string(m_datasize) + " bytes, " +
                  (bad ? std::to_string(bad) + " pipes with a wrong message digest or not drained"
                       : "every pipe's messages read once (digest) and drained") +
                  "; " + std::to_string(resched_handled) + " of " + std::to_string(resched) +
                  " reschedule IPIs handled; " + std::to_string(m_switches) + " context switches, " +
                  std::to_string(m_idles) + " idle entries";
        r.iterations = r.total_iterations = 1;
        r.cycles_per_iteration = static_cast<double>(m_elapsed);
        r.values["seconds"] = static_cast<double>(m_elapsed) / (kvm.platform().profile().tsc_ghz * 1e9);
        r.values["messages"] = static_cast<double>(messages);
        r.values["reschedule_ipis"] = static_cast<double>(resched);
        r.values["context_switches"] = static_cast<double>(m_switches);
        r.values["idle_entries"] = static_cast<double>(m_idles);
        return r;
    }

private:
    struct Task {
        bool sender = true;
        unsigned group = 0, index = 0, cpu = 0;
        std::uint64_t remaining = 0;  // messages to write (sender) or read (receiver)
        std::uint64_t written = 0;    // sender: messages written (its receiver: written % fds)
    };
    // Guest memory, a line each: runqueue (lock, nr_running, idle flag); task state
    // (0 runnable, 1 sleeping, 2 exited); pipe (lock, bytes, head, tail, reader sleeping,
    // writers waiting); the ring of each pipe; the start barrier and the done count.
    std::uint64_t rq_lock(unsigned c) const { return m_rq + kLine * c; }
    std::uint64_t nr_running(unsigned c) const { return m_rq + kLine * c + 8; }
    std::uint64_t idle_flag(unsigned c) const { return m_rq + kLine * c + 16; }
    std::uint64_t task_state(unsigned t) const { return m_task_state + kLine * t; }
    unsigned pipe_of(const Task& k, unsigned receiver) const { return k.group * m_fds + receiver; }
    std::uint64_t pipe_lock(unsigned p) const { return m_pipes + kLine * p; }
    std::uint64_t pipe_bytes(unsigned p) const { return m_pipes + kLine * p + 8; }
    std::uint64_t pipe_head(unsigned p) const { return m_pipes + kLine * p + 16; }
    std::uint64_t pipe_tail(unsigned p) const { return m_pipes + kLine * p + 24; }
    std::uint64_t pipe_reader_sleeping(unsigned p) const { return m_pipes + kLine * p + 32; }
    std::uint64_t pipe_writers_waiting(unsigned p) const { return m_pipes + kLine * p + 40; }
    std::uint64_t ring(unsigned p) const { return m_rings + kPipeBytes * p; }
    std::uint64_t online() const { return m_sync; }
    std::uint64_t cpus_done() const { return m_sync + 8; }
    unsigned receiver_task(unsigned p) const { return (p / m_fds) * 2 * m_fds + m_fds + p % m_fds; }

    // The current task goes to sleep (set_current_state and the runqueue's count), called
    // with the lock of what it waits for held, so that its wakeup cannot slip in between.
    void sleep_current(cpu::GuestCpu& g, unsigned self, unsigned t) {
        g.spin_lock(rq_lock(self));
        g.store64(task_state(t), 1);
        g.store64(nr_running(self), g.load64(nr_running(self)) - 1);
        g.spin_unlock(rq_lock(self));
    }

    // try_to_wake_up(p): lock p's runqueue, make it runnable, and kick its vCPU if idle.
    void wake(cpu::GuestCpu& g, unsigned self, unsigned t) {
        const unsigned c = m_tasks[t].cpu;
        g.kernel_path(model::Cost::GuestWakeup);
        g.spin_lock(rq_lock(c));
        const bool sleeping = g.load64(task_state(t)) == 1;
        if (sleeping) {
            g.store64(task_state(t), 0);
            g.store64(nr_running(c), g.load64(nr_running(c)) + 1);
        }
        g.spin_unlock(rq_lock(c));
        if (sleeping && c != self && g.load64(idle_flag(c))) m_kernel->send_reschedule(g, c);
    }

    // Copies a message through each cache line of its slot in the ring (writer: a store per
    // line; reader: a load per line), touching only words of its own slot; the first word
    // is the sender's number.
    std::uint64_t copy_message(cpu::GuestCpu& g, unsigned p, std::uint64_t offset, bool write, std::uint64_t word) {
        const std::uint64_t start = offset % m_ring_bytes;  // a whole number of slots: none wraps
        std::uint64_t first = 0;
        for (std::uint64_t at = start; at < start + m_slot; at = (at & ~(kLine - 1)) + kLine) {
            const std::uint64_t addr = ring(p) + at;
            if (write)
                g.store64(addr, at == start ? word : 0);
            else if (at == start)
                first = g.load64(addr);
            else
                g.load64(addr);
        }
        return first;
    }

    // write(fd, data, datasize) to the pipe of the next receiver (pipe_write): sleeps while
    // the pipe is full.
    Step sender_step(cpu::GuestCpu& g, unsigned self, unsigned t) {
        Task& k = m_tasks[t];
        const unsigned p = pipe_of(k, static_cast<unsigned>(k.written % m_fds));
        g.kernel_path(model::Cost::GuestSyscall);
        g.kernel_path(model::Cost::GuestPipeOp);
        g.spin_lock(pipe_lock(p));
        const std::uint64_t bytes = g.load64(pipe_bytes(p));
        if (bytes + m_slot > m_ring_bytes) {
            g.store64(pipe_writers_waiting(p), g.load64(pipe_writers_waiting(p)) + 1);
            m_waiting_writers[p].push_back(t);
            sleep_current(g, self, t);
            g.spin_unlock(pipe_lock(p));
            return Step::Blocked;  // retried when woken
        }
        const std::uint64_t head = g.load64(pipe_head(p));
        copy_message(g, p, head, true, k.index);
        g.store64(pipe_head(p), head + m_slot);
        g.store64(pipe_bytes(p), bytes + m_slot);
        const bool reader_sleeping = g.load64(pipe_reader_sleeping(p)) != 0;
        if (reader_sleeping) g.store64(pipe_reader_sleeping(p), 0);
        g.spin_unlock(pipe_lock(p));
        if (reader_sleeping) wake(g, self, receiver_task(p));
        ++k.written;
        return --k.remaining == 0 ? Step::Done : Step::Progress;
    }

    // read(fd, data, datasize) from the task's pipe (pipe_read): sleeps while it is empty.
    Step receiver_step(cpu::GuestCpu& g, unsigned self, unsigned t) {
        Task& k = m_tasks[t];
        const unsigned p = pipe_of(k, k.index);
        g.kernel_path(model::Cost::GuestSyscall);
        g.kernel_path(model::Cost::GuestPipeOp);
        g.spin_lock(pipe_lock(p));
        const std::uint64_t bytes = g.load64(pipe_bytes(p));
        if (bytes < m_slot) {
            g.store64(pipe_reader_sleeping(p), 1);
            sleep_current(g, self, t);
            g.spin_unlock(pipe_lock(p));
            return Step::Blocked;
        }
        const std::uint64_t tail = g.load64(pipe_tail(p));
        m_digest[p] += copy_message(g, p, tail, false, 0);
        g.store64(pipe_tail(p), tail + m_slot);
        g.store64(pipe_bytes(p), bytes - m_slot);
        std::vector<unsigned> writers;
        if (g.load64(pipe_writers_waiting(p)) != 0) {
            g.store64(pipe_writers_waiting(p), 0);
            writers.swap(m_waiting_writers[p]);
        }
        g.spin_unlock(pipe_lock(p));
        for (unsigned w : writers) wake(g, self, w);
        return --k.remaining == 0 ? Step::Done : Step::Progress;
    }

    // Idles in HLT until a task is runnable here (or, `until_all_done`, everyone is done).
    void idle(cpu::GuestCpu& g, unsigned self, bool until_all_done) {
        ++m_idles;
        g.cli();
        g.store64(idle_flag(self), 1);
        const bool nothing = until_all_done ? g.load64(cpus_done()) != m_n : g.load64(nr_running(self)) == 0;
        if (nothing)
            g.sti_hlt();
        else
            g.sti();
        g.store64(idle_flag(self), 0);
    }

    void vcpu_main(cpu::GuestCpu& g, unsigned self) {
        m_kernel->install(g, self);
        g.sti();
        g.lock_add(online(), 1);
        g.spin_until([&] { return g.load64(online()) == m_n; }, online());
        const std::uint64_t t1 = g.rdtsc();
        const std::vector<unsigned>& mine = m_on_cpu[self];
        std::size_t live = mine.size(), next = 0;
        std::vector<bool> done(mine.size(), false);
        int current = -1;  // the task this vCPU ran last (index into mine)
        while (live > 0) {
            // pick_next_task: the next runnable task after the last one, round robin.
            int pick = -1;
            for (std::size_t i = 0; i < mine.size() && pick < 0; ++i) {
                const std::size_t j = (next + i) % mine.size();
                if (!done[j] && g.load64(task_state(mine[j])) == 0) pick = static_cast<int>(j);
            }
            if (pick < 0) {
                current = -1;
                idle(g, self, false);
                continue;
            }
            if (pick != current) {
                g.kernel_path(model::Cost::GuestContextSwitch);
                ++m_switches;
                current = pick;
            }
            const unsigned t = mine[static_cast<std::size_t>(pick)];
            // The scheduler tick's accounting reads the clock without an instruction here.
            const std::uint64_t slice_start = g.cpu().tsc();
            for (;;) {
                const Step s = m_tasks[t].sender ? sender_step(g, self, t) : receiver_step(g, self, t);
                if (s == Step::Done) {
                    done[static_cast<std::size_t>(pick)] = true;
                    --live;
                    g.spin_lock(rq_lock(self));
                    g.store64(task_state(t), 2);  // exited
                    g.store64(nr_running(self), g.load64(nr_running(self)) - 1);
                    g.spin_unlock(rq_lock(self));
                    break;
                }
                if (s == Step::Blocked) break;
                // The slice is over and another task is waiting: preempt.
                if (g.cpu().tsc() - slice_start >= m_slice_ticks && g.load64(nr_running(self)) > 1) break;
            }
            next = static_cast<std::size_t>(pick) + 1;
        }
        // All tasks here have exited: count this vCPU; the last one wakes vCPU 0.
        if (g.lock_add(cpus_done(), 1) + 1 == m_n && self != 0 && g.load64(idle_flag(0)))
            m_kernel->send_reschedule(g, 0);
        if (self != 0) g.idle_loop();
        while (g.load64(cpus_done()) != m_n) idle(g, self, true);
        m_elapsed = g.rdtsc() - t1;
        m_finished = true;
    }

    unsigned m_n = 1, m_groups = 0, m_fds = 0;
    std::uint64_t m_loops = 0, m_datasize = 0, m_slice_ticks = 0;
    std::uint64_t m_slot = 8, m_ring_bytes = kPipeBytes;  // a message's slot in the ring; the ring's usable bytes
    std::unique_ptr<linux_smp::Kernel> m_kernel;
    std::vector<Task> m_tasks;
    std::vector<std::vector<unsigned>> m_on_cpu;
    std::vector<std::vector<unsigned>> m_waiting_writers;  // per pipe: its wait queue
    std::vector<std::uint64_t> m_digest;                   // per pipe: sum of the senders' numbers read
    std::uint64_t m_rq = 0, m_task_state = 0, m_pipes = 0, m_rings = 0, m_sync = 0;
    std::uint64_t m_switches = 0, m_idles = 0, m_elapsed = 0;
    bool m_finished = false;
};

}  // namespace

std::unique_ptr<Workload> make_hackbench() { return std::make_unique<Hackbench>(); }

}  // namespace vtx::workloads
