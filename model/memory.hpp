#pragma once
// Simulated physical memory: sparse storage, the locked read-modify-write operations the
// VMX flows and KVM use, and a small coherence model (who holds which 64-byte line) that
// prices each access from the cost table. Plain C++; model/memory_target.hpp wraps it
// as a TLM-2.0 target.
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/costs.hpp"

namespace vtx::model {

inline constexpr std::uint64_t kPageSize = 4096;
inline constexpr std::uint64_t kCacheLineSize = 64;
inline constexpr int kDeviceAgent = -1;  // an agent without a cache (DMA, loaders)

// An access outside memory (the TLM target reports it as TLM_ADDRESS_ERROR_RESPONSE).
class MemoryError : public std::runtime_error {
public:
    MemoryError(std::uint64_t address, std::uint64_t size, const std::string& what)
        : std::runtime_error(what), m_address(address), m_size(size) {}
    std::uint64_t address() const { return m_address; }
    std::uint64_t size() const { return m_size; }

private:
    std::uint64_t m_address;
    std::uint64_t m_size;
};

enum class MemOp {
    Read,
    Write,
    LockedBts,            // bit test-and-set: bit `operand` counted from `address`; result = old bit
    LockedBtr,            // bit test-and-reset
    LockedOr,             // *address |= operand (size 4 or 8); result = old value
    LockedAnd,            // *address &= operand; result = old value
    LockedXchg,           // result = old value; *address = operand
    LockedCmpxchg,        // if *address == compare then *address = operand; result = old value
    LockedAdd,            // LOCK XADD: *address += operand; result = old value
    LockedFetchAndClear,  // data = old contents (size bytes, up to 64); contents := 0
};

inline bool is_locked(MemOp op) { return op != MemOp::Read && op != MemOp::Write; }
const char* mem_op_name(MemOp op);

struct MemRequest {
    MemOp op = MemOp::Read;
    std::uint64_t address = 0;
    unsigned size = 8;           // bytes (Read/Write/FetchAndClear: up to 64; RMW: 4 or 8)
    std::uint64_t operand = 0;   // bit number, OR/AND mask, new value
    std::uint64_t compare = 0;   // CMPXCHG expected value
    std::uint64_t result = 0;    // old value / old bit
    std::uint8_t data[64];       // Read/Write/FetchAndClear payload (only `size` bytes are used)
    int agent = kDeviceAgent;    // who accesses (a processor index), for the coherence model
    double latency = 0;          // set by the memory target: the access's latency in cycles
    bool synchronized = false;   // set by the memory target: it waited the initiator's offset out
};

class PhysicalMemory {
public:
    PhysicalMemory(std::uint64_t size_bytes, const CostTable* costs);

    std::uint64_t size() const { return m_size; }

    // Performs the access and returns its latency in cycles. Throws MemoryError.
    double access(MemRequest& req);

    // Untimed, coherence-free access for loaders, tests and debuggers (and the processor's
    // own untimed accesses, whose cost a named step charges). The common case, an access
    // within one page that exists, is inline.
    void peek(std::uint64_t address, void* out, std::uint64_t len) const {
        if (const std::uint8_t* p = cached_within_page(address, len)) {
            std::memcpy(out, p, len);
            return;
        }
        peek_slow(address, out, len);
    }
    void poke(std::uint64_t address, const void* in, std::uint64_t len) {
        if (std::uint8_t* p = const_cast<std::uint8_t*>(cached_within_page(address, len))) {
            std::memcpy(p, in, len);
            return;
        }
        poke_slow(address, in, len);
    }
    // The bytes of the page that starts at `page_address` (made, zeroed, if untouched), for
    // an agent's own untimed view of one page (the virtual-APIC page); nullptr when the
    // address is not page-aligned or the page is outside memory. Pages never move.
    std::uint8_t* page_bytes(std::uint64_t page_address) {
        if (page_address % kPageSize || page_address >= m_size || kPageSize > m_size - page_address) return nullptr;
        return page(page_address, true);
    }
    std::uint64_t peek64(std::uint64_t address) const;
    void poke64(std::uint64_t address, std::uint64_t value);

    // A trivially simple allocator of zeroed, aligned physical memory for the VMM and
    // loaders (never freed: a simulation is short-lived).
    std::uint64_t allocate(std::uint64_t bytes, std::uint64_t alignment = kPageSize);

