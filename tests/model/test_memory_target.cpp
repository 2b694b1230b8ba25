// The TLM-2.0 face of simulated memory: transactions through a socket, latency as the
// annotated delay, an access outside memory answered with TLM_ADDRESS_ERROR_RESPONSE.
#include <catch2/catch.hpp>

#include <cstring>

#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>

#include "model/memory_costs.hpp"
#include "model/memory_target.hpp"

using namespace vtx::model;

namespace {
struct Initiator : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Initiator> socket{"socket"};
    explicit Initiator(sc_core::sc_module_name n) : sc_module(n) {}
};
// Every test's memory: the test costs, a 2 GHz clock, 64 KiB, and its TLM target.
struct MemoryUnderTest {
    CostTable costs = vtx::test::memory_test_costs();
    Clock clock{2.0};
    PhysicalMemory mem{0x10000, &costs};
    MemoryTarget target{"memory", mem, clock};
};
}  // namespace

TEST_CASE("memory answers TLM transactions with latency and address errors", "[memory][tlm]") {
    MemoryUnderTest under;
    auto& [costs, clock, mem, target] = under;
    Initiator a("a"), b("b");
    a.socket.bind(target.socket);
    b.socket.bind(target.socket);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);  // end of elaboration binds the multi-socket

    sc_core::sc_time delay0 = sc_core::SC_ZERO_TIME;
    MemoryTransaction transaction;
    MemRequest w;
    w.op = MemOp::Write;
    w.address = 0x100;
    w.size = 8;
    w.agent = 0;
    std::memset(w.data, 0, sizeof w.data);
    w.data[0] = 0x2A;
    CHECK(transaction.perform(a.socket, w, delay0) == Approx(100));  // first touch: transfer
    MemRequest r;
    r.op = MemOp::Read;
    r.address = 0x100;
    r.size = 8;
    r.agent = 1;
    CHECK(transaction.perform(b.socket, r, delay0) == Approx(100));  // line held by agent 0
    CHECK(r.data[0] == 0x2A);
    MemRequest lock;
    lock.op = MemOp::LockedBts;
    lock.address = 0x200;
    lock.operand = 3;
    lock.size = 1;
    lock.agent = 1;
    transaction.perform(b.socket, lock, delay0);
    CHECK(lock.result == 0);
    CHECK(mem.peek64(0x200) == 8);

    MemRequest bad;
    bad.op = MemOp::Read;
    bad.address = 0x10000;
    bad.size = 8;
    CHECK_THROWS_AS(transaction.perform(a.socket, bad, delay0), MemoryError);

    // A plain TLM read without the extension is a device access.
    tlm::tlm_generic_payload gp;
    std::uint64_t value = 0;
    gp.set_command(tlm::TLM_READ_COMMAND);
    gp.set_address(0x100);
    gp.set_data_ptr(reinterpret_cast<unsigned char*>(&value));
    gp.set_data_length(8);
    gp.set_streaming_width(8);
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    delay0 = sc_core::SC_ZERO_TIME;
    a.socket->b_transport(gp, delay);
    CHECK(gp.is_response_ok());
    CHECK(value == 0x2A);
    CHECK(clock.to_cycles(delay) == Approx(200));
    gp.set_address(0x20000);
    gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    a.socket->b_transport(gp, delay);
    CHECK(gp.get_response_status() == tlm::TLM_ADDRESS_ERROR_RESPONSE);
}

namespace {
// Two initiator threads over one memory: a poller waits on a line; a writer stores to it
// with its local time offset annotated on the transaction, once or twice.
struct PollAndStore : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<PollAndStore> writer_socket{"writer_socket"};
    MemoryTarget& target;
    Clock& clock;
    double offset_cycles, second_offset_cycles;
    double woke_at = -1, writer_after = -1, writer_after_second = -1;
    bool first_synchronized = true, second_synchronized = false;
    std::uint64_t line = 0x1000;
    SC_HAS_PROCESS(PollAndStore);
    PollAndStore(sc_core::sc_module_name n, MemoryTarget& t, Clock& c, double offset,
                 double second_offset = -1)
        : sc_module(n), target(t), clock(c), offset_cycles(offset), second_offset_cycles(second_offset) {
        SC_THREAD(poller);
        SC_THREAD(writer);
    }
    void poller() {
        sc_core::sc_event& written = target.line_written_event(line);
        target.begin_wait(line, target.line_write_count(line));
        sc_core::wait(written);
        target.end_wait(line);
        woke_at = clock.to_cycles(sc_core::sc_time_stamp());
    }
    void store(double offset, bool& synchronized) {
        MemoryTransaction transaction;
        MemRequest w;
        w.op = MemOp::Write;
        w.address = line;
        w.size = 8;
        w.agent = 0;
        std::memset(w.data, 0, sizeof w.data);
        sc_core::sc_time delay = clock.to_time(offset);
        transaction.perform(writer_socket, w, delay);
        synchronized = w.synchronized;
    }
    void writer() {
        sc_core::wait(clock.to_time(100));
        store(offset_cycles, first_synchronized);
        writer_after = clock.to_cycles(sc_core::sc_time_stamp());
        if (second_offset_cycles < 0) return;
        store(second_offset_cycles, second_synchronized);
        writer_after_second = clock.to_cycles(sc_core::sc_time_stamp());
    }
};
}  // namespace

