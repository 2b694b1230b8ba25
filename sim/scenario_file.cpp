#include "sim/scenario_file.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "model/error.hpp"
#include "model/parse.hpp"
#include "sim/options.hpp"
#include "vmcs/exit_info.hpp"

namespace vtx::sim {

namespace {

using namespace workloads::scenario;

// The parser's context: the file, and the path of the field being read (for messages).
class Reader {
public:
    explicit Reader(std::string file) : m_file(std::move(file)) {}

    [[noreturn]] void fail(const YAML::Node& at, const std::string& field, const std::string& what) const {
        const int line = at.Mark().line >= 0 ? at.Mark().line + 1 : 0;
        throw model::ConfigError(m_file + ":" + std::to_string(line) + ": " + field + ": " + what);
    }
    Where where(const YAML::Node& at) const { return {m_file, at.Mark().line + 1}; }

    std::string text(const YAML::Node& n, const std::string& field) const {
        if (!n.IsScalar()) fail(n, field, "expected a single value");
        return n.Scalar();
    }
    std::uint64_t number(const YAML::Node& n, const std::string& field, std::uint64_t max = ~std::uint64_t{0}) const {
        const std::string t = text(n, field);
        const auto v = model::parse_u64(t, 0);
        if (!v || *v > max)
            fail(n, field, "\"" + t + "\" is not a whole number from 0 to " + std::to_string(max));
        return *v;
    }
    double real(const YAML::Node& n, const std::string& field, double min, double max) const {
        const std::string t = text(n, field);
        const auto v = model::parse_finite_double(t);
        if (!v || *v < min || *v > max) fail(n, field, "\"" + t + "\" is not a number from " +
                                                         std::to_string(min) + " to " + std::to_string(max));
        return *v;
    }
    // A map node's keys must all be among `known`.
    void only(const YAML::Node& map, const std::string& field, const std::vector<std::string>& known) const {
        if (!map.IsMap()) fail(map, field, "expected a map of key: value");
        for (const auto& kv : map) {
            const std::string key = kv.first.Scalar();
            if (std::find(known.begin(), known.end(), key) == known.end()) {
                std::string list;
                for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
                fail(kv.first, field, "unknown key \"" + key + "\" (known: " + list + ")");
            }
        }
    }
    const YAML::Node need(const YAML::Node& map, const char* key, const std::string& field) const {
        const YAML::Node n = map[key];
        if (!n) fail(map, field, std::string("missing \"") + key + "\"");
        return n;
    }

private:
    std::string m_file;
};

struct Parser {
    Reader r;
    Scenario& s;
    std::set<std::string> checks;  // check points the programs name

    int symbol(const YAML::Node& n, const std::string& field) const {
        const std::string name = r.text(n, field);
        for (std::size_t i = 0; i < s.memory.size(); ++i)
            if (s.memory[i].first == name) return static_cast<int>(i);
        if (model::parse_u64(name, 0)) return -1;  // a guest-physical address
        r.fail(n, field, "\"" + name + "\" is neither a name under memory: nor an address");
    }

    void memory_operand(const YAML::Node& m, const std::string& field, Instr& in) const {
        const YAML::Node addr = r.need(m, "addr", field);
        in.symbol = symbol(addr, field + ".addr");
        in.a = in.symbol >= 0 ? 0 : r.number(addr, field + ".addr");
        if (m["offset"]) {
            if (in.symbol < 0) r.fail(m["offset"], field + ".offset", "an offset goes with a memory name");
            in.a = r.number(m["offset"], field + ".offset", 56);
        }
        if (m["size"]) {
            in.size = static_cast<unsigned>(r.number(m["size"], field + ".size", 8));
            if (in.size != 4 && in.size != 8) r.fail(m["size"], field + ".size", "4 or 8 bytes");
        }
    }

