/*
 * preload/calls.c - the socket calls: each looks its descriptor up
 * (fd_get) and sends a kernel descriptor to libc unchanged; a PENDING
 * socket is sent to the kernel or to the instance by its first bind,
 * connect, listen or sendto (route_of); a Bulkhead socket goes to the
 * client library (client/bhsock.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <alloca.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client/bhsock.h"
#include "preload/preload.h"

#define EXPORT __attribute__((visibility("default")))

static int fail(int e)
{
	errno = e;
	return -1;
}

static int stale(const char *call)
{
	say_once("fork", "this child could not join its parent's Bulkhead sockets (the "
			 "instance's log says why); they fail with ENOTSUP");
	(void)call;
	return fail(ENOTSUP);
}

/* ------------------------------------------------------------------ */
/* deciding where a PENDING socket goes                                 */
/* ------------------------------------------------------------------ */

/* The options set on the kernel socket while it was PENDING, carried to
 * the library's socket (read back from the kernel, which kept them). */
static void carry_options(int fd, int s, bool dgram)
{
	static const struct {
		int level, opt;
		int dflt;
	} ints[] = {
	    {SOL_SOCKET, SO_REUSEADDR, 0}, {SOL_SOCKET, SO_REUSEPORT, 0},
	    {SOL_SOCKET, SO_KEEPALIVE, 0}, {SOL_SOCKET, SO_BROADCAST, 0},
	    {IPPROTO_TCP, TCP_NODELAY, 0}, {IPPROTO_TCP, TCP_KEEPIDLE, 7200},
	    {IPPROTO_TCP, TCP_KEEPINTVL, 75}, {IPPROTO_TCP, TCP_KEEPCNT, 9},
	};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (dgram && ints[i].level == IPPROTO_TCP)
			continue;
		int v = 0;
		socklen_t l = sizeof(v);
		if (real.getsockopt(fd, ints[i].level, ints[i].opt, &v, &l) == 0 && v != ints[i].dflt)
			bh_setsockopt(s, ints[i].level, ints[i].opt, &v, sizeof(v));
	}
	static const int timeos[] = {SO_RCVTIMEO, SO_SNDTIMEO};
	for (size_t i = 0; i < 2; i++) {
		struct timeval tv = {0};
		socklen_t l = sizeof(tv);
		if (real.getsockopt(fd, SOL_SOCKET, timeos[i], &tv, &l) == 0 &&
		    (tv.tv_sec || tv.tv_usec))
			bh_setsockopt(s, SOL_SOCKET, timeos[i], &tv, sizeof(tv));
	}
	struct linger lg = {0};
	socklen_t l = sizeof(lg);
	if (real.getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &l) == 0 && lg.l_onoff)
		bh_setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* PENDING fd goes to the instance: a library socket, and an eventfd in
 * the kernel socket's place. 0 or -errno. Under fd_lock. */