TEST_CASE("a store annotated ahead of SystemC time wakes a poller at the store's time", "[memory][tlm][decoupled]") {
    MemoryUnderTest under;
    auto& [costs, clock, mem, target] = under;
    // One store: the writer keeps running ahead; the store's time is recorded and the
    // line's event fires then.
    PollAndStore m("m", target, clock, 400);
    m.writer_socket.bind(target.socket);
    sc_core::sc_start();
    CHECK(m.woke_at == Approx(500));       // 100 + the annotated offset
    CHECK(m.writer_after == Approx(100));  // the writer did not synchronize
    CHECK_FALSE(m.first_synchronized);
    CHECK(clock.to_cycles(target.line_store_time(0x1000)) == Approx(500));
    CHECK(target.line_write_count(0x1008) == 1);  // the same line
}

TEST_CASE("a second store to a polled line before the poller ran synchronizes the writer first",
          "[memory][tlm][decoupled]") {
    MemoryUnderTest under;
    auto& [costs, clock, mem, target] = under;
    // The first store (at 100 + 400) wakes the waiting poller then, without a
    // synchronization; the second (at 100 + 600) waits until then, so the poller runs at
    // 500 and sees memory as of the first store.
    PollAndStore m("m", target, clock, 400, 600);
    m.writer_socket.bind(target.socket);
    sc_core::sc_start();
    CHECK_FALSE(m.first_synchronized);
    CHECK(m.writer_after == Approx(100));
    CHECK(m.second_synchronized);
    CHECK(m.writer_after_second == Approx(700));
    CHECK(m.woke_at == Approx(500));
}

namespace {
// A poller that stores to its own line ahead of SystemC time and then waits on it, or that
// is woken by something else and waits again; a writer that stores later.
struct SelfStoreThenPoll : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<SelfStoreThenPoll> poller_socket{"poller_socket"};
    tlm_utils::simple_initiator_socket<SelfStoreThenPoll> writer_socket{"writer_socket"};
    MemoryTarget& target;
    Clock& clock;
    bool woken_first_by_other;  // the poller's first wait ends by another event, before the writer's store is due
    sc_core::sc_event other;
    double first_woke = -1, second_woke = -1;
    static constexpr std::uint64_t kLine = 0x1000;
    SC_HAS_PROCESS(SelfStoreThenPoll);
    SelfStoreThenPoll(sc_core::sc_module_name n, MemoryTarget& t, Clock& c, bool by_other)
        : sc_module(n), target(t), clock(c), woken_first_by_other(by_other) {
        SC_THREAD(poller);
        SC_THREAD(writer);
    }
    template <class Socket>
    void store(Socket& socket, int agent, double offset) {
        MemoryTransaction transaction;
        MemRequest w;
        w.op = MemOp::Write;
        w.address = kLine;
        w.size = 8;
        w.agent = agent;
        std::memset(w.data, 0, sizeof w.data);
        sc_core::sc_time delay = clock.to_time(offset);
        transaction.perform(socket, w, delay);
    }
    double now() const { return clock.to_cycles(sc_core::sc_time_stamp()); }
    void poller() {
        MemoryTarget::WatchedLine& line = target.watch(kLine);
        if (!woken_first_by_other) store(poller_socket, 0, 400);  // takes effect at 400
        target.begin_wait(line, line.write_count());
        sc_core::wait(line.written_event() | other);
        target.end_wait(line);
        first_woke = now();
        if (!woken_first_by_other) return;
        // It has seen the writer's store (made in host order, due at 500): waiting again,
        // it is woken by the next store, not by the one it has seen.
        target.begin_wait(line, line.write_count());
        sc_core::wait(line.written_event());
        target.end_wait(line);
        second_woke = now();
    }
    void writer() {
        sc_core::wait(clock.to_time(100));
        if (woken_first_by_other) {
            store(writer_socket, 1, 400);  // due at 500, the poller waiting
            other.notify(clock.to_time(100));  // wakes the poller at 200
            sc_core::wait(clock.to_time(700));
            store(writer_socket, 1, 0);  // at 800
        } else {
            sc_core::wait(clock.to_time(500));
            store(writer_socket, 1, 0);  // at 600
        }
    }
};
}  // namespace