    // A value: a number, or "&name" / "&name + N": the guest-physical address of a memory
    // line (plus N), for pointers the guest stores or writes to an MSR (a UPID's address).
    void value_operand(const YAML::Node& n, const std::string& field, Instr& in) const {
        const std::string t = r.text(n, field);
        if (t.empty() || t[0] != '&') {
            in.b = r.number(n, field);
            return;
        }
        std::string name = t.substr(1), plus;
        if (const auto p = name.find('+'); p != std::string::npos) plus = name.substr(p + 1), name = name.substr(0, p);
        auto trim = [](std::string x) {
            x.erase(0, x.find_first_not_of(' '));
            x.erase(x.find_last_not_of(' ') + 1);
            return x;
        };
        name = trim(name), plus = trim(plus);
        for (std::size_t i = 0; i < s.memory.size(); ++i)
            if (s.memory[i].first == name) in.value_symbol = static_cast<int>(i);
        if (in.value_symbol < 0) r.fail(n, field, "\"" + name + "\" is not a name under memory:");
        in.b = 0;
        if (!plus.empty()) {
            const auto v = model::parse_u64(plus, 0);
            if (!v || *v > 63) r.fail(n, field, "\"" + t + "\": &name + N with N from 0 to 63");
            in.b = *v;
        }
    }

    static std::uint32_t icr_field(const Reader& r, const YAML::Node& n, const std::string& field,
                                   const std::vector<std::pair<std::string, std::uint32_t>>& names) {
        const std::string t = r.text(n, field);
        std::string list;
        for (const auto& [name, bits] : names) {
            if (name == t) return bits;
            list += (list.empty() ? "" : ", ") + name;
        }
        r.fail(n, field, "\"" + t + "\" (known: " + list + ")");
    }

    // send_ipi: the ICR a guest writes, from named fields (SDM 11.6.1) or `icr:` raw.
    void send_ipi(const YAML::Node& m, const std::string& field, Instr& in) const {
        r.only(m, field, {"vector", "dest", "delivery", "dest_mode", "level", "trigger", "shorthand", "icr"});
        in.op = Op::SendIpi;
        in.b = m["dest"] ? r.number(m["dest"], field + ".dest", 0xFFFFFFFF) : 0;
        if (m["icr"]) {
            in.a = r.number(m["icr"], field + ".icr", 0xFFFFFFFF);
            return;
        }
        std::uint32_t icr = static_cast<std::uint32_t>(r.number(r.need(m, "vector", field), field + ".vector", 255));
        if (m["delivery"])
            icr |= icr_field(r, m["delivery"], field + ".delivery",
                             {{"fixed", 0}, {"lowest", 1u << 8}, {"smi", 2u << 8}, {"nmi", 4u << 8},
                              {"init", 5u << 8}, {"sipi", 6u << 8}});
        if (m["dest_mode"])
            icr |= icr_field(r, m["dest_mode"], field + ".dest_mode", {{"physical", 0}, {"logical", 1u << 11}});
        icr |= m["level"] ? icr_field(r, m["level"], field + ".level", {{"assert", 1u << 14}, {"deassert", 0}})
                          : 1u << 14;
        if (m["trigger"])
            icr |= icr_field(r, m["trigger"], field + ".trigger", {{"edge", 0}, {"level", 1u << 15}});
        if (m["shorthand"])
            icr |= icr_field(r, m["shorthand"], field + ".shorthand",
                             {{"none", 0}, {"self", 1u << 18}, {"all", 2u << 18}, {"all_but_self", 3u << 18}});
        in.a = icr;
    }

    std::vector<Instr> program(const YAML::Node& list, const std::string& field, int depth = 0) {
        if (!list.IsSequence()) r.fail(list, field, "expected a list of instructions");
        std::vector<Instr> out;
        for (std::size_t i = 0; i < list.size(); ++i) {
            const YAML::Node item = list[i];
            const std::string f = field + "[" + std::to_string(i) + "]";
            out.push_back(instruction(item, f, depth));
        }
        return out;
    }

