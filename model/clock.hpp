#pragma once
// Cycle time: a core clock converts cycles <-> sc_time (SystemC time = cycles x period).
#include <cmath>
#include <cstdint>

#include <systemc>

namespace vtx::model {

class Clock {
public:
    explicit Clock(double ghz = 2.0) : m_ghz(ghz), m_period_ps(1000.0 / ghz) {}
    double ghz() const { return m_ghz; }
    double period_ps() const { return m_period_ps; }
    sc_core::sc_time to_time(double cycles) const {
        return sc_core::sc_time(cycles * m_period_ps, sc_core::SC_PS);
    }
    double to_cycles(const sc_core::sc_time& t) const {
        return t.to_seconds() * 1e12 / m_period_ps;
    }
    // Cycles elapsed at simulated time t (rounded down): what a TSC at this clock reads.
    std::uint64_t ticks_at(const sc_core::sc_time& t) const {
        return static_cast<std::uint64_t>(std::floor(to_cycles(t) + 1e-6));
    }

private:
    double m_ghz;
    double m_period_ps;
};

}  // namespace vtx::model
