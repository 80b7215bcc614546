#ifndef CDIPC_SHIMS_H
#define CDIPC_SHIMS_H
/// Tiny C wrappers for what Swift cannot call directly (variadic or GNU-only
/// functions). Every symbol is prefixed `cdipc_`. Each returns what the wrapped
/// call returns and leaves `errno` as the call left it.
#ifdef __linux__
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/// `syscall(SYS_futex, addr, FUTEX_WAIT, expected, timeout)` on a word that may be
/// shared between processes (no FUTEX_PRIVATE_FLAG). `timeout_ns < 0` waits forever.
/// Returns 0 when woken, -1 with errno EAGAIN (value differed), ETIMEDOUT or EINTR.
int cdipc_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns);

/// `syscall(SYS_futex, addr, FUTEX_WAKE, count)`: wakes up to `count` waiters of
/// `addr` in any process. Returns the number woken or -1.
int cdipc_futex_wake(uint32_t *addr, int count);

/// `pipe2(fds, O_CLOEXEC)`.
int cdipc_pipe_cloexec(int fds[2]);
/// `accept4(fd, NULL, NULL, SOCK_CLOEXEC)`.
int cdipc_accept_cloexec(int fd);

/// posix_spawn of `path` with `argv`/`envp`, in a new session (POSIX_SPAWN_SETSID),
/// stdin/stdout/stderr on /dev/null, `keep_fd` moved to descriptor `child_fd`, and
/// every other descriptor above 2 closed. Returns 0 or an errno value; sets *pid.
int cdipc_spawn_detached(pid_t *pid, const char *path, char *const argv[],
                         char *const envp[], int keep_fd, int child_fd);

/// `pthread_setname_np(pthread_self(), name)` (name truncated to 15 bytes).
int cdipc_set_thread_name(const char *name);
#endif
#endif