static int to_instance(int fd, struct fdent *e, const char *why)
{
	if (e->kind != FD_PENDING)
		return e->kind == FD_BH ? 0 : -EBADF;
	int r = inst_attach();
	if (r < 0)
		return r;
	int fl = real.fcntl(fd, F_GETFL);
	int fdfl = real.fcntl(fd, F_GETFD);
	if (fl < 0 || fdfl < 0)
		return -errno;
	int s = bh_socket(AF_INET, (e->dgram ? SOCK_DGRAM : SOCK_STREAM) |
				       ((fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0),
			  0);
	if (s < 0)
		return errno == ECONNRESET ? -ENETDOWN : -errno;
	carry_options(fd, s, e->dgram);
	r = fd_place(fd, (fdfl & FD_CLOEXEC) != 0);
	if (r < 0) {
		bh_close(s);
		return r;
	}
	e->kind = FD_BH;
	e->slot = s;
	slot_ref(s);
	ep_decided(fd, e);
	run_log("fd %d (%s) to the instance: %s", fd, e->dgram ? "udp" : "tcp", why);
	return 0;
}

static void to_kernel(int fd, struct fdent *e, const char *why)
{
	e->kind = FD_KERNEL;
	ep_forget_fd(fd);
	run_log("fd %d (%s) to the host's stack: %s", fd, e->dgram ? "udp" : "tcp", why);
}

static const char *addr_str(const struct sockaddr_in *in, char *buf)
{
	char a[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
	snprintf(buf, 40, "%s:%u", a, (unsigned)ntohs(in->sin_port));
	return buf;
}

/* A PENDING socket's first destination (or bound address) decides:
 * 1 it went to the instance, 0 it stays the kernel's, or -errno. */
static int decide(int fd, const struct sockaddr *a, socklen_t len, bool binding, const char *call)
{
	if (a == NULL || len < sizeof(struct sockaddr_in) || a->sa_family != AF_INET)
		return 0; /* the kernel's answer is Linux's */
	struct sockaddr_in in;
	memcpy(&in, a, sizeof(in));
	fd_lock();
	struct fdent *e = fd_get(fd, false);
	int r;
	if (e == NULL || e->kind != FD_PENDING) {
		r = e && e->kind == FD_BH ? 1 : 0;
		fd_unlock();
		return r;
	}
	char why[64];
	snprintf(why, sizeof(why), "%s ", call);
	addr_str(&in, why + strlen(why));
	r = route_of(ntohl(in.sin_addr.s_addr), binding);
	if (r == 0)
		to_kernel(fd, e, why);
	else if (r > 0 && (r = to_instance(fd, e, why)) == 0)
		r = 1;
	fd_unlock();
	return r;
}

/* ------------------------------------------------------------------ */
/* sockets                                                              */
/* ------------------------------------------------------------------ */

EXPORT int socket(int domain, int type, int protocol)
{
	LOAD();
	int fd = real.socket(domain, type, protocol);
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0 || domain != AF_INET || (base != SOCK_STREAM && base != SOCK_DGRAM) ||
	    (protocol != 0 && protocol != (base == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP)) ||
	    !inst_named())
		return fd;
	fd_lock();
	struct fdent *e = fd_get(fd, true);
	if (e) {
		*e = (struct fdent){.kind = FD_PENDING, .dgram = base == SOCK_DGRAM};
	}
	fd_unlock();
	return fd;
}

/* What fd is for a call that gives an address (bind, connect): a
 * PENDING socket is decided first. FD_KERNEL, FD_BH or FD_STALE; or -1
 * with errno. */
static int kind_for(int fd, const struct sockaddr *a, socklen_t len, bool binding,
		    const char *call)
{
	enum fd_kind k = fd_kind_of(fd);
	if (k != FD_PENDING)
		return k == FD_BH || k == FD_STALE ? (int)k : FD_KERNEL;
	int r = decide(fd, a, len, binding, call);
	if (r < 0)
		return fail(-r);
	return r ? FD_BH : FD_KERNEL;
}

EXPORT int bind(int fd, const struct sockaddr *a, socklen_t len)
{
	LOAD();
	int k = kind_for(fd, a, len, true, "bind");
	if (k < 0 || k == FD_STALE)
		return k < 0 ? -1 : stale("bind");
	if (k != FD_BH)
		return real.bind(fd, a, len);
	return bh_bind(fd_get(fd, false)->slot, a, len);
}

EXPORT int connect(int fd, const struct sockaddr *a, socklen_t len)
{
	LOAD();
	int k = kind_for(fd, a, len, false, "connect");
	if (k < 0 || k == FD_STALE)
		return k < 0 ? -1 : stale("connect");
	if (k != FD_BH)
		return real.connect(fd, a, len);
	return bh_connect(fd_get(fd, false)->slot, a, len);
}

EXPORT int listen(int fd, int backlog)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	enum fd_kind k = e ? (enum fd_kind)e->kind : FD_KERNEL;
	if (k == FD_PENDING && !e->dgram) {
		fd_lock();
		int r = e->kind == FD_PENDING ? to_instance(fd, e, "listen") : 0;
		fd_unlock();
		if (r < 0)
			return fail(-r);
		k = (enum fd_kind)e->kind;
	}
	if (k == FD_STALE)
		return stale("listen");
	if (k != FD_BH)
		return real.listen(fd, backlog);
	return bh_listen(e->slot, backlog);
}

EXPORT int accept4(int fd, struct sockaddr *a, socklen_t *len, int flags)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	enum fd_kind k = e ? (enum fd_kind)e->kind : FD_KERNEL;
	if (k == FD_STALE)
		return stale("accept");
	if (k != FD_BH)
		return real.accept4(fd, a, len, flags);
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return fail(EINVAL);
	int s = bh_accept(e->slot, a, len);
	if (s < 0)
		return -1;
	fd_lock();
	int n = fd_place(-1, (flags & SOCK_CLOEXEC) != 0);
	struct fdent *ne = n >= 0 ? fd_get(n, true) : NULL;
	if (ne == NULL) {
		fd_unlock();
		if (n >= 0)
			real.close(n);
		bh_close(s);
		return fail(n < 0 ? -n : ENOMEM);
	}
	*ne = (struct fdent){.kind = FD_BH, .slot = s};
	slot_ref(s);
	fd_unlock();
	bh_set_nonblock(s, (flags & SOCK_NONBLOCK) != 0);
	return n;
}

EXPORT int accept(int fd, struct sockaddr *a, socklen_t *len)
{
	LOAD();
	return accept4(fd, a, len, 0);
}

