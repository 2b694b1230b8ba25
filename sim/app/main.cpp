// vtxsim: the command-line entry point. libsystemc provides main() and calls sc_main().
#include <systemc>

#include "model/systemc_env.hpp"
#include "sim/cli.hpp"

int sc_main(int argc, char* argv[]) { return vtx::sim::run_cli(argc, argv); }
