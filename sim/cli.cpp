#include "sim/cli.hpp"

#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "model/error.hpp"

namespace po = boost::program_options;

namespace vtx::sim {
namespace {

struct Subcommand {
    const char* name;
    const char* summary;
};

const std::vector<Subcommand> kSubcommands = {
    {"run", "run one workload (e.g. `vtxsim run ipi --apic x2apic --ipiv on`)"},
    {"compare", "reproduce a published comparison (`vtxsim compare ipi --runs 20`)"},
    {"list", "list workloads, profiles, VMM knobs and cost names"},
    {"calibrate", "fit the profile's `fitted` costs to training measurements"},
    {"bench", "measure simulator speed (host ns per simulated IPI round trip)"},
};

void print_help(std::ostream& os) {
    os << "vtxsim - cycle-approximate simulator of Intel VT-x logical processors, local APICs\n"
          "and a KVM-like VMM (IPI virtualization, posted interrupts, APIC virtualization)\n\n"
          "usage: vtxsim <subcommand> [options]\n       vtxsim <subcommand> --help\n\n"
          "subcommands:\n";
    for (const auto& s : kSubcommands) os << "  " << s.name << std::string(12 - std::string(s.name).size(), ' ') << s.summary << "\n";
}

}  // namespace

int run_cli(int argc, char* argv[]) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        print_help(std::cout);
        return args.empty() ? 2 : 0;
    }
    const std::string& sub = args[0];
    if (sub.rfind("-", 0) == 0) {
        std::cerr << "vtxsim: unknown option '" << sub << "' (see `vtxsim --help`)\n";
        return 2;
    }
    for (const auto& s : kSubcommands)
        if (sub == s.name) {
            std::cerr << "vtxsim: subcommand '" << sub << "' is not implemented yet\n";
            return 1;
        }
    std::cerr << "vtxsim: unknown subcommand '" << sub << "' (see `vtxsim --help`)\n";
    return 2;
}

}  // namespace vtx::sim