    // Called after a store (plain or locked) to a line marked with observe_line, with the
    // line address, the agent and the line's tag (a store to any other line calls nothing:
    // the common case costs no call).
    using StoreObserver = std::function<void(std::uint64_t line, int agent, std::uint32_t tag)>;
    void set_store_observer(StoreObserver fn) { m_store_observer = std::move(fn); }
    // Marks the line holding `address` as observed, with the observer's `tag` (not 0: the
    // observer's handle of what it keeps for the line, so that it finds it without a
    // look-up).
    void observe_line(std::uint64_t address, std::uint32_t tag) { line(address / kCacheLineSize).observer = tag; }
    // The tag of the line holding `address`, 0 when it is not observed (no page or line
    // state is made).
    std::uint32_t line_observer(std::uint64_t address) const {
        const PageEntry* e = address < m_size ? existing_entry(address / kPageSize) : nullptr;
        return e && e->lines ? e->lines[address % kPageSize / kCacheLineSize].observer : 0;
    }

    // Statistics.
    std::uint64_t line_transfers() const { return m_line_transfers; }
    std::uint64_t locked_operations() const { return m_locked_ops; }

    // The agents holding a copy of a line: inline while at most two do, a bitmap once
    // more do (a line every vCPU reads, at 4096 vCPUs), so that each question is O(1) and a
    // line's state is 24 bytes (a page's 64 lines: 1.5 KiB).
    class Sharers {
    public:
        bool contains(int agent) const {
            if (m_bits) return contains_bit(agent);
            for (unsigned i = 0; i < m_count; ++i)
                if (m_inline[i] == agent) return true;
            return false;
        }
        bool any_but(int agent) const { return m_count > (contains(agent) ? 1u : 0u); }
        void add(int agent);  // a device agent (< 0) is never a sharer
        void only(int agent) {  // the set becomes {agent}
            clear();
            if (agent >= 0) m_inline[m_count++] = agent;
        }
        void clear() {
            m_bits.reset();
            m_count = 0;
        }
    private:
        bool contains_bit(int agent) const;
        static constexpr unsigned kInline = 2;
        std::array<int, kInline> m_inline{};
        unsigned m_count = 0;
        std::unique_ptr<std::vector<std::uint64_t>> m_bits;  // once more than kInline
    };
    struct Line {
        Sharers sharers;                     // agents holding a copy
        int modified_by = kDeviceAgent - 1;  // agent holding it Modified (none)
        std::uint32_t observer = 0;          // not 0: stores call the store observer with this tag
    };

    // access() in two steps, for the initiator that handles stores to observed lines itself
    // (the memory target acts on a watched line before a store as well as after it):
    // locate() finds where a well-formed access within one line of a page that exists takes
    // place (false for any other access: call access(), which also reports what is wrong);
    // perform() then prices and performs it there as access() does, without calling the store
    // observer. The common case of every simulated access, one page-table walk.
    struct Located {
        std::uint8_t* bytes = nullptr;  // the first byte the access touches
        Line* line = nullptr;           // its line's coherence state (line->observer: its tag)
    };
    bool locate(const MemRequest& r, Located& at) const {
        std::uint64_t where = 0, span = 0;
        return extent(r, where, span) && locate(where, span, at);
    }
    // The same for the bytes [where, where + span).
    bool locate(std::uint64_t where, std::uint64_t span, Located& at) const {
        if (where >= m_size || span > m_size - where || where % kCacheLineSize + span > kCacheLineSize) return false;
        const PageEntry* e = existing_entry(where / kPageSize);
        if (!e || !e->bytes || !e->lines) return false;
        const std::uint64_t off = where % kPageSize;
        at.bytes = e->bytes.get() + off;
        at.line = &e->lines[off / kCacheLineSize];
        return true;
    }
    double perform(MemRequest& r, const Located& at);
    // The bytes an access touches, [where, where + span) (a bit operation: the byte holding
    // its bit); false when it is malformed (a size its operation does not take).
    static bool extent(const MemRequest& r, std::uint64_t& where, std::uint64_t& span) {
        where = r.address;
        span = r.size;
        switch (r.op) {
            case MemOp::LockedBts:
            case MemOp::LockedBtr:
                where = r.address + r.operand / 8;
                span = 1;
                return true;
            case MemOp::Read:
            case MemOp::Write:
            case MemOp::LockedFetchAndClear: return span > 0 && span <= sizeof r.data;
            default: return span == 4 || span == 8;
        }
    }
    // The effect on its line of a read of [address, address + size) by `agent` that is not
    // performed (a poller's load, modelled at the store it follows without running it): the
    // line's holders and the transfer count change as that read would change them.
    void note_read(std::uint64_t address, unsigned size, int agent);

private:
    // The bytes at `address` if [address, address + len) lies in memory, within one page,
    // and that page exists; else nullptr.
    const std::uint8_t* cached_within_page(std::uint64_t address, std::uint64_t len) const {
        const std::uint64_t off = address % kPageSize;
        if (len == 0 || off + len > kPageSize || address >= m_size || len > m_size - address) return nullptr;
        const PageEntry* e = existing_entry(address / kPageSize);
        return e && e->bytes ? e->bytes.get() + off : nullptr;
    }
    // The general case (across pages, pages not yet there): out of line, never inlined into
    // the hot callers of peek and poke.
    [[gnu::noinline]] void peek_slow(std::uint64_t address, void* out, std::uint64_t len) const;
    [[gnu::noinline]] void poke_slow(std::uint64_t address, const void* in, std::uint64_t len);
    std::uint8_t* page(std::uint64_t address, bool create);
    const std::uint8_t* page(std::uint64_t address) const;
    void check(std::uint64_t address, std::uint64_t len) const;
    // Prices the access by the lines' states and updates them; `observed` is set when a
    // line is one the store observer watches.
    double coherence(int agent, std::uint64_t address, std::uint64_t len, bool write);
    double price_line(Line& line, int agent, bool write);  // one line (m_costs set)
    double locked_surcharge(MemOp op) const {  // a locked read-modify-write's extra cycles
        return is_locked(op) && m_costs ? (*m_costs)[Cost::MemLockedRmw] : 0.0;
    }

