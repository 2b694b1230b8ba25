#include "model/output.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "model/error.hpp"

namespace vtx::model {

namespace {
[[noreturn]] void fail(const std::string& path, int err) {
    throw ConfigError("cannot write " + path + ": " + std::strerror(err));
}

// Writes all of `text` to `f` and closes it; the errno of the first failure, or 0.
int write_and_close(std::FILE* f, const std::string& text) {
    int err = 0;
    if (std::fwrite(text.data(), 1, text.size(), f) != text.size()) err = errno ? errno : EIO;
    if (std::fflush(f) != 0 && !err) err = errno ? errno : EIO;
    if (std::fclose(f) != 0 && !err) err = errno ? errno : EIO;
    return err;
}
}  // namespace

void write_file_atomically(const std::string& path, const std::string& text) {
    struct stat st {};
    const bool exists = ::stat(path.c_str(), &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
        std::FILE* f = std::fopen(path.c_str(), "w");
        if (!f) fail(path, errno);
        if (const int err = write_and_close(f, text)) fail(path, err);
        return;
    }
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) fail(path, errno);
    if (const int err = write_and_close(f, text)) {
        std::remove(tmp.c_str());
        fail(path, err);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        std::remove(tmp.c_str());
        fail(path, err);
    }
}

}  // namespace vtx::model
