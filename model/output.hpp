#pragma once
// Writing result files so that none is ever lost or half-written: the text goes to a
// temporary file beside the target, every write is checked, and a rename puts it in place
// (a reader sees the old file or the whole new one). A target that exists and is not a
// regular file (a FIFO, /dev/stdout, /dev/full) is written directly, with the same checks.
#include <string>

namespace vtx::model {

// Throws ConfigError("cannot write PATH: reason") when any step fails.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace vtx::model
