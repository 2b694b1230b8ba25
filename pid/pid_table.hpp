#pragma once
// The PID-pointer table of IPI virtualization: 8-byte entries indexed by virtual APIC ID,
// each holding a posted-interrupt descriptor address with the valid bit in bit 0
// (vtx-semantics.md section 5.2; kvm-reference.md section 2.3).
#include <cstdint>

#include "model/memory.hpp"
#include "pid/layout.hpp"

namespace vtx::pid {

inline constexpr std::uint64_t kPidTableEntryBytes = 8;     // "8 bytes at table + (T << 3)"
inline constexpr std::uint64_t kPidTableEntryValid = 1;     // bit 0 (KVM PID_TABLE_ENTRY_VALID)
inline constexpr std::uint64_t kPidTableEntryReservedMask = 0x3E;  // bits 5:1, must be 0
inline constexpr std::uint64_t kPidTableEntryLowBitsMask = kPidTableEntryValid | kPidTableEntryReservedMask;
inline constexpr std::uint64_t kPidTableAlignment = model::kPageSize;  // KVM: alloc_pages()
static_assert(kPidTableEntryLowBitsMask == kPidAlignment - 1,
              "the valid and reserved bits are exactly the bits a 64-byte-aligned PID address leaves 0");

// One table entry as a value.
struct PidTableEntry {
    std::uint64_t raw = 0;

    bool valid() const { return raw & kPidTableEntryValid; }
    bool reserved_bits_clear() const { return (raw & kPidTableEntryReservedMask) == 0; }
    // GAP (vtx-semantics.md section 5.2, open item 3): the pseudocode reads "PIR := 32 bytes
    // at PID_ADDR" with PID_ADDR still holding the valid bit. Since the PID is 64-byte
    // aligned and bits 5:0 are the valid/reserved bits, masking bits 5:0 (address =
    // entry[63:6]) is the only consistent reading. Inferred, not stated by the sources.
    std::uint64_t descriptor_address() const { return raw & ~kPidTableEntryLowBitsMask; }
    // IPIv step 4: usable iff entry[5:0] = 000001b and no bit is set at or above the
    // physical-address width. Throws PidError if the width is not in 1..64.
    bool usable(unsigned physical_address_width) const;

    static PidTableEntry for_descriptor(std::uint64_t pid_address) {
        return PidTableEntry{pid_address | kPidTableEntryValid};
    }
};

// Bytes of a table for `max_vcpu_ids` entries (KVM: max_vcpu_ids * sizeof(u64)), and
// what KVM actually allocates: whole pages, a power of two of them
// (alloc_pages(..., get_order(bytes))).
constexpr std::uint64_t table_bytes(std::uint64_t max_vcpu_ids) { return max_vcpu_ids * kPidTableEntryBytes; }
std::uint64_t table_allocation_bytes(std::uint64_t max_vcpu_ids);

// A view over a table of `entries` 8-byte entries at a page-aligned address.
class PidPointerTable {
public:
    // Throws PidError if the address is not page-aligned or entries is 0.
    PidPointerTable(model::MemoryPort& port, std::uint64_t table_address, std::uint64_t entries);

    std::uint64_t address() const { return m_address; }
    std::uint64_t entries() const { return m_entries; }
    // What the VMM writes to the VMCS "last PID-pointer index" field.
    std::uint64_t last_index() const { return m_entries - 1; }
    std::uint64_t entry_address(std::uint64_t index) const;  // throws PidError if out of range

    // pid_address | kPidTableEntryValid as one 8-byte store (KVM: WRITE_ONCE /
    // plain store of __pa(&vmx->pi_desc) | PID_TABLE_ENTRY_VALID). Throws PidError if the
    // PID address is not 64-byte aligned.
    void install(std::uint64_t index, std::uint64_t pid_address);
    void clear(std::uint64_t index);  // one 8-byte store of 0
    PidTableEntry read(std::uint64_t index) const;

private:
    model::MemoryPort& m_port;
    std::uint64_t m_address;
    std::uint64_t m_entries;
};

}  // namespace vtx::pid
