#pragma once
// Errors for bad user input: one clear message naming where the problem is.
#include <stdexcept>
#include <string>

namespace vtx::model {

// Bad input from a file, the command line or a scenario: the message names the source
// (file, option) and the entry; the CLI prints it and exits non-zero.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace vtx::model