EXPORT int shutdown(int fd, int how)
{
	LOAD();
	enum fd_kind k = fd_kind_of(fd);
	if (k == FD_STALE)
		return stale("shutdown");
	if (k != FD_BH)
		return real.shutdown(fd, how);
	return bh_shutdown(fd_get(fd, false)->slot, how);
}

EXPORT int getsockname(int fd, struct sockaddr *a, socklen_t *len)
{
	LOAD();
	enum fd_kind k = fd_kind_of(fd);
	if (k == FD_STALE)
		return stale("getsockname");
	if (k != FD_BH)
		return real.getsockname(fd, a, len);
	return bh_getsockname(fd_get(fd, false)->slot, a, len);
}

EXPORT int getpeername(int fd, struct sockaddr *a, socklen_t *len)
{
	LOAD();
	enum fd_kind k = fd_kind_of(fd);
	if (k == FD_STALE)
		return stale("getpeername");
	if (k != FD_BH)
		return real.getpeername(fd, a, len);
	return bh_getpeername(fd_get(fd, false)->slot, a, len);
}

EXPORT int setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
	LOAD();
	enum fd_kind k = fd_kind_of(fd);
	if (k == FD_STALE)
		return stale("setsockopt");
	if (k != FD_BH)
		return real.setsockopt(fd, level, opt, val, len);
	int r = bh_setsockopt(fd_get(fd, false)->slot, level, opt, val, len);
	if (r < 0 && errno == ENOPROTOOPT) {
		char what[64];
		snprintf(what, sizeof(what), "setsockopt level %d option %d", level, opt);
		say_once(strdup(what), "not supported on Bulkhead sockets: ENOPROTOOPT");
		errno = ENOPROTOOPT;
	}
	return r;
}

EXPORT int getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
	LOAD();
	enum fd_kind k = fd_kind_of(fd);
	if (k == FD_STALE)
		return stale("getsockopt");
	if (k != FD_BH)
		return real.getsockopt(fd, level, opt, val, len);
	return bh_getsockopt(fd_get(fd, false)->slot, level, opt, val, len);
}

/* ------------------------------------------------------------------ */
/* data                                                                 */
/* ------------------------------------------------------------------ */

/* A send that found the connection shut: SIGPIPE, as the kernel sends
 * it, unless MSG_NOSIGNAL. */
static ssize_t sent(ssize_t r, int flags)
{
	if (r < 0 && errno == EPIPE && !(flags & MSG_NOSIGNAL)) {
		raise(SIGPIPE);
		errno = EPIPE;
	}
	return r;
}

#define RECV_FLAGS (MSG_PEEK | MSG_DONTWAIT | MSG_WAITALL | MSG_TRUNC | MSG_CMSG_CLOEXEC)
#define SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE | MSG_EOR | MSG_CONFIRM)

/* 0, or why a receive with these flags fails at once. */
static int recv_flags_bad(int flags)
{
	if (flags & MSG_ERRQUEUE)
		return EAGAIN; /* nothing is ever queued there */
	if (flags & MSG_OOB)
		return EINVAL; /* no urgent data, as Linux says without it */
	return (flags & ~RECV_FLAGS) ? EOPNOTSUPP : 0;
}

static ssize_t bh_recv_flags(int s, void *buf, size_t n, int flags, struct sockaddr *from,
			     socklen_t *fromlen)
{
	int bad = recv_flags_bad(flags);
	if (bad)
		return fail(bad);
	uint32_t whole = 0;
	ssize_t r = bh_recvmsg1(s, buf, n, flags, from, fromlen, &whole);
	if (r >= 0 && (flags & MSG_TRUNC) && whole > (uint32_t)r)
		return (ssize_t)whole;
	return r;
}

static ssize_t bh_send_flags(int s, const void *buf, size_t n, int flags,
			     const struct sockaddr *to, socklen_t tolen)
{
	if (flags & MSG_OOB)
		return fail(EOPNOTSUPP);
	if (flags & ~SEND_FLAGS)
		return fail(EOPNOTSUPP);
	return sent(bh_sendto(s, buf, n, flags & MSG_DONTWAIT, to, tolen), flags);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("read") : real.read(fd, buf, n);
	return bh_recv(e->slot, buf, n, 0);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("write") : real.write(fd, buf, n);
	return sent(bh_send(e->slot, buf, n, 0), 0);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
			socklen_t *fromlen)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("recvfrom")
						: real.recvfrom(fd, buf, n, flags, from, fromlen);
	return bh_recv_flags(e->slot, buf, n, flags, from, fromlen);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	LOAD();
	return recvfrom(fd, buf, n, flags, NULL, NULL);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
		      socklen_t tolen)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e && e->kind == FD_PENDING && e->dgram && to) {
		int r = decide(fd, to, tolen, false, "sendto");
		if (r < 0)
			return fail(-r);
	}
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("sendto")
						: real.sendto(fd, buf, n, flags, to, tolen);
	return bh_send_flags(e->slot, buf, n, flags, to, tolen);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	LOAD();
	return sendto(fd, buf, n, flags, NULL, 0);
}

