#include "cpu/virtual_apic.hpp"

#include "vmcs/controls.hpp"
#include "vmcs/fields.hpp"

namespace vtx::cpu {

using vmcs::Field;

namespace {
constexpr std::uint32_t reg_offset(std::uint32_t base, std::uint8_t vector) {
    return base | ((vector & 0xE0u) >> 1);
}
constexpr std::uint32_t kVectorsPerRegister = 32;
constexpr std::uint32_t kRegisterStride = 0x10;
constexpr std::uint32_t kRegisterCount = 8;
constexpr std::uint8_t kPriorityClassMask = 0xF0;
// ICR bit fields (SDM 10.6.1).
constexpr std::uint32_t kIcrDeliveryModeMask = 0x7u << 8;
constexpr std::uint32_t kIcrDestModeLogical = 1u << 11;
constexpr std::uint32_t kIcrDeliveryStatus = 1u << 12;  // unused (bit 12) in x2APIC
constexpr std::uint32_t kIcrTriggerLevel = 1u << 15;
constexpr unsigned kIcrShorthandShift = 18;
constexpr std::uint32_t kIcrShorthandMask = 0x3u << kIcrShorthandShift;
constexpr std::uint32_t kIcrShorthandSelf = 0x1u << kIcrShorthandShift;
constexpr std::uint32_t kIcrReservedBits = 0xFFF00000u | (0x3u << 16) | (1u << 13);
}  // namespace

std::uint64_t VirtualApicPage::read64(std::uint32_t offset) const {
    return m_mem.peek64(m_address + offset);
}
void VirtualApicPage::write64(std::uint32_t offset, std::uint64_t value) {
    m_mem.poke64(m_address + offset, value);
}
bool VirtualApicPage::test_bit(std::uint32_t base, std::uint8_t vector) const {
    return (read32(reg_offset(base, vector)) >> (vector % kVectorsPerRegister)) & 1u;
}
void VirtualApicPage::set_bit(std::uint32_t base, std::uint8_t vector) {
    const auto off = reg_offset(base, vector);
    write32(off, read32(off) | (1u << (vector % kVectorsPerRegister)));
}
void VirtualApicPage::clear_bit(std::uint32_t base, std::uint8_t vector) {
    const auto off = reg_offset(base, vector);
    write32(off, read32(off) & ~(1u << (vector % kVectorsPerRegister)));
}
std::optional<std::uint8_t> VirtualApicPage::highest_bit(std::uint32_t base) const {
    for (int i = kRegisterCount - 1; i >= 0; --i) {
        const std::uint32_t w = read32(base + i * kRegisterStride);
        if (w) return static_cast<std::uint8_t>(i * kVectorsPerRegister + 31 - __builtin_clz(w));
    }
    return std::nullopt;
}

void set_rvi(vmcs::Vmcs& v, std::uint8_t value) {
    const auto s = v.hw_read(Field::GuestIntrStatus);
    v.hw_write(Field::GuestIntrStatus, (s & 0xFF00) | value);
}
void set_svi(vmcs::Vmcs& v, std::uint8_t value) {
    const auto s = v.hw_read(Field::GuestIntrStatus);
    v.hw_write(Field::GuestIntrStatus, (s & 0x00FF) | (std::uint64_t{value} << kSviShift));
}

void ppr_virtualization(const vmcs::Vmcs& v, VirtualApicPage& page) {
    const std::uint32_t vtpr = page.read32(kVapicTpr);
    const std::uint8_t s = svi(v);
    std::uint32_t vppr;
    if ((vtpr & kPriorityClassMask) >= (s & kPriorityClassMask))
        vppr = vtpr & 0xFF;
    else
        vppr = s & kPriorityClassMask;
    page.write32(kVapicPpr, vppr);  // bytes 3:1 cleared
}

bool evaluate_pending_virtual_interrupts(const vmcs::Vmcs& v, const VirtualApicPage& page) {
    if (v.hw_read(Field::CpuBasedVmExecControl) & vmcs::kPrimaryInterruptWindowExiting)
        return false;
    const std::uint8_t r = rvi(v);
    if ((r & kPriorityClassMask) == 0) return false;  // no class can exceed VPPR's (the page is not read)
    const std::uint32_t vppr = page.read32(kVapicPpr);
    return (r & kPriorityClassMask) > (vppr & kPriorityClassMask);
}

std::uint8_t virtual_interrupt_delivery_update(vmcs::Vmcs& v, VirtualApicPage& page) {
    const std::uint8_t vec = rvi(v);
    page.set_bit(kVapicIsr, vec);
    set_svi(v, vec);
    page.write32(kVapicPpr, vec & kPriorityClassMask);
    page.clear_bit(kVapicIrr, vec);
    set_rvi(v, page.highest_bit(kVapicIrr).value_or(0));
    return vec;
}

EoiVirtualizationResult eoi_virtualization(vmcs::Vmcs& v, VirtualApicPage& page) {
    EoiVirtualizationResult r;
    r.vector = svi(v);
    page.clear_bit(kVapicIsr, r.vector);
    set_svi(v, page.highest_bit(kVapicIsr).value_or(0));
    ppr_virtualization(v, page);
    const auto bitmap = static_cast<Field>(vmcs::encoding(Field::EoiExitBitmap0) + 2 * (r.vector / 64));
    r.eoi_exit = (v.hw_read(bitmap) >> (r.vector % 64)) & 1u;
    return r;
}

void self_ipi_virtualization(vmcs::Vmcs& v, VirtualApicPage& page, std::uint8_t vector) {
    page.set_bit(kVapicIrr, vector);
    if (vector > rvi(v)) set_rvi(v, vector);
}

void merge_pir_into_virr(vmcs::Vmcs& v, VirtualApicPage& page, const std::uint64_t pir[4]) {
    // VIRR register i holds vectors 32i..32i+31: OR in the matching 32 bits of the PIR.
    int highest = -1;
    for (unsigned i = 0; i < kRegisterCount; ++i) {
        const auto bits = static_cast<std::uint32_t>(pir[i / 2] >> (32 * (i % 2)));
        if (!bits) continue;
        const std::uint32_t off = kVapicIrr + i * kRegisterStride;
        page.write32(off, page.read32(off) | bits);
        highest = static_cast<int>(i * kVectorsPerRegister + 31 - __builtin_clz(bits));
    }
    if (highest >= 0 && highest > rvi(v)) set_rvi(v, static_cast<std::uint8_t>(highest));
}

bool vicr_is_self_ipi(std::uint32_t icr_lo) {
    return (icr_lo & (kIcrReservedBits | kIcrDeliveryStatus)) == 0 &&
           (icr_lo & kIcrShorthandMask) == kIcrShorthandSelf && !(icr_lo & kIcrTriggerLevel) &&
           (icr_lo & kIcrDeliveryModeMask) == 0 && (icr_lo & 0xF0) != 0;
}

bool icr_qualifies_for_ipiv(std::uint32_t icr_lo) {
    return (icr_lo & (kIcrReservedBits | kIcrDeliveryStatus)) == 0 &&
           (icr_lo & kIcrShorthandMask) == 0 && !(icr_lo & kIcrTriggerLevel) &&
           !(icr_lo & kIcrDestModeLogical) && (icr_lo & kIcrDeliveryModeMask) == 0;
}

}  // namespace vtx::cpu
