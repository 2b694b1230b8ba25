#include "workloads/scenario.hpp"

#include <cstdio>
#include <set>

#include "cpu/guest.hpp"
#include "cpu/virtual_apic.hpp"
#include "model/error.hpp"
#include "pid/descriptor.hpp"
#include "workloads/kut.hpp"

namespace vtx::workloads::scenario {
namespace {

using vmcs::Field;

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

class ScenarioWorkload : public Workload {
public:
    explicit ScenarioWorkload(std::shared_ptr<const Scenario> s) : m_s(std::move(s)) {
        m_outcomes.resize(m_s->expectations.size());
        for (std::size_t i = 0; i < m_outcomes.size(); ++i) m_outcomes[i].expectation = &m_s->expectations[i];
    }

    void setup(vmm::Kvm& kvm, vmm::Vm& vm, const WorkloadConfig&) override {
        m_kvm = &kvm;
        m_vm = &vm;
        if (m_s->explain) {
            model::Tracer& t = kvm.platform().tracer();
            t.enable_all();
            t.set_sink([this](const char* flag, double cycle, int cpu, const char* mode, const char* step,
                              const char* where, double cost) { explain_step(flag, cycle, cpu, mode, step, where, cost); });
        }
        auto& mem = kvm.platform().memory();
        for (const auto& [name, initial] : m_s->memory) {
            const std::uint64_t gpa = vm.alloc_guest(64, 64);
            mem.poke64(vm.gpa_to_hpa(gpa), initial);
            m_symbol_gpa.push_back(gpa);
        }
        m_received.resize(m_s->vcpus.size());
        std::set<std::uint8_t> trampolines;
        for (std::size_t k = 0; k < m_s->vcpus.size(); ++k) {
            const VcpuSpec& spec = m_s->vcpus[k];
            vmm::Vcpu& v = vm.create_vcpu(spec.id, spec.pcpu, !spec.uninitialized);
            m_index_of[spec.id] = k;
            m_index_of_context[&v.context()] = k;
            if (spec.uninitialized) {
                // The start-up code at the SIPI vector's page, shared by the APs that use it.
                if (trampolines.insert(spec.sipi_vector).second)
                    vm.add_code(std::uint64_t{spec.sipi_vector} << 12, [this](cpu::GuestCpu& g) {
                        vcpu_main(g, m_index_of_context.at(&g.context()));
                    });
                continue;
            }
            const std::uint64_t entry = kBspEntry + 0x1000 * spec.id;
            v.set_entry_point(entry);
            vm.add_code(entry, [this, k](cpu::GuestCpu& g) { vcpu_main(g, k); });
        }
    }

    WorkloadResult result(vmm::Kvm&, vmm::Vm&) override {
        for (std::size_t i = 0; i < m_outcomes.size(); ++i)
            if (m_s->expectations[i].at.empty()) record(i, evaluate(m_s->expectations[i]));
        WorkloadResult r;
        std::size_t failed = 0;
        std::string report;
        for (const Outcome& o : m_outcomes) {
            const Expectation& e = *o.expectation;
            const bool ok = o.evaluated && o.ok;
            failed += !ok;
            report += ok ? "  ok    " : "  FAIL  ";
            report += e.what;
            if (!e.at.empty()) report += " (at " + e.at + ")";
            if (!o.evaluated)
                report += ": check point never reached (" + e.where.text() + ")";
            else if (!ok)
                report += ": got " + hex(o.actual) + " (" + e.where.text() + ")";
            report += "\n";
        }
        r.ok = failed == 0;
        r.check = std::to_string(m_outcomes.size() - failed) + " of " + std::to_string(m_outcomes.size()) +
                  " expectations hold\n" + report;
        r.iterations = r.total_iterations = 1;
        if (m_s->explain) r.explanation = m_explanation + subtotals();
        r.values["expectations"] = static_cast<double>(m_outcomes.size());
        r.values["failed"] = static_cast<double>(failed);
        return r;
    }

private:
    vmm::Vcpu& vcpu(unsigned id) {
        return *m_vm->vcpus().at(m_index_of.at(id));
    }
    std::uint64_t address(const Instr& in) const {
        return in.symbol >= 0 ? m_symbol_gpa[static_cast<std::size_t>(in.symbol)] + in.a : in.a;
    }

    void vcpu_main(cpu::GuestCpu& g, std::size_t k) {
        const VcpuSpec& spec = m_s->vcpus[k];
        for (const auto& [vector, body] : spec.handlers) {
            const std::uint8_t vec = vector;
            g.set_handler(vec, [this, k, vec, &body](cpu::GuestCpu& c, std::uint8_t) {
                ++m_received[k][vec];
                run(c, body);
            });
        }
        run(g, spec.program);
    }

    void run(cpu::GuestCpu& g, const std::vector<Instr>& code) {
        for (const Instr& in : code) execute(g, in);
    }

