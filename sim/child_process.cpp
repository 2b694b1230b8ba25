#include "sim/child_process.hpp"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <stdexcept>

#ifdef VTX_PROFILE_GENERATE
extern "C" void __gcov_dump();
#endif

namespace vtx::sim {

Child spawn_child(const std::function<void(int write_fd)>& body) {
    const pid_t parent = ::getpid();
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe() failed");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork() failed");
    if (pid == 0) {
        ::close(fds[0]);
        // Die with the parent, and do not take the parent's stop handlers along.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(1);
        std::signal(SIGINT, SIG_DFL);
        std::signal(SIGTERM, SIG_DFL);
        body(fds[1]);
        ::close(fds[1]);
        std::fflush(nullptr);
#ifdef VTX_PROFILE_GENERATE
        __gcov_dump();  // a profile-generating build's counters: _exit skips the handler that writes them
#endif
        ::_exit(0);
    }
    ::close(fds[1]);
    return Child{pid, fds[0]};
}

void write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
    }
}

int reap(const Child& child) {
    ::close(child.fd);
    int status = 0;
    while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

}  // namespace vtx::sim