    Instr instruction(const YAML::Node& item, const std::string& f, int depth) {
        static const std::vector<std::pair<std::string, Op>> kSimple = {
            {"nop", Op::Nop}, {"sti", Op::Sti}, {"cli", Op::Cli}, {"hlt", Op::Hlt}, {"sti_hlt", Op::StiHlt},
            {"pause", Op::Pause}, {"mfence", Op::Mfence}, {"rdtsc", Op::Rdtsc}, {"eoi", Op::Eoi}, {"idle", Op::Idle},
            {"stui", Op::Stui}, {"clui", Op::Clui}, {"user_mode", Op::UserMode}, {"kernel_mode", Op::KernelMode},
            {"uintr_on", Op::UintrOn}, {"uintr_off", Op::UintrOff}};
        static const std::vector<std::string> kWithOperands = {
            "compute", "cpuid", "vmcall", "wrmsr", "rdmsr", "apic_write", "apic_read", "send_ipi", "store", "load",
            "lock_add", "lock_bts", "lock_btr", "xchg", "cmpxchg", "spin_until", "loop", "check", "senduipi"};
        auto known = [&] {
            std::string list;
            for (const auto& [n, op] : kSimple) list += (list.empty() ? "" : ", ") + n;
            for (const auto& n : kWithOperands) list += ", " + n;
            return list;
        };
        Instr in;
        in.where = r.where(item);
        if (item.IsScalar()) {
            for (const auto& [name, op] : kSimple)
                if (item.Scalar() == name) {
                    in.op = op;
                    return in;
                }
            r.fail(item, f, "unknown instruction \"" + item.Scalar() + "\" (known: " + known() + ")");
        }
        if (!item.IsMap() || item.size() != 1) r.fail(item, f, "expected an instruction: a name, or {name: operands}");
        const std::string name = item.begin()->first.Scalar();
        const YAML::Node v = item.begin()->second;
        const std::string g = f + "." + name;
        if (name == "compute") {
            in.op = Op::Compute, in.a = r.number(v, g, 1u << 30);
        } else if (name == "cpuid") {
            in.op = Op::Cpuid, in.a = r.number(v, g, 0xFFFFFFFF);
        } else if (name == "vmcall") {
            in.op = Op::Vmcall, in.a = r.number(v, g);
        } else if (name == "senduipi") {
            in.op = Op::Senduipi, in.a = r.number(v, g, 0xFFFFFFFF);
        } else if (name == "rdmsr") {
            in.op = Op::Rdmsr, in.a = r.number(v, g, 0xFFFFFFFF);
        } else if (name == "apic_read") {
            in.op = Op::ApicRead, in.a = r.number(v, g, 0xFF0);
        } else if (name == "wrmsr") {
            r.only(v, g, {"msr", "value"});
            in.op = Op::Wrmsr;
            in.a = r.number(r.need(v, "msr", g), g + ".msr", 0xFFFFFFFF);
            value_operand(r.need(v, "value", g), g + ".value", in);
        } else if (name == "apic_write") {
            r.only(v, g, {"reg", "value"});
            in.op = Op::ApicWrite;
            in.a = r.number(r.need(v, "reg", g), g + ".reg", 0xFF0);
            in.b = r.number(r.need(v, "value", g), g + ".value", 0xFFFFFFFF);
        } else if (name == "send_ipi") {
            send_ipi(v, g, in);
        } else if (name == "store" || name == "xchg" || name == "lock_add") {
            r.only(v, g, {"addr", "offset", "size", "value"});
            in.op = name == "store" ? Op::Store : name == "xchg" ? Op::Xchg : Op::LockAdd;
            memory_operand(v, g, in);
            if (in.op == Op::Store)
                value_operand(r.need(v, "value", g), g + ".value", in);
            else
                in.b = r.number(r.need(v, "value", g), g + ".value");
        } else if (name == "load") {
            r.only(v, g, {"addr", "offset", "size"});
            in.op = Op::Load;
            memory_operand(v, g, in);
        } else if (name == "lock_bts" || name == "lock_btr") {
            r.only(v, g, {"addr", "offset", "bit"});
            in.op = name == "lock_bts" ? Op::LockBts : Op::LockBtr;
            memory_operand(v, g, in);
            in.b = r.number(r.need(v, "bit", g), g + ".bit", 63);
        } else if (name == "cmpxchg") {
            r.only(v, g, {"addr", "offset", "expected", "new"});
            in.op = Op::Cmpxchg;
            memory_operand(v, g, in);
            in.b = r.number(r.need(v, "expected", g), g + ".expected");
            in.c = r.number(r.need(v, "new", g), g + ".new");
        } else if (name == "spin_until") {
            r.only(v, g, {"addr", "offset", "size", "eq", "ne", "ge", "le"});
            in.op = Op::SpinUntil;
            memory_operand(v, g, in);
            int conds = 0;
            for (const auto& [key, cond] : std::vector<std::pair<const char*, Cond>>{
                     {"eq", Cond::Eq}, {"ne", Cond::Ne}, {"ge", Cond::Ge}, {"le", Cond::Le}})
                if (v[key]) {
                    ++conds;
                    in.cond = cond;
                    in.b = r.number(v[key], g + "." + key);
                }
            if (conds != 1) r.fail(v, g, "one condition: eq, ne, ge or le");
        } else if (name == "loop") {
            r.only(v, g, {"times", "body"});
            if (depth >= 8) r.fail(v, g, "loops nest at most 8 deep");
            in.op = Op::Loop;
            in.a = r.number(r.need(v, "times", g), g + ".times", 1000000);
            in.body = program(r.need(v, "body", g), g + ".body", depth + 1);
        } else if (name == "check") {
            in.op = Op::Check;
            in.name = r.text(v, g);
            checks.insert(in.name);
        } else {
            r.fail(item, f, "unknown instruction \"" + name + "\" (known: " + known() + ")");
        }
        return in;
    }

