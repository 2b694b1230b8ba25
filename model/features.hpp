#pragma once
// What a CPU profile says the processor implements. vmcs/ builds the VMX capability
// MSRs from this; cpu/ consults it for behaviour that has no VMCS control.
#include <cstdint>

namespace vtx::model {

struct CpuFeatures {
    // VMX execution-control features (each one an allowed-1 setting in the capability MSRs).
    bool secondary_controls = true;
    bool tertiary_controls = false;            // primary bit 17, IA32_VMX_PROCBASED_CTLS3 (0x492)
    bool ipi_virtualization = false;           // tertiary bit 4
    bool tpr_shadow = true;                    // primary bit 21
    bool msr_bitmaps = true;                   // primary bit 28
    bool virtualize_apic_accesses = true;      // secondary bit 0
    bool virtualize_x2apic_mode = true;        // secondary bit 4
    bool apic_register_virtualization = true;  // secondary bit 8
    bool virtual_interrupt_delivery = true;    // secondary bit 9
    bool posted_interrupts = true;             // pin-based bit 7
    // IA32_VMX_MISC activity-state support (bits 6, 7, 8).
    bool activity_hlt = true;
    bool activity_shutdown = true;
    bool activity_wait_for_sipi = true;
    // Physical-address width (CPUID.80000008H:EAX[7:0]).
    unsigned physical_address_width = 46;
    // VMCS revision identifier reported in IA32_VMX_BASIC[30:0].
    std::uint32_t vmcs_revision_id = 0x4;

    // --- Added for vmcs/ (capability MSRs and field existence); see docs/vmcs-choices.md. ---
    bool ept = true;                      // secondary bit 1, IA32_VMX_EPT_VPID_CAP (0x48C)
    bool vpid = true;                     // secondary bit 5, IA32_VMX_EPT_VPID_CAP[43:32]
    bool unrestricted_guest = true;       // secondary bit 7 (only with ept)
    bool vm_functions = false;            // secondary bit 13, IA32_VMX_VMFUNC (0x491)
    bool preemption_timer = true;         // pin-based bit 6, exit-control bit 22
    unsigned preemption_timer_rate = 5;   // IA32_VMX_MISC[4:0]: timer ticks every 2^rate TSC
    bool secondary_exit_controls = false; // exit-control bit 31, IA32_VMX_EXIT_CTLS2 (0x493)
    bool vmwrite_to_exit_info = false;    // IA32_VMX_MISC[29]: VMWRITE may write exit-info fields

    // --- Speculative-execution properties the host kernel's mitigations depend on
    // (kvm.mitigations; Intel's affected-processor list, docs/vmm.md "Mitigations"). Both
    // profiles are eIBRS parts not affected by L1TF, MDS or TAA.
    bool pbrsb_affected = true;  // post-barrier RSB predictions (CVE-2022-26373): the kernel guards VM exits
    bool bhi_ctrl = false;       // IA32_SPEC_CTRL.BHI_DIS_S exists (Golden Cove on): BHI without the loop

    // CPUID.(EAX=7,ECX=0):EDX[5] UINTR: user interrupts (SENDUIPI, UIRET, STUI, CLUI, the
    // IA32_UINTR_* MSRs); Sapphire Rapids is the first server part with them.
    bool uintr = false;
};

}  // namespace vtx::model
