#include "pid/pid_table.hpp"

#include <string>

namespace vtx::pid {

bool PidTableEntry::usable(unsigned physical_address_width) const {
    if (physical_address_width == 0 || physical_address_width > 64)
        throw PidError("physical-address width " + std::to_string(physical_address_width) +
                       " is not in 1..64");
    const bool beyond_width =
        physical_address_width < 64 && (raw >> physical_address_width) != 0;
    return (raw & kPidTableEntryLowBitsMask) == kPidTableEntryValid && !beyond_width;
}

std::uint64_t table_allocation_bytes(std::uint64_t max_vcpu_ids) {
    std::uint64_t bytes = model::kPageSize;
    while (bytes < table_bytes(max_vcpu_ids)) bytes *= 2;
    return bytes;
}

PidPointerTable::PidPointerTable(model::MemoryPort& port, std::uint64_t table_address,
                                 std::uint64_t entries)
    : m_port(port), m_address(table_address), m_entries(entries) {
    if (table_address % kPidTableAlignment != 0)
        throw PidError("PID-pointer table address " + hex_address(table_address) +
                       " is not page-aligned");
    if (entries == 0) throw PidError("a PID-pointer table needs at least one entry");
}

std::uint64_t PidPointerTable::entry_address(std::uint64_t index) const {
    if (index >= m_entries)
        throw PidError("PID-pointer table index " + std::to_string(index) +
                       " is beyond the last index " + std::to_string(last_index()));
    return m_address + index * kPidTableEntryBytes;
}

void PidPointerTable::install(std::uint64_t index, std::uint64_t pid_address) {
    if (pid_address % kPidAlignment != 0)
        throw PidError("posted-interrupt descriptor address " + hex_address(pid_address) +
                       " for PID-pointer table index " + std::to_string(index) +
                       " is not 64-byte aligned");
    m_port.write64(entry_address(index), PidTableEntry::for_descriptor(pid_address).raw);
}

void PidPointerTable::clear(std::uint64_t index) { m_port.write64(entry_address(index), 0); }

PidTableEntry PidPointerTable::read(std::uint64_t index) const {
    return PidTableEntry{m_port.read64(entry_address(index))};
}

}  // namespace vtx::pid
