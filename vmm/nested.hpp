#pragma once
// Nested VMX in the KVM-like VMM (L0), reduced to what an L1 hypervisor that does not
// monitor the local APIC needs to start its L2 guest's APs with INIT-SIPI-SIPI: KVM
// commit bf0cd88ce363 "KVM: x86: emulate wait-for-SIPI and SIPI-VMExit" (Yadong Qi, 2020)
// with the 2022 fall-through fix "KVM: nVMX: Ignore SIPI that arrives in L2 when vCPU is
// not in WFS" (kvm-reference.md section 5, vtx-semantics.md sections 8.4-8.6).
//
// L1 runs on the vCPU's own context (vmcs01). Its VMX instructions exit (reasons 19-27)
// and L0 emulates them on a vmcs12 it owns; L1's VMLAUNCH/VMRESUME makes L0 run L2 on a
// vmcs02 (a second hardware context of the vCPU). INIT and SIPI latched for a vCPU in
// guest mode become VM exits to L1 (vmx_check_nested_events). What is simplified is listed
// in docs/nested.md.
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/guest_context.hpp"
#include "model/features.hpp"
#include "vmcs/vmcs.hpp"

namespace vtx::vmm {

// ---- vmx_check_nested_events (nested.c), INIT/SIPI part, as a plain function ----------
// What the function sees: the vCPU's latched INIT and SIPI (KVM_APIC_INIT / KVM_APIC_SIPI
// in apic->pending_events), whether mp_state is INIT_RECEIVED (KVM's wait-for-SIPI), and
// block_nested_events (a nested VM entry is pending or an event needs re-injection).
struct NestedEventInput {
    bool init_pending = false;
    bool sipi_pending = false;
    std::uint8_t sipi_vector = 0;
    bool init_received = false;        // mp_state == KVM_MP_STATE_INIT_RECEIVED
    bool block_nested_events = false;  // nested_run_pending || event re-injection
};

enum class NestedEventAction {
    None,              // no INIT/SIPI: fall through to the lower-priority events
    Busy,              // -EBUSY: nested events are blocked; nothing is cleared, retry later
    InitVmExit,        // INIT cleared; synthesize an INIT VM exit (reason 3, qualification 0)
    InitInWaitForSipi, // INIT cleared; blocked in wait-for-SIPI: no exit (SDM 25.2)
    SipiVmExit,        // SIPI cleared; synthesize a SIPI VM exit (reason 4, qualification = vector)
    SipiIgnored,       // SIPI cleared outside wait-for-SIPI: ignored, falls through (2022 fix)
};

struct NestedEventDecision {
    NestedEventAction action = NestedEventAction::None;
    bool clear_init = false;
    bool clear_sipi = false;
    std::uint64_t exit_qualification = 0;  // SipiVmExit: sipi_vector & 0xFF
    // The caller goes on to the lower-priority events (exceptions, MTF, preemption
    // timer, SMI, NMI, interrupts): true for None and SipiIgnored only; after an INIT
    // (exit or not) and after a SIPI exit the function returns.
    bool falls_through = true;
};

// One step of vmx_check_nested_events in its priority order: a pending INIT first
// (exit 3 unless mp_state is already INIT_RECEIVED), then a pending SIPI (exit 4 with the
// vector in wait-for-SIPI, otherwise ignored and fall through).
NestedEventDecision vmx_check_nested_events(const NestedEventInput& in);

// vmx_apic_init_signal_blocked (vmx.c): INIT is blocked in L1's VMX root operation only.
constexpr bool vmx_apic_init_signal_blocked(bool vmxon, bool guest_mode) { return vmxon && !guest_mode; }

// ---- per-vCPU nested state (struct nested_vmx) ----------------------------------------
inline constexpr std::uint64_t kInvalidVmptr = ~std::uint64_t{0};  // INVALID_GPA

// A VM exit L0 synthesized or reflected to L1, as L1 finds it in vmcs12.
struct L1Exit {
    std::uint32_t reason = 0;  // the full exit-reason field
    std::uint64_t qualification = 0;
    std::uint16_t basic() const { return static_cast<std::uint16_t>(reason & 0xFFFF); }
};

struct NestedVmx {
    NestedVmx(std::string l2_name, const model::CpuFeatures& features);

    bool vmxon = false;                  // L1 executed VMXON (nested.vmxon)
    std::uint64_t vmxon_ptr = 0;
    std::uint64_t current_vmptr = kInvalidVmptr;  // L1's current VMCS pointer
    std::uint64_t vmcs12_ptr = kInvalidVmptr;     // the one vmcs12 L0 holds (its GPA)
    vmcs::Vmcs vmcs12;                   // L1's VMCS for L2, owned by L0 (cached vmcs12)
    cpu::GuestContext vmcs02;            // the hardware context L2 runs on
    bool vmcs02_ready = false;           // controls written (first prepare_vmcs02)
    bool guest_mode = false;             // is_guest_mode(): L2 is the current guest
    bool run_pending = false;            // nested_run_pending: L1's entry not yet done
    bool l2_halted = false;              // L2 halted (HLT entry state or an L2 HLT L0 emulates)
    bool l2_reset = false;               // an INIT exit: L1 may restart L2 elsewhere

    // Observations (tests, workload results).
    std::vector<L1Exit> l1_exits;              // exits L1 saw, in order
    std::uint64_t emulated_instructions = 0;   // VMX instructions of L1 emulated
    std::uint64_t sipi_ignored = 0;            // SIPI in guest mode outside wait-for-SIPI
    std::uint64_t init_in_wait_for_sipi = 0;   // INIT consumed in wait-for-SIPI, no exit
    std::uint64_t sipi_dropped_in_root = 0;    // SIPI discarded while INIT is blocked (L1 root)
    std::uint64_t events_busy = 0;             // checks that returned -EBUSY (entry pending)
};

}  // namespace vtx::vmm
