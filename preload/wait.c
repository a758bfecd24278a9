/*
 * preload/wait.c - poll, ppoll, select, pselect and epoll over sets that
 * mix Bulkhead sockets with kernel descriptors, without busy waiting.
 *
 * One wait: the Bulkhead sockets' readiness is read from the library
 * (bh_revents), the kernel descriptors' from the kernel with a zero
 * timeout; if nothing is ready, the thread sets its want bits on each
 * Bulkhead socket (bh_want), checks again, marks its waiter word
 * sleeping (bh_sleep_prepare), and sleeps in the kernel (ppoll, or
 * epoll_pwait on the program's own epoll instance) on the kernel
 * descriptors plus its wake-up socket (bh_wake_fd), on which the socket
 * server sends when one of those sockets changes, plus the control
 * socket, which hangs up if the server goes. An idle program so sleeps
 * in the kernel and uses no CPU.
 *
 * epoll: the program's epoll instance keeps its kernel descriptors; the
 * library keeps the Bulkhead ones (struct ep), with level- or edge-
 * triggered reports (edge: when bh_changes moved since the last report)
 * and EPOLLONESHOT. The wake-up socket and the control socket go into
 * the instance the first time a thread sleeps on it, tagged with a
 * random cookie that is filtered out of what the program sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "client/bhsock.h"
#include "ipc/clock.h"
#include "preload/preload.h"

#define EXPORT __attribute__((visibility("default")))

static int fail(int e)
{
	errno = e;
	return -1;
}

static struct timespec *ts_of(int64_t ns, struct timespec *ts)
{
	if (ns < 0)
		return NULL;
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	return ts;
}

/* Time left until deadline (0: none, wait forever: -1). */
#define NAP_NS (10 * 1000 * 1000) /* a wait without a wake-up descriptor of its own */

static int64_t left(uint64_t deadline)
{
	if (deadline == 0)
		return -1;
	uint64_t now = bh_now_ns();
	return now >= deadline ? 0 : (int64_t)(deadline - now);
}

/* ------------------------------------------------------------------ */
/* poll                                                                 */
/* ------------------------------------------------------------------ */

/* fds[i]'s Bulkhead readiness into revents; the count of ready ones. */
static int bh_ready(struct pollfd *fds, nfds_t n, const uint8_t *isbh)
{
	int ready = 0;
	for (nfds_t i = 0; i < n; i++) {
		if (!isbh[i])
			continue;
		struct fdent *e = fd_get(fds[i].fd, false);
		short r = POLLNVAL;
		if (e && e->kind == FD_BH)
			r = bh_revents(e->slot, fds[i].events);
		fds[i].revents = (short)(r & (fds[i].events | POLLERR | POLLHUP | POLLNVAL));
		ready += fds[i].revents != 0;
	}
	return ready;
}

static void want_all(const struct pollfd *fds, nfds_t n, const uint8_t *isbh, bool on)
{
	for (nfds_t i = 0; i < n; i++) {
		struct fdent *e = isbh[i] ? fd_get(fds[i].fd, false) : NULL;
		if (e && e->kind == FD_BH)
			bh_want(e->slot, fds[i].events, on);
	}
}

