#include "model/memory.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace vtx::model {

const char* mem_op_name(MemOp op) {
    switch (op) {
        case MemOp::Read: return "read";
        case MemOp::Write: return "write";
        case MemOp::LockedBts: return "lock bts";
        case MemOp::LockedBtr: return "lock btr";
        case MemOp::LockedOr: return "lock or";
        case MemOp::LockedAnd: return "lock and";
        case MemOp::LockedXchg: return "xchg";
        case MemOp::LockedCmpxchg: return "lock cmpxchg";
        case MemOp::LockedAdd: return "lock xadd";
        case MemOp::LockedFetchAndClear: return "locked fetch-and-clear";
    }
    return "?";
}

PhysicalMemory::PhysicalMemory(std::uint64_t size_bytes, const CostTable* costs)
    : m_size(size_bytes), m_costs(costs),
      m_chunks((size_bytes / kPageSize + kChunkPages) >> kChunkBits) {}

void PhysicalMemory::check(std::uint64_t address, std::uint64_t len) const {
    if (len == 0 || address >= m_size || len > m_size - address) {
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "physical address 0x%llx (+%llu bytes) is outside memory (size 0x%llx)",
                      static_cast<unsigned long long>(address),
                      static_cast<unsigned long long>(len),
                      static_cast<unsigned long long>(m_size));
        throw MemoryError(address, len, buf);
    }
}

PhysicalMemory::PageEntry& PhysicalMemory::entry(std::uint64_t pn) {
    auto& chunk = m_chunks[pn >> kChunkBits];
    if (!chunk) chunk = std::make_unique<PageEntry[]>(kChunkPages);
    return chunk[pn & (kChunkPages - 1)];
}

std::uint8_t* PhysicalMemory::page(std::uint64_t address, bool create) {
    if (std::uint8_t* p = const_cast<std::uint8_t*>(page(address))) return p;
    if (!create) return nullptr;
    PageEntry& e = entry(address / kPageSize);
    e.bytes = std::make_unique<std::uint8_t[]>(kPageSize);  // value-initialized: zeroed
    return e.bytes.get();
}

const std::uint8_t* PhysicalMemory::page(std::uint64_t address) const {
    const PageEntry* e = existing_entry(address / kPageSize);
    return e ? e->bytes.get() : nullptr;
}

void PhysicalMemory::peek_slow(std::uint64_t address, void* out, std::uint64_t len) const {
    check(address, len);
    auto* dst = static_cast<std::uint8_t*>(out);
    while (len) {
        const std::uint64_t off = address % kPageSize;
        const std::uint64_t n = std::min(len, kPageSize - off);
        const std::uint8_t* p = page(address);
        if (p)
            std::memcpy(dst, p + off, n);
        else
            std::memset(dst, 0, n);
        address += n, dst += n, len -= n;
    }
}

void PhysicalMemory::poke_slow(std::uint64_t address, const void* in, std::uint64_t len) {
    check(address, len);
    const auto* src = static_cast<const std::uint8_t*>(in);
    while (len) {
        const std::uint64_t off = address % kPageSize;
        const std::uint64_t n = std::min(len, kPageSize - off);
        std::memcpy(page(address, true) + off, src, n);
        address += n, src += n, len -= n;
    }
}

std::uint64_t PhysicalMemory::peek64(std::uint64_t address) const {
    std::uint64_t v;
    peek(address, &v, sizeof v);
    return v;
}

void PhysicalMemory::poke64(std::uint64_t address, std::uint64_t value) {
    poke(address, &value, sizeof value);
}

std::uint64_t PhysicalMemory::allocate(std::uint64_t bytes, std::uint64_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)))
        throw MemoryError(0, bytes, "allocation alignment must be a power of two");
    const std::uint64_t base = (m_next_free + alignment - 1) & ~(alignment - 1);
    check(base, bytes);
    m_next_free = base + bytes;
    return base;
}

bool PhysicalMemory::Sharers::contains_bit(int agent) const {
    if (agent < 0) return false;
    const auto a = static_cast<std::size_t>(agent);
    return a / 64 < m_bits->size() && (((*m_bits)[a / 64] >> (a % 64)) & 1u);
}

void PhysicalMemory::Sharers::add(int agent) {
    if (agent < 0 || contains(agent)) return;
    if (!m_bits && m_count < kInline) {
        m_inline[m_count++] = agent;
        return;
    }
    auto set = [this](int a) {
        const auto u = static_cast<std::size_t>(a);
        if (u / 64 >= m_bits->size()) m_bits->resize(u / 64 + 1, 0);
        (*m_bits)[u / 64] |= std::uint64_t{1} << (u % 64);
    };
    if (!m_bits) {
        m_bits = std::make_unique<std::vector<std::uint64_t>>();
        for (unsigned i = 0; i < m_count; ++i) set(m_inline[i]);
    }
    set(agent);
    ++m_count;
}

