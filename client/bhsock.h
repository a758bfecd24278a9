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
 * MSG_DONTWAIT; shutdown SHUT_RD/SHUT_WR/SHUT_RDWR; options TCP_NODELAY,
 * SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT (set after
 * connect or accept), SO_REUSEADDR (accepted, no effect), SO_ERROR and
 * SO_TYPE (get); bh_poll over Bulkhead sockets.
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

#endif /* BH_CLIENT_BHSOCK_H */
