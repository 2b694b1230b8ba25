#include "sim/protocol_check.hpp"

#include <algorithm>
#include <cstdio>

#include "apic/destination.hpp"
#include "apic/icr.hpp"
#include "apic/interrupt_message.hpp"
#include "apic/registers.hpp"
#include "cpu/platform.hpp"
#include "cpu/virtual_apic.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/vmcs.hpp"

namespace vtx::sim {
namespace {

constexpr std::size_t kRecentDeliveries = 4;
constexpr std::size_t kUncertainKept = 4096;  // outstanding uncertain sends remembered
// A notification sent this long after its target was preempted cannot come from a poster
// that read SN before the preemption set it (decoupled processors run up to a quantum ahead).
constexpr double kPreemptedMargin = 100000;
constexpr double kMinLateCycles = 1e6;
// A target may wait behind every other thread of its CPU for a slice each, more than once.
constexpr unsigned kLateSlicesPerSharer = 2, kLateSlicesExtra = 2;

std::string hex(std::uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

std::string cycles(double c) {
    char b[32];
    std::snprintf(b, sizeof b, "%.0f", c);
    return b;
}

}  // namespace

ProtocolChecker::ProtocolChecker(vmm::Kvm& kvm, double late_cycles) : m_kvm(kvm), m_late(late_cycles) {
    if (m_late > 0) return;
    // Default: as many scheduler slices as a target can wait behind the other threads of
    // its CPU (twice), plus two; at least 10^6 cycles.
    std::map<unsigned, unsigned> per_cpu;
    unsigned sharers = 1;
    for (const auto& vm : kvm.vms())
        for (const auto& v : vm->vcpus()) sharers = std::max(sharers, ++per_cpu[v->pcpu()]);
    // Migrations can gather every vCPU of the VM on one CPU.
    if (kvm.params().migrate_every > 0)
        for (const auto& vm : kvm.vms()) sharers = std::max(sharers, static_cast<unsigned>(vm->vcpus().size()));
    const double slice = static_cast<double>(kvm.params().sched_slice_cycles);
    m_late = std::max(kMinLateCycles, (kLateSlicesPerSharer * sharers + kLateSlicesExtra) * slice);
}

bool ProtocolChecker::locate(const cpu::GuestContext& ctx, std::size_t& vm, std::size_t& vcpu) const {
    if (const auto it = m_where.find(&ctx); it != m_where.end()) {
        vm = it->second.first, vcpu = it->second.second;
        return true;
    }
    auto& vms = m_kvm.vms();
    for (std::size_t i = 0; i < vms.size(); ++i) {
        auto& vcpus = vms[i]->vcpus();
        for (std::size_t k = 0; k < vcpus.size(); ++k)
            if (&vcpus[k]->context() == &ctx) {
                const_cast<ProtocolChecker*>(this)->m_where[&ctx] = {i, k};
                vm = i, vcpu = k;
                return true;
            }
    }
    return false;  // an L2 context (nested): not a vCPU of a VM
}

void ProtocolChecker::ipi_register_written(const cpu::GuestContext& sender, bool x2apic, std::uint32_t offset,
                                           std::uint64_t value, double cycle) {
    std::size_t vm = 0, vcpu = 0;
    if (!locate(sender, vm, vcpu)) return;
    if (offset == apic::kApicOffsetIcrHi) {
        m_icr2[&sender] = static_cast<std::uint32_t>(value);
        return;
    }
    // What faults sends nothing: an x2APIC ICR with reserved bits set (#GP from the
    // processor or from KVM's kvm_x2apic_icr_write). A SELF IPI with bits 63:8 set faults
    // when the processor virtualizes it and not always when KVM emulates it (KVM checks
    // 63:32 only): the checker matches neither, conservatively.
    if (x2apic && offset == apic::kApicOffsetIcrLo && (value & apic::kX2ApicIcrReservedBits)) return;
    if (offset == apic::kApicOffsetSelfIpi && (value >> 8) != 0) return;
    if (offset == apic::kApicOffsetSelfIpi) {
        apic::Icr self;
        self.vector = static_cast<std::uint8_t>(value);
        self.shorthand = apic::Shorthand::Self;
        send(vm, vcpu, apic::encode_icr(self, true), true, cycle);
        return;
    }
    const std::uint64_t icr = x2apic ? value : (std::uint64_t{m_icr2[&sender]} << 32) | (value & 0xFFFFFFFFu);
    send(vm, vcpu, icr, x2apic, cycle);
}

void ProtocolChecker::send(std::size_t vm, std::size_t sender, std::uint64_t icr, bool x2apic, double cycle) {
    const apic::Icr fields = apic::decode_icr(icr, x2apic);
    // Fixed and lowest-priority IPIs carry a vector to a handler; the others (NMI, INIT,
    // SIPI, SMI) are not matched to IDT deliveries.
    if (fields.delivery_mode != apic::DeliveryMode::Fixed && fields.delivery_mode != apic::DeliveryMode::LowestPriority)
        return;
    if (apic::has_illegal_vector(fields)) return;
    // An ICR the architecture leaves undefined (lowest priority to all including self, say)
    // may still be delivered by KVM: like a lowest-priority send, any candidate may get it.
    const bool uncertain = apic::check_icr(fields) != apic::IcrCheck::Valid ||
                           fields.delivery_mode == apic::DeliveryMode::LowestPriority;
    auto& vcpus = m_kvm.vms()[vm]->vcpus();
    // The guests' own addressing state, from their virtual-APIC pages.
    std::vector<apic::DestinationView> views(vcpus.size());
    auto& mem = m_kvm.platform().memory();
    for (std::size_t k = 0; k < vcpus.size(); ++k) {
        cpu::VirtualApicPage page(mem, vcpus[k]->vapic_page());
        apic::DestinationView& d = views[k];
        d.x2apic = x2apic;
        // The ID KVM routes by: a guest's xAPIC ID write counts once KVM has handled it.
        d.apic_id = vcpus[k]->map_apic_id();
        d.ldr = x2apic ? apic::x2apic_ldr_of(d.apic_id) : page.read32(cpu::kVapicLdr);
        d.dfr_model = page.read32(cpu::kVapicDfr) >> 28;
        // A guest that never enabled its APIC in software still receives IPIs in the
        // model's workloads (the VMM's vAPIC starts with SVR's enable bit as KVM's reset);
        // the checker does not second-guess it.
        d.software_enabled = true;
        d.ppr = static_cast<std::uint8_t>(page.read32(cpu::kVapicPpr));
    }
    const apic::InterruptMessage msg = apic::message_from_icr(fields, x2apic, views[sender].apic_id);
    if (m_targets.size() < m_kvm.vms().size()) m_targets.resize(m_kvm.vms().size());
    if (m_targets[vm].size() < vcpus.size()) m_targets[vm].resize(vcpus.size());
    if (uncertain) {
        apic::InterruptMessage all = msg;
        all.delivery_mode = apic::DeliveryMode::Fixed;  // every candidate of the arbitration
        std::vector<std::size_t> candidates = apic::resolve_destinations(all, views, sender);
        // Lowest priority with all-excluding-self may come back to the sender (SDM 11.6.2.4;
        // apic::resolve_destinations).
        if (fields.shorthand != apic::Shorthand::None &&
            std::find(candidates.begin(), candidates.end(), sender) == candidates.end())
            candidates.push_back(sender);
        m_uncertain.push_back({vm, fields.vector, std::move(candidates)});
        if (m_uncertain.size() > kUncertainKept) m_uncertain.pop_front();
        return;
    }
    const auto targets = apic::resolve_destinations(msg, views, sender);
    // A send that reaches nobody is remembered (its receiver would be misrouted to), for a
    // physical destination only: a logical one resolves against LDRs a guest may rewrite
    // between its ICR write and KVM's handling of it. Nor while KVM's APICv inhibit is still
    // reaching the sender: a vCPU that has not yet refreshed its controls may still
    // virtualize IPIs through the PID-pointer table, which KVM indexes by vCPU ID
    // (kvm_make_all_cpus_request waits for that, not the map).
    auto stale_ipiv = [&] {
        return m_kvm.vms()[vm]->apicv_inhibited() &&
               (vmcs::effective_tertiary_controls(vcpus[sender]->context().vmcs) & vmcs::kTertiaryIpiVirt);
    };
    if (targets.empty() && fields.destination_mode == apic::DestinationMode::Physical &&
        fields.shorthand == apic::Shorthand::None && !stale_ipiv())
        m_unaddressed[{vm, fields.vector}] = Unaddressed{icr, fields.destination};
    for (std::size_t t : targets) {
        Pending& p = m_targets[vm][t].pending[fields.vector];
        if (p.count++ == 0) p.first = Send{cycle, static_cast<unsigned>(sender), icr};
        ++m_sent;
    }
}

void ProtocolChecker::interrupt_delivered(const cpu::GuestContext& ctx, std::uint8_t vector, double cycle) {
    std::size_t vm = 0, vcpu = 0;
    if (!locate(ctx, vm, vcpu)) return;
    if (m_targets.size() <= vm || m_targets[vm].size() <= vcpu) return;  // nothing was ever sent in this VM
    Target& target = m_targets[vm][vcpu];
    const auto it = target.pending.find(vector);
    if (it == target.pending.end() || it->second.count == 0) {
        // A lowest-priority send this vCPU was a candidate for.
        for (auto l = m_uncertain.begin(); l != m_uncertain.end(); ++l)
            if (l->vm == vm && l->vector == vector &&
                std::find(l->candidates.begin(), l->candidates.end(), vcpu) != l->candidates.end()) {
                m_uncertain.erase(l);
                ++m_delivered;
                return;
            }
    }
    if (it == target.pending.end()) {
        // Never sent here. Sent to another vCPU of the VM and not delivered there: misrouted.
        for (std::size_t k = 0; k < m_targets[vm].size(); ++k) {
            if (k == vcpu) continue;
            const auto o = m_targets[vm][k].pending.find(vector);
            if (o != m_targets[vm][k].pending.end() && o->second.count > 0) {
                m_findings.push_back("misrouted: vector " + hex(vector) + " delivered to " + describe(vm, vcpu) +
                                     ", which no IPI with it ever targeted, while sent to " + describe(vm, k) + " by " +
                                     describe(vm, o->second.first.sender) + " (ICR " + hex(o->second.first.icr) +
                                     ") at cycle " + cycles(o->second.first.cycle) + "; " + history(vm, vcpu));
                break;
            }
        }
        if (const auto u = m_unaddressed.find({vm, vector});
            u != m_unaddressed.end() && m_kvm.vms()[vm]->vcpus()[vcpu]->map_apic_id() != u->second.destination)
            m_findings.push_back("misrouted: vector " + hex(vector) + " delivered to " + describe(vm, vcpu) +
                                 ", which no IPI with it targeted, while an IPI with it (ICR " + hex(u->second.icr) +
                                 ") addressed no vCPU; " + history(vm, vcpu));
        return;  // else: not an IPI vector (a timer's, say)
    }
    Pending& p = it->second;
    // A delivery satisfies every send of its vector to this vCPU made before it (they may
    // have coalesced in IRR or PIR). One with nothing pending may be the second delivery
    // of a send that arrived after the first began (in service): not a finding.
    if (p.count > 0) {
        if (cycle - p.first.cycle > m_late)
            m_findings.push_back("late: vector " + hex(vector) + " from " + describe(vm, p.first.sender) + " (ICR " +
                                 hex(p.first.icr) + ") at cycle " + cycles(p.first.cycle) + " reached " + describe(vm, vcpu) +
                                 " at cycle " + cycles(cycle) + ", " + cycles(cycle - p.first.cycle) + " cycles later (bound " +
                                 cycles(m_late) + "); " + history(vm, vcpu));
        ++m_delivered;
        m_coalesced += p.count - 1;
        p.count = 0;
    }
    target.recent.push_back(Delivery{cycle, vector});
    if (target.recent.size() > kRecentDeliveries) target.recent.pop_front();
}

std::string ProtocolChecker::describe(std::size_t vm, std::size_t vcpu) const {
    return "vm" + std::to_string(vm) + ".vcpu" + std::to_string(m_kvm.vms()[vm]->vcpus()[vcpu]->id());
}

std::string ProtocolChecker::history(std::size_t vm, std::size_t vcpu) const {
    std::string out = describe(vm, vcpu) + "'s last deliveries:";
    const Target& t = m_targets[vm][vcpu];
    if (t.recent.empty()) return out + " none";
    for (const Delivery& d : t.recent) out += " " + hex(d.vector) + "@" + cycles(d.cycle);
    const vmm::Vcpu& v = *m_kvm.vms()[vm]->vcpus()[vcpu];
    out += "; mp_state " + std::to_string(static_cast<int>(v.mp_state()));
    return out;
}

std::vector<std::string> ProtocolChecker::findings(double end_cycle) const {
    std::vector<std::string> out = m_findings;
    for (std::size_t vm = 0; vm < m_targets.size(); ++vm)
        for (std::size_t k = 0; k < m_targets[vm].size(); ++k)
            for (const auto& [vector, p] : m_targets[vm][k].pending)
                if (p.count > 0 && end_cycle - p.first.cycle > m_late)
                    out.push_back("lost: vector " + hex(vector) + " from " + describe(vm, p.first.sender) + " (ICR " +
                                  hex(p.first.icr) + ") at cycle " + cycles(p.first.cycle) + " never reached " +
                                  describe(vm, k) + " (" + std::to_string(p.count) + " sends since its last delivery; the run "
                                  "ended at cycle " + cycles(end_cycle) + "); " + history(vm, k));
    return out;
}

void ProtocolChecker::notification_sent(std::uint64_t pid, std::uint8_t nv, double cycle) {
    if (m_by_pid.empty())
        for (std::size_t vm = 0; vm < m_kvm.vms().size(); ++vm)
            for (std::size_t k = 0; k < m_kvm.vms()[vm]->vcpus().size(); ++k)
                m_by_pid[m_kvm.vms()[vm]->vcpus()[k]->pi_desc()] = {vm, k};
    const auto it = m_by_pid.find(pid);
    if (it == m_by_pid.end()) return;
    const auto [vm, k] = it->second;
    const vmm::Vcpu& v = *m_kvm.vms()[vm]->vcpus()[k];
    if (nv != vmm::kPostedIntrVector && nv != vmm::kPostedIntrWakeupVector)
        m_findings.push_back("notification with vector " + hex(nv) + " for " + describe(vm, k) + " at cycle " +
                             cycles(cycle) + ": its PID's NV is neither the posted-interrupt nor the wakeup vector");
    else if (v.preempted() && cycle - v.preempted_at() > kPreemptedMargin)
        m_findings.push_back("notification for " + describe(vm, k) + " at cycle " + cycles(cycle) +
                             ", preempted since cycle " + cycles(v.preempted_at()) + ": SN should have suppressed it");
}

}  // namespace vtx::sim