int wait_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns, const sigset_t *mask)
{
	struct timespec ts;
	nfds_t nbh = 0;
	for (nfds_t i = 0; i < n; i++) {
		enum fd_kind k = fd_kind_of(fds[i].fd);
		if (k == FD_STALE)
			say_once("fork", "a Bulkhead socket inherited across fork is not usable in the "
					 "child (not supported yet)");
		nbh += k == FD_BH || k == FD_STALE;
	}
	if (nbh == 0)
		return real.ppoll(fds, n, ts_of(timeout_ns, &ts), mask);
	/* The kernel's part (and two more: the wake-up socket, the control
	 * socket). */
	struct pollfd kst[64];
	uint8_t bst[64];
	struct pollfd *kp = n + 2 <= 64 ? kst : malloc((n + 2) * sizeof(*kp));
	uint8_t *isbh = n <= 64 ? bst : malloc(n);
	nfds_t *kat = malloc((n + 1) * sizeof(*kat));
	if (kp == NULL || isbh == NULL || kat == NULL) {
		if (kp != kst)
			free(kp);
		if (isbh != bst)
			free(isbh);
		free(kat);
		return fail(ENOMEM);
	}
	nfds_t nk = 0;
	for (nfds_t i = 0; i < n; i++) {
		enum fd_kind k = fd_kind_of(fds[i].fd);
		isbh[i] = k == FD_BH || k == FD_STALE;
		if (!isbh[i]) {
			kat[nk] = i;
			kp[nk++] = (struct pollfd){.fd = fds[i].fd, .events = fds[i].events};
		}
	}
	uint64_t deadline = timeout_ns > 0 ? bh_now_ns() + (uint64_t)timeout_ns : 0;
	int ret;
	for (;;) {
		int ready = bh_ready(fds, n, isbh);
		if (nk) {
			struct timespec zero = {0, 0};
			int r = real.ppoll(kp, nk, &zero, NULL);
			if (r < 0) {
				ret = -1;
				break;
			}
			for (nfds_t j = 0; j < nk; j++)
				fds[kat[j]].revents = kp[j].revents;
			ready += r;
		}
		if (ready || timeout_ns == 0) {
			ret = ready;
			break;
		}
		int64_t t = left(deadline);
		if (t == 0 && deadline) {
			ret = 0;
			break;
		}
		int wfd = bh_wake_fd();
		int own = -1;
		bh_internal_fds(&own, 1);
		want_all(fds, n, isbh, true);
		int r = 0, err = 0;
		if (wfd < 0) {
			/* No wake-up descriptor of its own (a word shared with
			 * other threads): bounded naps. */
			struct timespec nap = {0, NAP_NS};
			if (t >= 0 && t < NAP_NS)
				nap.tv_nsec = t;
			kp[nk] = (struct pollfd){.fd = -1};
			kp[nk + 1] = (struct pollfd){.fd = bh_server_was_lost() ? -1 : own,
						     .events = POLLRDHUP};
			r = real.ppoll(kp, nk + 2, &nap, mask);
			err = errno;
			if (r > 0 && kp[nk + 1].revents)
				bh_server_lost();
		} else if (bh_ready(fds, n, isbh) == 0 && bh_sleep_prepare()) {
			kp[nk] = (struct pollfd){.fd = wfd, .events = POLLIN};
			/* The control socket, until it hung up (then it would
			 * be ready for ever). */
			kp[nk + 1] = (struct pollfd){.fd = bh_server_was_lost() ? -1 : own,
						     .events = POLLRDHUP};
			r = real.ppoll(kp, nk + 2, ts_of(t, &ts), mask);
			err = errno;
			if (r > 0 && kp[nk + 1].revents)
				bh_server_lost();
		}
		if (wfd >= 0)
			bh_sleep_done();
		want_all(fds, n, isbh, false);
		if (r < 0) {
			errno = err;
			ret = -1;
			break;
		}
	}
	if (kp != kst)
		free(kp);
	if (isbh != bst)
		free(isbh);
	free(kat);
	return ret;
}

static int64_t ms_ns(int ms)
{
	return ms < 0 ? -1 : (int64_t)ms * 1000000;
}

static int64_t ts_ns(const struct timespec *t)
{
	return t ? (int64_t)t->tv_sec * 1000000000 + t->tv_nsec : -1;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	LOAD();
	return wait_poll(fds, n, ms_ns(timeout), NULL);
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask)
{
	LOAD();
	return wait_poll(fds, n, ts_ns(t), mask);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask,
		size_t fdslen);

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	LOAD();
	if (fdslen / sizeof(*fds) < n)
		abort();
	return poll(fds, n, timeout);
}

EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t,
		       const sigset_t *mask, size_t fdslen)
{
	LOAD();
	if (fdslen / sizeof(*fds) < n)
		abort();
	return ppoll(fds, n, t, mask);
}

/* ------------------------------------------------------------------ */
/* select                                                               */
/* ------------------------------------------------------------------ */

