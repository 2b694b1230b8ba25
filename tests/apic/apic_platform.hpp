#pragma once
// Test support: a bus with N local APICs, the APIC costs the tests set, and a scripted
// thread that drives the APICs at chosen cycles. One Platform per test case (process).
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <systemc>

#include "apic/interrupt_bus.hpp"
#include "apic/local_apic.hpp"
#include "model/clock.hpp"
#include "model/costs.hpp"

namespace vtx::apic::test {

// Values chosen so that every term of the timing formula is distinguishable.
inline model::CostTable apic_costs() {
    using model::Cost;
    model::CostTable t;
    t.set_cycles(Cost::ApicMmioAccess, 100);
    t.set_cycles(Cost::ApicMsrAccess, 30);
    t.set_cycles(Cost::ApicIcrSend, 40);
    t.set_cycles(Cost::ApicBusLatency, 600);
    t.set_cycles(Cost::ApicBusSerialization, 20);
    t.set_cycles(Cost::ApicAccept, 10);
    t.set_cycles(Cost::ApicInterruptAck, 45);
    t.set_cycles(Cost::ApicEoi, 35);
    return t;
}

// An SC_THREAD running a test script.
class Script : public sc_core::sc_module {
public:
    Script(sc_core::sc_module_name name, std::function<void()> body)
        : sc_module(name), m_body(std::move(body)) {
        SC_HAS_PROCESS(Script);
        SC_THREAD(run);
    }
    bool finished() const { return m_finished; }

private:
    void run() {
        m_body();
        m_finished = true;
    }
    std::function<void()> m_body;
    bool m_finished = false;
};

struct Platform {
    model::CostTable costs = apic_costs();
    model::Clock clock{2.0};
    InterruptBus bus{"bus", costs, clock};
    std::vector<std::unique_ptr<LocalApic>> apics;

    // APICs with initial IDs ids[i] (default 0..n-1), bus index i.
    explicit Platform(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) add(static_cast<std::uint32_t>(i));
    }
    explicit Platform(const std::vector<std::uint32_t>& ids) {
        for (std::uint32_t id : ids) add(id);
    }
    LocalApic& operator[](std::size_t i) { return *apics[i]; }
    std::size_t size() const { return apics.size(); }
    double cost(model::Cost c) const { return costs[c]; }

    // Waits (in the script thread) until core cycle `cycle`.
    void at_cycle(double cycle) const {
        const sc_core::sc_time t = clock.to_time(cycle);
        if (t > sc_core::sc_time_stamp()) sc_core::wait(t - sc_core::sc_time_stamp());
    }
    std::uint64_t now_cycle() const { return clock.ticks_at(sc_core::sc_time_stamp()); }

    // Software-enables every APIC in its current mode (SVR = 1FFH).
    void software_enable_all() {
        for (auto& a : apics) software_enable(*a);
    }
    static void software_enable(LocalApic& a) {
        const std::uint32_t svr = kSvrApicSoftwareEnable | 0xFF;
        if (a.x2apic_mode())
            a.wrmsr(kX2ApicMsrSvr, svr);
        else
            a.mmio_write(kApicOffsetSvr, svr);
    }
    static void to_x2apic(LocalApic& a) {
        a.wrmsr(kMsrIa32ApicBase,
                kApicDefaultBaseAddress | kApicBaseGlobalEnable | kApicBaseX2ApicEnable);
    }

private:
    void add(std::uint32_t id) {
        apics.push_back(std::make_unique<LocalApic>(
            ("apic" + std::to_string(apics.size())).c_str(), id, costs, clock, bus));
    }
};

}  // namespace vtx::apic::test
