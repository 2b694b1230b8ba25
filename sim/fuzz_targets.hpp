#pragma once
// Fuzz targets (docs/reliability.md): each takes arbitrary bytes as one kind of user input
// and must end in one model::ConfigError or in success; anything else (another exception,
// a crash, a sanitizer report) is a finding. libFuzzer drives them (fuzz/, built with
// -DVTXSIM_FUZZ=ON by scripts/fuzz.sh); the normal suite replays tests/corpus/ through them.
#include <cstddef>
#include <cstdint>
#include <string>

namespace vtx::sim {

// A CPU profile file (model::CpuProfile::parse).
void fuzz_profile(const std::uint8_t* data, std::size_t size);
// A scenario file, parsed and turned into a run specification (profile loaded, sets applied).
void fuzz_scenario(const std::uint8_t* data, std::size_t size);
// `--set KEY=VALUE` lines (one per line) applied to a run specification.
void fuzz_set(const std::uint8_t* data, std::size_t size);

// VMCS contents through VMWRITE and VM entry's checks (vmcs/entry_checks.hpp) on the `spr`
// or `icx` capabilities, from nothing or from KVM's set-up: every VMWRITE must give
// VMsucceed or VMfailValid 12 / 13, the checks an architectural answer (none, or error 7
// with a named check; a guest-state failure as exit reason 33 | bit 31), twice the same;
// an entry the checks accept must satisfy the control rules re-stated independently here
// (reserved bits, the APIC-virtualization, posted-interrupt and IPIv dependencies).
// Violations abort (std::abort): libFuzzer keeps the input.
void fuzz_vmentry(const std::uint8_t* data, std::size_t size);

// Random guest APIC register traffic, in plain C++ (the APIC state and the IPI
// virtualization rules are value types: no simulation per input, so millions of inputs a
// minute): 2-8 local APICs in xAPIC or x2APIC mode, and a program of xAPIC MMIO and x2APIC
// MSR reads and writes (ICR, SELF IPI, EOI, TPR, ID, LDR, DFR, SVR, LVTs, reserved
// offsets), IA32_APIC_BASE writes, INTAs and EOIs; ICRs the APIC sends are routed to their
// destinations and accepted there; with "IPIv on", a qualifying x2APIC ICR write is posted
// to the target's PID instead (PIR, ON, SN). Every access must give an architectural
// answer (a value, #GP, or "not claimed"), never throw; after each, the APICs must keep the
// architecture's invariants (the x2APIC ID and derived LDR, PPR from TPR and ISRV, INTA
// and EOI moving the right bits, an IPIv-qualifying ICR being a fixed physical edge one
// without shorthand that reaches at most one APIC, a PIR bit set and ON/notify as IPIv's
// step 6 says). Violations abort.
void fuzz_apic(const std::uint8_t* data, std::size_t size);

// The targets by name ("profile", "scenario", "set", "vmentry", "apic"); nullptr for another name.
using FuzzTarget = void (*)(const std::uint8_t*, std::size_t);
FuzzTarget fuzz_target(const std::string& name);

}  // namespace vtx::sim
