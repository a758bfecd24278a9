/*
 * client/bhsock.h - BSD sockets over a Bulkhead instance.
 *
 * The calls have the names, arguments and errno results of their POSIX
 * counterparts with a bh_ prefix: -1 and errno on failure. A socket is a
 * small integer of this library's (not a kernel descriptor). One process
 * attaches to one instance at a time (bh_attach); the calls are safe
 * from several threads, with one thread at a time sending and one at a
 * time receiving on a given socket.
 *
 * Supported: AF_INET; SOCK_STREAM (TCP) and SOCK_DGRAM (UDP, datagrams
 * up to about 1.9 KB); SOCK_NONBLOCK in the type, or bh_set_nonblock;
 * MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL; shutdown SHUT_RD/SHUT_WR/SHUT_RDWR;
 * options TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL,
 * TCP_KEEPCNT (before connect or listen too: a listener's go to what it
 * accepts), SO_RCVTIMEO, SO_SNDTIMEO; kept for getsockopt but without
 * effect: SO_REUSEADDR, SO_REUSEPORT, SO_BROADCAST, SO_LINGER, SO_RCVBUF,
 * SO_SNDBUF, TCP_QUICKACK; get only: SO_ERROR, SO_TYPE, SO_DOMAIN,
 * SO_PROTOCOL, SO_ACCEPTCONN, TCP_MAXSEG; others ENOPROTOOPT. bh_poll
 * over Bulkhead sockets, with Linux's readiness (revents) rules.
 */
#ifndef BH_CLIENT_BHSOCK_H
#define BH_CLIENT_BHSOCK_H

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Attaches to instance `name` (RUNDIR/NAME/app.sock). */
int bh_attach(const char *name);
void bh_detach(void);

int bh_socket(int domain, int type, int protocol);
int bh_bind(int s, const struct sockaddr *addr, socklen_t len);
int bh_listen(int s, int backlog);
int bh_accept(int s, struct sockaddr *addr, socklen_t *len);
int bh_connect(int s, const struct sockaddr *addr, socklen_t len);
ssize_t bh_send(int s, const void *buf, size_t n, int flags);
ssize_t bh_recv(int s, void *buf, size_t n, int flags);
ssize_t bh_sendto(int s, const void *buf, size_t n, int flags, const struct sockaddr *to,
		  socklen_t tolen);
ssize_t bh_recvfrom(int s, void *buf, size_t n, int flags, struct sockaddr *from,
		    socklen_t *fromlen);
int bh_shutdown(int s, int how);
int bh_close(int s);
int bh_setsockopt(int s, int level, int opt, const void *val, socklen_t len);
int bh_getsockopt(int s, int level, int opt, void *val, socklen_t *len);
int bh_getsockname(int s, struct sockaddr *addr, socklen_t *len);
int bh_getpeername(int s, struct sockaddr *addr, socklen_t *len);
int bh_set_nonblock(int s, int on);
/* fds[i].fd are Bulkhead sockets; timeout in ms, -1 for none. */
int bh_poll(struct pollfd *fds, nfds_t n, int timeout);


/* ---- for the preload library (preload/) ---------------------------- */

#include <stdbool.h>
#include <stdint.h>

/* recvfrom, and for a datagram its whole length in *dgram_len (MSG_TRUNC). */
ssize_t bh_recvmsg1(int s, void *buf, size_t n, int flags, struct sockaddr *from,
		    socklen_t *fromlen, uint32_t *dgram_len);
/* Readiness of socket s for poll events (POLLNVAL: not a socket). */
short bh_revents(int s, short events);
/* A number that changes whenever the socket's state, data or room does
 * (edge-triggered epoll). */
uint32_t bh_changes(int s);
/* Bytes to read (stream), or the next datagram's length (FIONREAD). */
int bh_rx_avail(int s);
bool bh_nonblock(int s);

struct bh_info {
	uint32_t addr, gw; /* IPv4, host order; gw 0: none */
	uint32_t prefix;
	uint32_t nslots;
};
/* The attached instance's address and route. */
int bh_info(struct bh_info *i);
/* Whether fd is one of this library's own descriptors. */
bool bh_internal_fd(int fd);
/* Those descriptors (at most max; the control socket first): their
 * count. */
int bh_internal_fds(int *out, int max);
/* Whether the socket server is gone (its control socket hung up): then
 * every socket reports an error. */
bool bh_server_lost(void);
/* The same, as last found out (no system call). */
bool bh_server_was_lost(void);

/* Waits that sleep in the kernel, so that they can take kernel
 * descriptors along and be interrupted by signals: after this, the
 * library's blocking calls sleep in ppoll on a wake-up socket the server
 * writes (domains/app_abi.h), and a signal ends them with EINTR unless
 * restart() says the call restarts (SA_RESTART). hide_fd, if not NULL,
 * moves a descriptor the library makes out of the application's way
 * (it returns the new descriptor, the old one closed). */
void bh_use_kernel_waits(bool (*restart)(void), int (*hide_fd)(int));
/* Fork, the kernel's way (domains/app_abi.h): bh_fork_prepare before
 * fork() gives a token (a member of the application to be, holding
 * every socket this process holds); the child calls bh_fork_child with
 * it and goes on with the same sockets on a connection of its own; if
 * fork() failed, the parent calls bh_fork_cancel. Returns 0 or -errno
 * (-ENOTCONN: not attached). bh_after_fork_child forgets the parent's
 * attachment without touching it (the child attaches anew when it next
 * asks), for a child that has no token or could not join. */
int bh_fork_prepare(uint64_t *token);
void bh_fork_cancel(uint64_t token);
int bh_fork_child(uint64_t token);
void bh_after_fork_child(void);
/* After exec: the program before it handed down its connection to
 * instance `name` (fd, a member already) and these sockets; the region
 * is mapped again (BH_RPC_REGION), the kept sockets are this process's,
 * and the dropped ones (held only by descriptors closed on exec) are
 * closed. 0 or -errno. */
struct bh_kept {
	uint32_t slot;
	bool udp, nonblock;
};
int bh_inherit(const char *name, int fd, const struct bh_kept *kept, int nkept,
	       const uint32_t *drop, int ndrop);
/* A wait over Bulkhead sockets and kernel descriptors, by one thread:
 *   bh_want(s, events, true) for each socket; re-check readiness;
 *   if (bh_sleep_prepare()) sleep in the kernel on bh_wake_fd() with the
 *   other descriptors; bh_sleep_done(); bh_want(s, events, false).
 * bh_sleep_prepare is false when a signal is already pending (do not
 * sleep, but still call bh_sleep_done). */
void bh_want(int s, short events, bool on);
int bh_wake_fd(void);
bool bh_sleep_prepare(void);
void bh_sleep_done(void);

#endif /* BH_CLIENT_BHSOCK_H */