/* A datagram gathered from (or scattered to) several pieces. */
static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;
	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static ssize_t bh_recvmsg(int s, bool dgram, struct msghdr *m, int flags)
{
	size_t total = iov_total(m->msg_iov, (int)m->msg_iovlen);
	m->msg_controllen = 0;
	m->msg_flags = 0;
	socklen_t *nl = m->msg_name ? &m->msg_namelen : NULL;
	if (dgram) {
		/* One datagram, scattered; MSG_TRUNC when it did not fit. */
		int bad = recv_flags_bad(flags);
		if (bad)
			return fail(bad);
		uint8_t *tmp = NULL;
		void *dst = m->msg_iovlen == 1 ? m->msg_iov[0].iov_base : NULL;
		if (m->msg_iovlen != 1 && (dst = tmp = malloc(total ? total : 1)) == NULL)
			return fail(ENOMEM);
		uint32_t whole = 0;
		ssize_t r = bh_recvmsg1(s, dst, total, flags & ~MSG_TRUNC, m->msg_name, nl, &whole);
		for (size_t i = 0, off = 0; r > 0 && tmp && i < m->msg_iovlen && off < (size_t)r;
		     i++) {
			size_t k = m->msg_iov[i].iov_len < (size_t)r - off ? m->msg_iov[i].iov_len
									  : (size_t)r - off;
			memcpy(m->msg_iov[i].iov_base, tmp + off, k);
			off += k;
		}
		free(tmp);
		if (r >= 0 && whole > (uint32_t)r) {
			m->msg_flags |= MSG_TRUNC;
			if (flags & MSG_TRUNC)
				r = (ssize_t)whole;
		}
		return r;
	}
	/* A stream: the first piece waits as the call says, the rest take
	 * what is there. */
	size_t got = 0;
	for (size_t i = 0; i < m->msg_iovlen; i++) {
		if (m->msg_iov[i].iov_len == 0)
			continue;
		ssize_t r = bh_recv_flags(s, m->msg_iov[i].iov_base, m->msg_iov[i].iov_len,
					  got ? (flags | MSG_DONTWAIT) & ~MSG_WAITALL : flags,
					  got ? NULL : m->msg_name, got ? NULL : nl);
		if (r < 0)
			return got ? (ssize_t)got : -1;
		got += (size_t)r;
		if ((size_t)r < m->msg_iov[i].iov_len || (flags & MSG_PEEK))
			break;
	}
	return (ssize_t)got;
}

static ssize_t bh_sendmsg(int s, bool dgram, const struct msghdr *m, int flags)
{
	if (m->msg_controllen)
		return fail(EOPNOTSUPP); /* no ancillary data on a Bulkhead socket */
	size_t total = iov_total(m->msg_iov, (int)m->msg_iovlen);
	if (dgram && m->msg_iovlen > 1) {
		uint8_t *tmp = malloc(total ? total : 1);
		if (tmp == NULL)
			return fail(ENOMEM);
		size_t off = 0;
		for (size_t i = 0; i < m->msg_iovlen; i++) {
			memcpy(tmp + off, m->msg_iov[i].iov_base, m->msg_iov[i].iov_len);
			off += m->msg_iov[i].iov_len;
		}
		ssize_t r = bh_send_flags(s, tmp, total, flags, m->msg_name, m->msg_namelen);
		free(tmp);
		return r;
	}
	if (dgram || m->msg_iovlen <= 1)
		return bh_send_flags(s, m->msg_iovlen ? m->msg_iov[0].iov_base : NULL, total, flags,
				     m->msg_name, m->msg_namelen);
	size_t done = 0;
	for (size_t i = 0; i < m->msg_iovlen; i++) {
		if (m->msg_iov[i].iov_len == 0)
			continue;
		ssize_t r = bh_send_flags(s, m->msg_iov[i].iov_base, m->msg_iov[i].iov_len, flags,
					  NULL, 0);
		if (r < 0)
			return done ? (ssize_t)done : -1;
		done += (size_t)r;
		if ((size_t)r < m->msg_iov[i].iov_len)
			break;
	}
	return (ssize_t)done;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("recvmsg") : real.recvmsg(fd, m, flags);
	return bh_recvmsg(e->slot, e->dgram, m, flags);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e && e->kind == FD_PENDING && e->dgram && m->msg_name) {
		int r = decide(fd, m->msg_name, m->msg_namelen, false, "sendmsg");
		if (r < 0)
			return fail(-r);
	}
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("sendmsg") : real.sendmsg(fd, m, flags);
	return bh_sendmsg(e->slot, e->dgram, m, flags);
}

EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("recvmmsg")
						: real.recvmmsg(fd, v, n, flags, t);
	unsigned i = 0;
	for (; i < n; i++) {
		/* The first waits as the call says; the rest take what is
		 * there (MSG_WAITFORONE's rule, and Linux's timeout is only
		 * checked between datagrams). */
		ssize_t r = bh_recvmsg(e->slot, e->dgram, &v[i].msg_hdr,
				       i ? (flags | MSG_DONTWAIT) & ~MSG_WAITFORONE
					 : flags & ~MSG_WAITFORONE);
		if (r < 0)
			return i ? (int)i : -1;
		v[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	LOAD();
	unsigned i = 0;
	for (; i < n; i++) {
		ssize_t r = sendmsg(fd, &v[i].msg_hdr, flags);
		if (r < 0)
			return i ? (int)i : -1;
		v[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("readv") : real.readv(fd, iov, n);
	if (n < 0 || n > IOV_MAX)
		return fail(EINVAL);
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
	return bh_recvmsg(e->slot, e->dgram, &m, 0);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	LOAD();
	struct fdent *e = fd_get(fd, false);
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("writev") : real.writev(fd, iov, n);
	if (n < 0 || n > IOV_MAX)
		return fail(EINVAL);
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
	return bh_sendmsg(e->slot, e->dgram, &m, 0);
}

/* glibc's checked variants (_FORTIFY_SOURCE). */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *from, socklen_t *fromlen);
EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	LOAD();
	if (n > buflen)
		abort();
	return read(fd, buf, n);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	LOAD();
	if (n > buflen)
		abort();
	return recv(fd, buf, n, flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
			      struct sockaddr *from, socklen_t *fromlen)
{
	LOAD();
	if (n > buflen)
		abort();
	return recvfrom(fd, buf, n, flags, from, fromlen);
}

/* A file's bytes to a Bulkhead socket, through a buffer. */
EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
	LOAD();
	struct fdent *e = fd_get(out, false);
	if (e == NULL || e->kind != FD_BH) {
		if (fd_kind_of(in) == FD_BH)
			return fail(EINVAL); /* Linux: the source must be mmap-able */
		return e && e->kind == FD_STALE ? stale("sendfile") : real.sendfile(out, in, off, count);
	}
	static __thread uint8_t *buf;
	enum { CHUNK = 64 * 1024 };
	if (buf == NULL && (buf = malloc(CHUNK)) == NULL)
		return fail(ENOMEM);
	size_t done = 0;
	while (done < count) {
		size_t want = count - done < CHUNK ? count - done : CHUNK;
		ssize_t got = off ? pread(in, buf, want, *off) : real.read(in, buf, want);
		if (got < 0)
			return done ? (ssize_t)done : -1;
		if (got == 0)
			break;
		ssize_t w = sent(bh_send(e->slot, buf, (size_t)got, done ? MSG_DONTWAIT : 0), 0);
		if (w < 0 && (errno == EAGAIN) && done)
			w = 0;
		if (w < 0) {
			if (!off)
				lseek(in, -got, SEEK_CUR);
			return done ? (ssize_t)done : -1;
		}
		if (off)
			*off += w;
		else if (w < got)
			lseek(in, -(got - w), SEEK_CUR);
		done += (size_t)w;
		if (w < got)
			break;
	}
	return (ssize_t)done;
}

EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
	LOAD();
	return sendfile(out, in, off, count);
}

EXPORT ssize_t splice(int in, off_t *offin, int out, off_t *offout, size_t n, unsigned flags)
{
	LOAD();
	if (fd_kind_of(in) == FD_BH || fd_kind_of(out) == FD_BH) {
		say_once("splice", "not supported on Bulkhead sockets: EINVAL");
		return fail(EINVAL);
	}
	return real.splice(in, offin, out, offout, n, flags);
}

/* ------------------------------------------------------------------ */
/* descriptors                                                          */
/* ------------------------------------------------------------------ */

void bh_fd_release(int fd, struct fdent *e)
{
	int s = e->slot;
	e->kind = FD_KERNEL;
	ep_forget_fd(fd);
	if (slot_unref(s))
		bh_close(s);
}

/* The child shares its parent's sockets, as the kernel's: the instance
 * is told before the fork (a token), the child joins on its own
 * connection after it (client/bhsock.h, bh_fork_prepare). */
EXPORT pid_t fork(void)
{
	LOAD();
	uint64_t token = 0;
	bool share = inst_is_attached() && bh_fork_prepare(&token) == 0;
	pid_t pid = real.fork();
	if (pid == 0) {
		int r = share ? bh_fork_child(token) : -ENOTCONN;
		if (r == 0) {
			ep_after_fork();
			run_log("pid %d forked: shares its parent's sockets", (int)getpid());
		}
		else if (inst_is_attached()) {
			run_log("pid %d forked: cannot join its parent's sockets: %s", (int)getpid(),
				strerror(-r));
			fork_stale();
		}
	} else if (pid < 0 && share) {
		int e = errno;
		bh_fork_cancel(token);
		errno = e;
	}
	return pid;
}

