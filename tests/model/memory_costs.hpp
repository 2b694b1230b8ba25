#pragma once
// The memory costs the model tests price accesses with (round numbers, easy to check).
#include "model/costs.hpp"

namespace vtx::test {

inline model::CostTable memory_test_costs() {
    model::CostTable t;
    t.set_cycles(model::Cost::MemL1Hit, 5);
    t.set_cycles(model::Cost::MemLineTransfer, 100);
    t.set_cycles(model::Cost::MemLockedRmw, 20);
    t.set_cycles(model::Cost::MemUncachedAccess, 200);
    return t;
}

}  // namespace vtx::test
