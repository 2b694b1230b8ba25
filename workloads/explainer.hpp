#pragma once
// `vtxsim explain`: records every microcode and VMM step of a run (through the tracer's
// sink) with what it changed in each vCPU's interrupt state (RVI, SVI, the highest VIRR and
// VISR bits, the PID's ON, SN, NV and PIR, the virtual ICR, activity, mp_state, the VMCS's
// exit information, interruptibility and entry event), and the
// cycles per processor and flow. A workload marks the iterations of its measurement loop
// (GuestCpu::mark); with marks, the explanation is the last complete iteration.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vmm/kvm.hpp"

namespace vtx::workloads {

class Explainer {
public:
    // Installs itself as the tracer's sink (every flag enabled).
    Explainer(vmm::Kvm& kvm, vmm::Vm& vm);
    // The steps (of the window) and the cycles per processor and flow.
    std::string text() const;
    // The window's cycles per step (memory accesses summed as one), for a stacked plot.
    std::map<std::string, double> step_cycles() const;

private:
    struct Snapshot {
        int virr = -1, visr = -1;
        std::uint64_t rvi = 0, svi = 0, on = 0, sn = 0, nv = 0, activity = 0, mp_state = 0;
        std::vector<std::uint8_t> pir;
        std::uint32_t icr_lo = 0, icr_hi = 0;
        // VMCS fields a step may change: exit information, interruptibility, entry event.
        std::uint64_t exit_reason = 0, exit_qualification = 0, exit_intr_info = 0, interruptibility = 0,
                      entry_intr_info = 0;
    };
    struct Line {
        std::string text;  // the step's line and the changes found under it
        std::string step;  // its name
        int cpu = 0;
        std::string flag;
        double cost = 0;
        bool mark = false;
    };
    Snapshot snapshot(vmm::Vcpu& v) const;
    std::pair<std::size_t, std::size_t> window() const;  // [begin, end) of m_lines
    std::string changes();
    void step(const char* flag, double cycle, int cpu, const char* mode, const char* what, const char* where,
              double cost);

    vmm::Kvm& m_kvm;
    vmm::Vm& m_vm;
    std::vector<Snapshot> m_last;
    std::vector<Line> m_lines;
};

}  // namespace vtx::workloads
