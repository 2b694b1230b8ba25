#pragma once
// Step-by-step trace of microcode flows and VMM paths (`--trace`), and gem5-style named
// debug flags (`--debug=apic,vmx,pi,kvm`). Off by default; costs nothing when off.
#include <cstdio>
#include <functional>
#include <set>
#include <string>

namespace vtx::model {

class Tracer {
public:
    bool enabled(const char* flag) const {
        return m_all || (!m_flags.empty() && m_flags.count(flag));
    }
    bool any() const { return m_any; }  // asked on every step: one flag
    void enable_all() { m_all = m_any = true; }
    void enable(const std::string& flag) {
        m_flags.insert(flag);
        m_any = true;
    }
    void set_output(std::FILE* f) { m_out = f; }
    // Instead of printing, hand every line to `sink` (vtxsim explain).
    using Sink = std::function<void(const char* flag, double cycle, int cpu, const char* mode, const char* step,
                                    const char* where, double cost)>;
    void set_sink(Sink sink) { m_sink = std::move(sink); }
    // One line: cycle, processor, mode, step, SDM section (or KVM function).
    void line(const char* flag, double cycle, int cpu, const char* mode, const char* step,
              const char* where, double cost) const {
        if (!enabled(flag)) return;
        if (m_sink) {
            m_sink(flag, cycle, cpu, mode, step, where, cost);
            return;
        }
        std::fprintf(m_out, "%12.0f cpu%-3d %-8s %-5s %-44s %-28s +%.0f\n", cycle, cpu, mode, flag,
                     step, where, cost);
    }

private:
    bool m_any = false;  // m_all or a flag enabled
    bool m_all = false;
    std::set<std::string> m_flags;
    std::FILE* m_out = stdout;
    Sink m_sink;
};

}  // namespace vtx::model