    bool compare(std::uint64_t v, const Instr& in) const {
        switch (in.cond) {
            case Cond::Eq: return v == in.b;
            case Cond::Ne: return v != in.b;
            case Cond::Ge: return v >= in.b;
            case Cond::Le: return v <= in.b;
        }
        return false;
    }

    std::uint64_t load(cpu::GuestCpu& g, const Instr& in) {
        return in.size == 4 ? g.load32(address(in)) : g.load64(address(in));
    }

    void execute(cpu::GuestCpu& g, const Instr& in) {
        kut::Lib lib(g, m_s->x2apic);
        switch (in.op) {
            case Op::Nop: g.compute(1); return;
            case Op::Compute: g.compute(in.a); return;
            case Op::Sti: g.sti(); return;
            case Op::Cli: g.cli(); return;
            case Op::Hlt: g.hlt(); return;
            case Op::StiHlt: g.sti_hlt(); return;
            case Op::Pause: g.pause(); return;
            case Op::Mfence: g.mfence(); return;
            case Op::Rdtsc: g.rdtsc(); return;
            case Op::Cpuid: g.cpuid(static_cast<std::uint32_t>(in.a)); return;
            case Op::Vmcall: g.vmcall(in.a); return;
            case Op::Wrmsr: g.wrmsr(static_cast<std::uint32_t>(in.a), in.b); return;
            case Op::Rdmsr: g.rdmsr(static_cast<std::uint32_t>(in.a)); return;
            case Op::ApicWrite: lib.apic_write(static_cast<std::uint32_t>(in.a), static_cast<std::uint32_t>(in.b)); return;
            case Op::ApicRead: lib.apic_read(static_cast<std::uint32_t>(in.a)); return;
            case Op::SendIpi: lib.apic_icr_write(static_cast<std::uint32_t>(in.a), static_cast<std::uint32_t>(in.b)); return;
            case Op::Eoi: lib.eoi(); return;
            case Op::Store:
                if (in.size == 4)
                    g.store32(address(in), static_cast<std::uint32_t>(in.b));
                else
                    g.store64(address(in), in.b);
                return;
            case Op::Load: load(g, in); return;
            case Op::LockAdd: g.lock_add(address(in), in.b); return;
            case Op::LockBts: g.lock_bts(address(in), static_cast<unsigned>(in.b)); return;
            case Op::LockBtr: g.lock_btr(address(in), static_cast<unsigned>(in.b)); return;
            case Op::Xchg: g.xchg(address(in), in.b); return;
            case Op::Cmpxchg: g.lock_cmpxchg(address(in), in.b, in.c); return;
            case Op::SpinUntil: g.spin_until([&] { return compare(load(g, in), in); }, address(in)); return;
            case Op::Loop:
                for (std::uint64_t i = 0; i < in.a; ++i) run(g, in.body);
                return;
            case Op::Check:
                for (std::size_t i = 0; i < m_outcomes.size(); ++i)
                    if (m_s->expectations[i].at == in.name) record(i, evaluate(m_s->expectations[i]));
                return;
            case Op::Idle: g.idle_loop();
        }
    }

    // The first failing evaluation of an expectation is the one reported.
    void record(std::size_t i, std::pair<bool, std::uint64_t> r) {
        Outcome& o = m_outcomes[i];
        if (o.evaluated && !o.ok) return;
        o.evaluated = true;
        o.ok = r.first;
        o.actual = r.second;
    }

    std::pair<bool, std::uint64_t> evaluate(const Expectation& e) {
        using K = Expectation::Kind;
        auto& mem = m_kvm->platform().memory();
        std::uint64_t actual = 0;
        switch (e.kind) {
            case K::Memory: {
                std::size_t i = 0;
                while (m_s->memory[i].first != e.symbol) ++i;  // the parser checked the name
                actual = mem.peek64(m_vm->gpa_to_hpa(m_symbol_gpa[i]));
                break;
            }
            case K::Stat: actual = m_kvm->platform().stats().value(e.symbol); break;
            default: {
                vmm::Vcpu& v = vcpu(e.vcpu);
                const vmcs::Vmcs& vmcs = v.loaded_context().vmcs;
                cpu::VirtualApicPage page(mem, v.vapic_page());
                model::DirectMemoryPort port(mem, model::kDeviceAgent);
                pid::PostedInterruptDescriptor pid(port, v.pi_desc());
                switch (e.kind) {
                    case K::Exits: actual = v.exits(static_cast<std::uint16_t>(e.key)); break;
                    case K::Received: {
                        const auto& got = m_received[m_index_of.at(e.vcpu)];
                        auto it = got.find(static_cast<std::uint8_t>(e.key));
                        actual = it == got.end() ? 0 : it->second;
                        break;
                    }
                    case K::Activity: actual = vmcs.hw_read(Field::GuestActivityState); break;
                    case K::MpState: actual = static_cast<std::uint64_t>(v.mp_state()); break;
                    case K::Rvi: actual = cpu::rvi(vmcs); break;
                    case K::Svi: actual = cpu::svi(vmcs); break;
                    case K::Vppr: actual = page.read32(cpu::kVapicPpr); break;
                    case K::VirrHas: actual = page.test_bit(cpu::kVapicIrr, static_cast<std::uint8_t>(e.key)); break;
                    case K::VisrHas: actual = page.test_bit(cpu::kVapicIsr, static_cast<std::uint8_t>(e.key)); break;
                    case K::PidOn: actual = pid.on(); break;
                    case K::PidSn: actual = pid.sn(); break;
                    case K::PidNv: actual = pid.nv(); break;
                    case K::PidNdst: actual = pid.ndst(); break;
                    case K::PidPirHas: actual = pid.pir_bit(static_cast<std::uint8_t>(e.key)); break;
                    case K::ExitReason: actual = vmcs.hw_read(Field::VmExitReason) & vmcs::kExitReasonBasicMask; break;
                    case K::ExitQualification: actual = vmcs.hw_read(Field::ExitQualification); break;
                    default: break;
                }
            }
        }
        return {actual == e.value, actual};
    }

