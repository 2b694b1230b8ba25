#pragma once
// The one seeded random source of a simulation. Distributions are computed here (not by
// <random>'s implementation-defined distributions) so a seed gives the same numbers on
// every standard library.
#include <cmath>
#include <cstdint>
#include <random>

namespace vtx::model {

class Rng {
public:
    explicit Rng(std::uint64_t seed = 1) : m_engine(seed) {}
    std::uint64_t next_u64() { return m_engine(); }
    // Uniform in [0, 1).
    double uniform() { return static_cast<double>(m_engine() >> 11) * 0x1.0p-53; }
    // Uniform integer in [0, n).
    std::uint64_t below(std::uint64_t n) { return n ? next_u64() % n : 0; }
    // Standard normal (Box-Muller), truncated to +-3 sigma.
    double normal() {
        for (;;) {
            const double u1 = uniform(), u2 = uniform();
            if (u1 <= 0.0) continue;
            const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
            if (std::fabs(z) <= 3.0) return z;
        }
    }
    // A derived generator for an independent stream (e.g. one per run).
    Rng fork(std::uint64_t stream) { return Rng(next_u64() ^ (stream * 0x9E3779B97F4A7C15ull)); }

private:
    std::mt19937_64 m_engine;
};

// A generator of 8 bytes of state (SplitMix64, Steele, Lea and Flood 2014) for the many
// independent streams a large workload draws from (one per vCPU, re-drawn instead of
// stored), each seeded from the Rng. Same numbers on every standard library.
class SplitMix64 {
public:
    explicit SplitMix64(std::uint64_t seed) : m_state(seed) {}
    std::uint64_t next_u64() {
        std::uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    std::uint64_t below(std::uint64_t n) { return n ? next_u64() % n : 0; }

private:
    std::uint64_t m_state;
};

}  // namespace vtx::model