    void vcpus(const YAML::Node& list) {
        if (!list.IsSequence() || list.size() == 0) r.fail(list, "vcpus", "expected a list of vCPUs");
        std::set<unsigned> ids;
        for (std::size_t i = 0; i < list.size(); ++i) {
            const YAML::Node n = list[i];
            const std::string f = "vcpus[" + std::to_string(i) + "]";
            r.only(n, f, {"id", "pcpu", "start", "sipi_vector", "program", "handlers", "user_handler"});
            VcpuSpec v;
            v.where = r.where(n);
            v.id = static_cast<unsigned>(r.number(r.need(n, "id", f), f + ".id", 4095));
            if (!ids.insert(v.id).second) r.fail(n["id"], f + ".id", "vCPU " + std::to_string(v.id) + " twice");
            v.pcpu = n["pcpu"] ? static_cast<unsigned>(r.number(n["pcpu"], f + ".pcpu", 4095)) : 0;
            if (v.pcpu >= s.pcpus)
                r.fail(n["pcpu"], f + ".pcpu", "CPU " + std::to_string(v.pcpu) + " of " + std::to_string(s.pcpus) +
                                                   " (platform.pcpus)");
            if (n["start"]) {
                const std::string start = r.text(n["start"], f + ".start");
                if (start != "runnable" && start != "uninitialized")
                    r.fail(n["start"], f + ".start", "runnable or uninitialized");
                v.uninitialized = start == "uninitialized";
            }
            if (v.uninitialized != n["sipi_vector"].IsDefined())
                r.fail(n, f, "an uninitialized vCPU names the sipi_vector its program starts at, and only it");
            if (v.uninitialized) {
                if (v.id == 0) r.fail(n["start"], f + ".start", "vCPU 0 starts runnable (its program's end ends the run)");
                v.sipi_vector = static_cast<std::uint8_t>(r.number(n["sipi_vector"], f + ".sipi_vector", 255));
            }
            v.program = program(r.need(n, "program", f), f + ".program");
            if (n["handlers"]) {
                const YAML::Node h = n["handlers"];
                if (!h.IsMap()) r.fail(h, f + ".handlers", "expected vector: [instructions]");
                for (const auto& kv : h) {
                    const std::uint64_t vec = r.number(kv.first, f + ".handlers", 255);
                    v.handlers[static_cast<std::uint8_t>(vec)] =
                        program(kv.second, f + ".handlers." + kv.first.Scalar());
                }
            }
            if (n["user_handler"]) {
                v.user_handler = program(n["user_handler"], f + ".user_handler");
                v.has_user_handler = true;
            }
            s.vcpus.push_back(std::move(v));
        }
        if (!ids.count(0)) r.fail(list, "vcpus", "no vCPU 0 (its program's end ends the run)");
        std::stable_sort(s.vcpus.begin(), s.vcpus.end(), [](const VcpuSpec& a, const VcpuSpec& b) { return a.id < b.id; });
    }

