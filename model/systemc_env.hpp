#pragma once
// Silences the SystemC banner before the SystemC kernel prints it: the banner would
// otherwise pollute machine-readable output (test listings, JSON on stdout).
#include <cstdlib>

namespace vtx::model::detail {
struct SystemcQuiet {
    SystemcQuiet() { ::setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0); }
};
inline const SystemcQuiet systemc_quiet{};
}  // namespace vtx::model::detail