/* exec: the sockets not marked close-on-exec go on in the new program,
 * as the kernel's, when it runs under `bulkhead run` too (its
 * environment names the library and the instance): the connection to
 * the instance is kept open across the exec and BULKHEAD_INHERIT tells
 * the new program's library which descriptor is which socket (fdtab.c,
 * inherit). Otherwise they are named on standard error and in the log:
 * the new program finds an inert eventfd at their numbers, and each
 * closes as the kernel's would when the process was its last holder.
 * `struct exec_env` is what must be undone if the exec fails. */
struct exec_env {
	char **env; /* NULL: the caller's environment, unchanged */
	int own;    /* the connection made inheritable, or -1 */
};

static bool in_env(char *const envp[], const char *prefix, const char *has)
{
	size_t n = strlen(prefix);
	for (char *const *e = envp; e && *e; e++)
		if (strncmp(*e, prefix, n) == 0 && (has == NULL || strstr(*e + n, has)))
			return true;
	return false;
}

static struct exec_env before_exec(const char *path, char *const envp[])
{
	struct exec_env x = {NULL, -1};
	if (!inst_is_attached())
		return x;
	char kept[2048] = "", fds[160] = "";
	size_t kl = 0;
	int n = 0;
	uint8_t *keep = calloc(FDTAB_MAX / 8, 1);
	for (int fd = 0; fd < FDTAB_MAX; fd++) {
		struct fdent *e = fd_get(fd, false);
		if (e == NULL) {
			fd |= 4095;
			continue;
		}
		if (e->kind != FD_BH || (real.fcntl(fd, F_GETFD) & FD_CLOEXEC))
			continue;
		size_t l = strlen(fds);
		if (l < sizeof(fds) - 12)
			snprintf(fds + l, sizeof(fds) - l, "%s%d", n ? " " : "", fd);
		if (kl < sizeof(kept) - 40)
			kl += (size_t)snprintf(kept + kl, sizeof(kept) - kl, "%s%d:%d:%c%c", n ? "," : "",
					       fd, e->slot, e->dgram ? 'u' : 't',
					       bh_nonblock(e->slot) ? 'n' : 'b');
		if (keep && e->slot >= 0 && e->slot < FDTAB_MAX)
			keep[e->slot / 8] |= (uint8_t)(1u << (e->slot % 8));
		n++;
	}
	int own = -1;
	bh_internal_fds(&own, 1);
	if (n == 0 || own < 0 || keep == NULL || kl >= sizeof(kept) - 40 ||
	    !in_env(envp, "LD_PRELOAD=", "libbulkhead_preload") ||
	    !in_env(envp, "BULKHEAD_INSTANCE=", NULL)) {
		free(keep);
		if (n == 0)
			return x;
		char line[400];
		snprintf(line, sizeof(line),
			 "%d Bulkhead socket(s) not marked close-on-exec (descriptor %s) do not "
			 "survive exec of %s (not under bulkhead run): the new program finds an "
			 "eventfd there, not the socket",
			 n, fds, path ? path : "?");
		say_once("exec", line);
		return x;
	}
	/* The sockets this process holds that no kept descriptor names:
	 * the new program closes them (their descriptors close on exec). */
	char drop[1024] = "";
	size_t dl = 0;
	uint32_t held[1024];
	int nh = held_slots(held, 1024);
	for (int i = 0; i < nh && dl < sizeof(drop) - 12; i++)
		if (!(keep[held[i] / 8] & (1u << (held[i] % 8))))
			dl += (size_t)snprintf(drop + dl, sizeof(drop) - dl, "%s%u", dl ? "," : "",
					       held[i]);
	free(keep);
	size_t ne = 0;
	for (char *const *e = envp; e && *e; e++)
		ne++;
	x.env = calloc(ne + 2, sizeof(char *));
	char *var = malloc(sizeof(kept) + sizeof(drop) + 64);
	if (x.env == NULL || var == NULL) {
		free(x.env);
		free(var);
		x.env = NULL;
		return x;
	}
	snprintf(var, sizeof(kept) + sizeof(drop) + 64, "BULKHEAD_INHERIT=%d;%s;%s", own, kept, drop);
	size_t k = 0;
	for (char *const *e = envp; e && *e; e++)
		if (strncmp(*e, "BULKHEAD_INHERIT=", 17) != 0)
			x.env[k++] = *e;
	x.env[k++] = var;
	x.env[k] = NULL;
	int fl = real.fcntl(own, F_GETFD);
	if (fl >= 0 && real.fcntl(own, F_SETFD, fl & ~FD_CLOEXEC) == 0)
		x.own = own;
	run_log("pid %d execs %s keeping %d socket(s) (descriptor %s)", (int)getpid(),
		path ? path : "?", n, fds);
	return x;
}

