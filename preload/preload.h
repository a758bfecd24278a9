/*
 * preload/preload.h - the preload library's private state and the calls
 * between its files. `bulkhead run NAME -- CMD` starts CMD with
 * LD_PRELOAD naming libbulkhead_preload.so and BULKHEAD_INSTANCE=NAME;
 * the library's socket calls then shadow libc's (README.md lists them).
 *
 *   fdtab.c  the descriptor table (what each descriptor number is to
 *            the library), libc's own functions (dlsym RTLD_NEXT), the
 *            instance (attached on first use), where a destination
 *            goes, messages and the instance log
 *   calls.c  socket, bind, connect, listen, accept, the data calls,
 *            options, fcntl, ioctl, dup, close, sendfile, fork, exec
 *   wait.c   poll, ppoll, select, pselect and epoll over sets that mix
 *            Bulkhead sockets with kernel descriptors
 *   sig.c    whether a call a signal interrupted restarts
 *
 * Descriptors are real: an AF_INET socket starts as a real kernel socket
 * (PENDING) and stays one if its first destination is the host's
 * (loopback, or off the instance's routes with --host-fallback); when it
 * goes to the instance, an eventfd takes over its number (dup3, so
 * FD_CLOEXEC and the number stay) and the table maps the number to the
 * library's socket. The eventfd only holds the number: readiness is the
 * library's, and every wait that involves a Bulkhead socket goes through
 * wait.c.
 */
#ifndef BH_PRELOAD_PRELOAD_H
#define BH_PRELOAD_PRELOAD_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

/* libc's functions, found once (fdtab.c, at load). */
struct real {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*close)(int);
	int (*close_range)(unsigned, unsigned, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned, int, struct timespec *);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned, int);
	int (*shutdown)(int, int);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*fcntl)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	ssize_t (*splice)(int, off_t *, int, off_t *, size_t, unsigned);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
		       const sigset_t *);
	int (*epoll_create1)(int);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execv)(const char *, char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	pid_t (*fork)(void);
};
extern struct real real;
/* libc's functions, found if not yet: a runtime loaded before this
 * library (a sanitizer's) may call into it before its constructor ran. */
void real_find(void);
#define LOAD()                                                                             \
	do {                                                                               \
		if (__builtin_expect(real.socket == NULL, 0))                              \
			real_find();                                                       \
	} while (0)

/* What a descriptor number is to the library. */
enum fd_kind {
	FD_KERNEL = 0, /* not ours: every call goes to libc */
	FD_PENDING,    /* an AF_INET socket not yet sent anywhere (a kernel socket) */
	FD_BH,         /* a Bulkhead socket (the number held by an eventfd) */
	FD_STALE,      /* a Bulkhead socket inherited across fork */
	FD_EPOLL,      /* an epoll instance that holds Bulkhead sockets */
};

struct ep; /* wait.c */

struct fdent {
	uint8_t kind;   /* enum fd_kind */
	bool dgram;     /* PENDING, BH: SOCK_DGRAM */
	int slot;       /* BH: the library's socket */
	struct ep *ep;  /* EPOLL */
};

/* The largest descriptor number the table follows; higher ones are the
 * kernel's alone (a Bulkhead socket never gets one: see fd_place). */
#define FDTAB_MAX (1 << 20)

/* The entry for fd, or NULL (kernel) when the table has none; `make`
 * allocates its page. Entries change under fd_lock. */
struct fdent *fd_get(int fd, bool make);
static inline enum fd_kind fd_kind_of(int fd)
{
	struct fdent *e = fd_get(fd, false);
	return e ? (enum fd_kind)e->kind : FD_KERNEL;
}
void fd_lock(void);
void fd_unlock(void);

/* Process-local references to a library socket (dup, fork-free). */
void slot_ref(int slot);
bool slot_unref(int slot); /* true when that was the last */
/* The sockets this process holds (at most max): their count. */
int held_slots(uint32_t *out, int max);

/* Whether the library was given an instance (BULKHEAD_INSTANCE). */
bool inst_named(void);
/* Attaches to the instance on first use: 0 or -errno (ENETDOWN when
 * the instance is not there). */
int inst_attach(void);
bool inst_is_attached(void);
/* In a child that could not join its parent's sockets: they go stale. */
void fork_stale(void);
/* Where a destination goes: 1 the instance, 0 the kernel, or -errno. */
int route_of(uint32_t addr_host_order, bool binding);

/* An eventfd that holds a Bulkhead socket's number: made at the lowest
 * free number (as the kernel's socket or accept would), or put at
 * `at` over what was there (dup3). Returns the number or -errno. */
int fd_place(int at, bool cloexec);

/* Once per call name: "bulkhead: NAME: WHY" on standard error. */
void say_once(const char *call, const char *why);
/* A line in the instance log, as `bulkhead logs NAME run` shows it;
 * rate-limited. */
void run_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* calls.c: closing a Bulkhead descriptor's reference (close, dup2 over
 * it); the caller holds fd_lock and the entry is cleared. */
void bh_fd_release(int fd, struct fdent *e);

/* wait.c */
int wait_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns, const sigset_t *mask);
void ep_forget_fd(int fd);                  /* fd is closed: out of every epoll set */
void ep_decided(int fd, struct fdent *e);   /* a PENDING fd became a Bulkhead socket */
void ep_free(struct fdent *e);
void ep_after_fork(void);                   /* in a child that joined its parent's sockets */

/* sig.c: whether a call a signal interrupted restarts (SA_RESTART). */
bool sig_restart(void);

#endif /* BH_PRELOAD_PRELOAD_H */
