#include "workloads/explainer.hpp"

#include <cstdio>

#include "cpu/virtual_apic.hpp"
#include "pid/descriptor.hpp"

namespace vtx::workloads {

namespace {
std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}
std::string bit(int b) { return b < 0 ? std::string("-") : hex(static_cast<std::uint64_t>(b)); }
std::string vectors(const std::vector<std::uint8_t>& v) {
    std::string s = "{";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + hex(v[i]);
    return s + "}";
}
}  // namespace

Explainer::Explainer(vmm::Kvm& kvm, vmm::Vm& vm) : m_kvm(kvm), m_vm(vm) {
    model::Tracer& t = kvm.platform().tracer();
    t.enable_all();
    t.set_sink([this](const char* flag, double cycle, int cpu, const char* mode, const char* what, const char* where,
                      double cost) { step(flag, cycle, cpu, mode, what, where, cost); });
}

Explainer::Snapshot Explainer::snapshot(vmm::Vcpu& v) const {
    auto& mem = m_kvm.platform().memory();
    Snapshot s;
    const vmcs::Vmcs& vmcs = v.loaded_context().vmcs;
    cpu::VirtualApicPage page(mem, v.vapic_page());
    model::DirectMemoryPort port(mem, model::kDeviceAgent);
    pid::PostedInterruptDescriptor pid(port, v.pi_desc());
    s.rvi = cpu::rvi(vmcs), s.svi = cpu::svi(vmcs);
    if (auto b = page.highest_bit(cpu::kVapicIrr)) s.virr = *b;
    if (auto b = page.highest_bit(cpu::kVapicIsr)) s.visr = *b;
    s.on = pid.on(), s.sn = pid.sn(), s.nv = pid.nv();
    s.pir = pid.pir().vectors();
    s.activity = vmcs.hw_read(vmcs::Field::GuestActivityState);
    s.mp_state = static_cast<std::uint64_t>(v.mp_state());
    s.icr_lo = page.read32(cpu::kVapicIcrLo), s.icr_hi = page.read32(cpu::kVapicIcrHi);
    s.exit_reason = vmcs.hw_read(vmcs::Field::VmExitReason);
    s.exit_qualification = vmcs.hw_read(vmcs::Field::ExitQualification);
    s.exit_intr_info = vmcs.hw_read(vmcs::Field::VmExitIntrInfo);
    s.interruptibility = vmcs.hw_read(vmcs::Field::GuestInterruptibilityInfo);
    s.entry_intr_info = vmcs.hw_read(vmcs::Field::VmEntryIntrInfoField);
    return s;
}

std::string Explainer::changes() {
    std::string out;
    auto& vcpus = m_vm.vcpus();
    if (m_last.size() != vcpus.size()) m_last.assign(vcpus.size(), Snapshot{});
    for (std::size_t k = 0; k < vcpus.size(); ++k) {
        const Snapshot now = snapshot(*vcpus[k]);
        Snapshot& was = m_last[k];
        std::string c;
        auto field = [&](const char* name, const std::string& a, const std::string& b) {
            if (a != b) c += std::string(c.empty() ? "" : ", ") + name + " " + a + "->" + b;
        };
        field("RVI", hex(was.rvi), hex(now.rvi));
        field("SVI", hex(was.svi), hex(now.svi));
        field("VIRR max", bit(was.virr), bit(now.virr));
        field("VISR max", bit(was.visr), bit(now.visr));
        field("PID.ON", hex(was.on), hex(now.on));
        field("PID.SN", hex(was.sn), hex(now.sn));
        field("PID.NV", hex(was.nv), hex(now.nv));
        field("PIR", vectors(was.pir), vectors(now.pir));
        field("activity", hex(was.activity), hex(now.activity));
        field("VMCS exit reason", hex(was.exit_reason), hex(now.exit_reason));
        field("exit qualification", hex(was.exit_qualification), hex(now.exit_qualification));
        field("exit interruption info", hex(was.exit_intr_info), hex(now.exit_intr_info));
        field("guest interruptibility", hex(was.interruptibility), hex(now.interruptibility));
        field("entry interruption info", hex(was.entry_intr_info), hex(now.entry_intr_info));
        field("mp_state", hex(was.mp_state), hex(now.mp_state));
        if (was.icr_lo != now.icr_lo || was.icr_hi != now.icr_hi)
            c += std::string(c.empty() ? "" : ", ") + "vICR " + hex((std::uint64_t{now.icr_hi} << 32) | now.icr_lo) +
                 " (vector " + hex(now.icr_lo & 0xFF) + ", delivery " + std::to_string((now.icr_lo >> 8) & 7) +
                 ((now.icr_lo >> 11) & 1 ? ", logical" : ", physical") + ")";
        was = now;
        if (!c.empty()) out += "    vCPU " + std::to_string(vcpus[k]->id()) + ": " + c + "\n";
    }
    return out;
}