/* The exec failed: the connection closes on exec again. */
static int after_exec(struct exec_env *x)
{
	int e = errno;
	if (x->own >= 0) {
		int fl = real.fcntl(x->own, F_GETFD);
		if (fl >= 0)
			real.fcntl(x->own, F_SETFD, fl | FD_CLOEXEC);
	}
	if (x->env) {
		for (char **v = x->env; *v; v++)
			if (strncmp(*v, "BULKHEAD_INHERIT=", 17) == 0)
				free(*v);
		free(x->env);
	}
	errno = e;
	return -1;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	LOAD();
	struct exec_env x = before_exec(path, envp);
	real.execve(path, argv, x.env ? x.env : envp);
	return after_exec(&x);
}

EXPORT int execv(const char *path, char *const argv[])
{
	LOAD();
	struct exec_env x = before_exec(path, environ);
	real.execve(path, argv, x.env ? x.env : environ);
	return after_exec(&x);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	LOAD();
	struct exec_env x = before_exec(file, environ);
	real.execvpe(file, argv, x.env ? x.env : environ);
	return after_exec(&x);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	LOAD();
	struct exec_env x = before_exec(file, envp);
	real.execvpe(file, argv, x.env ? x.env : envp);
	return after_exec(&x);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	LOAD();
	struct exec_env x = before_exec("a descriptor", envp);
	real.fexecve(fd, argv, x.env ? x.env : envp);
	return after_exec(&x);
}

/* The list forms: their arguments into an array, then as above. */
#define LIST_ARGS(first, ap, argv)                                                         \
	size_t n_ = 1;                                                                     \
	va_start(ap, first);                                                               \
	while (va_arg(ap, char *) != NULL)                                                 \
		n_++;                                                                      \
	va_end(ap);                                                                        \
	char **argv = alloca((n_ + 1) * sizeof(char *));                                   \
	va_start(ap, first);                                                               \
	argv[0] = (char *)first;                                                           \
	for (size_t i_ = 1; i_ <= n_; i_++)                                                \
		argv[i_] = va_arg(ap, char *);

EXPORT int execl(const char *path, const char *arg, ...)
{
	LOAD();
	va_list ap;
	LIST_ARGS(arg, ap, argv)
	va_end(ap);
	return execv(path, argv);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	LOAD();
	va_list ap;
	LIST_ARGS(arg, ap, argv)
	va_end(ap);
	return execvp(file, argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	LOAD();
	va_list ap;
	LIST_ARGS(arg, ap, argv)
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, argv, envp);
}

/* What was at fd goes (close, or dup2 over it). Under fd_lock. */
static void forget(int fd)
{
	struct fdent *e = fd_get(fd, false);
	if (e == NULL)
		return;
	switch ((enum fd_kind)e->kind) {
	case FD_BH:
		bh_fd_release(fd, e);
		break;
	case FD_EPOLL:
		ep_free(e);
		break;
	case FD_PENDING:
		ep_forget_fd(fd);
		break;
	default:
		break;
	}
	e->kind = FD_KERNEL;
}

EXPORT int close(int fd)
{
	LOAD();
	if (bh_internal_fd(fd))
		return 0; /* the library's own: a program closing every descriptor
			   * must not cut it off from the instance */
	struct fdent *e = fd_get(fd, false);
	if (e && e->kind != FD_KERNEL) {
		fd_lock();
		forget(fd);
		fd_unlock();
	}
	return real.close(fd);
}

EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	LOAD();
	if (!(flags & CLOSE_RANGE_CLOEXEC)) {
		fd_lock();
		unsigned top = last < FDTAB_MAX - 1 ? last : FDTAB_MAX - 1;
		for (unsigned f = first; f <= top; f++) {
			struct fdent *e = fd_get((int)f, false);
			if (e == NULL) {
				f |= 4095; /* no page: skip it */
				continue;
			}
			if (e->kind != FD_KERNEL)
				forget((int)f);
		}
		fd_unlock();
	}
	/* Around the library's own descriptors. */
	int own[80];
	int n = bh_internal_fds(own, 80);
	unsigned lo = first;
	for (;;) {
		unsigned next = last;
		bool cut = false;
		for (int i = 0; i < n; i++)
			if ((unsigned)own[i] >= lo && (unsigned)own[i] <= next) {
				next = (unsigned)own[i];
				cut = true;
			}
		if (!cut)
			return real.close_range(lo, last, flags);
		if (next > lo && real.close_range(lo, next - 1, flags) != 0)
			return -1;
		if (next == last)
			return 0;
		lo = next + 1;
	}
}