PhysicalMemory::Line& PhysicalMemory::line(std::uint64_t line_number) {
    constexpr std::uint64_t kLinesPerPage = kPageSize / kCacheLineSize;
    PageEntry& e = entry(line_number / kLinesPerPage);
    if (!e.lines) e.lines = std::make_unique<Line[]>(kLinesPerPage);
    return e.lines[line_number % kLinesPerPage];
}

// The ownership model of one line: prices the access and updates who holds the line.
inline double PhysicalMemory::price_line(Line& line, int agent, bool write) {
    const CostTable& c = *m_costs;
    if (agent == kDeviceAgent) {
        if (write) {
            line.sharers.clear();
            line.modified_by = kDeviceAgent - 1;
        }
        return c[Cost::MemUncachedAccess];
    }
    const bool mine = line.modified_by == agent;
    const bool holds = mine || line.sharers.contains(agent);
    double cycles;
    if (write ? !mine && (!holds || line.sharers.any_but(agent) || line.modified_by >= 0) : !holds) {
        // (A write by a holder that is not the modifier transfers when anybody else holds
        // the line, modified_by >= 0 meaning another agent here.)
        cycles = c[Cost::MemLineTransfer];
        ++m_line_transfers;
    } else {
        cycles = c[Cost::MemL1Hit];
    }
    if (write) {
        line.sharers.only(agent);
        line.modified_by = agent;
    } else {
        if (line.modified_by >= 0 && !mine) line.modified_by = -2;
        if (!holds) line.sharers.add(agent);
    }
    return cycles;
}

double PhysicalMemory::coherence(int agent, std::uint64_t address, std::uint64_t len, bool write) {
    const std::uint64_t first = address / kCacheLineSize;
    const std::uint64_t last = (address + len - 1) / kCacheLineSize;
    double cycles = 0;
    for (std::uint64_t ln = first; ln <= last; ++ln) {
        Line& line = this->line(ln);
        if (m_costs) cycles += price_line(line, agent, write);
    }
    return cycles;
}

namespace {
// A copy of n bytes, the common sizes with a constant length (no library call).
inline void copy(void* dst, const void* src, unsigned n) {
    switch (n) {
        case 8: std::memcpy(dst, src, 8); break;
        case 4: std::memcpy(dst, src, 4); break;
        default: std::memcpy(dst, src, n); break;
    }
}
// A locked read-modify-write's operand: 4 or 8 bytes (extent() admits no other size).
inline void copy_operand(void* dst, const void* src, unsigned n) {
    if (n == 8)
        std::memcpy(dst, src, 8);
    else
        std::memcpy(dst, src, 4);
}
// Fetch-and-clear's copy out and zeroing of n bytes; the PIR's 32 with a constant length.
inline void take(std::uint8_t* dst, std::uint8_t* src, unsigned n) {
    if (n == 32) {
        std::memcpy(dst, src, 32);
        std::memset(src, 0, 32);
    } else {
        std::memcpy(dst, src, n);
        std::memset(src, 0, n);
    }
}
// Performs `r` on the bytes it addresses (`p`: the first byte of [where, where + span)).
// One definition of each operation, for the fast and the general path.
[[gnu::always_inline]] inline void perform_op(MemRequest& r, std::uint8_t* p) {
    switch (r.op) {
        case MemOp::Read: copy(r.data, p, r.size); break;
        case MemOp::Write: copy(p, r.data, r.size); break;
        case MemOp::LockedBts:
        case MemOp::LockedBtr: {
            const std::uint8_t mask = static_cast<std::uint8_t>(1u << (r.operand % 8));
            r.result = (*p & mask) ? 1 : 0;
            *p = r.op == MemOp::LockedBts ? (*p | mask) : (*p & ~mask);
            break;
        }
        case MemOp::LockedOr:
        case MemOp::LockedAnd:
        case MemOp::LockedXchg:
        case MemOp::LockedAdd:
        case MemOp::LockedCmpxchg: {
            std::uint64_t old = 0;
            copy_operand(&old, p, r.size);
            std::uint64_t nv = old;
            if (r.op == MemOp::LockedOr) nv = old | r.operand;
            if (r.op == MemOp::LockedAnd) nv = old & r.operand;
            if (r.op == MemOp::LockedXchg) nv = r.operand;
            if (r.op == MemOp::LockedAdd) nv = old + r.operand;
            if (r.op == MemOp::LockedCmpxchg) {
                const std::uint64_t mask = r.size == 8 ? ~0ull : 0xFFFFFFFFull;
                nv = (old == (r.compare & mask)) ? r.operand : old;
            }
            copy_operand(p, &nv, r.size);
            r.result = old;
            break;
        }
        case MemOp::LockedFetchAndClear: take(r.data, p, r.size); break;
    }
}
}  // namespace

double PhysicalMemory::perform(MemRequest& r, const Located& at) {
    const double cycles =
        (m_costs ? price_line(*at.line, r.agent, r.op != MemOp::Read) : 0.0) + locked_surcharge(r.op);
    if (is_locked(r.op)) ++m_locked_ops;
    perform_op(r, at.bytes);
    return cycles;
}