namespace {
struct PollResult {
    double first_woke, second_woke;
    std::uint64_t writes;
};
PollResult run_self_store_then_poll(bool woken_first_by_other) {
    MemoryUnderTest under;
    auto& [costs, clock, mem, target] = under;
    SelfStoreThenPoll m("m", target, clock, woken_first_by_other);
    m.poller_socket.bind(target.socket);
    m.writer_socket.bind(target.socket);
    sc_core::sc_start();
    return {m.first_woke, m.second_woke, target.line_write_count(SelfStoreThenPoll::kLine)};
}
}  // namespace

TEST_CASE("a poller's own store made ahead of time does not wake it", "[memory][tlm][decoupled]") {
    const PollResult r = run_self_store_then_poll(false);
    // Its store is due at 400 but nobody waited when it was made: the writer's store at
    // 600 wakes it, not its own.
    CHECK(r.first_woke == Approx(600));
    CHECK(r.writes == 2);
}

TEST_CASE("a poller that has seen a store is not woken by it again", "[memory][tlm][decoupled]") {
    const PollResult r = run_self_store_then_poll(true);
    CHECK(r.first_woke == Approx(200));   // the other event
    CHECK(r.second_woke == Approx(800));  // the next store, not the seen one's notification at 500
}

namespace {
// A poller whose condition is the polled value (`while (load(kLine) != 2) ;`), decoupled:
// the writer, running ahead, stores 1 (the condition stays false), then 2.
struct ValuePolling : sc_core::sc_module {
    static constexpr std::uint64_t kLine = 0x3000;
    MemoryTarget& target;
    PhysicalMemory& mem;
    const Clock& clock;
    std::function<bool(std::uint64_t)> is_two = [](std::uint64_t v) { return v == 2; };
    int wakes = 0;
    double woke_at = -1;
    double transfers_after_first = -1;
    double second_latency = -1;
    bool second_synchronized = false;
    SC_HAS_PROCESS(ValuePolling);
    ValuePolling(sc_core::sc_module_name n, MemoryTarget& t, PhysicalMemory& m, const Clock& c)
        : sc_module(n), target(t), mem(m), clock(c) {
        SC_THREAD(poller);
        SC_THREAD(writer);
    }
    double store(int agent, std::uint64_t value, double offset, bool& synchronized) {
        MemRequest w;
        w.op = MemOp::Write;
        w.address = kLine;
        w.size = 8;
        w.agent = agent;
        std::memcpy(w.data, &value, 8);
        const double latency = target.transport(w, offset);
        synchronized = w.synchronized;
        return latency;
    }
    void poller() {
        MemoryTarget::WatchedLine& line = target.watch(kLine);
        MemRequest r;  // its first load: the line is now held by agent 0
        r.op = MemOp::Read;
        r.address = kLine;
        r.agent = 0;
        target.transport(r, 0);
        const MemoryTarget::ValuePoller self{0, kLine, 8, &is_two};
        while (mem.peek64(kLine) != 2) {
            target.begin_wait(line, line.write_count(), &self);
            sc_core::wait(line.written_event());
            target.end_wait(line, &self);
            ++wakes;
            woke_at = clock.to_cycles(sc_core::sc_time_stamp());
        }
    }
    void writer() {
        sc_core::wait(clock.to_time(100));
        bool synchronized = false;
        store(1, 1, 50, synchronized);  // due at 150: leaves the poller waiting
        transfers_after_first = static_cast<double>(mem.line_transfers());
        second_latency = store(1, 2, 80, second_synchronized);  // at 180
    }
};
}  // namespace

TEST_CASE("a value poller is not woken by a store that leaves its condition false", "[memory][tlm][decoupled]") {
    MemoryUnderTest under;
    auto& [costs, clock, mem, target] = under;
    ValuePolling m("m", target, mem, clock);
    Initiator unused("unused");  // the socket must be bound; this test uses the direct interface
    unused.socket.bind(target.socket);
    sc_core::sc_start();
    // One wake-up, by the store of 2; the store of 1 passed it.
    CHECK(m.wakes == 1);
    CHECK(m.woke_at == Approx(180));
    // The passed poller's load is kept: the first store took the line from the poller and
    // the poller's modelled load took it back (two transfers after the poller's own first
    // load's), so the second store pays a transfer as it would after a real load...
    CHECK(m.transfers_after_first == Approx(3));
    CHECK(m.second_latency == Approx(100));
    // ...and, the pollers not having run since a store, it synchronizes its writer first.
    CHECK(m.second_synchronized);
    CHECK(mem.line_transfers() == 4);
}