    // ---- vtxsim explain: each step, then what it changed in the vCPUs' interrupt state.
    struct Snapshot {
        int virr = -1, visr = -1;
        std::uint64_t rvi = 0, svi = 0, on = 0, sn = 0, nv = 0, activity = 0, mp_state = 0;
        std::vector<std::uint8_t> pir;
        std::uint32_t icr_lo = 0, icr_hi = 0;
    };
    Snapshot snapshot(vmm::Vcpu& v) {
        auto& mem = m_kvm->platform().memory();
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
        s.activity = vmcs.hw_read(Field::GuestActivityState);
        s.mp_state = static_cast<std::uint64_t>(v.mp_state());
        s.icr_lo = page.read32(cpu::kVapicIcrLo), s.icr_hi = page.read32(cpu::kVapicIcrHi);
        return s;
    }
    static std::string vectors(const std::vector<std::uint8_t>& v) {
        std::string s = "{";
        for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + hex(v[i]);
        return s + "}";
    }
    static std::string bit(int b) { return b < 0 ? std::string("-") : hex(static_cast<std::uint64_t>(b)); }
    std::string changes() {
        std::string out;
        auto& vcpus = m_vm->vcpus();
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
            field("mp_state", hex(was.mp_state), hex(now.mp_state));
            if (was.icr_lo != now.icr_lo || was.icr_hi != now.icr_hi)
                c += std::string(c.empty() ? "" : ", ") + "vICR " + hex((std::uint64_t{now.icr_hi} << 32) | now.icr_lo) +
                     " (vector " + hex(now.icr_lo & 0xFF) + ", delivery " + std::to_string((now.icr_lo >> 8) & 7) +
                     ((now.icr_lo >> 11) & 1 ? ", logical" : ", physical") + ")";
            was = now;
            if (!c.empty()) out += "    vCPU " + std::to_string(m_s->vcpus[k].id) + ": " + c + "\n";
        }
        return out;
    }
    void explain_step(const char* flag, double cycle, int cpu, const char* mode, const char* step, const char* where,
                      double cost) {
        m_subtotal[{cpu, flag}] += cost;
        // Memory accesses that hit the core's own cache are counted, not listed.
        if (std::string(flag) == "mem" && std::string(where).find("line transfer") == std::string::npos) return;
        char line[256];
        std::snprintf(line, sizeof line, "%10.0f cpu%-2d %-7s %-5s %-46.46s %-22.22s +%.0f\n", cycle, cpu, mode, flag,
                      step, where, cost);
        m_explanation += line;
        // The state found changed when this line is listed (a memory access is listed once
        // done, most steps as they begin: their effect shows under the next line).
        m_explanation += changes();
    }
    std::string subtotals() const {
        std::string out = "cycles charged, per processor and flow:\n";
        std::map<int, double> total;
        for (const auto& [key, cycles] : m_subtotal) {
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
    std::vector<Snapshot> m_last;
    std::string m_explanation;
    std::map<std::pair<int, std::string>, double> m_subtotal;

    std::shared_ptr<const Scenario> m_s;
    vmm::Kvm* m_kvm = nullptr;
    vmm::Vm* m_vm = nullptr;
    std::vector<std::uint64_t> m_symbol_gpa;
    std::map<unsigned, std::size_t> m_index_of;                     // vCPU ID -> index in m_s->vcpus
    std::map<const cpu::GuestContext*, std::size_t> m_index_of_context;
    std::vector<std::map<std::uint8_t, std::uint64_t>> m_received;  // per vCPU: vector -> handler runs
    std::vector<Outcome> m_outcomes;
};

}  // namespace

std::unique_ptr<Workload> make_scenario_workload(std::shared_ptr<const Scenario> scenario) {
    return std::make_unique<ScenarioWorkload>(std::move(scenario));
}

}  // namespace vtx::workloads::scenario
