#pragma once
// A function run in a forked child that reports through a pipe: how run_many runs each
// simulation (SystemC allows one simulation per process) and how bench measures the floor.
#include <sys/types.h>

#include <functional>
#include <string>

namespace vtx::sim {

struct Child {
    pid_t pid = -1;
    int fd = -1;  // the read end of the child's pipe
};

// Forks a child that dies with the parent, takes the default SIGINT/SIGTERM actions,
// runs body(write_fd) and exits 0. Throws std::runtime_error when pipe() or fork() fails.
Child spawn_child(const std::function<void(int write_fd)>& body);

// Writes all of text to fd (stops early only on an error).
void write_all(int fd, const std::string& text);

// Closes the child's pipe and reaps it (retrying waitpid on EINTR); returns the status.
int reap(const Child& child);

}  // namespace vtx::sim
