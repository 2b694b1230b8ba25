#pragma once
// Cycle time: a core clock converts cycles <-> sc_time (SystemC time = cycles x period).
#include <array>
#include <cmath>
#include <cstring>
#include <cstdint>

#include <systemc>

namespace vtx::model {

// The present SystemC time: what sc_core::sc_time_stamp() returns (its definition), without
// the library call, for the hot path.
inline const sc_core::sc_time& sim_now() { return sc_core::sc_get_curr_simcontext()->time_stamp(); }

class Clock {
public:
    explicit Clock(double ghz = 2.0) : m_ghz(ghz), m_period_ps(1000.0 / ghz) {}
    double ghz() const { return m_ghz; }
    double period_ps() const { return m_period_ps; }
    // Both conversions run on every timed step, so with SystemC's default resolution
    // (1 ps) they are done here with the arithmetic of sc_time(double, SC_PS) and
    // sc_time::to_seconds() (same operations, same order: bit-identical results) instead
    // of calls into the library.
    sc_core::sc_time to_time(double cycles) const {
        const double ps = cycles * m_period_ps;
        if (!resolution_is_1ps() || !(ps > 0.0)) return sc_core::sc_time(ps, sc_core::SC_PS);
        // as sc_time(double, SC_PS) rounds at 1 ps resolution: 1 ps x ps, whose inline
        // operator*= rounds the same way (int64(ps + 0.5)), without from_value's call
        static const sc_core::sc_time one_ps = sc_core::sc_time::from_value(1);
        return one_ps * ps;
    }
    // The same, for the few latencies that are converted again and again (the memory's):
    // the last few conversions are remembered.
    sc_core::sc_time latency_to_time(double cycles) const {
        std::uint64_t bits;
        std::memcpy(&bits, &cycles, sizeof bits);
        Memo& m = m_memo[(bits ^ (bits >> 32) ^ (bits >> 45)) % kMemoSlots];
        if (m.valid && m.cycles == cycles) return m.time;
        m = Memo{true, cycles, to_time(cycles)};
        return m.time;
    }
    double to_cycles(const sc_core::sc_time& t) const {
        if (!resolution_is_1ps()) return t.to_seconds() * 1e12 / m_period_ps;
        // Mostly asked for the present again and again: remember the last answer.
        if (t.value() == m_last_value) return m_last_cycles;
        m_last_value = t.value();
        m_last_cycles = static_cast<double>(t.value()) * kFsPerPs * 1e-15 * 1e12 / m_period_ps;
        return m_last_cycles;
    }
    // Cycles elapsed at simulated time t (rounded down): what a TSC at this clock reads.
    std::uint64_t ticks_at(const sc_core::sc_time& t) const {
        return static_cast<std::uint64_t>(std::floor(to_cycles(t) + 1e-6));
    }

private:
    static constexpr double kFsPerPs = 1000.0;  // SystemC keeps the resolution in fs
    static bool resolution_is_1ps() {
        static const bool is = sc_core::sc_time(1, sc_core::SC_PS) == sc_core::sc_time::from_value(1);
        return is;
    }
    double m_ghz;
    double m_period_ps;
    struct Memo {
        bool valid = false;
        double cycles = 0;
        sc_core::sc_time time;
    };
    static constexpr std::size_t kMemoSlots = 16;
    mutable std::array<Memo, kMemoSlots> m_memo{};
    mutable sc_core::sc_time::value_type m_last_value = 0;
    mutable double m_last_cycles = 0.0;
};

}  // namespace vtx::model
