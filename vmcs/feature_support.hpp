#pragma once
// Which VMX features a CpuFeatures set effectively offers. A secondary control exists only
// if "activate secondary controls" may be 1, a tertiary one only if "activate tertiary
// controls" may be 1; these predicates fold that in, so the capability MSRs
// (capabilities.cpp) and field existence (fields.cpp) agree by construction.
#include "model/features.hpp"

namespace vtx::vmcs {

using model::CpuFeatures;

constexpr bool supports_secondary_controls(const CpuFeatures& f) { return f.secondary_controls; }
constexpr bool supports_tertiary_controls(const CpuFeatures& f) { return f.tertiary_controls; }
constexpr bool supports_tpr_shadow(const CpuFeatures& f) { return f.tpr_shadow; }
constexpr bool supports_msr_bitmaps(const CpuFeatures& f) { return f.msr_bitmaps; }
constexpr bool supports_posted_interrupts(const CpuFeatures& f) { return f.posted_interrupts; }
constexpr bool supports_preemption_timer(const CpuFeatures& f) { return f.preemption_timer; }
constexpr bool supports_secondary_exit_controls(const CpuFeatures& f) {
    return f.secondary_exit_controls;
}

constexpr bool supports_virtualize_apic_accesses(const CpuFeatures& f) {
    return f.secondary_controls && f.virtualize_apic_accesses;
}
constexpr bool supports_virtualize_x2apic_mode(const CpuFeatures& f) {
    return f.secondary_controls && f.virtualize_x2apic_mode;
}
constexpr bool supports_apic_register_virtualization(const CpuFeatures& f) {
    return f.secondary_controls && f.apic_register_virtualization;
}
constexpr bool supports_virtual_interrupt_delivery(const CpuFeatures& f) {
    return f.secondary_controls && f.virtual_interrupt_delivery;
}
constexpr bool supports_ept(const CpuFeatures& f) { return f.secondary_controls && f.ept; }
constexpr bool supports_vpid(const CpuFeatures& f) { return f.secondary_controls && f.vpid; }
constexpr bool supports_unrestricted_guest(const CpuFeatures& f) {
    return supports_ept(f) && f.unrestricted_guest;
}
constexpr bool supports_vm_functions(const CpuFeatures& f) {
    return f.secondary_controls && f.vm_functions;
}
constexpr bool supports_eptp_switching(const CpuFeatures& f) {
    return supports_vm_functions(f) && supports_ept(f);
}
constexpr bool supports_ipi_virtualization(const CpuFeatures& f) {
    return f.tertiary_controls && f.ipi_virtualization;
}

}  // namespace vtx::vmcs