void PhysicalMemory::note_read(std::uint64_t address, unsigned size, int agent) {
    MemRequest r;
    r.op = MemOp::Read;
    r.address = address;
    r.size = size;
    r.agent = agent;
    if (Located at; m_costs && locate(r, at)) price_line(*at.line, agent, false);
}

double PhysicalMemory::access(MemRequest& r) {
    // The common case: within one line of a page that exists (and has its lines' state).
    std::uint64_t where = 0, span = 0;
    const bool well_formed = extent(r, where, span);
    const bool store = r.op != MemOp::Read;
    if (Located at; well_formed && locate(where, span, at)) {
        const double cycles = perform(r, at);
        if (store && at.line->observer && m_store_observer)
            m_store_observer(where & ~(kCacheLineSize - 1), r.agent, at.line->observer);
        return cycles;
    }
    if (!well_formed)
        throw MemoryError(r.address, r.size,
                          is_locked(r.op) && r.op != MemOp::LockedFetchAndClear
                              ? "locked operand size must be 4 or 8 bytes"
                              : "access size must be 1..64 bytes");
    // The general case: across lines or pages, or a page touched for the first time.
    check(where, span);
    if (is_locked(r.op)) ++m_locked_ops;
    const double cycles = coherence(r.agent, where, span, store) + locked_surcharge(r.op);
    std::uint8_t bytes[64];
    peek(where, bytes, span);
    perform_op(r, bytes);
    if (store) poke(where, bytes, span);
    if (store && m_store_observer) {
        for (std::uint64_t ln = where / kCacheLineSize; ln <= (where + span - 1) / kCacheLineSize; ++ln)
            if (const std::uint32_t tag = line(ln).observer) m_store_observer(ln * kCacheLineSize, r.agent, tag);
    }
    return cycles;
}

// ---- MemoryPort helpers ----
namespace {
MemRequest make(MemOp op, std::uint64_t a, unsigned size, std::uint64_t operand = 0) {
    MemRequest r;
    r.op = op;
    r.address = a;
    r.size = size;
    r.operand = operand;
    return r;
}
}  // namespace

std::uint64_t MemoryPort::read64(std::uint64_t a) {
    auto r = make(MemOp::Read, a, 8);
    access(r);
    std::uint64_t v;
    std::memcpy(&v, r.data, 8);
    return v;
}
std::uint32_t MemoryPort::read32(std::uint64_t a) {
    auto r = make(MemOp::Read, a, 4);
    access(r);
    std::uint32_t v;
    std::memcpy(&v, r.data, 4);
    return v;
}
void MemoryPort::write64(std::uint64_t a, std::uint64_t v) {
    auto r = make(MemOp::Write, a, 8);
    std::memcpy(r.data, &v, 8);
    access(r);
}
void MemoryPort::write32(std::uint64_t a, std::uint32_t v) {
    auto r = make(MemOp::Write, a, 4);
    std::memcpy(r.data, &v, 4);
    access(r);
}
void MemoryPort::read(std::uint64_t a, void* out, unsigned len) {
    auto r = make(MemOp::Read, a, len);
    access(r);
    std::memcpy(out, r.data, len);
}
void MemoryPort::write(std::uint64_t a, const void* in, unsigned len) {
    auto r = make(MemOp::Write, a, len);
    std::memcpy(r.data, in, len);
    access(r);
}
bool MemoryPort::locked_bts(std::uint64_t a, unsigned bit) {
    auto r = make(MemOp::LockedBts, a, 1, bit);
    access(r);
    return r.result != 0;
}
bool MemoryPort::locked_btr(std::uint64_t a, unsigned bit) {
    auto r = make(MemOp::LockedBtr, a, 1, bit);
    access(r);
    return r.result != 0;
}
std::uint64_t MemoryPort::locked_or(std::uint64_t a, std::uint64_t m, unsigned size) {
    auto r = make(MemOp::LockedOr, a, size, m);
    access(r);
    return r.result;
}
std::uint64_t MemoryPort::locked_and(std::uint64_t a, std::uint64_t m, unsigned size) {
    auto r = make(MemOp::LockedAnd, a, size, m);
    access(r);
    return r.result;
}
std::uint64_t MemoryPort::locked_xchg(std::uint64_t a, std::uint64_t v, unsigned size) {
    auto r = make(MemOp::LockedXchg, a, size, v);
    access(r);
    return r.result;
}
std::uint64_t MemoryPort::locked_add(std::uint64_t a, std::uint64_t d, unsigned size) {
    auto r = make(MemOp::LockedAdd, a, size, d);
    access(r);
    return r.result;
}
std::uint64_t MemoryPort::locked_cmpxchg(std::uint64_t a, std::uint64_t expected,
                                         std::uint64_t desired, unsigned size) {
    auto r = make(MemOp::LockedCmpxchg, a, size, desired);
    r.compare = expected;
    access(r);
    return r.result;
}
void MemoryPort::locked_fetch_and_clear(std::uint64_t a, void* out, unsigned len) {
    auto r = make(MemOp::LockedFetchAndClear, a, len);
    access(r);
    std::memcpy(out, r.data, len);
}

}  // namespace vtx::model