    // host: events in time order, each `at: CYCLES` and one action. They run on a
    // housekeeping CPU: `platform.host_cpu`, or one added after the scenario's CPUs.
    void host_events(const YAML::Node& list, const YAML::Node& host_cpu) {
        using K = HostEvent::Kind;
        if (!list.IsSequence()) r.fail(list, "host", "expected a list of {at: CYCLES, ACTION: ...}");
        auto vcpu_of = [&](const YAML::Node& m, const std::string& f) {
            const YAML::Node n = r.need(m, "vcpu", f);
            const auto id = static_cast<unsigned>(r.number(n, f + ".vcpu", 4095));
            if (std::none_of(s.vcpus.begin(), s.vcpus.end(), [&](const VcpuSpec& v) { return v.id == id; }))
                r.fail(n, f + ".vcpu", "no vCPU " + std::to_string(id) + " in vcpus");
            return id;
        };
        double previous = 0;
        for (std::size_t i = 0; i < list.size(); ++i) {
            const YAML::Node n = list[i];
            const std::string f = "host[" + std::to_string(i) + "]";
            r.only(n, f, {"at", "preempt", "block", "set_apic_id", "msi", "host_ipi", "migrate", "check"});
            if (n.size() != 2)
                r.fail(n, f, "expected `at:` and one action (preempt, block, set_apic_id, msi, host_ipi, migrate, check)");
            HostEvent e;
            e.where = r.where(n);
            e.at = r.real(r.need(n, "at", f), f + ".at", 0, 1e15);
            if (e.at < previous) r.fail(n["at"], f + ".at", "events are listed in time order (the one before is at " +
                                                              std::to_string(static_cast<std::uint64_t>(previous)) + ")");
            previous = e.at;
            if (n["preempt"] || n["block"]) {
                const bool preempt = n["preempt"].IsDefined();
                const YAML::Node m = preempt ? n["preempt"] : n["block"];
                const std::string g = f + (preempt ? ".preempt" : ".block");
                r.only(m, g, {"vcpu", "cycles"});
                e.kind = preempt ? K::Preempt : K::Block;
                e.vcpu = vcpu_of(m, g);
                e.cycles = r.real(r.need(m, "cycles", g), g + ".cycles", preempt ? 1 : 0, 1e12);
            } else if (const YAML::Node m = n["set_apic_id"]) {
                const std::string g = f + ".set_apic_id";
                r.only(m, g, {"vcpu", "id"});
                if (s.x2apic)
                    r.fail(m, g, "an x2APIC guest's APIC ID is its vCPU ID: KVM refuses another one (KVM_SET_LAPIC, -EINVAL)");
                e.kind = K::SetApicId;
                e.vcpu = vcpu_of(m, g);
                e.apic_id = static_cast<std::uint32_t>(r.number(r.need(m, "id", g), g + ".id", 254));
            } else if (const YAML::Node m = n["msi"]) {
                const std::string g = f + ".msi";
                r.only(m, g, {"vector", "dest", "delivery", "dest_mode", "level", "trigger"});
                Instr in;
                send_ipi(m, g, in);
                e.kind = K::Msi;
                e.icr = static_cast<std::uint32_t>(in.a);
                e.dest = static_cast<std::uint32_t>(in.b);
            } else if (const YAML::Node m = n["migrate"]) {
                const std::string g = f + ".migrate";
                r.only(m, g, {"vcpu", "pcpu"});
                e.kind = K::Migrate;
                e.vcpu = vcpu_of(m, g);
                e.pcpu = static_cast<unsigned>(r.number(r.need(m, "pcpu", g), g + ".pcpu", 4095));
                if (e.pcpu >= s.pcpus)
                    r.fail(m["pcpu"], g + ".pcpu", "CPU " + std::to_string(e.pcpu) + " of " + std::to_string(s.pcpus) +
                                                        " (platform.pcpus)");
            } else if (const YAML::Node m = n["host_ipi"]) {
                const std::string g = f + ".host_ipi";
                r.only(m, g, {"pcpu"});
                e.kind = K::HostIpi;
                e.pcpu = static_cast<unsigned>(r.number(r.need(m, "pcpu", g), g + ".pcpu", 4095));
                if (e.pcpu >= s.pcpus)
                    r.fail(m["pcpu"], g + ".pcpu", "CPU " + std::to_string(e.pcpu) + " of " + std::to_string(s.pcpus) +
                                                        " (platform.pcpus)");
            } else {
                e.kind = K::Check;
                e.name = r.text(n["check"], f + ".check");
                checks.insert(e.name);
            }
            s.host.push_back(std::move(e));
        }
        if (host_cpu) {
            s.host_cpu = static_cast<unsigned>(r.number(host_cpu, "platform.host_cpu", 4095));
            if (s.host_cpu >= s.pcpus)
                r.fail(host_cpu, "platform.host_cpu", "CPU " + std::to_string(s.host_cpu) + " of " +
                                                          std::to_string(s.pcpus) + " (platform.pcpus)");
            for (const VcpuSpec& v : s.vcpus)
                if (v.pcpu == s.host_cpu)
                    r.fail(host_cpu, "platform.host_cpu", "vCPU " + std::to_string(v.id) +
                                                              " runs on it; host events need a CPU without vCPUs");
            for (std::size_t i = 0; i < s.host.size(); ++i)
                if (s.host[i].kind == K::Migrate && s.host[i].pcpu == s.host_cpu)
                    r.fail(list[i], "host[" + std::to_string(i) + "].migrate.pcpu",
                           "the housekeeping CPU (platform.host_cpu) runs no vCPU");
        } else {
            s.host_cpu = s.pcpus++;  // a housekeeping CPU after the scenario's own
        }
    }

