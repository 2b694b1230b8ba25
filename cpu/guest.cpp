#include "cpu/guest.hpp"

#include <cstring>

#include "apic/registers.hpp"
#include "cpu/flow_encodings.hpp"
#include "cpu/logical_processor.hpp"
#include "cpu/platform.hpp"
#include "model/x86.hpp"

namespace vtx::cpu {

using vmcs::Field;

GuestContext::GuestContext(std::string n, const model::CpuFeatures& features)
    : name(std::move(n)), vmcs(features) {}
GuestContext::~GuestContext() = default;

template <class F>
void GuestCpu::retire(F attempt) {
    // Where this instruction is: it is done once RIP has moved past it, whoever moved it
    // (the instruction, the VMM's emulation, or an exception handler's fixup of a fault
    // the VMM injected at the next VM entry).
    const std::uint64_t start = m_ctx.vmcs.hw_read(Field::GuestRip);
    for (;;) {
        if (!m_ctx.lp->event_window(m_ctx)) {
            if (m_ctx.vmcs.hw_read(Field::GuestRip) != start) return;
            continue;
        }
        if (attempt(*m_ctx.lp)) return;
        // A VM exit, then VM entry: done if the VMM emulated the instruction (moved RIP).
        if (m_ctx.vmcs.hw_read(Field::GuestRip) != start) return;
    }
}

std::uint64_t GuestCpu::rdtsc() {
    std::uint64_t v = 0;
    retire([&](LogicalProcessor& lp) { return lp.exec_rdtsc(m_ctx, v); });
    return v;
}

void GuestCpu::cpuid(std::uint32_t leaf) {
    m_ctx.regs.rax = leaf;
    retire([&](LogicalProcessor& lp) { return lp.exec_cpuid(m_ctx); });
}

std::uint64_t GuestCpu::vmcall(std::uint64_t nr) {
    m_ctx.regs.rax = nr;
    retire([&](LogicalProcessor& lp) { return lp.exec_vmcall(m_ctx); });
    return m_ctx.regs.rax;
}

void GuestCpu::hlt() {
    retire([&](LogicalProcessor& lp) { return lp.exec_hlt(m_ctx); });
    // With HLT executed natively, the processor is now in the HLT state: the next
    // boundary waits for an event.
    while (!m_ctx.lp->event_window(m_ctx)) {
    }
}

void GuestCpu::pause() {
    retire([&](LogicalProcessor& lp) { return lp.exec_pause(m_ctx); });
}

void GuestCpu::compute(std::uint64_t cycles) {
    retire([&](LogicalProcessor& lp) { return lp.exec_compute(m_ctx, static_cast<double>(cycles)); });
}

void GuestCpu::mark(const char* what) { m_ctx.lp->mark(what); }

void GuestCpu::kernel_path(model::Cost path) {
    retire([&](LogicalProcessor& lp) { return lp.exec_simple(m_ctx, path, flow::kLenStraightLine); });
}

void GuestCpu::sti() {
    retire([&](LogicalProcessor& lp) {
        lp.exec_sti(m_ctx);
        return true;
    });
}

void GuestCpu::senduipi(std::uint64_t index) {
    retire([&](LogicalProcessor& lp) { return lp.exec_senduipi(m_ctx, index); });
}

void GuestCpu::stui() {
    retire([&](LogicalProcessor& lp) { return lp.exec_uif(m_ctx, true); });
}

void GuestCpu::clui() {
    retire([&](LogicalProcessor& lp) { return lp.exec_uif(m_ctx, false); });
}

void GuestCpu::set_cr4_uintr(bool on) {
    const std::uint64_t cr4 = m_ctx.vmcs.hw_read(vmcs::Field::GuestCr4);
    m_ctx.vmcs.hw_write(vmcs::Field::GuestCr4, on ? (cr4 | x86::kCr4Uintr) : (cr4 & ~x86::kCr4Uintr));
}

void GuestCpu::cli() {
    retire([&](LogicalProcessor& lp) {
        lp.exec_cli(m_ctx);
        return true;
    });
}

void GuestCpu::sti_hlt() {
    sti();
    hlt();
}

std::uint64_t GuestCpu::rdmsr(std::uint32_t msr) {
    m_ctx.regs.rcx = msr;
    retire([&](LogicalProcessor& lp) { return lp.exec_rdmsr(m_ctx); });
    return (m_ctx.regs.rdx << 32) | (m_ctx.regs.rax & 0xFFFFFFFFu);
}

void GuestCpu::wrmsr(std::uint32_t msr, std::uint64_t value) {
    if (InterruptObserver* o = m_ctx.lp->platform().interrupt_observer();
        o && (msr == apic::kX2ApicMsrIcr || msr == apic::kX2ApicMsrSelfIpi))
        o->ipi_register_written(m_ctx, true, msr == apic::kX2ApicMsrIcr ? apic::kApicOffsetIcrLo : apic::kApicOffsetSelfIpi,
                                value, m_ctx.lp->now_cycles());
    m_ctx.regs.rcx = msr;
    m_ctx.regs.rax = value & 0xFFFFFFFFu;
    m_ctx.regs.rdx = value >> 32;
    retire([&](LogicalProcessor& lp) { return lp.exec_wrmsr(m_ctx); });
}

std::uint32_t GuestCpu::mmio_read32(std::uint64_t gpa) {
    std::uint64_t v = 0;
    m_ctx.mmio = DecodedMmio{};
    retire([&](LogicalProcessor& lp) { return lp.exec_mmio_read(m_ctx, gpa, 4, v); });
    // After an exit, the VMM's emulation left the loaded value in the decoded access.
    if (m_ctx.mmio.valid && !m_ctx.mmio.write) v = m_ctx.mmio.value;
    return static_cast<std::uint32_t>(v);
}

void GuestCpu::mmio_write32(std::uint64_t gpa, std::uint32_t value) {
    if (InterruptObserver* o = m_ctx.lp->platform().interrupt_observer();
        o && (gpa == kGuestApicBase + apic::kApicOffsetIcrLo || gpa == kGuestApicBase + apic::kApicOffsetIcrHi))
        o->ipi_register_written(m_ctx, false, static_cast<std::uint32_t>(gpa - kGuestApicBase), value,
                                m_ctx.lp->now_cycles());
    m_ctx.mmio = DecodedMmio{};
    retire([&](LogicalProcessor& lp) { return lp.exec_mmio_write(m_ctx, gpa, 4, value); });
}

std::uint64_t GuestCpu::memory_op(model::MemOp op, std::uint64_t gpa, unsigned size,
                                  std::uint64_t operand, std::uint64_t compare) {
    model::MemRequest req;
    req.op = op;
    req.address = gpa;
    req.size = size;
    req.operand = operand;
    req.compare = compare;
    if (op == model::MemOp::Write) std::memcpy(req.data, &operand, size);
    retire([&](LogicalProcessor& lp) { return lp.exec_memory(m_ctx, req); });
    if (op == model::MemOp::Read) {
        std::uint64_t v = 0;
        std::memcpy(&v, req.data, size);
        return v;
    }
    return req.result;
}

std::uint64_t GuestCpu::load64(std::uint64_t gpa) { return memory_op(model::MemOp::Read, gpa, 8); }
std::uint32_t GuestCpu::load32(std::uint64_t gpa) {
    return static_cast<std::uint32_t>(memory_op(model::MemOp::Read, gpa, 4));
}
void GuestCpu::store64(std::uint64_t gpa, std::uint64_t v) { memory_op(model::MemOp::Write, gpa, 8, v); }
void GuestCpu::store32(std::uint64_t gpa, std::uint32_t v) { memory_op(model::MemOp::Write, gpa, 4, v); }
bool GuestCpu::lock_bts(std::uint64_t gpa, unsigned bit) {
    return memory_op(model::MemOp::LockedBts, gpa, 1, bit) != 0;
}
bool GuestCpu::lock_btr(std::uint64_t gpa, unsigned bit) {
    return memory_op(model::MemOp::LockedBtr, gpa, 1, bit) != 0;
}
std::uint64_t GuestCpu::xchg(std::uint64_t gpa, std::uint64_t v) {
    return memory_op(model::MemOp::LockedXchg, gpa, 8, v);
}
std::uint64_t GuestCpu::lock_cmpxchg(std::uint64_t gpa, std::uint64_t expected, std::uint64_t desired) {
    return memory_op(model::MemOp::LockedCmpxchg, gpa, 8, desired, expected);
}
std::uint64_t GuestCpu::lock_add(std::uint64_t gpa, std::uint64_t delta) {
    return memory_op(model::MemOp::LockedAdd, gpa, 8, delta);
}

// ---- VMX instructions ----
namespace {
constexpr std::uint64_t kRflagsCf = 1u << 0, kRflagsZf = 1u << 6;
// Instruction lengths: VMLAUNCH/VMRESUME 0F 01 C2/C3, VMREAD/VMWRITE 0F 78/79 /r,
// VMPTRLD 0F C7 /6, VMXON F3 0F C7 /6, VMCLEAR 66 0F C7 /6, VMXOFF 0F 01 C4.
constexpr unsigned kLenVmx3 = 3, kLenVmx4 = 4;
}  // namespace

bool GuestCpu::vmx_instruction(std::uint16_t basic_reason, unsigned length) {
    const auto reason = static_cast<vmcs::ExitReason>(basic_reason);
    retire([&](LogicalProcessor& lp) { return lp.exec_vmx_instruction(m_ctx, reason, length); });
    return (m_ctx.vmcs.hw_read(Field::GuestRflags) & (kRflagsCf | kRflagsZf)) == 0;
}

bool GuestCpu::vmxon(std::uint64_t region) {
    m_ctx.regs.rax = region;
    return vmx_instruction(static_cast<std::uint16_t>(vmcs::ExitReason::Vmxon), kLenVmx4);
}
bool GuestCpu::vmxoff() { return vmx_instruction(static_cast<std::uint16_t>(vmcs::ExitReason::Vmxoff), kLenVmx3); }
bool GuestCpu::vmclear(std::uint64_t vmcs_address) {
    m_ctx.regs.rax = vmcs_address;
    return vmx_instruction(static_cast<std::uint16_t>(vmcs::ExitReason::Vmclear), kLenVmx4);
}
bool GuestCpu::vmptrld(std::uint64_t vmcs_address) {
    m_ctx.regs.rax = vmcs_address;
    return vmx_instruction(static_cast<std::uint16_t>(vmcs::ExitReason::Vmptrld), kLenVmx3);
}
bool GuestCpu::vmread(std::uint64_t encoding, std::uint64_t& value) {
    m_ctx.regs.rdx = encoding;
    const bool ok = vmx_instruction(static_cast<std::uint16_t>(vmcs::ExitReason::Vmread), kLenVmx3);
    if (ok) value = m_ctx.regs.rax;
    return ok;
}
bool GuestCpu::vmwrite(std::uint64_t encoding, std::uint64_t value) {
    m_ctx.regs.rdx = encoding;
    m_ctx.regs.rax = value;
    return vmx_instruction(static_cast<std::uint16_t>(vmcs::ExitReason::Vmwrite), kLenVmx3);
}
bool GuestCpu::vmlaunch() { return vmx_instruction(static_cast<std::uint16_t>(vmcs::ExitReason::Vmlaunch), kLenVmx3); }
bool GuestCpu::vmresume() { return vmx_instruction(static_cast<std::uint16_t>(vmcs::ExitReason::Vmresume), kLenVmx3); }

void GuestCpu::spin_until(const std::function<bool()>& done, std::optional<std::uint64_t> watch_gpa,
                          bool pause) {
    m_ctx.lp->exec_spin(m_ctx, done, watch_gpa, pause);
}

void GuestCpu::spin_until_value(std::uint64_t gpa, unsigned size, std::function<bool(std::uint64_t)> satisfied,
                                bool pause) {
    if (size != 4 && size != 8)
        throw SimulationError(m_ctx.name + ": spin_until_value: a " + std::to_string(size) +
                              "-byte load (4 or 8 bytes)");
    const LogicalProcessor::SpinValue value{size, std::move(satisfied)};
    // done() captures one reference (std::function keeps it without an allocation).
    const struct {
        GuestCpu& cpu;
        std::uint64_t gpa;
        const LogicalProcessor::SpinValue& value;
    } poll{*this, gpa, value};
    m_ctx.lp->exec_spin(
        m_ctx,
        [&poll] {
            return poll.value.satisfied(poll.value.size == 8 ? poll.cpu.load64(poll.gpa) : poll.cpu.load32(poll.gpa));
        },
        gpa, pause, false, &value);
}

void GuestCpu::idle_loop() {
    for (;;) m_ctx.lp->exec_spin(m_ctx, [] { return false; }, std::nullopt, true, true);
}

void GuestCpu::mfence() {
    retire([&](LogicalProcessor& lp) { return lp.exec_simple(m_ctx, model::Cost::GuestMfence, 3); });
}

void GuestCpu::spin_lock(std::uint64_t gpa) {
    while (xchg(gpa, 1) != 0) spin_until_value(gpa, 8, [](std::uint64_t v) { return v == 0; }, true);
}

void GuestCpu::spin_unlock(std::uint64_t gpa) { store64(gpa, 0); }

}  // namespace vtx::cpu
