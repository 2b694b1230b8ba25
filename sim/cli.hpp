#pragma once
// The vtxsim command line: subcommands run, compare, list, calibrate, bench.
namespace vtx::sim {

// Returns the process exit status: 0 success, 1 simulation/config error, 2 usage error.
int run_cli(int argc, char* argv[]);

}  // namespace vtx::sim
