#pragma once
// Shared fixtures for the pid/ tests: a small memory without costs and two agents on it.
#include <cstdint>
#include <vector>

#include "model/memory.hpp"
#include "pid/descriptor.hpp"

namespace vtx::pid::test {

inline constexpr std::uint64_t kMemoryBytes = 4 << 20;  // the allocator starts above the first MiB
inline constexpr std::uint8_t kPostedIntrVector = 0xF2;  // Linux POSTED_INTR_VECTOR
inline constexpr std::uint8_t kWakeupVector = 0xF1;      // Linux POSTED_INTR_WAKEUP_VECTOR
inline constexpr int kSenderAgent = 0;
inline constexpr int kReceiverAgent = 1;

struct TwoAgents {
    model::PhysicalMemory mem{kMemoryBytes, nullptr};
    model::DirectMemoryPort agent0{mem, kSenderAgent};
    model::DirectMemoryPort agent1{mem, kReceiverAgent};
    std::uint64_t pid_address = mem.allocate(kPidBytes, kPidAlignment);
};

// One access as the port saw it.
struct Access {
    model::MemOp op;
    std::uint64_t address;
    unsigned size;
    int agent;
};

// Records every access made through `port` (replaces its before_access hook).
inline std::vector<Access>& record_accesses(model::DirectMemoryPort& port, std::vector<Access>& log) {
    port.before_access = [&log](const model::MemRequest& r) {
        log.push_back({r.op, r.address, r.size, r.agent});
    };
    return log;
}

}  // namespace vtx::pid::test