static int wait_select(int nfds, fd_set *r, fd_set *w, fd_set *x, int64_t timeout_ns,
		       const sigset_t *mask, bool *handled)
{
	*handled = false;
	if (nfds < 0 || nfds > FD_SETSIZE)
		return 0;
	bool any = false;
	int count = 0;
	for (int fd = 0; fd < nfds; fd++) {
		bool in = (r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (x && FD_ISSET(fd, x));
		if (!in)
			continue;
		count++;
		enum fd_kind k = fd_kind_of(fd);
		any |= k == FD_BH || k == FD_STALE;
	}
	if (!any)
		return 0;
	*handled = true;
	struct pollfd *p = malloc((size_t)(count ? count : 1) * sizeof(*p));
	if (p == NULL)
		return fail(ENOMEM);
	int n = 0;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = (short)((r && FD_ISSET(fd, r) ? POLLIN : 0) |
				   (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
				   (x && FD_ISSET(fd, x) ? POLLPRI : 0));
		if (ev)
			p[n++] = (struct pollfd){.fd = fd, .events = ev};
	}
	int k = wait_poll(p, (nfds_t)n, timeout_ns, mask);
	if (k < 0) {
		free(p);
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (p[i].revents & POLLNVAL) {
			free(p);
			return fail(EBADF);
		}
	if (r)
		FD_ZERO(r);
	if (w)
		FD_ZERO(w);
	if (x)
		FD_ZERO(x);
	int bits = 0;
	for (int i = 0; k > 0 && i < n; i++) {
		/* Linux's select: readable on data, end or error; writable
		 * on room or error; exceptional on urgent data. */
		if ((p[i].events & POLLIN) && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
			FD_SET(p[i].fd, r);
			bits++;
		}
		if ((p[i].events & POLLOUT) && (p[i].revents & (POLLOUT | POLLERR))) {
			FD_SET(p[i].fd, w);
			bits++;
		}
		if ((p[i].events & POLLPRI) && (p[i].revents & POLLPRI)) {
			FD_SET(p[i].fd, x);
			bits++;
		}
	}
	free(p);
	return bits;
}

EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv)
{
	LOAD();
	bool handled;
	if (tv && (tv->tv_sec < 0 || tv->tv_usec < 0))
		return fail(EINVAL);
	int64_t ns = tv ? (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000 : -1;
	uint64_t start = bh_now_ns();
	int k = wait_select(nfds, r, w, x, ns, NULL, &handled);
	if (!handled)
		return real.select(nfds, r, w, x, tv);
	if (tv && k >= 0) {
		/* Linux leaves the time not slept in *tv. */
		int64_t rest = ns - (int64_t)(bh_now_ns() - start);
		if (rest < 0)
			rest = 0;
		tv->tv_sec = rest / 1000000000;
		tv->tv_usec = (rest % 1000000000) / 1000;
	}
	return k;
}

EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *x, const struct timespec *t,
		   const sigset_t *mask)
{
	LOAD();
	bool handled;
	int k = wait_select(nfds, r, w, x, ts_ns(t), mask, &handled);
	return handled ? k : real.pselect(nfds, r, w, x, t, mask);
}

/* ------------------------------------------------------------------ */
/* epoll                                                                */
/* ------------------------------------------------------------------ */

struct epent {
	int fd;
	bool bh;  /* false: a PENDING socket the kernel holds for now */
	bool off; /* EPOLLONESHOT reported: quiet until EPOLL_CTL_MOD */
	uint32_t events;
	epoll_data_t data;
	uint32_t last; /* bh_changes at the last report (edge-triggered) */
};

struct ep {
	int epfd;
	struct epent *e;
	int n, cap, nbh;
	int added[8]; /* the library's descriptors in the instance so far */
	int nadded;
	int kick;     /* an eventfd of its own in the instance: epoll_ctl wakes sleepers */
	int sleepers; /* threads asleep on the instance */
	struct ep *next;
};

static struct ep *eps; /* under fd_lock */
static uint64_t cookie;

static uint64_t cookie_of(void)
{
	while (cookie == 0 && getrandom(&cookie, sizeof(cookie), 0) != sizeof(cookie))
		;
	return cookie;
}

static struct epent *ent_of(struct ep *p, int fd)
{
	for (int i = 0; i < p->n; i++)
		if (p->e[i].fd == fd)
			return &p->e[i];
	return NULL;
}

static void ent_drop(struct ep *p, struct epent *x)
{
	p->nbh -= x->bh;
	*x = p->e[--p->n];
}

void ep_forget_fd(int fd)
{
	for (struct ep *p = eps; p; p = p->next) {
		struct epent *x = ent_of(p, fd);
		if (x)
			ent_drop(p, x);
	}
}

void ep_decided(int fd, struct fdent *e)
{
	/* The kernel dropped its socket from every instance as it closed;
	 * the library holds the registration now. */
	for (struct ep *p = eps; p; p = p->next) {
		struct epent *x = ent_of(p, fd);
		if (x && !x->bh) {
			x->bh = true;
			x->last = bh_changes(e->slot) - 1;
			p->nbh++;
		}
	}
}

void ep_free(struct fdent *e)
{
	struct ep *p = e->ep;
	for (struct ep **pp = &eps; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p) {
		free(p->e);
		if (p->kick >= 0)
			real.close(p->kick);
	}
	free(p);
	e->ep = NULL;
}

void ep_after_fork(void)
{
	/* The parent's descriptors in the instances are the parent's; the
	 * child's own go in as it waits. */
	for (struct ep *p = eps; p; p = p->next) {
		p->nadded = 0;
		p->sleepers = 0;
	}
}

/* The library's record for epoll instance epfd (made if `make`). */
static struct ep *ep_get(int epfd, bool make)
{
	struct fdent *e = fd_get(epfd, make);
	if (e == NULL)
		return NULL;
	if (e->kind == FD_EPOLL)
		return e->ep;
	if (!make || e->kind != FD_KERNEL)
		return NULL;
	struct ep *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->epfd = epfd;
	p->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->kick >= 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = cookie_of()};
		real.epoll_ctl(epfd, EPOLL_CTL_ADD, p->kick, &ev);
	}
	p->next = eps;
	eps = p;
	e->kind = FD_EPOLL;
	e->ep = p;
	return p;
}

