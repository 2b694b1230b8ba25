#pragma once
// Test support for tests of the KVM-like VMM and of the workloads: one simulated machine
// assembled as sim/experiment.cpp run_in_process does it (a Platform from a shipped
// profile, host local APICs in x2APIC mode with SVR software-enabled, the Kvm, one VM),
// for guest programs the test writes itself or for a registered workload.
//
// One rig per test case (SystemC allows one elaboration per process; ctest runs every test
// case in its own process). Guest programs must not use Catch assertions (they run on
// SystemC threads): they record what they see, and the test body checks after run().
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include <systemc>

#include "apic/local_apic.hpp"
#include "apic/registers.hpp"
#include "cpu/guest.hpp"
#include "cpu/platform.hpp"
#include "model/profile.hpp"
#include "vmcs/exit_info.hpp"
#include "vmm/kvm.hpp"

namespace vtx::test {

// An exit reason as the number exit counts are kept by.
inline std::uint16_t r(vmcs::ExitReason e) { return static_cast<std::uint16_t>(e); }

inline model::CpuProfile load_profile(const std::string& name) {
    return model::CpuProfile::load(std::string(VTX_SOURCE_DIR) + "/profiles/" + name + ".json");
}

// Where the rig registers the program of vCPU `id`.
inline constexpr std::uint64_t kRigEntry = 0x100000;
inline constexpr std::uint64_t rig_entry(unsigned id) { return kRigEntry + 0x1000 * std::uint64_t{id}; }

class KvmRig {
public:
    explicit KvmRig(unsigned pcpus, vmm::KvmParams params = {}, bool x2apic = true,
                    const std::string& profile = "spr")
        : KvmRig(pcpus, params, x2apic, load_profile(profile)) {}
    KvmRig(unsigned pcpus, vmm::KvmParams params, bool x2apic, const model::CpuProfile& profile) {
        sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
        m_platform = std::make_unique<cpu::Platform>("platform", profile, pcpus);
        m_platform->bring_up_host_apics(params.host_x2apic);
        m_kvm = std::make_unique<vmm::Kvm>(*m_platform, params);
        m_vm = &m_kvm->create_vm(x2apic);
    }

    cpu::Platform& platform() { return *m_platform; }
    vmm::Kvm& kvm() { return *m_kvm; }
    vmm::Vm& vm() { return *m_vm; }
    vmm::Vcpu& vcpu(unsigned index) { return *m_vm->vcpus().at(index); }

    // vCPU `id` on physical CPU `pcpu`, running `program` from the start (RUNNABLE).
    vmm::Vcpu& add_vcpu(unsigned id, unsigned pcpu, cpu::GuestProgram program) {
        vmm::Vcpu& v = m_vm->create_vcpu(id, pcpu);
        v.set_entry_point(rig_entry(id));
        m_vm->add_code(rig_entry(id), std::move(program));
        return v;
    }

    // A 64-byte line of guest memory (zeroed).
    std::uint64_t alloc_line() { return m_vm->alloc_guest(64, 64); }
    std::uint64_t peek64(std::uint64_t gpa) { return m_platform->memory().peek64(m_vm->gpa_to_hpa(gpa)); }
    std::uint64_t stat(const std::string& name) { return m_platform->stats().value(name); }

    // Runs until vCPU 0's program returns. False on a simulation error (error()) or if
    // vCPU 0 has not finished after `max_seconds` of simulated time.
    bool run(double max_seconds = 0.05) {
        bool finished = false;
        m_kvm->on_guest_finished = [&](vmm::Vcpu& v) {
            if (v.id() == 0) {
                finished = true;
                sc_core::sc_stop();
            }
        };
        m_kvm->start();
        try {
            sc_core::sc_start(sc_core::sc_time(max_seconds, sc_core::SC_SEC));
        } catch (const std::exception& e) {
            m_error = e.what();
            return false;
        }
        if (!finished) m_error = "vCPU 0 did not finish within the simulated time";
        return finished;
    }
    const std::string& error() const { return m_error; }

private:
    std::unique_ptr<cpu::Platform> m_platform;
    std::unique_ptr<vmm::Kvm> m_kvm;
    vmm::Vm* m_vm = nullptr;
    std::string m_error;
};

}  // namespace vtx::test
