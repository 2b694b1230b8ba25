#pragma once
// `vtxsim run --check`: a protocol checker that holds a run's VMM and processors to the
// architecture's promise about fixed IPIs. It sees each IPI as the guest program writes it
// (cpu/interrupt_observer.hpp), resolves its destinations itself from the guests' virtual
// APIC state (apic/destination.hpp: physical, logical, shorthands), and matches every
// delivery through a target's IDT against what was sent to it. Findings:
// - lost: sent, and no delivery of its vector to its target followed (by the end of the
//   run, the send older than the late bound);
// - late: the first delivery of its vector to its target after a send came more than the
//   late bound after it;
// - misrouted: delivered to a vCPU no IPI with that vector ever targeted, while sent to
//   another vCPU of the VM and not delivered there yet.
// Each finding carries the send (sender, ICR, cycle) and the target's last deliveries.
// Coalescing is architectural (a send that finds the vector pending in IRR or PIR adds
// nothing), and an IPI is accepted a bus transit after its ICR write: so a delivery
// satisfies every send of its vector to its target made before it, and a delivery with
// nothing pending may be the second of two sends that straddled the first. The checker
// never reports what a correct VMM can do; it may miss a loss that a later send of the
// same vector to the same target hides (the workloads' exactly-once checks count those).
// Interrupts nobody sent as an IPI (a timer's) are not its business.
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "cpu/interrupt_observer.hpp"
#include "vmm/kvm.hpp"

namespace vtx::sim {

class ProtocolChecker : public cpu::InterruptObserver {
public:
    // `late_cycles`: how long a correct run may take to deliver an IPI (a preempted or
    // blocked target included); 0: two scheduler slices per thread sharing a CPU, plus two,
    // at least 10^6 cycles (made after the VM's vCPUs exist).
    ProtocolChecker(vmm::Kvm& kvm, double late_cycles = 0);

    void ipi_register_written(const cpu::GuestContext& sender, bool x2apic, std::uint32_t offset, std::uint64_t value,
                              double cycle) override;
    void interrupt_delivered(const cpu::GuestContext& target, std::uint8_t vector, double cycle) override;
    // KVM keeps a PID's NV the posted-interrupt or the wakeup vector (a notification with
    // another one: a descriptor used before __vmx_vcpu_reset initialised it), and sets SN
    // when it preempts a vCPU that posted interrupts can target (a notification for one
    // preempted well before: SN was not set).
    void notification_sent(std::uint64_t pid, std::uint8_t nv, double cycle) override;

    // Every finding so far, and the sends still outstanding at `end_cycle` that are older
    // than the late bound (lost).
    std::vector<std::string> findings(double end_cycle) const;
    std::uint64_t ipis_sent() const { return m_sent; }         // (IPI, target) pairs
    std::uint64_t deliveries() const { return m_delivered; }   // deliveries matched to sends
    std::uint64_t coalesced() const { return m_coalesced; }    // sends satisfied by a shared delivery
    double late_cycles() const { return m_late; }

private:
    struct Send {
        double cycle = 0;
        unsigned sender = 0;
        std::uint64_t icr = 0;
    };
    struct Delivery {
        double cycle = 0;
        std::uint8_t vector = 0;
    };
    // Per vector: the sends since its last delivery (the first of them, and how many).
    struct Pending {
        Send first;
        std::uint64_t count = 0;
    };
    struct Target {
        std::map<std::uint8_t, Pending> pending;  // by vector
        std::deque<Delivery> recent;              // the last few deliveries
    };
    // The vCPU a guest context belongs to (its VM's index), if any.
    bool locate(const cpu::GuestContext& ctx, std::size_t& vm, std::size_t& vcpu) const;
    void send(std::size_t vm, std::size_t sender, std::uint64_t icr, bool x2apic, double cycle);
    std::string describe(std::size_t vm, std::size_t vcpu) const;
    std::string history(std::size_t vm, std::size_t vcpu) const;

    vmm::Kvm& m_kvm;
    double m_late;
    std::map<const cpu::GuestContext*, std::pair<std::size_t, std::size_t>> m_where;  // context -> (VM, vCPU)
    std::map<const cpu::GuestContext*, std::uint32_t> m_icr2;  // xAPIC: the last ICR2 written
    std::vector<std::vector<Target>> m_targets;               // by VM, then vCPU
    // Lowest-priority sends: the arbitration may pick any of the candidates (the priorities
    // it reads change between the guest's write and KVM's handling, and KVM may hash the
    // vector instead), so a delivery to any of them is accepted and none is reported lost.
    // The same for an ICR the architecture leaves undefined, which KVM may still deliver.
    struct UncertainSend {
        std::size_t vm = 0;
        std::uint8_t vector = 0;
        std::vector<std::size_t> candidates;
    };
    std::deque<UncertainSend> m_uncertain;
    // Fixed IPIs whose destination no vCPU had when they were written, by VM and vector
    // (their ICR): a delivery of that vector to a vCPU no send targeted came from one of them.
    // (An xAPIC ID change racing with the write may make KVM route it after all: not held
    // against it when the receiver has that destination as its ID by the delivery.)
    struct Unaddressed {
        std::uint64_t icr = 0;
        std::uint32_t destination = 0;
    };
    std::map<std::pair<std::size_t, std::uint8_t>, Unaddressed> m_unaddressed;
    std::map<std::uint64_t, std::pair<std::size_t, std::size_t>> m_by_pid;  // PID address -> (VM, vCPU)
    std::vector<std::string> m_findings;
    std::uint64_t m_sent = 0, m_delivered = 0, m_coalesced = 0;
};

}  // namespace vtx::sim
