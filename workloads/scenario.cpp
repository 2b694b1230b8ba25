#include "workloads/scenario.hpp"

#include <cstdio>
#include <set>

#include "apic/interrupt_message.hpp"
#include "cpu/guest.hpp"
#include "cpu/virtual_apic.hpp"
#include "model/error.hpp"
#include "pid/descriptor.hpp"
#include "workloads/explainer.hpp"
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
        if (m_s->explain) m_explainer = std::make_unique<Explainer>(kvm, vm);
        if (m_s->find_departures && !m_s->explain) {
            m_departures.resize(m_s->expectations.size());
            model::Tracer& t = kvm.platform().tracer();
            t.enable_all();
            t.set_sink([this](const char* flag, double cycle, int cpu, const char* mode, const char* what,
                              const char* where, double) { watch_step(flag, cycle, cpu, mode, what, where); });
        }
        auto& mem = kvm.platform().memory();
        for (const auto& [name, initial] : m_s->memory) {
            const std::uint64_t gpa = vm.alloc_guest(64, 64);
            mem.poke64(vm.gpa_to_hpa(gpa), initial);
            m_symbol_gpa.push_back(gpa);
        }
        m_received.resize(m_s->vcpus.size());
        m_user_received.resize(m_s->vcpus.size());
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
        if (!m_s->host.empty())
            kvm.spawn_host_thread(m_s->host_cpu, "scenario_host", [this](vmm::Kvm::HostThreadContext& h) { host_main(h); });
    }

    WorkloadResult result(vmm::Kvm&, vmm::Vm&) override {
        for (std::size_t i = 0; i < m_outcomes.size(); ++i)
            if (m_s->expectations[i].at.empty()) record(i, evaluate(m_s->expectations[i]));
        WorkloadResult r;
        std::size_t failed = 0;
        std::string report;
        for (std::size_t i = m_host_done; i < m_s->host.size(); ++i) {
            ++failed;
            report += "  FAIL  host event at cycle " + std::to_string(static_cast<std::uint64_t>(m_s->host[i].at)) +
                      ": never ran, the run ended first (" + m_s->host[i].where.text() + ")\n";
        }
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
            if (!ok && !m_departures.empty()) report += departure_report(static_cast<std::size_t>(&o - m_outcomes.data()));
        }
        r.ok = failed == 0;
        const std::size_t items = m_outcomes.size() + (m_s->host.size() - m_host_done);
        r.check = std::to_string(items - failed) + " of " + std::to_string(items) + " expectations hold\n" + report;
        r.iterations = r.total_iterations = 1;
        if (m_explainer) r.explanation = m_explainer->text(), r.step_cycles = m_explainer->step_cycles();
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
        for (const auto& entry : spec.handlers) {
            const std::uint8_t vec = entry.first;
            const std::vector<Instr>& body = entry.second;  // (C++17: a structured binding cannot be captured)
            g.set_handler(vec, [this, k, vec, &body](cpu::GuestCpu& c, std::uint8_t) {
                ++m_received[k][vec];
                run(c, body);
            });
        }
        if (spec.has_user_handler)
            g.set_user_handler(kUserHandlerAddress, [this, k, &spec](cpu::GuestCpu& c, std::uint8_t uv) {
                ++m_user_received[k][uv];
                run(c, spec.user_handler);
            });
        run(g, spec.program);
    }
    // The host thread: each event at its time (docs/scenarios.md "Host-side events").
    void host_main(vmm::Kvm::HostThreadContext& h) {
        using K = HostEvent::Kind;
        for (const HostEvent& e : m_s->host) {
            m_kvm->host_sleep_until(h, e.at);
            switch (e.kind) {
                case K::Preempt: m_kvm->host_preempt_vcpu(h, vcpu(e.vcpu), e.cycles); break;
                case K::Block: {
                    const double cycles = e.cycles;
                    m_kvm->host_run_on_vcpu(h, vcpu(e.vcpu), [this, cycles](vmm::Vcpu& v) { m_kvm->userspace_sleep(v, cycles); });
                    break;
                }
                case K::SetApicId: {
                    const auto id = static_cast<std::uint8_t>(e.apic_id);
                    m_kvm->host_run_on_vcpu(h, vcpu(e.vcpu), [this, id](vmm::Vcpu& v) { m_kvm->kvm_set_lapic_xapic_id(v, id); });
                    break;
                }
                case K::Msi: {
                    const std::uint64_t icr = m_s->x2apic ? (std::uint64_t{e.dest} << 32) | e.icr
                                                          : (std::uint64_t{e.dest & 0xFF} << 56) | e.icr;
                    const apic::Icr fields = apic::decode_icr(icr, m_s->x2apic);
                    apic::InterruptMessage msg = apic::message_from_icr(fields, m_s->x2apic, 0);
                    msg.level = fields.level;  // kvm_set_msi_irq keeps the data's level and trigger
                    msg.trigger_mode = fields.trigger_mode;
                    m_kvm->host_signal_msi(h, *m_vm, msg);
                    break;
                }
                case K::HostIpi: m_kvm->host_call_function_single(h, e.pcpu); break;
                case K::Migrate: {
                    const unsigned pcpu = e.pcpu;
                    m_kvm->host_run_on_vcpu(h, vcpu(e.vcpu), [this, pcpu](vmm::Vcpu& v) { m_kvm->userspace_migrate(v, pcpu); });
                    break;
                }
                case K::Check:
                    for (std::size_t i = 0; i < m_outcomes.size(); ++i)
                        if (m_s->expectations[i].at == e.name) record(i, evaluate(m_s->expectations[i]));
                    break;
            }
            ++m_host_done;
        }
    }

    std::uint64_t value(const Instr& in) const {
        return in.value_symbol >= 0 ? m_symbol_gpa[static_cast<std::size_t>(in.value_symbol)] + in.b : in.b;
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
            case Op::Wrmsr: g.wrmsr(static_cast<std::uint32_t>(in.a), value(in)); return;
            case Op::Rdmsr: g.rdmsr(static_cast<std::uint32_t>(in.a)); return;
            case Op::ApicWrite: lib.apic_write(static_cast<std::uint32_t>(in.a), static_cast<std::uint32_t>(in.b)); return;
            case Op::ApicRead: lib.apic_read(static_cast<std::uint32_t>(in.a)); return;
            case Op::SendIpi: lib.apic_icr_write(static_cast<std::uint32_t>(in.a), static_cast<std::uint32_t>(in.b)); return;
            case Op::Eoi: lib.eoi(); return;
            case Op::Store:
                if (in.size == 4)
                    g.store32(address(in), static_cast<std::uint32_t>(value(in)));
                else
                    g.store64(address(in), value(in));
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
            case Op::Senduipi: g.senduipi(in.a); return;
            case Op::Stui: g.stui(); return;
            case Op::Clui: g.clui(); return;
            case Op::UserMode: g.set_user_mode(true); return;
            case Op::KernelMode: g.set_user_mode(false); return;
            case Op::UintrOn: g.set_cr4_uintr(true); return;
            case Op::UintrOff: g.set_cr4_uintr(false); return;
        }
    }

    // ---- where a failing expectation departed (find_departures) ----
    struct Departure {
        bool evaluated = false;  // evaluated at least once
        bool frozen = false;     // its check point has been evaluated: stop watching
        bool ok = false;         // as expected at the last evaluation
        bool ever_ok = false;
        std::uint64_t initial = 0, value = 0;
        std::string departed;     // where the value stopped being as expected (for good)
        std::string last_change;  // where the value last changed
    };
    std::vector<Departure> m_departures;
    std::string m_previous_step;  // the step listed before the current one

    // Each step is listed as it begins (a memory access once done), so a change first seen
    // at one step happened between the previous listed step and this one.
    void watch_step(const char* flag, double cycle, int cpu, const char* mode, const char* what, const char* where) {
        char text[320];
        std::snprintf(text, sizeof text, "[cycle %.0f cpu%d %s %s: %s%s%s]", cycle, cpu, mode, flag, what,
                      *where ? ", " : "", where);
        const std::string between =
            m_previous_step.empty() ? std::string("before ") + text : m_previous_step + " and " + text;
        for (std::size_t i = 0; i < m_departures.size(); ++i) {
            Departure& d = m_departures[i];
            if (d.frozen) continue;
            const Expectation& e = m_s->expectations[i];
            if (!e.at.empty() && m_outcomes[i].evaluated) {
                d.frozen = true;
                continue;
            }
            const auto [ok, actual] = evaluate(e);
            if (!d.evaluated) {
                d.evaluated = true;
                d.ok = d.ever_ok = ok;
                d.initial = d.value = actual;
                continue;
            }
            if (actual != d.value) d.last_change = between;
            if (d.ok && !ok) d.departed = between;
            if (ok) d.departed.clear(), d.ever_ok = true;
            d.ok = ok;
            d.value = actual;
        }
        m_previous_step = text;
    }

    std::string departure_report(std::size_t i) const {
        const Departure& d = m_departures[i];
        std::string out;
        if (!d.departed.empty())
            out += "          as expected until it changed between " + d.departed + "\n";
        else if (!d.ever_ok)
            out += "          never as expected: " + hex(d.initial) + " when the run began\n";
        if (!d.last_change.empty() && d.last_change != d.departed)
            out += "          last changed between " + d.last_change + "\n";
        return out;
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
                    case K::UserReceived: {
                        const auto& got = m_user_received[m_index_of.at(e.vcpu)];
                        auto it = got.find(static_cast<std::uint8_t>(e.key));
                        actual = it == got.end() ? 0 : it->second;
                        break;
                    }
                    case K::Uirr: actual = v.context().uintr.rr; break;
                    case K::Uif: actual = v.context().uintr.uif; break;
                    default: break;
                }
            }
        }
        return {actual == e.value, actual};
    }

    std::unique_ptr<Explainer> m_explainer;  // vtxsim explain

    std::shared_ptr<const Scenario> m_s;
    vmm::Kvm* m_kvm = nullptr;
    vmm::Vm* m_vm = nullptr;
    std::vector<std::uint64_t> m_symbol_gpa;
    std::map<unsigned, std::size_t> m_index_of;                     // vCPU ID -> index in m_s->vcpus
    std::map<const cpu::GuestContext*, std::size_t> m_index_of_context;
    std::vector<std::map<std::uint8_t, std::uint64_t>> m_received;  // per vCPU: vector -> handler runs
    std::vector<std::map<std::uint8_t, std::uint64_t>> m_user_received;  // per vCPU: user vector -> user handler runs
    std::vector<Outcome> m_outcomes;
    std::size_t m_host_done = 0;  // host events run so far
};

}  // namespace

std::unique_ptr<Workload> make_scenario_workload(std::shared_ptr<const Scenario> scenario) {
    return std::make_unique<ScenarioWorkload>(std::move(scenario));
}

}  // namespace vtx::workloads::scenario
