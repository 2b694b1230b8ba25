// Scenario files under mutation: whatever a file holds, loading it either succeeds or gives
// one model::ConfigError naming the file; nothing else escapes (no other exception, no
// crash). Seeded mutations of the repository's scenarios: deleted, duplicated or swapped
// lines, characters deleted or replaced, numbers replaced by extremes, indentation changed.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli_support.hpp"
#include "model/error.hpp"
#include "model/rng.hpp"
#include "sim/scenario_file.hpp"

namespace {

using vtx::test::slurp;

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::stringstream ss(text);
    for (std::string l; std::getline(ss, l);) lines.push_back(l);
    return lines;
}

std::string mutate(const std::string& text, vtx::model::SplitMix64& rng) {
    std::vector<std::string> lines = split_lines(text);
    if (lines.empty()) return text;
    static const char* kTokens[] = {"-1", "0x", "18446744073709551616", "999999999999", "{", "}", "[", "]", ":",
                                    "- ", "&a", "*a", "!!binary", "~", "null", "''", "\t", "0x1FFFFFFFF", "?"};
    const std::size_t line = rng.below(lines.size());
    std::string& l = lines[line];
    switch (rng.below(7)) {
        case 0: lines.erase(lines.begin() + static_cast<long>(line)); break;
        case 1: lines.insert(lines.begin() + static_cast<long>(line), l); break;
        case 2: std::swap(l, lines[rng.below(lines.size())]); break;
        case 3:
            if (!l.empty()) l.erase(rng.below(l.size()), 1);
            break;
        case 4:
            if (!l.empty()) l[rng.below(l.size())] = static_cast<char>(32 + rng.below(95));
            break;
        case 5: {
            const std::string tok = kTokens[rng.below(sizeof kTokens / sizeof *kTokens)];
            l.insert(l.empty() ? 0 : rng.below(l.size()), tok);
            break;
        }
        case 6: l = std::string(rng.below(6), ' ') + l; break;
    }
    std::string out;
    for (const auto& x : lines) out += x + "\n";
    return out;
}

}  // namespace

TEST_CASE("scenario files under seeded mutation load or give one ConfigError, nothing else", "[scenario][fuzz]") {
    const std::string dir = std::string(VTX_SOURCE_DIR) + "/tests/scenarios";
    const std::string path = "/tmp/vtxsim_fuzz_" + std::to_string(::getpid()) + ".yaml";
    std::size_t loaded = 0, refused = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".yaml") continue;
        const std::string original = slurp(entry.path().string());
        vtx::model::SplitMix64 rng(0x5eed0000u + original.size());
        for (int i = 0; i < 300; ++i) {
            std::string text = original;
            const unsigned mutations = 1 + static_cast<unsigned>(rng.below(3));
            for (unsigned m = 0; m < mutations; ++m) text = mutate(text, rng);
            std::ofstream(path) << text;
            INFO(entry.path().filename().string() << " mutation " << i << ":\n" << text);
            try {
                const vtx::sim::ScenarioFile f = vtx::sim::load_scenario_file(path);
                (void)vtx::sim::scenario_spec(f);
                ++loaded;
            } catch (const vtx::model::ConfigError& e) {
                ++refused;
                CHECK(std::string(e.what()).find(path) != std::string::npos);  // names the file
            } catch (const std::exception& e) {
                FAIL("not a ConfigError: " << e.what());
            }
        }
    }
    ::unlink(path.c_str());
    CHECK(refused > 0);
    CHECK(loaded > 0);  // some mutations are harmless (a duplicated expectation, say)
}
