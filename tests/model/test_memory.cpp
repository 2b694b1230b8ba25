#include <catch2/catch.hpp>

#include "model/memory_costs.hpp"
#include "model/memory.hpp"

using namespace vtx::model;


TEST_CASE("reads and writes round-trip and untouched memory reads zero", "[memory]") {
    CostTable t = vtx::test::memory_test_costs();
    PhysicalMemory mem(1 << 20, &t);
    DirectMemoryPort p(mem, 0);
    CHECK(p.read64(0x1000) == 0);
    p.write64(0x1000, 0x1122334455667788ull);
    CHECK(p.read64(0x1000) == 0x1122334455667788ull);
    CHECK(p.read32(0x1004) == 0x11223344u);
}

TEST_CASE("locked operations return old values", "[memory]") {
    CostTable t = vtx::test::memory_test_costs();
    PhysicalMemory mem(1 << 20, &t);
    DirectMemoryPort p(mem, 0);
    CHECK_FALSE(p.locked_bts(0x2000, 200));
    CHECK(p.locked_bts(0x2000, 200));
    CHECK(mem.peek64(0x2000 + 24) == (1ull << 8));
    CHECK(p.locked_btr(0x2000, 200));
    CHECK_FALSE(p.locked_btr(0x2000, 200));
    CHECK(p.locked_or(0x3000, 0xF0) == 0);
    CHECK(p.locked_and(0x3000, 0x30) == 0xF0);
    CHECK(p.locked_xchg(0x3000, 7) == 0x30);
    CHECK(p.locked_cmpxchg(0x3000, 6, 9) == 7);  // fails
    CHECK(mem.peek64(0x3000) == 7);
    CHECK(p.locked_cmpxchg(0x3000, 7, 9) == 7);  // succeeds
    CHECK(mem.peek64(0x3000) == 9);
    p.write64(0x4008, 0xABCD);
    std::uint8_t buf[32];
    p.locked_fetch_and_clear(0x4000, buf, 32);
    CHECK(buf[8] == 0xCD);
    CHECK(mem.peek64(0x4008) == 0);
    CHECK(mem.locked_operations() == 10);
}

TEST_CASE("an access outside memory is an error naming the address", "[memory]") {
    CostTable t = vtx::test::memory_test_costs();
    PhysicalMemory mem(0x10000, &t);
    DirectMemoryPort p(mem, 0);
    CHECK_THROWS_AS(p.read64(0x10000), MemoryError);
    CHECK_THROWS_AS(p.write64(0xFFFC, 1), MemoryError);
    CHECK_NOTHROW(p.write64(0xFFF8, 1));
    try {
        p.read64(0x20000);
    } catch (const MemoryError& e) {
        CHECK(e.address() == 0x20000);
        CHECK(std::string(e.what()).find("0x20000") != std::string::npos);
    }
}

TEST_CASE("a line written by one core costs a transfer when another reads it", "[memory]") {
    CostTable t = vtx::test::memory_test_costs();
    PhysicalMemory mem(1 << 20, &t);
    DirectMemoryPort a(mem, 0), b(mem, 1);
    a.write64(0x1000, 1);  // first touch: transfer
    const double a0 = a.cycles();
    a.write64(0x1008, 2);  // same line, held modified: hit
    CHECK(a.cycles() - a0 == 5);
    b.read64(0x1000);      // line in a's cache: transfer
    CHECK(b.cycles() == 100);
    b.read64(0x1000);      // now shared: hit
    CHECK(b.cycles() == 105);
    const double a1 = a.cycles();
    a.write64(0x1000, 3);  // must invalidate b: RFO transfer
    CHECK(a.cycles() - a1 == 100);
    CHECK(mem.line_transfers() == 3);
}

TEST_CASE("allocator returns aligned, zeroed, distinct regions", "[memory]") {
    PhysicalMemory mem(1 << 24, nullptr);
    const auto x = mem.allocate(100, 64);
    const auto y = mem.allocate(4096, 4096);
    CHECK(x % 64 == 0);
    CHECK(y % 4096 == 0);
    CHECK(y >= x + 100);
    CHECK(mem.peek64(y) == 0);
}
