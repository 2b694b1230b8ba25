// A libFuzzer entry point for one of sim/fuzz_targets.hpp's targets, chosen at compile time
// (VTX_FUZZ_TARGET = fuzz_profile, fuzz_scenario, fuzz_set or fuzz_vmentry). Built only with
// -DVTXSIM_FUZZ=ON and clang (scripts/fuzz.sh). An exception other than ConfigError leaves
// the target and aborts: libFuzzer keeps the input as a crash.
#include <cstddef>
#include <cstdint>

#include "sim/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    vtx::sim::VTX_FUZZ_TARGET(data, size);
    return 0;
}

// libsystemc.so refers to sc_main (its own main calls it); libFuzzer's main runs instead,
// and no fuzz target starts a simulation.
extern "C" int sc_main(int, char**) { return 0; }
