#pragma once
// Encodings and layouts the logical processor's flows share (cpu/*.cpp only, not an
// interface): instruction lengths the exits report, the MSR-bitmap layout, the x2APIC MSR
// range that "virtualize x2APIC mode" covers. Architectural constants with a home elsewhere
// come from there: RFLAGS and exception vectors model/x86.hpp, APIC registers and MSRs
// apic/registers.hpp, VMCS encodings and bits vmcs/.
#include <cstdint>

#include "model/costs.hpp"
#include "vmcs/exit_info.hpp"
#include "vmcs/fields.hpp"

namespace vtx::cpu::flow {

// Instruction lengths the exits report (encodings of the modelled instructions).
inline constexpr unsigned kLenWrmsr = 2, kLenRdmsr = 2, kLenCpuid = 2, kLenVmcall = 3, kLenHlt = 1,
                          kLenMovMmio = 6, kLenPause = 2, kLenRdtsc = 2, kLenStraightLine = 1,
                          kLenStiCli = 1, kLenMemory = 4,
                          kLenSenduipi = 4,  // F3 0F C7 /6 (register operand)
                          kLenUif = 4;       // STUI F3 0F 01 EF, CLUI F3 0F 01 EE
// MSRs 800H-8FFH: the range "virtualize x2APIC mode" applies to (SDM 29.5).
inline constexpr std::uint32_t kVirtualizedX2apicMsrFirst = 0x800, kVirtualizedX2apicMsrLast = 0x8FF;
// x2APIC ICR (MSR 830H) bits whose setting makes WRMSR #GP (SDM 11.12.9: 31:20, 17:16, 13).
inline constexpr std::uint32_t kIcrReservedX2apic = 0xFFF00000u | (0x3u << 16) | (1u << 13);
inline constexpr unsigned kXapicIcrDestShift = 24;   // ICR_HI[31:24]
inline constexpr unsigned kX2apicIcrDestShift = 32;  // ICR[63:32]
inline constexpr std::uint32_t kApicSlotMask = 0xF;  // offset within a 16-byte register slot

constexpr bool in_virtualized_x2apic_range(std::uint32_t msr) {
    return msr >= kVirtualizedX2apicMsrFirst && msr <= kVirtualizedX2apicMsrLast;
}

}  // namespace vtx::cpu::flow

namespace vtx::cpu {
// The names every flow file uses unqualified.
using model::Cost;
using vmcs::ActivityState;
using vmcs::ExitReason;
using vmcs::Field;
using namespace flow;
}  // namespace vtx::cpu