/* 0 if epfd is an epoll instance, else the errno epoll_ctl gives. */
static int not_epoll(int epfd)
{
	char path[40], link[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", epfd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return fcntl(epfd, F_GETFD) < 0 ? EBADF : 0; /* no /proc: trust it */
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventpoll]") == 0 ? 0 : EINVAL;
}

/* A new instance may have a number an old one had: forget the old. */
static int fresh_epoll(int fd)
{
	if (fd >= 0 && fd_kind_of(fd) == FD_EPOLL) {
		fd_lock();
		struct fdent *e = fd_get(fd, false);
		if (e && e->kind == FD_EPOLL) {
			ep_free(e);
			e->kind = FD_KERNEL;
		}
		fd_unlock();
	}
	return fd;
}

EXPORT int epoll_create1(int flags)
{
	LOAD();
	return fresh_epoll(real.epoll_create1(flags));
}

EXPORT int epoll_create(int size)
{
	LOAD();
	if (size <= 0)
		return fail(EINVAL);
	return fresh_epoll(real.epoll_create1(0));
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	LOAD();
	enum fd_kind k = fd_kind_of(fd);
	if (k == FD_KERNEL || k == FD_EPOLL)
		return real.epoll_ctl(epfd, op, fd, ev);
	if (k == FD_STALE)
		return fail(ENOTSUP);
	if (op != EPOLL_CTL_DEL && ev == NULL)
		return fail(EFAULT);
	if (epfd == fd)
		return fail(EINVAL);
	if (fd_kind_of(epfd) != FD_EPOLL) {
		int e = not_epoll(epfd);
		if (e)
			return fail(e);
	}
	fd_lock();
	int r = 0;
	struct ep *p = ep_get(epfd, true);
	if (p == NULL) {
		fd_unlock();
		return fail(ENOMEM);
	}
	struct epent *x = ent_of(p, fd);
	if (k == FD_PENDING) {
		/* A kernel socket for now: the kernel's instance holds it; the
		 * library remembers it, should it go to the instance. */
		r = real.epoll_ctl(epfd, op, fd, ev);
		if (r == 0 && op == EPOLL_CTL_DEL && x)
			ent_drop(p, x);
		else if (r == 0 && op != EPOLL_CTL_DEL && x)
			x->events = ev->events, x->data = ev->data;
		else if (r == 0 && op == EPOLL_CTL_ADD && p->n < 1 << 20) {
			if (p->n == p->cap) {
				int cap = p->cap ? 2 * p->cap : 16;
				struct epent *ne = realloc(p->e, (size_t)cap * sizeof(*ne));
				if (ne) {
					p->e = ne;
					p->cap = cap;
				}
			}
			if (p->n < p->cap)
				p->e[p->n++] = (struct epent){.fd = fd, .events = ev->events,
							      .data = ev->data};
		}
		fd_unlock();
		return r;
	}
	struct fdent *fe = fd_get(fd, false);
	switch (op) {
	case EPOLL_CTL_ADD:
		if (x) {
			r = fail(EEXIST);
			break;
		}
		if (p->n == p->cap) {
			int cap = p->cap ? 2 * p->cap : 16;
			struct epent *ne = realloc(p->e, (size_t)cap * sizeof(*ne));
			if (ne == NULL) {
				r = fail(ENOMEM);
				break;
			}
			p->e = ne;
			p->cap = cap;
		}
		p->e[p->n++] = (struct epent){.fd = fd, .bh = true, .events = ev->events,
					      .data = ev->data,
					      .last = bh_changes(fe->slot) - 1};
		p->nbh++;
		break;
	case EPOLL_CTL_MOD:
		if (x == NULL) {
			r = fail(ENOENT);
			break;
		}
		/* As Linux, a modification looks at the socket afresh. */
		x->events = ev->events;
		x->data = ev->data;
		x->off = false;
		x->last = bh_changes(fe->slot) - 1;
		break;
	case EPOLL_CTL_DEL:
		if (x == NULL)
			r = fail(ENOENT);
		else
			ent_drop(p, x);
		break;
	default:
		r = fail(EINVAL);
	}
	if (r == 0 && op != EPOLL_CTL_DEL && p->sleepers > 0 && p->kick >= 0) {
		/* A thread asleep on the instance set its want bits without
		 * this socket (or before it was armed again): it looks again. */
		uint64_t one = 1;
		ssize_t w = real.write(p->kick, &one, sizeof(one));
		(void)w;
	}
	fd_unlock();
	return r;
}