void Explainer::step(const char* flag, double cycle, int cpu, const char* mode, const char* what, const char* where,
                     double cost) {
    Line l;
    l.cpu = cpu, l.flag = flag, l.cost = cost;
    l.step = l.flag == "mem" ? std::string("memory accesses") : std::string(what);
    l.mark = std::string(flag) == "mark";
    // Memory accesses that hit the core's own cache are counted, not listed.
    const bool listed = !(l.flag == "mem" && std::string(where).find("line transfer") == std::string::npos);
    if (l.mark) {
        char text[160];
        std::snprintf(text, sizeof text, "%10.0f cpu%-2d ---- %s ----\n", cycle, cpu, what);
        l.text = text;
    } else if (listed) {
        char text[256];
        std::snprintf(text, sizeof text, "%10.0f cpu%-2d %-7s %-5s %-46.46s %-22.22s +%.0f\n", cycle, cpu, mode, flag,
                      what, where, cost);
        // The state found changed when the line is listed (a memory access is listed once
        // done, most steps as they begin: their effect shows under the next line).
        l.text = text + changes();
    }
    m_lines.push_back(std::move(l));
}

std::pair<std::size_t, std::size_t> Explainer::window() const {
    // With marks: the last complete window, from the second-to-last mark to the last.
    std::vector<std::size_t> marks;
    for (std::size_t i = 0; i < m_lines.size(); ++i)
        if (m_lines[i].mark) marks.push_back(i);
    if (marks.size() >= 2) return {marks[marks.size() - 2], marks.back()};
    return {0, m_lines.size()};
}

std::map<std::string, double> Explainer::step_cycles() const {
    const auto [begin, end] = window();
    std::map<std::string, double> out;
    for (std::size_t i = begin; i < end; ++i)
        if (!m_lines[i].mark && m_lines[i].cost > 0) out[m_lines[i].step] += m_lines[i].cost;
    return out;
}

std::string Explainer::text() const {
    const auto [begin, end] = window();
    std::string out;
    std::map<std::pair<int, std::string>, double> subtotal;
    for (std::size_t i = begin; i < end; ++i) {
        out += m_lines[i].text;
        if (!m_lines[i].mark) subtotal[{m_lines[i].cpu, m_lines[i].flag}] += m_lines[i].cost;
    }
    out += "cycles charged, per processor and flow:\n";
    std::map<int, double> total;
    for (const auto& [key, cycles] : subtotal) {
        char line[96];
        std::snprintf(line, sizeof line, "  cpu%-2d %-6s %10.0f\n", key.first, key.second.c_str(), cycles);
        out += line;
        total[key.first] += cycles;
    }
    for (const auto& [cpu, cycles] : total) {
        char line[96];
        std::snprintf(line, sizeof line, "  cpu%-2d total  %10.0f\n", cpu, cycles);
        out += line;
    }
    return out;
}

}  // namespace vtx::workloads