/* newfd now names what oldfd names (dup, dup2, dup3, F_DUPFD). */
static void copied(int oldfd, int newfd)
{
	struct fdent *o = fd_get(oldfd, false);
	struct fdent *n = fd_get(newfd, o && o->kind == FD_BH);
	if (n == NULL)
		return;
	if (o && o->kind == FD_BH) {
		*n = *o;
		slot_ref(o->slot);
	} else {
		n->kind = FD_KERNEL; /* a PENDING socket's copy is the kernel socket's */
	}
}

EXPORT int dup(int fd)
{
	LOAD();
	fd_lock();
	int n = real.dup(fd);
	if (n >= 0)
		copied(fd, n);
	fd_unlock();
	return n;
}

static int dup_to(int oldfd, int newfd, int flags, bool three)
{
	if (oldfd == newfd)
		return three ? fail(EINVAL) : real.dup2(oldfd, newfd);
	if (bh_internal_fd(newfd))
		return fail(EBUSY);
	fd_lock();
	int r = three ? real.dup3(oldfd, newfd, flags) : real.dup2(oldfd, newfd);
	if (r >= 0) {
		forget(newfd);
		copied(oldfd, newfd);
	}
	fd_unlock();
	return r;
}

EXPORT int dup2(int oldfd, int newfd)
{
	LOAD();
	return dup_to(oldfd, newfd, 0, false);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	LOAD();
	return dup_to(oldfd, newfd, flags, true);
}

static int fcntl_bh(int fd, struct fdent *e, int cmd, void *arg)
{
	switch (cmd) {
	case F_GETFL:
		return O_RDWR | (bh_nonblock(e->slot) ? O_NONBLOCK : 0);
	case F_SETFL: {
		int v = (int)(intptr_t)arg;
		if (v & O_ASYNC) {
			say_once("fcntl O_ASYNC", "signal-driven I/O is not supported on Bulkhead "
						  "sockets: EINVAL");
			return fail(EINVAL);
		}
		return bh_set_nonblock(e->slot, (v & O_NONBLOCK) != 0);
	}
	case F_DUPFD:
	case F_DUPFD_CLOEXEC: {
		fd_lock();
		int n = real.fcntl(fd, cmd, (int)(intptr_t)arg);
		if (n >= 0)
			copied(fd, n);
		fd_unlock();
		return n;
	}
	case F_SETOWN:
	case F_SETSIG:
	case F_SETOWN_EX:
		say_once("fcntl F_SETOWN", "signal-driven I/O is not supported on Bulkhead "
					   "sockets: EINVAL");
		return fail(EINVAL);
	default: /* F_GETFD, F_SETFD, locks...: the eventfd's own */
		return real.fcntl(fd, cmd, arg);
	}
}

static int fcntl_any(int fd, int cmd, void *arg)
{
	struct fdent *e = fd_get(fd, false);
	if (e && e->kind == FD_BH)
		return fcntl_bh(fd, e, cmd, arg);
	if (e && e->kind == FD_STALE && cmd != F_GETFD && cmd != F_SETFD)
		return stale("fcntl");
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
		fd_lock();
		int n = real.fcntl(fd, cmd, (int)(intptr_t)arg);
		if (n >= 0)
			copied(fd, n);
		fd_unlock();
		return n;
	}
	return real.fcntl(fd, cmd, arg);
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	LOAD();
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *); /* as glibc reads it: one word */
	va_end(ap);
	return fcntl_any(fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	LOAD();
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_any(fd, cmd, arg);
}

EXPORT int ioctl(int fd, unsigned long req, ...)
{
	LOAD();
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	struct fdent *e = fd_get(fd, false);
	if (e == NULL || e->kind != FD_BH)
		return e && e->kind == FD_STALE ? stale("ioctl") : real.ioctl(fd, req, arg);
	switch (req) {
	case FIONREAD: {
		int n = bh_rx_avail(e->slot);
		if (n < 0)
			return -1;
		memcpy(arg, &n, sizeof(n));
		return 0;
	}
	case FIONBIO: {
		int v;
		memcpy(&v, arg, sizeof(v));
		return bh_set_nonblock(e->slot, v != 0);
	}
	case SIOCATMARK: {
		int v = 0; /* no urgent data */
		memcpy(arg, &v, sizeof(v));
		return 0;
	}
	case FIOCLEX:
	case FIONCLEX:
		return real.ioctl(fd, req, arg);
	default: {
		char what[48];
		snprintf(what, sizeof(what), "ioctl 0x%lx", req);
		say_once(strdup(what), "not supported on Bulkhead sockets: ENOTTY");
		return fail(ENOTTY);
	}
	}
}