/* Ready Bulkhead entries into out (at most max). */
static int ep_collect(struct ep *p, struct epoll_event *out, int max)
{
	int n = 0;
	for (int i = 0; i < p->n && n < max; i++) {
		struct epent *x = &p->e[i];
		struct fdent *e = x->bh ? fd_get(x->fd, false) : NULL;
		if (e == NULL || e->kind != FD_BH || x->off)
			continue;
		uint32_t want = x->events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI);
		short r = bh_revents(e->slot, (short)want);
		uint32_t got = (uint32_t)(uint16_t)r & (want | EPOLLERR | EPOLLHUP);
		if (got == 0)
			continue;
		if (x->events & EPOLLET) {
			uint32_t now = bh_changes(e->slot);
			if (now == x->last)
				continue;
			x->last = now;
		}
		if (x->events & EPOLLONESHOT)
			x->off = true;
		out[n].events = got;
		out[n].data = x->data;
		n++;
	}
	return n;
}

/* Drops the library's own entries from what the kernel returned. */
static int ep_filter(struct epoll_event *ev, int k)
{
	int n = 0;
	for (int i = 0; i < k; i++)
		if (ev[i].data.u64 != cookie_of())
			ev[n++] = ev[i];
	return n;
}

/* Puts the library's descriptor f into the instance, once. */
static void ep_add_own(struct ep *p, int f, uint32_t events)
{
	for (int i = 0; i < p->nadded; i++)
		if (p->added[i] == f)
			return;
	struct epoll_event ev = {.events = events, .data.u64 = cookie_of()};
	if (real.epoll_ctl(p->epfd, EPOLL_CTL_ADD, f, &ev) == 0 || errno == EEXIST) {
		if (p->nadded < 8)
			p->added[p->nadded++] = f;
	}
}

static void ep_drop_own(struct ep *p, int f)
{
	for (int i = 0; i < p->nadded; i++)
		if (p->added[i] == f) {
			real.epoll_ctl(p->epfd, EPOLL_CTL_DEL, f, NULL);
			p->added[i] = p->added[--p->nadded];
			return;
		}
}