    void expectations(const YAML::Node& list) {
        using K = Expectation::Kind;
        if (!list.IsSequence()) r.fail(list, "expect", "expected a list of expectations");
        for (std::size_t i = 0; i < list.size(); ++i) {
            const YAML::Node n = list[i];
            const std::string f = "expect[" + std::to_string(i) + "]";
            r.only(n, f, {"at", "vcpu", "exits", "received", "activity", "mp_state", "rvi", "svi", "vppr", "virr", "visr", "pid",
                          "exit_reason", "exit_qualification", "memory", "stat", "user_received", "uirr", "uif"});
            Expectation base;
            base.where = r.where(n);
            if (n["at"]) {
                base.at = r.text(n["at"], f + ".at");
                if (!checks.count(base.at))
                    r.fail(n["at"], f + ".at", "no program has the check point \"" + base.at + "\"");
            }
            const bool per_vcpu = n["vcpu"].IsDefined();
            if (per_vcpu) {
                base.vcpu = static_cast<unsigned>(r.number(n["vcpu"], f + ".vcpu", 4095));
                if (std::none_of(s.vcpus.begin(), s.vcpus.end(), [&](const VcpuSpec& v) { return v.id == base.vcpu; }))
                    r.fail(n["vcpu"], f + ".vcpu", "no vCPU " + std::to_string(base.vcpu));
            }
            const std::string who = "vCPU " + std::to_string(base.vcpu) + " ";
            auto add = [&](K kind, std::uint64_t key, std::uint64_t value, const std::string& what) {
                Expectation e = base;
                e.kind = kind, e.key = key, e.value = value, e.what = what;
                s.expectations.push_back(e);
            };
            auto need_vcpu = [&](const char* key) {
                if (!per_vcpu) r.fail(n[key], f + "." + key, "needs vcpu:");
            };
            auto value_of = [&](const YAML::Node& v, const std::string& field) { return r.number(v, field); };
            for (const auto& kv : n) {
                const std::string key = kv.first.Scalar();
                const YAML::Node v = kv.second;
                const std::string g = f + "." + key;
                if (key == "at" || key == "vcpu") continue;
                if (key == "memory" || key == "stat") {
                    if (!v.IsMap()) r.fail(v, g, "expected name: value");
                    for (const auto& m : v) {
                        const std::string name = m.first.Scalar();
                        if (key == "memory" &&
                            std::none_of(s.memory.begin(), s.memory.end(), [&](const auto& p) { return p.first == name; }))
                            r.fail(m.first, g, "\"" + name + "\" is not a name under memory:");
                        Expectation e = base;
                        e.kind = key == "memory" ? K::Memory : K::Stat;
                        e.symbol = name;
                        e.value = value_of(m.second, g + "." + name);
                        e.what = key + " " + name + " == " + r.text(m.second, g);
                        s.expectations.push_back(e);
                    }
                    continue;
                }
                need_vcpu(key.c_str());
                if (key == "exits") {
                    if (!v.IsMap()) r.fail(v, g, "expected reason: count");
                    for (const auto& m : v) {
                        const std::string reason = m.first.Scalar();
                        std::uint64_t number;
                        if (const auto known = vmcs::find_exit_reason_by_name(reason))
                            number = static_cast<std::uint64_t>(*known);
                        else if (const auto n2 = model::parse_u64(reason, 0); n2 && *n2 < 65536)
                            number = *n2;
                        else
                            r.fail(m.first, g, "\"" + reason + "\" is not an exit reason (a number, or a name as "
                                               "MSR_WRITE, APIC_WRITE, HLT, EXTERNAL_INTERRUPT)");
                        add(K::Exits, number, value_of(m.second, g + "." + reason),
                            who + "exits " + reason + " == " + r.text(m.second, g));
                    }
                } else if (key == "user_received") {
                    if (!v.IsMap()) r.fail(v, g, "expected user vector: count");
                    for (const auto& m : v)
                        add(K::UserReceived, r.number(m.first, g, 63), value_of(m.second, g + "." + m.first.Scalar()),
                            who + "user_received " + m.first.Scalar() + " == " + r.text(m.second, g));
                } else if (key == "uirr" || key == "uif") {
                    add(key == "uirr" ? K::Uirr : K::Uif, 0, key == "uif" ? r.number(v, g, 1) : value_of(v, g),
                        who + key + " == " + r.text(v, g));
                } else if (key == "received" || key == "virr" || key == "visr") {
                    if (!v.IsMap()) r.fail(v, g, "expected vector: value");
                    for (const auto& m : v) {
                        const std::uint64_t vec = r.number(m.first, g, 255);
                        const K kind = key == "received" ? K::Received : key == "virr" ? K::VirrHas : K::VisrHas;
                        add(kind, vec, value_of(m.second, g + "." + m.first.Scalar()),
                            who + key + " " + m.first.Scalar() + " == " + r.text(m.second, g));
                    }
                } else if (key == "pid") {
                    r.only(v, g, {"on", "sn", "nv", "ndst", "pir"});
                    for (const auto& m : v) {
                        const std::string field = m.first.Scalar();
                        if (field == "pir") {
                            if (!m.second.IsMap()) r.fail(m.second, g + ".pir", "expected vector: 0 or 1");
                            for (const auto& p : m.second)
                                add(K::PidPirHas, r.number(p.first, g + ".pir", 255), value_of(p.second, g + ".pir"),
                                    who + "PID.PIR " + p.first.Scalar() + " == " + r.text(p.second, g));
                            continue;
                        }
                        const K kind = field == "on" ? K::PidOn : field == "sn" ? K::PidSn : field == "nv" ? K::PidNv : K::PidNdst;
                        add(kind, 0, value_of(m.second, g + "." + field),
                            who + "PID." + field + " == " + r.text(m.second, g));
                    }
                } else if (key == "activity") {
                    const std::uint64_t state = icr_field(r, v, g, {{"active", 0}, {"hlt", 1}, {"shutdown", 2},
                                                                    {"wait_for_sipi", 3}});
                    add(K::Activity, 0, state, who + "activity " + r.text(v, g));
                } else if (key == "mp_state") {
                    const std::uint64_t state = icr_field(r, v, g, {{"runnable", 0}, {"uninitialized", 1},
                                                                    {"init_received", 2}, {"halted", 3}});
                    add(K::MpState, 0, state, who + "mp_state " + r.text(v, g));
                } else if (key == "exit_reason") {
                    const std::string reason = r.text(v, g);
                    std::uint64_t number;
                    if (const auto known = vmcs::find_exit_reason_by_name(reason))
                        number = static_cast<std::uint64_t>(*known);
                    else
                        number = r.number(v, g, 65535);
                    add(K::ExitReason, 0, number, who + "last exit reason " + reason);
                } else {
                    const K kind = key == "rvi" ? K::Rvi : key == "svi" ? K::Svi : key == "vppr" ? K::Vppr
                                                                                   : K::ExitQualification;
                    add(kind, 0, value_of(v, g), who + key + " == " + r.text(v, g));
                }
            }
        }
    }
};

}  // namespace

ScenarioFile load_scenario_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw model::ConfigError(path + ": cannot open the scenario file");
    std::stringstream text;
    text << in.rdbuf();
    return parse_scenario_text(text.str(), path);
}

