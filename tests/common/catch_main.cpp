// Test runner: libsystemc provides main() and calls sc_main(), which runs the Catch2 session.
// Every test case runs in its own process under ctest (catch_discover_tests), because
// SystemC allows one elaboration per process.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

#include <systemc>

#include "model/systemc_env.hpp"

int sc_main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
