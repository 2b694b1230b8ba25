#pragma once
// The virtual-APIC page and the virtual-interrupt algorithms of SDM 29.1-29.2 (new SDM
// 30.1-30.2), as plain functions over the page and the guest-interrupt status (RVI/SVI).
// The processor (logical_processor.cpp) calls them and charges their named costs.
#include <cstdint>
#include <cstring>
#include <optional>

#include "model/memory.hpp"
#include "vmcs/vmcs.hpp"

namespace vtx::cpu {

// Virtual-APIC page offsets (SDM16 29.1.1, reference 2.1).
inline constexpr std::uint32_t kVapicId = 0x020;
inline constexpr std::uint32_t kVapicVersion = 0x030;
inline constexpr std::uint32_t kVapicTpr = 0x080;
inline constexpr std::uint32_t kVapicPpr = 0x0A0;
inline constexpr std::uint32_t kVapicEoi = 0x0B0;
inline constexpr std::uint32_t kVapicLdr = 0x0D0;
inline constexpr std::uint32_t kVapicDfr = 0x0E0;
inline constexpr std::uint32_t kVapicSvr = 0x0F0;
inline constexpr std::uint32_t kVapicIsr = 0x100;
inline constexpr std::uint32_t kVapicTmr = 0x180;
inline constexpr std::uint32_t kVapicIrr = 0x200;
inline constexpr std::uint32_t kVapicEsr = 0x280;
inline constexpr std::uint32_t kVapicIcrLo = 0x300;
inline constexpr std::uint32_t kVapicIcrHi = 0x310;
inline constexpr std::uint32_t kVapicLvtTimer = 0x320;
inline constexpr std::uint32_t kVapicLvtError = 0x370;
inline constexpr std::uint32_t kVapicTimerInitial = 0x380;
inline constexpr std::uint32_t kVapicTimerCurrent = 0x390;
inline constexpr std::uint32_t kVapicTimerDivide = 0x3E0;
inline constexpr std::uint32_t kVapicSelfIpi = 0x3F0;  // x2APIC SELF IPI (MSR 0x83F)

// GUEST_INTR_STATUS (0x0810): RVI = bits 7:0, SVI = bits 15:8.
inline constexpr unsigned kSviShift = 8;

// A view of one virtual-APIC page in simulated memory. Accesses are the processor's own
// (untimed: their cost is part of the named microcode step that makes them).
class VirtualApicPage {
public:
    VirtualApicPage(model::PhysicalMemory& mem, std::uint64_t address)
        : m_mem(mem), m_address(address), m_bytes(mem.page_bytes(address)) {}
    // `bytes`: what mem.page_bytes(address) returned (pages never move: a caller may keep it).
    VirtualApicPage(model::PhysicalMemory& mem, std::uint64_t address, std::uint8_t* bytes)
        : m_mem(mem), m_address(address), m_bytes(bytes) {}
    std::uint64_t address() const { return m_address; }
    std::uint32_t read32(std::uint32_t offset) const {
        std::uint32_t v;
        if (m_bytes && offset <= model::kPageSize - sizeof v)
            std::memcpy(&v, m_bytes + offset, sizeof v);
        else
            m_mem.peek(m_address + offset, &v, sizeof v);
        return v;
    }
    void write32(std::uint32_t offset, std::uint32_t value) {
        if (m_bytes && offset <= model::kPageSize - sizeof value)
            std::memcpy(m_bytes + offset, &value, sizeof value);
        else
            m_mem.poke(m_address + offset, &value, sizeof value);
    }
    std::uint64_t read64(std::uint32_t offset) const;
    void write64(std::uint32_t offset, std::uint64_t value);

    // 256-bit registers laid out as the APIC's: bit x at offset base | ((x & 0xE0) >> 1),
    // bit position x & 0x1F (SDM16 29.1.1).
    bool test_bit(std::uint32_t base, std::uint8_t vector) const;
    void set_bit(std::uint32_t base, std::uint8_t vector);
    void clear_bit(std::uint32_t base, std::uint8_t vector);
    std::optional<std::uint8_t> highest_bit(std::uint32_t base) const;

private:
    model::PhysicalMemory& m_mem;
    std::uint64_t m_address;
    std::uint8_t* m_bytes;  // the page, when it is one page of memory (else peek/poke)
};

inline std::uint8_t rvi(const vmcs::Vmcs& v) {
    return static_cast<std::uint8_t>(v.hw_read(vmcs::Field::GuestIntrStatus) & 0xFF);
}
inline std::uint8_t svi(const vmcs::Vmcs& v) {
    return static_cast<std::uint8_t>((v.hw_read(vmcs::Field::GuestIntrStatus) >> kSviShift) & 0xFF);
}
void set_rvi(vmcs::Vmcs& v, std::uint8_t value);
void set_svi(vmcs::Vmcs& v, std::uint8_t value);

// SDM 29.1.3 PPR virtualization.
void ppr_virtualization(const vmcs::Vmcs& v, VirtualApicPage& page);
// SDM 29.2.1 evaluation of pending virtual interrupts: true if one is recognized.
bool evaluate_pending_virtual_interrupts(const vmcs::Vmcs& v, const VirtualApicPage& page);
// SDM 29.2.2 steps 1-2 (the IDT delivery itself is the caller's): returns the vector.
std::uint8_t virtual_interrupt_delivery_update(vmcs::Vmcs& v, VirtualApicPage& page);

// SDM 29.1.4 EOI virtualization, steps 1-3; returns V (the vector that was in service)
// and whether the EOI-exit bitmap asks for an EOI-induced VM exit.
struct EoiVirtualizationResult {
    std::uint8_t vector = 0;
    bool eoi_exit = false;
};
EoiVirtualizationResult eoi_virtualization(vmcs::Vmcs& v, VirtualApicPage& page);

// SDM 29.1.5 self-IPI virtualization steps 1-2 (the caller then evaluates).
void self_ipi_virtualization(vmcs::Vmcs& v, VirtualApicPage& page, std::uint8_t vector);

// Posted-interrupt processing step 5-6: OR the fetched PIR into VIRR and raise RVI.
void merge_pir_into_virr(vmcs::Vmcs& v, VirtualApicPage& page, const std::uint64_t pir[4]);

// The pre-IPIv self-IPI test on VICR_LO (SDM16 29.4.3.2, reference 4.3).
bool vicr_is_self_ipi(std::uint32_t icr_lo);

// Whether the ICR value qualifies for IPI virtualization (reference 5.6): no shorthand,
// edge, bit 12 clear, physical, fixed. Reserved bits of the xAPIC form (31:20, 17:16, 13)
// must be clear too (the x2APIC WRMSR checks them earlier, with #GP).
bool icr_qualifies_for_ipiv(std::uint32_t icr_lo);

}  // namespace vtx::cpu