ScenarioFile parse_scenario_text(const std::string& text, const std::string& path) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        throw model::ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
    }
    auto scenario = std::make_shared<Scenario>();
    Parser p{Reader(path), *scenario, {}};
    const Reader& r = p.r;
    if (!root.IsMap()) r.fail(root, "(top)", "expected a map with name, platform, vcpus, expect");
    r.only(root, "(top)", {"name", "description", "platform", "memory", "vcpus", "host", "expect"});
    ScenarioFile file;
    scenario->name = r.text(r.need(root, "name", "(top)"), "name");
    scenario->where = r.where(root);
    if (root["description"]) scenario->description = r.text(root["description"], "description");
    const YAML::Node platform = r.need(root, "platform", "(top)");
    r.only(platform, "platform", {"apic", "pcpus", "profile", "set", "quantum", "max_sim_time", "host_cpu"});
    if (platform["apic"]) {
        const std::string apic = r.text(platform["apic"], "platform.apic");
        if (apic != "xapic" && apic != "x2apic") r.fail(platform["apic"], "platform.apic", "xapic or x2apic");
        scenario->x2apic = apic == "x2apic";
    }
    scenario->pcpus = platform["pcpus"] ? static_cast<unsigned>(r.number(platform["pcpus"], "platform.pcpus", 4096)) : 1;
    if (scenario->pcpus == 0) r.fail(platform["pcpus"], "platform.pcpus", "at least 1");
    if (platform["profile"]) file.profile = r.text(platform["profile"], "platform.profile");
    if (platform["set"]) {
        const YAML::Node sets = platform["set"];
        if (!sets.IsSequence()) r.fail(sets, "platform.set", "expected a list of KEY=VALUE");
        for (const auto& item : sets) file.sets.push_back(r.text(item, "platform.set"));
    }
    if (platform["quantum"]) file.quantum_cycles = r.real(platform["quantum"], "platform.quantum", 0, 1e9);
    if (platform["max_sim_time"])
        file.max_simulated_seconds = r.real(platform["max_sim_time"], "platform.max_sim_time", 1e-9, 3600);
    if (root["memory"]) {
        const YAML::Node mem = root["memory"];
        if (!mem.IsMap()) r.fail(mem, "memory", "expected name: initial value");
        for (const auto& kv : mem) {
            const std::string name = kv.first.Scalar();
            if (name.empty() || model::parse_u64(name, 0)) r.fail(kv.first, "memory", "a name, not a number: \"" + name + "\"");
            scenario->memory.emplace_back(name, r.number(kv.second, "memory." + name));
        }
    }
    p.vcpus(r.need(root, "vcpus", "(top)"));
    if (root["host"])
        p.host_events(root["host"], platform["host_cpu"]);
    else if (platform["host_cpu"])
        r.fail(platform["host_cpu"], "platform.host_cpu", "names where host events run, and there are none (host:)");
    if (root["expect"]) p.expectations(root["expect"]);
    file.scenario = scenario;
    return file;
}

RunSpec scenario_spec(const ScenarioFile& file) {
    RunSpec spec;
    try {
        spec.profile = load_profile(file.profile);
    } catch (const model::ConfigError& e) {
        throw model::ConfigError(file.scenario->where.file + ": platform.profile: " + e.what());
    }
    spec.kvm.enable_ipiv = spec.profile.features.ipi_virtualization;
    spec.workload = "scenario:" + file.scenario->name;
    spec.scenario = file.scenario;
    spec.config.x2apic = file.scenario->x2apic;
    spec.config.vcpus = static_cast<unsigned>(file.scenario->vcpus.size());
    spec.config.pcpus = file.scenario->pcpus;
    spec.quantum_cycles = file.quantum_cycles;
    spec.max_simulated_seconds = file.max_simulated_seconds;
    spec.stream = spec.workload;
    try {
        apply_sets(file.sets, spec);
    } catch (const model::ConfigError& e) {
        throw model::ConfigError(file.scenario->where.file + ": platform.set: " + e.what());
    }
    return spec;
}

}  // namespace vtx::sim
