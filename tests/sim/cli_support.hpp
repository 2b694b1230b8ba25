#pragma once
// Runs the vtxsim command line in-process (simulations run in child processes), capturing
// what it prints.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/cli.hpp"

namespace vtx::test {

struct CliResult {
    int status = 0;
    std::string err;
};

inline CliResult vtxsim(std::vector<std::string> args) {
    args.insert(args.begin(), "vtxsim");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    std::ostringstream err;
    std::streambuf* old = std::cerr.rdbuf(err.rdbuf());
    CliResult r;
    r.status = sim::run_cli(static_cast<int>(argv.size()), argv.data());
    std::cerr.rdbuf(old);
    std::fflush(stdout);
    r.err = err.str();
    return r;
}

inline nlohmann::json read_json(const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
}

// A file's whole contents ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline std::string temp_path(const std::string& name) {
    return "/tmp/vtxsim_test_" + std::to_string(::getpid()) + "_" + name;
}

}  // namespace vtx::test