static int ep_wait(int epfd, struct epoll_event *ev, int max, int64_t timeout_ns,
		   const sigset_t *mask)
{
	fd_lock();
	struct ep *p = ep_get(epfd, false);
	bool mine = p && p->nbh > 0;
	fd_unlock();
	if (!mine || max <= 0) {
		int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
		int k = real.epoll_pwait(epfd, ev, max, ms, mask);
		return k < 0 ? -1 : ep_filter(ev, k);
	}
	uint64_t deadline = timeout_ns > 0 ? bh_now_ns() + (uint64_t)timeout_ns : 0;
	int *slots = NULL;
	short *evs = NULL;
	for (;;) {
		fd_lock();
		p = ep_get(epfd, false);
		int n = p ? ep_collect(p, ev, max) : 0;
		fd_unlock();
		if (n < max) {
			int k = real.epoll_pwait(epfd, ev + n, max - n, 0, NULL);
			if (k < 0) {
				free(slots);
				free(evs);
				return -1;
			}
			n += ep_filter(ev + n, k);
		}
		int64_t t = left(deadline);
		if (n > 0 || timeout_ns == 0 || (deadline && t == 0)) {
			free(slots);
			free(evs);
			return n;
		}
		/* Arm: this thread's wake-up socket and the control socket in the
		 * instance, its want bits on each Bulkhead socket. */
		int wfd = bh_wake_fd();
		int own = -1;
		bh_internal_fds(&own, 1);
		fd_lock();
		p = ep_get(epfd, false);
		int m = 0;
		free(slots);
		free(evs);
		slots = p ? malloc((size_t)(p->n ? p->n : 1) * sizeof(*slots)) : NULL;
		evs = p ? malloc((size_t)(p->n ? p->n : 1) * sizeof(*evs)) : NULL;
		if (p && slots && evs) {
			if (wfd >= 0)
				ep_add_own(p, wfd, EPOLLIN);
			if (own >= 0 && !bh_server_was_lost())
				ep_add_own(p, own, EPOLLRDHUP);
			else if (own >= 0)
				ep_drop_own(p, own); /* hung up: ready for ever */
			for (int i = 0; i < p->n; i++) {
				struct fdent *e = p->e[i].bh ? fd_get(p->e[i].fd, false) : NULL;
				if (e == NULL || e->kind != FD_BH || p->e[i].off)
					continue;
				slots[m] = e->slot;
				evs[m] = (short)(p->e[i].events & (EPOLLIN | EPOLLOUT));
				bh_want(slots[m], evs[m], true);
				m++;
			}
		}
		n = p ? ep_collect(p, ev, max) : 0;
		if (p)
			p->sleepers++;
		int kick = p ? p->kick : -1;
		fd_unlock();
		if (slots == NULL || evs == NULL) {
			free(slots);
			free(evs);
			return n > 0 ? n : fail(ENOMEM);
		}
		int k = 0, err = 0;
		if (n == 0 && (wfd < 0 || bh_sleep_prepare())) {
			/* Without a wake-up descriptor of its own (a word shared
			 * with other threads): bounded naps. */
			int64_t cap = wfd < 0 ? NAP_NS : -1;
			int64_t tt = t < 0 || (cap >= 0 && t > cap) ? cap : t;
			int ms = tt < 0 ? -1 : (int)((tt + 999999) / 1000000);
			k = real.epoll_pwait(epfd, ev, max, ms, mask);
			err = errno;
		}
		if (wfd >= 0)
			bh_sleep_done();
		fd_lock();
		p = ep_get(epfd, false);
		if (p && p->sleepers > 0)
			p->sleepers--;
		fd_unlock();
		uint64_t drained;
		if (kick >= 0 && real.read(kick, &drained, sizeof(drained)) < 0)
			drained = 0; /* nothing written */
		for (int i = 0; i < m; i++)
			bh_want(slots[i], evs[i], false);
		if (n > 0) {
			free(slots);
			free(evs);
			return n;
		}
		if (k < 0) {
			free(slots);
			free(evs);
			errno = err;
			return -1;
		}
		for (int i = 0; i < k; i++)
			if (ev[i].data.u64 == cookie_of() && (ev[i].events & (EPOLLRDHUP | EPOLLHUP)) &&
			    !(ev[i].events & EPOLLIN))
				bh_server_lost();
		k = ep_filter(ev, k);
		if (k > 0) {
			/* Kernel events; Bulkhead ones join them next call. */
			free(slots);
			free(evs);
			return k;
		}
	}
}

EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	LOAD();
	return ep_wait(epfd, ev, max, ms_ns(timeout), NULL);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
		       const sigset_t *mask)
{
	LOAD();
	return ep_wait(epfd, ev, max, ms_ns(timeout), mask);
}

EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *t,
			const sigset_t *mask)
{
	LOAD();
	return ep_wait(epfd, ev, max, ts_ns(t), mask);
}
