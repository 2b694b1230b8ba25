// The fuzz corpora (tests/corpus/TARGET/), replayed through the fuzz targets by the normal
// suite: every input, including every crash a fuzzing run found and kept, must end in a
// ConfigError or in success (sim/fuzz_targets.hpp; scripts/fuzz.sh runs the fuzzers).
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "cli_support.hpp"
#include "sim/fuzz_targets.hpp"

namespace {
std::size_t replay(const std::string& target) {
    const auto fn = vtx::sim::fuzz_target(target);
    REQUIRE(fn != nullptr);
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(std::string(VTX_SOURCE_DIR) + "/tests/corpus/" + target)) {
        if (!e.is_regular_file()) continue;
        const std::string data = vtx::test::slurp(e.path().string());
        INFO(e.path().string());
        CHECK_NOTHROW(fn(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
        ++n;
    }
    return n;
}
}  // namespace

TEST_CASE("fuzz corpus: profile inputs load or give one ConfigError", "[fuzz]") { CHECK(replay("profile") > 0); }
TEST_CASE("fuzz corpus: scenario inputs load or give one ConfigError", "[fuzz]") { CHECK(replay("scenario") > 0); }
TEST_CASE("fuzz corpus: --set lines apply or give one ConfigError", "[fuzz]") { CHECK(replay("set") > 0); }
TEST_CASE("fuzz corpus: VMCS contents give architectural answers through VMWRITE and VM entry's checks", "[fuzz]") {
    CHECK(replay("vmentry") > 0);
}
TEST_CASE("fuzz corpus: guest APIC register traffic gives architectural answers, IPIv on and off", "[fuzz]") {
    CHECK(replay("apic") > 0);
}
