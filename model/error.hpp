#pragma once
// Errors for bad user input: one clear message naming where the problem is.
#include <optional>
#include <stdexcept>
#include <string>

namespace vtx::model {

// Bad input from a file, the command line or a scenario: the message names the source
// (file, option) and the entry; the CLI prints it and exits non-zero.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// SystemC turns an exception that leaves a process into a report and loses its type. A
// process body runs inside keep_input_error_kind, which notes a ConfigError before it
// leaves; the simulation's caller asks noted_input_error() to tell bad input (exit 2) from
// a simulation failure (exit 1). One simulation per process, so one slot.
void note_input_error(const std::string& what);
std::optional<std::string> noted_input_error();
template <class Body>
void keep_input_error_kind(Body&& body) {
    try {
        body();
    } catch (const ConfigError& e) {
        note_input_error(e.what());
        throw;
    }
}

}  // namespace vtx::model
