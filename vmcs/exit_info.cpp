#include "vmcs/exit_info.hpp"

#include <array>

#include "vmcs/name_match.hpp"
#include "vmcs/vmcs.hpp"

namespace vtx::vmcs {
namespace {

using detail::iequals;

struct ExitReasonName {
    ExitReason reason;
    std::string_view name;
};

// KVM's spelling (Linux uapi/asm/vmx.h VMX_EXIT_REASONS), so traces read like KVM's.
constexpr std::array kExitReasonNames{
    ExitReasonName{ExitReason::ExceptionOrNmi, "EXCEPTION_NMI"},
    ExitReasonName{ExitReason::ExternalInterrupt, "EXTERNAL_INTERRUPT"},
    ExitReasonName{ExitReason::TripleFault, "TRIPLE_FAULT"},
    ExitReasonName{ExitReason::InitSignal, "INIT_SIGNAL"},
    ExitReasonName{ExitReason::Sipi, "SIPI_SIGNAL"},
    ExitReasonName{ExitReason::IoSmi, "IO_SMI"},
    ExitReasonName{ExitReason::OtherSmi, "OTHER_SMI"},
    ExitReasonName{ExitReason::InterruptWindow, "INTERRUPT_WINDOW"},
    ExitReasonName{ExitReason::NmiWindow, "NMI_WINDOW"},
    ExitReasonName{ExitReason::TaskSwitch, "TASK_SWITCH"},
    ExitReasonName{ExitReason::Cpuid, "CPUID"},
    ExitReasonName{ExitReason::Getsec, "GETSEC"},
    ExitReasonName{ExitReason::Hlt, "HLT"},
    ExitReasonName{ExitReason::Invd, "INVD"},
    ExitReasonName{ExitReason::Invlpg, "INVLPG"},
    ExitReasonName{ExitReason::Rdpmc, "RDPMC"},
    ExitReasonName{ExitReason::Rdtsc, "RDTSC"},
    ExitReasonName{ExitReason::Rsm, "RSM"},
    ExitReasonName{ExitReason::Vmcall, "VMCALL"},
    ExitReasonName{ExitReason::Vmclear, "VMCLEAR"},
    ExitReasonName{ExitReason::Vmlaunch, "VMLAUNCH"},
    ExitReasonName{ExitReason::Vmptrld, "VMPTRLD"},
    ExitReasonName{ExitReason::Vmptrst, "VMPTRST"},
    ExitReasonName{ExitReason::Vmread, "VMREAD"},
    ExitReasonName{ExitReason::Vmresume, "VMRESUME"},
    ExitReasonName{ExitReason::Vmwrite, "VMWRITE"},
    ExitReasonName{ExitReason::Vmxoff, "VMOFF"},
    ExitReasonName{ExitReason::Vmxon, "VMON"},
    ExitReasonName{ExitReason::CrAccess, "CR_ACCESS"},
    ExitReasonName{ExitReason::DrAccess, "DR_ACCESS"},
    ExitReasonName{ExitReason::IoInstruction, "IO_INSTRUCTION"},
    ExitReasonName{ExitReason::Rdmsr, "MSR_READ"},
    ExitReasonName{ExitReason::Wrmsr, "MSR_WRITE"},
    ExitReasonName{ExitReason::EntryFailGuestState, "INVALID_STATE"},
    ExitReasonName{ExitReason::EntryFailMsrLoad, "MSR_LOAD_FAIL"},
    ExitReasonName{ExitReason::Mwait, "MWAIT_INSTRUCTION"},
    ExitReasonName{ExitReason::MonitorTrapFlag, "MONITOR_TRAP_FLAG"},
    ExitReasonName{ExitReason::Monitor, "MONITOR_INSTRUCTION"},
    ExitReasonName{ExitReason::Pause, "PAUSE_INSTRUCTION"},
    ExitReasonName{ExitReason::EntryFailMachineCheck, "MCE_DURING_VMENTRY"},
    ExitReasonName{ExitReason::TprBelowThreshold, "TPR_BELOW_THRESHOLD"},
    ExitReasonName{ExitReason::ApicAccess, "APIC_ACCESS"},
    ExitReasonName{ExitReason::VirtualizedEoi, "EOI_INDUCED"},
    ExitReasonName{ExitReason::GdtrIdtrAccess, "GDTR_IDTR"},
    ExitReasonName{ExitReason::LdtrTrAccess, "LDTR_TR"},
    ExitReasonName{ExitReason::EptViolation, "EPT_VIOLATION"},
    ExitReasonName{ExitReason::EptMisconfig, "EPT_MISCONFIG"},
    ExitReasonName{ExitReason::Invept, "INVEPT"},
    ExitReasonName{ExitReason::Rdtscp, "RDTSCP"},
    ExitReasonName{ExitReason::PreemptionTimer, "PREEMPTION_TIMER"},
    ExitReasonName{ExitReason::Invvpid, "INVVPID"},
    ExitReasonName{ExitReason::Wbinvd, "WBINVD"},
    ExitReasonName{ExitReason::Xsetbv, "XSETBV"},
    ExitReasonName{ExitReason::ApicWrite, "APIC_WRITE"},
    ExitReasonName{ExitReason::Rdrand, "RDRAND"},
    ExitReasonName{ExitReason::Invpcid, "INVPCID"},
    ExitReasonName{ExitReason::Vmfunc, "VMFUNC"},
    ExitReasonName{ExitReason::Encls, "ENCLS"},
    ExitReasonName{ExitReason::Rdseed, "RDSEED"},
    ExitReasonName{ExitReason::PmlFull, "PML_FULL"},
    ExitReasonName{ExitReason::Xsaves, "XSAVES"},
    ExitReasonName{ExitReason::Xrstors, "XRSTORS"},
};

}  // namespace

std::string_view exit_reason_name(ExitReason reason) {
    for (const auto& entry : kExitReasonNames) {
        if (entry.reason == reason) return entry.name;
    }
    return {};
}

std::optional<ExitReason> find_exit_reason_by_name(std::string_view name) {
    for (const auto& entry : kExitReasonNames) {
        if (iequals(entry.name, name)) return entry.reason;
    }
    return std::nullopt;
}

void record_exit_information(Vmcs& v, std::uint32_t reason, std::uint64_t qualification,
                             std::uint32_t intr_info, std::uint32_t instruction_length) {
    v.set_exit_info(Field::VmExitReason, reason);
    v.set_exit_info(Field::ExitQualification, qualification);
    v.set_exit_info(Field::VmExitIntrInfo, intr_info);
    v.set_exit_info(Field::VmExitInstructionLen, instruction_length);
    v.hw_write(Field::VmEntryIntrInfoField, v.hw_read(Field::VmEntryIntrInfoField) & ~std::uint64_t{kIntrInfoValid});
}

}  // namespace vtx::vmcs