    std::uint64_t m_size;
    const CostTable* m_costs;
    // A two-level page table (as a radix tree, so that a 4 GiB memory costs 16 KiB until
    // it is touched): chunks of 512 pages (2 MiB), each page's bytes and its lines'
    // coherence state made on first use. O(1) per access at any number of agents; pages
    // are never freed, so pointers into them stay valid.
    struct PageEntry {
        std::unique_ptr<std::uint8_t[]> bytes;
        std::unique_ptr<Line[]> lines;  // kPageSize / kCacheLineSize
    };
    static constexpr unsigned kChunkBits = 9;
    static constexpr std::uint64_t kChunkPages = std::uint64_t{1} << kChunkBits;
    std::vector<std::unique_ptr<PageEntry[]>> m_chunks;
    PageEntry& entry(std::uint64_t page_number);  // makes the chunk if needed
    // The entry of a page number below size() / kPageSize if its chunk exists (else nullptr).
    PageEntry* existing_entry(std::uint64_t page_number) const {
        PageEntry* chunk = m_chunks[page_number >> kChunkBits].get();
        return chunk ? &chunk[page_number & (kChunkPages - 1)] : nullptr;
    }
    Line& line(std::uint64_t line_number);
    std::uint64_t m_next_free = 0x100000;  // allocator starts above the first MiB
    StoreObserver m_store_observer;
    std::uint64_t m_line_transfers = 0;
    std::uint64_t m_locked_ops = 0;
};

// How software and microcode reach memory: the processor implements it over its TLM
// socket (charging time); tests use DirectMemoryPort.
class MemoryPort {
public:
    virtual ~MemoryPort() = default;
    virtual void access(MemRequest& req) = 0;

    std::uint64_t read64(std::uint64_t address);
    std::uint32_t read32(std::uint64_t address);
    void write64(std::uint64_t address, std::uint64_t value);
    void write32(std::uint64_t address, std::uint32_t value);
    void read(std::uint64_t address, void* out, unsigned len);
    void write(std::uint64_t address, const void* in, unsigned len);
    bool locked_bts(std::uint64_t address, unsigned bit);
    bool locked_btr(std::uint64_t address, unsigned bit);
    std::uint64_t locked_or(std::uint64_t address, std::uint64_t mask, unsigned size = 8);
    std::uint64_t locked_and(std::uint64_t address, std::uint64_t mask, unsigned size = 8);
    std::uint64_t locked_xchg(std::uint64_t address, std::uint64_t value, unsigned size = 8);
    std::uint64_t locked_add(std::uint64_t address, std::uint64_t delta, unsigned size = 8);
    std::uint64_t locked_cmpxchg(std::uint64_t address, std::uint64_t expected,
                                 std::uint64_t desired, unsigned size = 8);
    void locked_fetch_and_clear(std::uint64_t address, void* out, unsigned len);
};

// Direct access to a PhysicalMemory as one agent, summing latencies (untimed contexts).
class DirectMemoryPort : public MemoryPort {
public:
    DirectMemoryPort(PhysicalMemory& mem, int agent) : m_mem(mem), m_agent(agent) {}
    void access(MemRequest& req) override {
        req.agent = m_agent;
        if (before_access) before_access(req);
        m_cycles += m_mem.access(req);
    }
    double cycles() const { return m_cycles; }
    // A hook run before each access (tests use it to interleave two agents).
    std::function<void(const MemRequest&)> before_access;

private:
    PhysicalMemory& m_mem;
    int m_agent;
    double m_cycles = 0;
};

}  // namespace vtx::model
