#include "model/error.hpp"

namespace vtx::model {

namespace {
std::optional<std::string>& input_error_slot() {
    static std::optional<std::string> slot;
    return slot;
}
}  // namespace

void note_input_error(const std::string& what) {
    if (!input_error_slot()) input_error_slot() = what;  // the first one is the cause
}

std::optional<std::string> noted_input_error() { return input_error_slot(); }

}  // namespace vtx::model
