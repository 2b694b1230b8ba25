#pragma once
// A value per small key (an interrupt vector, a basic exit reason: 0..255), stored
// sparsely. A processor or vCPU uses a few keys of the 256, and a 4096-vCPU simulation
// keeps several such tables per vCPU and per CPU: a full array of 256 std::function is
// 8 KiB, of 256 counters 2 KiB. Access stays O(1): an index per key names the value.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace vtx::model {

template <class T, std::size_t Keys = 256>
class SparseArray {
public:
    // The value of a key, made (value-initialized) on first use.
    T& at(std::size_t key) {
        std::uint16_t& slot = m_slot[key];
        if (slot == 0) {
            m_values.emplace_back();
            slot = static_cast<std::uint16_t>(m_values.size());
        }
        return m_values[slot - 1u];
    }
    // The value of a key, or nullptr if it was never made.
    const T* find(std::size_t key) const {
        const std::uint16_t slot = key < Keys ? m_slot[key] : 0;
        return slot ? &m_values[slot - 1u] : nullptr;
    }

private:
    static_assert(Keys < 65536, "slots are 16-bit");
    std::array<std::uint16_t, Keys> m_slot{};  // 0: none; else value index + 1
    std::vector<T> m_values;
};

}  // namespace vtx::model
