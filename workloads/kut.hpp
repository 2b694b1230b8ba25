#pragma once
// The parts of kvm-unit-tests' library (lib/x86/apic.c, smp.c) the workloads use, as
// guest code: APIC register access in xAPIC or x2APIC mode, on_cpu() with its shared
// variables, EOI.
#include <cstdint>
#include <functional>

#include "cpu/guest.hpp"
#include "vmm/kvm.hpp"

namespace vtx::workloads::kut {

inline constexpr std::uint8_t kIpiVector = 0x20;  // IPI_VECTOR
// ICR bits (SDM 11.6.1; kvm-unit-tests apic-defs.h).
inline constexpr std::uint32_t kApicIntAssert = 1u << 14;
inline constexpr std::uint32_t kApicDestPhysical = 0;
inline constexpr std::uint32_t kApicDmFixed = 0;
inline constexpr std::uint32_t kApicDmInit = 5u << 8;
inline constexpr std::uint32_t kApicDmStartup = 6u << 8;
inline constexpr std::uint32_t kApicDestSelf = 1u << 18;
inline constexpr std::uint32_t kApicDestAllButSelf = 3u << 18;
inline constexpr std::uint32_t kApicDestAllInc = 2u << 18;
inline constexpr std::uint32_t kApicIcrBusy = 1u << 12;
inline constexpr std::uint32_t kApicDestLogical = 1u << 11;
inline constexpr std::uint32_t kApicIcr = 0x300, kApicIcr2 = 0x310, kApicEoi = 0xB0;
inline constexpr std::uint32_t kApicId = 0x20, kApicTaskPri = 0x80, kApicLdr = 0xD0, kApicDfr = 0xE0;
inline constexpr std::uint32_t kApicDfrFlat = 0xFFFFFFFF;  // DFR model 1111b (flat)
inline constexpr std::uint32_t kApicDfrCluster = 0x0FFFFFFF;  // DFR model 0000b (cluster)
inline constexpr unsigned kXapicLdrShift = 24;             // xAPIC logical ID in LDR bits 31:24
inline constexpr unsigned kXapicIdShift = 24;              // xAPIC ID in the ID register's bits 31:24
inline constexpr std::uint32_t kX2apicMsrBase = 0x800;
inline constexpr std::uint32_t kX2apicSelfIpiMsr = 0x83F;  // x2APIC SELF IPI

// The shared variables of smp.c. In the test binary they are adjacent statics, so they
// share one cache line; vtxsim lays them out the same way.
struct SmpData {
    std::uint64_t base = 0;  // guest-physical address of the line
    std::uint64_t ipi_lock() const { return base; }
    std::uint64_t ipi_done() const { return base + 8; }
    std::uint64_t ipi_function() const { return base + 16; }
    std::uint64_t ipi_data() const { return base + 24; }
    std::uint64_t ipi_wait() const { return base + 32; }
    std::uint64_t active_cpus() const { return base + 40; }
};

class Lib {
public:
    Lib(cpu::GuestCpu& g, bool x2apic) : m_g(g), m_x2apic(x2apic) {}
    cpu::GuestCpu& cpu() { return m_g; }
    std::uint32_t apic_read(std::uint32_t reg);
    void apic_write(std::uint32_t reg, std::uint32_t value);
    // apic_icr_write: xAPIC polls ICR busy, writes ICR2 then ICR; x2APIC: mb(); WRMSR 0x830.
    void apic_icr_write(std::uint32_t value, std::uint32_t dest);
    void eoi() { apic_write(kApicEoi, 0); }
    // apic_id(): xAPIC ID register bits 31:24, or the 32-bit x2APIC ID.
    std::uint32_t apic_id();
    // apic_set_tpr(): kvm-unit-tests moves the value to CR8 on x86-64, which sets TPR[7:4];
    // the guest API has no MOV CR8, so this writes the same value to the TPR register
    // (the 32-bit form of apic_set_tpr: apic_write(APIC_TASKPRI, tpr << 4)).
    void set_tpr(std::uint8_t tpr) { apic_write(kApicTaskPri, std::uint32_t{tpr} << 4); }

private:
    cpu::GuestCpu& m_g;
    bool m_x2apic;
};

// do_test() of x86/vmexit.c: passes of 64, 128, 256, ... iterations of `func`, each
// bracketed by RDTSC, until one pass takes at least `goal` TSC ticks; `start_pass` runs
// before each pass (it resets the per-pass accumulators, as tsc_eoi = tsc_ipi = 0 does).
struct PassResult {
    std::uint64_t iterations = 0;  // of the last (reported) pass
    std::uint64_t total = 0;       // over all passes
    std::uint64_t ticks = 0;       // t2 - t1 of the last pass
    double per_iteration() const { return iterations ? static_cast<double>(ticks) / iterations : 0.0; }
};
PassResult do_test(cpu::GuestCpu& g, std::uint64_t goal, const std::function<void()>& start_pass,
                   const std::function<void()>& func);

// __on_cpu(cpu, nop, 0, wait = 1) as smp.c does it.
void on_cpu_wait(Lib& lib, const SmpData& d, std::uint32_t target_apic_id);
// The IPI handler (smp.c ipi()) installed at IPI_VECTOR on the target.
void install_ipi_handler(cpu::GuestCpu& g, bool x2apic, const SmpData& d);

}  // namespace vtx::workloads::kut
