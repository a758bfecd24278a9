/*
 * client/bhsock.c - the client library: requests over the control
 * socket, data through the application's own region (domains/app_abi.h).
 *
 * Over 900 lines, not yet split: every part (attach and fork, waits,
 * the calls, options, readiness) reads the one private state `g` and the
 * slot helpers; the seams are attach/fork/waits, the data calls, and
 * options with readiness, and splitting there needs a private header
 * for `g` first (bhsock_priv.h). That is the next change to this file.
 */
#include "client/bhsock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "domains/app_abi.h"
#include "domains/paths.h"
#include "ipc/clock.h"
#include "ipc/order.h"
#include "ipc/region.h"

#define WAIT_SLICE_NS (20ll * 1000 * 1000)
#define WAIT_SPIN 200u /* polls of a thread's word before it sleeps */
#define SHARED_NAP_NS (10 * 1000 * 1000) /* a sleep on a shared word (kernel waits) */

struct lsock {
	bool open, nonblock, udp, err_taken;
	bool connect_nb; /* a non-blocking connect was started and not asked after */
	uint64_t rcvtimeo, sndtimeo; /* ns, 0: none (SO_RCVTIMEO, SO_SNDTIMEO) */
	/* options as set, for getsockopt */
	bool reuseaddr, reuseport, broadcast;
	uint8_t opt_set;  /* bit i: opt[i] (enum bh_app_opt) was set */
	uint32_t opt[5];
	struct linger linger;
	struct bh_win_use tx_use; /* how this process used the send window */
};

static struct {
	pthread_mutex_t lock; /* one request at a time */
	int fd;
	struct bh_region region, bell_region;
	struct bh_app_meta meta;
	struct bh_app_slot *slots;
	uint8_t *data;
	uint32_t *dirty;
	struct bh_ntfn *ntfn, *bell;
	struct lsock *ls;
	uint32_t spin; /* bh_ntfn_spin_budget(WAIT_SPIN), at attach */
	bool server_gone; /* the socket server closed our control socket (atomic:
			   * any thread may find it out, every thread reads it) */
	/* Kernel waits (bh_use_kernel_waits): each waiter word has an
	 * wake-up socket the server sends on, and waits sleep in ppoll on it. */
	bool kernel_waits;
	bool (*restart)(void);
	int (*hide_fd)(int);
	int wake_fd[BH_APP_WAITERS]; /* descriptor + 1; 0: none yet */
	struct bh_app_shared *shared; /* the application's page (app_abi.h) */
	char name[64];                /* the instance's */
	int32_t pid;                  /* this process's */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

/* Whether the socket server went away (it died, and a replacement knows
 * nothing of this application): asked after a wait slice that saw no
 * wake-up, so it costs nothing while traffic flows. */
static bool server_gone(void)
{
	if (__atomic_load_n(&g.server_gone, __ATOMIC_RELAXED) || g.fd < 0)
		return true;
	struct pollfd p = {.fd = g.fd, .events = POLLRDHUP};
	if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
		__atomic_store_n(&g.server_gone, true, __ATOMIC_RELAXED);
		return true;
	}
	return false;
}

/* This thread's waiter word (see app_abi.h): a free one is claimed in
 * the application's shared page on first use, with this process's pid
 * (the processes of a forked application share the words), and given
 * back when the thread exits; a word whose process is gone is taken
 * back when none is free; when all are taken, threads share (and may
 * wait out a slice). */
static pthread_key_t waiter_key;
static pthread_once_t waiter_once = PTHREAD_ONCE_INIT;
static __thread int my_waiter = -1;
static __thread bool my_shared; /* my_waiter is another thread's word too */

static void waiter_release(void *p)
{
	if (g.shared == NULL)
		return;
	unsigned i = (unsigned)((uintptr_t)p - 1);
	/* The pid goes first: a word whose bit is set and pid 0 is being
	 * claimed, and no one takes it back. */
	int32_t me = g.pid;
	if (__atomic_compare_exchange_n(&g.shared->waiter_pid[i], &me, 0, false, __ATOMIC_ACQ_REL,
					__ATOMIC_RELAXED))
		__atomic_fetch_and(&g.shared->waiters_used, ~(1ull << i), __ATOMIC_RELEASE);
}

static void waiter_key_make(void)
{
	pthread_key_create(&waiter_key, waiter_release);
}

static void drop_wake_fd(unsigned i);

/* Word i is this thread's from now on: its wake-up socket (if any) was for an
 * earlier owner, maybe of another process: a new one is asked for when
 * needed. */
static unsigned waiter_mine(unsigned i)
{
	drop_wake_fd(i);
	/* The key holds i + 1: its destructor runs only for non-NULL
	 * values. */
	pthread_setspecific(waiter_key, (void *)(uintptr_t)(i + 1));
	my_waiter = (int)i;
	my_shared = false;
	return i;
}

/* A word whose process is gone: taken over (its pid swapped for ours). */
static int waiter_reclaim(void)
{
	for (unsigned i = 0; i < BH_APP_WAITERS; i++) {
		int32_t pid = __atomic_load_n(&g.shared->waiter_pid[i], __ATOMIC_RELAXED);
		if (pid > 0 && pid != g.pid && kill(pid, 0) != 0 && errno == ESRCH &&
		    __atomic_compare_exchange_n(&g.shared->waiter_pid[i], &pid, g.pid, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return (int)i;
	}
	return -1;
}

static unsigned waiter(void)
{
	if (my_waiter >= 0 || g.shared == NULL)
		return my_waiter >= 0 ? (unsigned)my_waiter : 0;
	pthread_once(&waiter_once, waiter_key_make);
	uint64_t *used_p = &g.shared->waiters_used;
	uint64_t used = __atomic_load_n(used_p, __ATOMIC_ACQUIRE);
	while (~used) {
		int i = __builtin_ctzll(~used);
		if (__atomic_compare_exchange_n(used_p, &used, used | (1ull << i), false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&g.shared->waiter_pid[i], g.pid, __ATOMIC_RELEASE);
			return waiter_mine((unsigned)i);
		}
	}
	int r = waiter_reclaim();
	if (r >= 0)
		return waiter_mine((unsigned)r);
	/* All taken: share one, and wait in bounded slices (the word's
	 * wake-up socket is its owner's). */
	my_waiter = (int)((uintptr_t)pthread_self() % BH_APP_WAITERS);
	my_shared = true;
	return (unsigned)my_waiter;
}

/* A slot's copy lock (app_abi.h: rx_lock, tx_lock), held only while
 * indices and bytes move, never while waiting; a process that died
 * holding it loses it. */
static void slot_lock(uint32_t *w)
{
	uint32_t me = (uint32_t)g.pid;
	for (unsigned i = 0;; i++) {
		uint32_t cur = bh_load_relaxed32(w);
		if (cur == 0 && bh_cmpxchg32(w, 0, me) == 0)
			return;
		if (i < 200) {
			bh_cpu_relax();
			continue;
		}
		sched_yield();
		if ((i & 1023) == 0 && cur != 0 && cur != me && kill((pid_t)cur, 0) != 0 &&
		    errno == ESRCH)
			bh_cmpxchg32(w, cur, 0);
	}
}

static void slot_unlock(uint32_t *w)
{
	bh_store_release32(w, 0);
}

static int fail(int e)
{
	errno = e;
	return -1;
}

/* ------------------------------------------------------------------ */
/* attach                                                               */
/* ------------------------------------------------------------------ */

static int recv_fds(int fd, void *msg, size_t len, int *fds, int max)
{
	struct iovec iov = {.iov_base = msg, .iov_len = len};
	char ctl[CMSG_SPACE(sizeof(int) * 4)];
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl)};
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n != (ssize_t)len)
		return -1;
	int got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof(int));
			if (got < max)
				fds[got++] = f;
			else
				close(f);
		}
	}
	return got;
}

static int rpc(const struct bh_rpc_req *rq, struct bh_rpc_rep *rp)
{
	if (g.fd < 0)
		return -ENOTCONN;
	if (send(g.fd, rq, sizeof(*rq), MSG_NOSIGNAL) != (ssize_t)sizeof(*rq))
		return -ECONNRESET;
	for (;;) {
		ssize_t n = recv(g.fd, rp, sizeof(*rp), 0);
		if (n == (ssize_t)sizeof(*rp))
			return rp->ret;
		if (n < 0 && errno == EINTR)
			continue;
		return -ECONNRESET; /* the socket server is gone */
	}
}

/* This process's control connection and wake-up sockets go (the
 * server's ends stay the server's). */
static void drop_connection(void)
{
	/* Forgotten before closed: inside the preload library, close() is
	 * the library's own, which will not close a descriptor it still
	 * counts as the library's (bh_internal_fd). */
	int fd = g.fd;
	g.fd = -1;
	if (fd >= 0)
		close(fd);
	for (unsigned i = 0; i < BH_APP_WAITERS; i++) {
		int w = g.wake_fd[i];
		g.wake_fd[i] = 0;
		if (w > 0)
			close(w - 1);
	}
}

void bh_detach(void)
{
	pthread_mutex_lock(&g.lock);
	drop_connection();
	bh_region_close(&g.region);
	bh_region_close(&g.bell_region);
	free(g.ls);
	g.ls = NULL;
	g.slots = NULL;
	pthread_mutex_unlock(&g.lock);
}

static int call(struct bh_rpc_req *rq, struct bh_rpc_rep *rp);

/* A new connection to instance name's app.sock, or -errno. */
static int connect_app(const char *name)
{
	char path[256];
	if (bh_inst_path(path, sizeof(path), name, "app.sock") != 0)
		return -ENAMETOOLONG;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		return -(e == ENOENT || e == ECONNREFUSED ? ENOENT : e);
	}
	return fd;
}

/* Sends rq (HELLO, or REGION on a connection that is a member already)
 * on connection fd, maps the region and the server's word it answers
 * with, and checks the region's geometry. 0 or -errno; fd stays open. */
static int adopt(int fd, const struct bh_rpc_req *rq)
{
	struct bh_rpc_rep rp = {0};
	int fds[2] = {-1, -1};
	if (send(fd, rq, sizeof(*rq), MSG_NOSIGNAL) != (ssize_t)sizeof(*rq) ||
	    recv_fds(fd, &rp, sizeof(rp), fds, 2) != 2 || rp.ret != 0) {
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return rp.ret < 0 ? rp.ret : -EPROTO;
	}
	int e = bh_region_attach(&g.region, fds[0], BH_REGION_APP, BH_ACCESS_RW);
	if (e == 0)
		e = bh_region_attach(&g.bell_region, fds[1], BH_REGION_DOORBELL, BH_ACCESS_RW);
	if (e) {
		close(fds[0]);
		close(fds[1]);
		bh_region_close(&g.region);
		return e;
	}
	memcpy(&g.meta, (char *)g.region.base + 64, sizeof(g.meta));
	const struct bh_app_meta *m = &g.meta;
	size_t size = g.region.size;
	if (m->magic != BH_APP_MAGIC || m->version != BH_APP_VERSION || m->nslots == 0 ||
	    m->ring == 0 || (m->ring & (m->ring - 1)) ||
	    m->slots_off + (uint64_t)m->nslots * sizeof(struct bh_app_slot) > size ||
	    m->data_off + (uint64_t)m->nslots * 2 * m->ring > size ||
	    m->dirty_off + ((uint64_t)m->nslots / 32 + 2) * 4 > size ||
	    m->ntfn_off + BH_APP_WAITERS * sizeof(struct bh_ntfn) > size ||
	    m->shared_off + sizeof(struct bh_app_shared) > size ||
	    m->dgram_max == 0 || m->dgram_max > 65507) {
		bh_region_close(&g.region);
		bh_region_close(&g.bell_region);
		return -EPROTO;
	}
	g.slots = (struct bh_app_slot *)((char *)g.region.base + m->slots_off);
	g.data = (uint8_t *)g.region.base + m->data_off;
	g.dirty = (uint32_t *)((char *)g.region.base + m->dirty_off);
	g.ntfn = (struct bh_ntfn *)((char *)g.region.base + m->ntfn_off);
	g.bell = bh_region_at(&g.bell_region, 64, sizeof(struct bh_ntfn));
	g.shared = (struct bh_app_shared *)((char *)g.region.base + m->shared_off);
	g.pid = (int32_t)getpid();
	g.ls = calloc(m->nslots, sizeof(*g.ls));
	/* The mappings stay; the descriptors need not. */
	close(g.region.fd);
	g.region.fd = -1;
	close(g.bell_region.fd);
	g.bell_region.fd = -1;
	if (g.hide_fd)
		fd = g.hide_fd(fd);
	g.fd = fd;
	g.spin = bh_ntfn_spin_budget(WAIT_SPIN);
	return 0;
}

int bh_attach(const char *name)
{
	if (!bh_name_ok(name))
		return fail(EINVAL);
	if (g.fd >= 0)
		return fail(EISCONN);
	int fd = connect_app(name);
	if (fd < 0)
		return fail(-fd);
	snprintf(g.name, sizeof(g.name), "%s", name);
	struct bh_rpc_req rq = {.op = BH_RPC_HELLO, .a = BH_APP_VERSION};
	int e = adopt(fd, &rq);
	if (e) {
		close(fd);
		return fail(-e);
	}
	return 0;
}

int bh_inherit(const char *name, int fd, const struct bh_kept *kept, int nkept,
	       const uint32_t *drop, int ndrop)
{
	if (!bh_name_ok(name) || g.fd >= 0)
		return -EINVAL;
	snprintf(g.name, sizeof(g.name), "%s", name);
	struct bh_rpc_req rq = {.op = BH_RPC_REGION};
	int e = adopt(fd, &rq);
	if (e)
		return e;
	/* The threads of the program before exec are gone: their waiter
	 * words (this pid's) are free again. */
	for (unsigned i = 0; i < BH_APP_WAITERS; i++)
		if (__atomic_load_n(&g.shared->waiter_pid[i], __ATOMIC_RELAXED) == g.pid)
			__atomic_fetch_and(&g.shared->waiters_used, ~(1ull << i), __ATOMIC_RELEASE);
	for (int i = 0; i < nkept; i++) {
		if (kept[i].slot >= g.meta.nslots)
			continue;
		g.ls[kept[i].slot] = (struct lsock){.open = true, .udp = kept[i].udp,
						    .nonblock = kept[i].nonblock};
	}
	/* What only descriptors closed on exec held closes now. */
	for (int i = 0; i < ndrop; i++) {
		if (drop[i] >= g.meta.nslots)
			continue;
		g.ls[drop[i]].open = true;
		bh_close((int)drop[i]);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

static struct lsock *ls_of(int s)
{
	if (g.ls == NULL || s < 0 || (uint32_t)s >= g.meta.nslots || !g.ls[s].open)
		return NULL;
	return &g.ls[s];
}

static uint8_t *rx_ring(int s)
{
	return g.data + (size_t)s * 2 * g.meta.ring;
}

static uint8_t *tx_ring(int s)
{
	return g.data + (size_t)s * 2 * g.meta.ring + g.meta.ring;
}

/* Tells the socket server slot s has news. */
static void kick(int s)
{
	uint32_t words = g.meta.nslots / 32 + 1;
	/* The bit, then the summary word (the server exchanges the summary,
	 * then each word), then the signal. */
	bh_or32(&g.dirty[s / 32], 1u << (s % 32));
	bh_store_release32(&g.dirty[words], 1u);
	bh_ntfn_signal(g.bell, BH_BADGE_APP, NULL);
}

static uint32_t state(int s)
{
	return bh_load_acquire32(&g.slots[s].state);
}

/* This thread's wake-up socket, asked of the server on first
 * use (app_abi.h); -errno when it cannot be. g.wake_fd holds fd + 1 (0:
 * none yet), so the zeroed table needs no set-up. */
static int wake_fd_of(unsigned w)
{
	if (my_shared)
		return -EAGAIN;
	int f = __atomic_load_n(&g.wake_fd[w], __ATOMIC_ACQUIRE);
	if (f > 0)
		return f - 1;
	pthread_mutex_lock(&g.lock);
	int r = g.wake_fd[w] - 1;
	if (r < 0) {
		/* The server makes a socket pair, keeps one end and hands
		 * over the other: it writes its end with MSG_DONTWAIT, which
		 * nothing this side does can make block. */
		struct bh_rpc_req rq = {.op = BH_RPC_WAKEFD, .a = w};
		struct bh_rpc_rep rp = {0};
		int fd = -1;
		r = -ECONNRESET;
		if (g.fd >= 0 && send(g.fd, &rq, sizeof(rq), MSG_NOSIGNAL) == (ssize_t)sizeof(rq)) {
			int got = recv_fds(g.fd, &rp, sizeof(rp), &fd, 1);
			r = got == 1 && rp.ret == 0 ? fd : (rp.ret < 0 ? rp.ret : -EPROTO);
			if (r < 0 && fd >= 0)
				close(fd);
		}
		if (r >= 0 && g.hide_fd)
			r = g.hide_fd(r);
		if (r >= 0)
			__atomic_store_n(&g.wake_fd[w], r + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&g.lock);
	return r;
}

static void drop_wake_fd(unsigned i)
{
	int f = __atomic_exchange_n(&g.wake_fd[i], 0, __ATOMIC_ACQ_REL);
	if (f > 0)
		close(f - 1);
}

int bh_wake_fd(void)
{
	int r = wake_fd_of(waiter());
	return r < 0 ? fail(-r) : r;
}

bool bh_sleep_prepare(void)
{
	if (my_shared)
		return true; /* sleeps a bounded slice, the word untouched */
	struct bh_ntfn *n = &g.ntfn[waiter()];
	return bh_cmpxchg32(&n->word, 0, BH_NTFN_SLEEPING) == 0;
}

void bh_sleep_done(void)
{
	unsigned w = waiter();
	if (my_shared)
		return; /* the word is its owner's to clear */
	int f = __atomic_load_n(&g.wake_fd[w], __ATOMIC_ACQUIRE) - 1;
	/* One datagram per sleep at most (the one sender that cleared
	 * SLEEPING sends); one that comes after this takes the next sleep's
	 * place, which then returns at once and takes it. */
	char b;
	if (f >= 0 && recv(f, &b, 1, MSG_DONTWAIT) < 0)
		b = 0; /* none: woken otherwise */
	bh_xchg32(&g.ntfn[w].word, 0);
}

void bh_after_fork_child(void)
{
	/* This process's copies only: the parent's connection, region and
	 * wake-up sockets stay as they are. The forking thread is the only one. */
	drop_connection();
	bh_region_unmap(&g.region);
	bh_region_unmap(&g.bell_region);
	memset(&g.region, 0, sizeof(g.region));
	memset(&g.bell_region, 0, sizeof(g.bell_region));
	g.region.fd = g.bell_region.fd = -1;
	free(g.ls);
	g.ls = NULL;
	g.slots = NULL;
	g.shared = NULL;
	__atomic_store_n(&g.server_gone, false, __ATOMIC_RELAXED);
	pthread_mutex_init(&g.lock, NULL);
	my_waiter = -1;
}

int bh_fork_prepare(uint64_t *token)
{
	if (g.fd < 0)
		return -ENOTCONN;
	struct bh_rpc_req rq = {.op = BH_RPC_FORK};
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	if (r < 0)
		return r;
	*token = rp.token;
	return 0;
}

void bh_fork_cancel(uint64_t token)
{
	struct bh_rpc_req rq = {.op = BH_RPC_CANCEL, .token = token};
	struct bh_rpc_rep rp;
	call(&rq, &rp);
}

int bh_fork_child(uint64_t token)
{
	/* The parent's connection and wake-up sockets are the parent's (the
	 * server keeps its own copies): this process's copies go. The
	 * region stays mapped: it is the same. The forking thread is the
	 * only one, and no lock another thread held is held here. */
	pthread_mutex_init(&g.lock, NULL);
	drop_connection();
	my_waiter = -1;
	g.pid = (int32_t)getpid();
	__atomic_store_n(&g.server_gone, false, __ATOMIC_RELAXED);
	int fd = connect_app(g.name);
	if (fd < 0) {
		bh_after_fork_child();
		return fd;
	}
	struct bh_rpc_req rq = {.op = BH_RPC_JOIN, .token = token};
	struct bh_rpc_rep rp;
	g.fd = fd;
	int r = rpc(&rq, &rp);
	if (r == 0 && (rp.nslots != g.meta.nslots || rp.ring != g.meta.ring))
		r = -EPROTO;
	if (r < 0) {
		bh_after_fork_child();
		return r;
	}
	if (g.hide_fd)
		g.fd = g.hide_fd(fd);
	return 0;
}

void bh_use_kernel_waits(bool (*restart)(void), int (*hide_fd)(int))
{
	g.restart = restart;
	g.hide_fd = hide_fd;
	g.kernel_waits = true;
}

/* One sleep of this thread until the server signals its word, the slice
 * passes (< 0: kernel waits only, no limit), or (kernel waits) a signal
 * comes or the server hangs up: returns the badges (0: none), or -EINTR
 * for a signal the caller must not restart after. */
static int64_t sleep_slice(int64_t slice)
{
	unsigned w = waiter();
	if (!g.kernel_waits)
		return bh_ntfn_wait(&g.ntfn[w], g.spin, slice, NULL);
	uint32_t b = bh_ntfn_poll(&g.ntfn[w]);
	for (uint32_t i = 0; b == 0 && i < g.spin; i++) {
		bh_cpu_relax();
		b = bh_ntfn_poll(&g.ntfn[w]);
	}
	if (b)
		return b;
	if (my_shared) {
		/* Another thread's word: a bounded nap, then look again. */
		struct pollfd c = {.fd = g.fd, .events = POLLRDHUP};
		struct timespec nap = {0, SHARED_NAP_NS};
		if (slice >= 0 && slice < SHARED_NAP_NS)
			nap.tv_nsec = slice;
		int r = ppoll(&c, 1, &nap, NULL);
		if (r < 0 && errno == EINTR && !(g.restart && g.restart()))
			return -EINTR;
		return r > 0 && server_gone() ? 0 : 1;
	}
	int f = wake_fd_of(w);
	if (f < 0) /* no wake-up socket: the futex, as without kernel waits */
		return bh_ntfn_wait(&g.ntfn[w], 0, slice < 0 ? WAIT_SLICE_NS : slice, NULL);
	if (!bh_sleep_prepare())
		return bh_ntfn_poll(&g.ntfn[w]);
	/* The control socket too: it hangs up when the server goes. */
	struct pollfd p[2] = {{.fd = f, .events = POLLIN}, {.fd = g.fd, .events = POLLRDHUP}};
	struct timespec ts = {.tv_sec = slice / 1000000000, .tv_nsec = slice % 1000000000};
	int r = ppoll(p, 2, slice < 0 ? NULL : &ts, NULL);
	int e = errno;
	bh_sleep_done();
	if (r < 0 && e == EINTR && !(g.restart && g.restart()))
		return -EINTR;
	if (r > 0 && p[1].revents)
		return server_gone() ? 0 : 1;
	return r > 0;
}

/* Sleeps until cond(s) or the deadline (ns, 0: none), on the side of
 * the slot cond is about (tx: room to send or a connection completing;
 * else data or a connection to accept). Returns 0, -ETIMEDOUT,
 * -ECONNRESET (the server is gone) or -EINTR (kernel waits: a signal). */
static int wait_for(int s, bool (*cond)(int), bool tx, uint64_t deadline)
{
	uint64_t *want = tx ? &g.slots[s].want_tx : &g.slots[s].want_rx;
	for (;;) {
		if (cond(s))
			return 0;
		uint64_t bit = 1ull << waiter();
		/* want before the re-check (the server: state, then want);
		 * bh_or64 is a full barrier. */
		bh_or64(want, bit);
		if (cond(s)) {
			bh_and64(want, ~bit);
			return 0;
		}
		/* Kernel waits see the server hang up: no slices. */
		int64_t slice = g.kernel_waits ? -1 : WAIT_SLICE_NS;
		if (deadline) {
			uint64_t now = bh_now_ns();
			if (now >= deadline) {
				bh_and64(want, ~bit);
				return -ETIMEDOUT;
			}
			if (slice < 0 || (int64_t)(deadline - now) < slice)
				slice = (int64_t)(deadline - now);
		}
		int64_t woke = sleep_slice(slice);
		bh_and64(want, ~bit);
		if (woke < 0)
			return (int)woke;
		if (g.fd < 0 || (!woke && server_gone()))
			return -ECONNRESET;
	}
}

/* The deadline of a wait on a socket with SO_RCVTIMEO or SO_SNDTIMEO. */
static uint64_t deadline_of(uint64_t timeo)
{
	return timeo ? bh_now_ns() + timeo : 0;
}

static int sock_error(int s)
{
	if (__atomic_load_n(&g.server_gone, __ATOMIC_RELAXED))
		return ECONNRESET;
	uint32_t st = state(s);
	if (st & BH_SS_ERROR) {
		int e = g.slots[s].err;
		return e > 0 && e < 4096 ? e : ECONNRESET;
	}
	if (st & BH_SS_HUP)
		return EPIPE;
	return 0;
}

static bool rx_ready(int s)
{
	uint32_t st = state(s);
	return bh_load_acquire32(&g.slots[s].rx_head) != bh_load_relaxed32(&g.slots[s].rx_tail) ||
	       (st & (BH_SS_RX_EOF | BH_SS_ERROR | BH_SS_HUP));
}

/* Room in the send ring: a stream socket's window (domains/app_abi.h),
 * which the sender may change only at an empty ring, under tx_lock. */
static uint32_t tx_space(int s)
{
	struct bh_app_slot *sl = &g.slots[s];
	uint32_t tail = bh_load_acquire32(&sl->tx_tail);
	uint32_t used = bh_load_relaxed32(&sl->tx_head) - tail;
	if (g.ls[s].udp)
		return used > g.meta.ring ? 0 : g.meta.ring - used;
	uint32_t win = bh_win_of(bh_load_relaxed32(&sl->tx_win), g.meta.ring);
	if (win == 0 || used > win)
		return 0;
	return used == 0 ? win : bh_win_room(&g.ls[s].tx_use, win, g.meta.ring, used);
}

static bool tx_ready(int s)
{
	return tx_space(s) > 0 || (state(s) & (BH_SS_ERROR | BH_SS_HUP));
}

static bool accept_ready(int s)
{
	return g.slots[s].accq > 0 || (state(s) & (BH_SS_ERROR | BH_SS_HUP));
}

static int to_sin(const struct sockaddr *a, socklen_t len, uint32_t *addr, uint16_t *port)
{
	if (a == NULL || len < sizeof(struct sockaddr_in))
		return -EINVAL;
	const struct sockaddr_in *in = (const struct sockaddr_in *)a;
	if (in->sin_family != AF_INET)
		return -EAFNOSUPPORT;
	*addr = ntohl(in->sin_addr.s_addr);
	*port = ntohs(in->sin_port);
	return 0;
}

static void from_sin(struct sockaddr *a, socklen_t *len, uint32_t addr, uint16_t port)
{
	if (a == NULL || len == NULL)
		return;
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(addr)};
	size_t n = *len < sizeof(in) ? *len : sizeof(in);
	memcpy(a, &in, n);
	*len = sizeof(in);
}

static int call(struct bh_rpc_req *rq, struct bh_rpc_rep *rp)
{
	pthread_mutex_lock(&g.lock);
	int r = rpc(rq, rp);
	pthread_mutex_unlock(&g.lock);
	return r;
}

/* A call that opens (socket, accept: the slot the server names, checked,
 * gets *ls) or closes (close) a slot. The local table changes under the
 * same lock as the request, so a slot the server frees and at once hands
 * to another thread is never marked closed by the thread that closed it
 * after the other marked it open. */
static int call_slot(struct bh_rpc_req *rq, struct bh_rpc_rep *rp, int closing,
		     const struct lsock *ls)
{
	pthread_mutex_lock(&g.lock);
	int r = rpc(rq, rp);
	if (g.ls == NULL) /* detached meanwhile */
		r = r < 0 ? r : -EBADF;
	else if (closing)
		g.ls[rq->slot].open = false;
	else if (r >= 0 && rp->slot < g.meta.nslots)
		g.ls[rp->slot] = *ls;
	else if (r >= 0)
		r = -EPROTO;
	pthread_mutex_unlock(&g.lock);
	return r;
}

/* ------------------------------------------------------------------ */
/* the calls                                                            */
/* ------------------------------------------------------------------ */

int bh_socket(int domain, int type, int protocol)
{
	if (domain != AF_INET)
		return fail(EAFNOSUPPORT);
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (base != SOCK_STREAM && base != SOCK_DGRAM)
		return fail(EPROTONOSUPPORT);
	if (protocol != 0 && protocol != (base == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP))
		return fail(EPROTONOSUPPORT);
	struct bh_rpc_req rq = {.op = BH_RPC_SOCKET,
				.a = base == SOCK_STREAM ? BH_SOCK_STREAM : BH_SOCK_DGRAM};
	struct bh_rpc_rep rp;
	struct lsock ls = {.open = true,
			   .nonblock = (type & SOCK_NONBLOCK) != 0,
			   .udp = base == SOCK_DGRAM};
	int r = call_slot(&rq, &rp, 0, &ls);
	if (r < 0)
		return fail(-r);
	return (int)rp.slot;
}

int bh_set_nonblock(int s, int on)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	l->nonblock = on != 0;
	return 0;
}

int bh_bind(int s, const struct sockaddr *a, socklen_t len)
{
	struct bh_rpc_req rq = {.op = BH_RPC_BIND, .slot = (uint32_t)s};
	int e = to_sin(a, len, &rq.addr, &rq.port);
	if (e)
		return fail(-e);
	if (ls_of(s) == NULL)
		return fail(EBADF);
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	return r < 0 ? fail(-r) : 0;
}

int bh_listen(int s, int backlog)
{
	if (ls_of(s) == NULL)
		return fail(EBADF);
	struct bh_rpc_req rq = {.op = BH_RPC_LISTEN, .slot = (uint32_t)s,
				.a = backlog > 0 ? (uint32_t)backlog : 128};
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	return r < 0 ? fail(-r) : 0;
}

int bh_accept(int s, struct sockaddr *a, socklen_t *len)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	for (;;) {
		struct bh_rpc_req rq = {.op = BH_RPC_ACCEPT, .slot = (uint32_t)s};
		struct bh_rpc_rep rp;
		struct lsock ls = {.open = true, .opt_set = l->opt_set, .linger = l->linger};
		memcpy(ls.opt, l->opt, sizeof(ls.opt));
		int r = call_slot(&rq, &rp, 0, &ls);
		if (r >= 0) {
			from_sin(a, len, rp.raddr, rp.rport);
			return (int)rp.slot;
		}
		if (r != -EAGAIN || l->nonblock)
			return fail(-r);
		int w = wait_for(s, accept_ready, false, deadline_of(l->rcvtimeo));
		if (w)
			return fail(w == -ETIMEDOUT ? EAGAIN : -w);
		int e = sock_error(s);
		if (e)
			return fail(e);
	}
}

int bh_connect(int s, const struct sockaddr *a, socklen_t len)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	if (l->connect_nb && !l->udp) {
		/* Linux: the first connect after a non-blocking one completed
		 * returns 0 (or its error), later ones EISCONN. */
		uint32_t st = state(s);
		if (st & BH_SS_CONNECTING)
			return fail(EALREADY);
		l->connect_nb = false;
		int e = sock_error(s);
		if (e && e != EPIPE) {
			l->err_taken = true;
			return fail(e);
		}
		if (st & BH_SS_CONNECTED)
			return 0;
	}
	struct bh_rpc_req rq = {.op = BH_RPC_CONNECT, .slot = (uint32_t)s,
				.flags = l->nonblock ? BH_RPC_NONBLOCK : 0};
	int e = to_sin(a, len, &rq.addr, &rq.port);
	if (e)
		return fail(-e);
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	if (r == -EINPROGRESS)
		l->connect_nb = true;
	return r < 0 ? fail(-r) : 0;
}

static ssize_t send_stream(int s, struct lsock *l, const uint8_t *buf, size_t n, bool nb)
{
	struct bh_app_slot *sl = &g.slots[s];
	size_t sent = 0;
	uint64_t deadline = deadline_of(l->sndtimeo);
	while (sent < n) {
		uint32_t st = state(s);
		int e = sock_error(s);
		if (e)
			return sent ? (ssize_t)sent : fail(e == EPIPE ? EPIPE : e);
		if (st & BH_SS_TX_SHUT)
			return sent ? (ssize_t)sent : fail(EPIPE);
		if (!(st & BH_SS_CONNECTED))
			return sent ? (ssize_t)sent : fail((st & BH_SS_CONNECTING) ? EAGAIN : ENOTCONN);
		uint32_t space = tx_space(s);
		if (space == 0) {
			if (nb)
				return sent ? (ssize_t)sent : fail(EAGAIN);
			int w = wait_for(s, tx_ready, true, deadline);
			if (w)
				return sent ? (ssize_t)sent : fail(w == -ETIMEDOUT ? EAGAIN : -w);
			continue;
		}
		/* The index is the slot's: another process of the application
		 * may share the socket (fork). */
		slot_lock(&sl->tx_lock);
		uint32_t head = bh_load_relaxed32(&sl->tx_head);
		uint32_t used = head - bh_load_acquire32(&sl->tx_tail);
		uint32_t win = bh_win_of(bh_load_relaxed32(&sl->tx_win), g.meta.ring);
		space = 0;
		if (win && used <= win) {
			if (used == 0) {
				/* The window may change here, before the data. */
				uint32_t w = bh_win_next(&l->tx_use, win, g.meta.ring);
				if (w != win)
					bh_store_relaxed32(&sl->tx_win, w);
				win = w;
			}
			space = bh_win_room(&l->tx_use, win, g.meta.ring, used);
		}
		uint32_t k = n - sent < space ? (uint32_t)(n - sent) : space;
		if (k)
			bh_ring_put(tx_ring(s), win, head, buf + sent, k);
		if (win)
			bh_win_wrote(&l->tx_use, used, k, n - sent);
		bh_store_release32(&sl->tx_head, head + k);
		slot_unlock(&sl->tx_lock);
		if (k == 0)
			continue;
		kick(s);
		sent += k;
	}
	return (ssize_t)sent;
}

static ssize_t send_dgram(int s, struct lsock *l, const uint8_t *buf, size_t n, bool nb,
			  uint32_t addr, uint16_t port)
{
	if (n > g.meta.dgram_max)
		return fail(EMSGSIZE);
	uint32_t need = bh_dgram_space((uint32_t)n);
	if (addr == 0 && !(state(s) & BH_SS_CONNECTED))
		return fail(EDESTADDRREQ);
	uint64_t deadline = deadline_of(l->sndtimeo);
	struct bh_app_slot *sl = &g.slots[s];
	for (;;) {
		while (tx_space(s) < need) {
			if (nb)
				return fail(EAGAIN);
			int w = wait_for(s, tx_ready, true, deadline);
			if (w)
				return fail(w == -ETIMEDOUT ? EAGAIN : -w);
			int e = sock_error(s);
			if (e)
				return fail(e);
		}
		slot_lock(&sl->tx_lock);
		if (tx_space(s) >= need)
			break;
		slot_unlock(&sl->tx_lock); /* another process took the room */
	}
	uint32_t head = bh_load_relaxed32(&sl->tx_head);
	struct bh_dgram_hdr h = {.len = (uint32_t)n, .addr = addr, .port = port};
	bh_ring_put(tx_ring(s), g.meta.ring, head, &h, sizeof(h));
	bh_ring_put(tx_ring(s), g.meta.ring, head + (uint32_t)sizeof(h), buf, (uint32_t)n);
	bh_store_release32(&sl->tx_head, head + need);
	slot_unlock(&sl->tx_lock);
	kick(s);
	return (ssize_t)n;
}

ssize_t bh_sendto(int s, const void *buf, size_t n, int flags, const struct sockaddr *to,
		  socklen_t tolen)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	bool nb = l->nonblock || (flags & MSG_DONTWAIT);
	if (!l->udp)
		return send_stream(s, l, buf, n, nb);
	uint32_t addr = 0;
	uint16_t port = 0;
	if (to) {
		int e = to_sin(to, tolen, &addr, &port);
		if (e)
			return fail(-e);
	}
	if (!(state(s) & BH_SS_BOUND)) {
		/* An unbound datagram socket gets a port first, as in BSD. */
		struct sockaddr_in any = {.sin_family = AF_INET};
		if (bh_bind(s, (struct sockaddr *)&any, sizeof(any)) != 0)
			return -1;
	}
	return send_dgram(s, l, buf, n, nb, addr, port);
}

ssize_t bh_send(int s, const void *buf, size_t n, int flags)
{
	return bh_sendto(s, buf, n, flags, NULL, 0);
}

/* Under the slot's rx lock: up to n bytes (a stream) or one datagram
 * from the ring at tail, with avail there; the tail moves on unless
 * peek. Returns the bytes taken (0 when avail is 0), or -2 when the ring
 * is not what it must be. */
static ssize_t take(int s, struct lsock *l, uint32_t tail, uint32_t avail, void *buf, size_t n,
		    bool peek, struct sockaddr *from, socklen_t *fromlen, uint32_t *truncated)
{
	struct bh_app_slot *sl = &g.slots[s];
	if (avail > g.meta.ring)
		return -2;
	if (avail == 0)
		return 0;
	size_t k;
	if (l->udp) {
		struct bh_dgram_hdr h;
		if (avail < sizeof(h))
			return -2;
		bh_ring_get(&h, rx_ring(s), g.meta.ring, tail, sizeof(h));
		uint32_t need = bh_dgram_space(h.len);
		if (need > avail)
			return -2;
		k = h.len < n ? h.len : n;
		bh_ring_get(buf, rx_ring(s), g.meta.ring, tail + (uint32_t)sizeof(h), (uint32_t)k);
		from_sin(from, fromlen, h.addr, h.port);
		if (truncated)
			*truncated = h.len;
		if (!peek)
			bh_store_release32(&sl->rx_tail, tail + need);
	} else {
		/* The window after the index the caller loaded (app_abi.h). */
		uint32_t win = bh_win_of(bh_load_relaxed32(&sl->rx_win), g.meta.ring);
		if (win == 0 || avail > win)
			return -2;
		k = avail < n ? avail : n;
		bh_ring_get(buf, rx_ring(s), win, tail, (uint32_t)k);
		if (from)
			from_sin(from, fromlen, sl->raddr, sl->rport);
		if (!peek)
			bh_store_release32(&sl->rx_tail, tail + (uint32_t)k);
	}
	return (ssize_t)k;
}

/* One receive; *truncated (datagrams): the datagram's whole length. */
static ssize_t recv1(int s, void *buf, size_t n, int flags, struct sockaddr *from,
		     socklen_t *fromlen, uint32_t *truncated)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	bool nb = l->nonblock || (flags & MSG_DONTWAIT);
	bool peek = (flags & MSG_PEEK) != 0;
	struct bh_app_slot *sl = &g.slots[s];
	uint64_t deadline = deadline_of(l->rcvtimeo);
	for (;;) {
		/* The state before the head: the server stores the head, then
		 * the state, so an end or error seen here comes with every
		 * byte that came before it. (Head first would lose data that
		 * arrived, with the end, between the two loads.) The tail is
		 * the slot's, under its lock: another process of the
		 * application may share the socket (fork). */
		slot_lock(&sl->rx_lock);
		uint32_t tail = bh_load_relaxed32(&sl->rx_tail);
		uint32_t st = state(s);
		uint32_t head = bh_load_acquire32(&sl->rx_head);
		uint32_t avail = head - tail;
		ssize_t r = take(s, l, tail, avail, buf, n, peek, from, fromlen, truncated);
		slot_unlock(&sl->rx_lock);
		if (r == -2)
			return fail(EPROTO);
		if (r > 0 || (r == 0 && avail)) {
			if (!peek) {
				/* rx_tail before reading RX_WANTS (the server: the
				 * reverse) */
				bh_full_barrier();
				if (state(s) & BH_SS_RX_WANTS)
					kick(s);
			}
			return r;
		}
		if (st & BH_SS_RX_EOF)
			return 0;
		int e = sock_error(s);
		if (e && bh_load_acquire32(&sl->rx_head) != head)
			continue; /* data came before the error: read it first */
		if (e)
			return e == EPIPE ? 0 : fail(e);
		if (!l->udp && !(st & (BH_SS_CONNECTED | BH_SS_CONNECTING)))
			return fail(ENOTCONN);
		if (nb)
			return fail(EAGAIN);
		int w = wait_for(s, rx_ready, false, deadline);
		if (w)
			return fail(w == -ETIMEDOUT ? EAGAIN : -w);
	}
}

ssize_t bh_recvfrom(int s, void *buf, size_t n, int flags, struct sockaddr *from,
		    socklen_t *fromlen)
{
	return bh_recvmsg1(s, buf, n, flags, from, fromlen, NULL);
}

ssize_t bh_recvmsg1(int s, void *buf, size_t n, int flags, struct sockaddr *from,
		    socklen_t *fromlen, uint32_t *dgram_len)
{
	if (!(flags & MSG_WAITALL) || (flags & MSG_PEEK) || n == 0)
		return recv1(s, buf, n, flags, from, fromlen, dgram_len);
	struct lsock *l = ls_of(s);
	if (l == NULL || l->udp)
		return recv1(s, buf, n, flags, from, fromlen, dgram_len);
	/* MSG_WAITALL on a stream: until n bytes, the end, an error or a
	 * signal, as Linux (what came first is returned). */
	size_t got = 0;
	while (got < n) {
		ssize_t k = recv1(s, (uint8_t *)buf + got, n - got, flags, from, fromlen, NULL);
		if (k < 0)
			return got ? (ssize_t)got : -1;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

ssize_t bh_recv(int s, void *buf, size_t n, int flags)
{
	return bh_recvfrom(s, buf, n, flags, NULL, NULL);
}

int bh_shutdown(int s, int how)
{
	if (ls_of(s) == NULL)
		return fail(EBADF);
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return fail(EINVAL);
	struct bh_rpc_req rq = {.op = BH_RPC_SHUTDOWN, .slot = (uint32_t)s, .a = (uint32_t)how};
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	return r < 0 ? fail(-r) : 0;
}

int bh_close(int s)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	struct bh_rpc_req rq = {.op = BH_RPC_CLOSE, .slot = (uint32_t)s};
	struct bh_rpc_rep rp;
	int r = call_slot(&rq, &rp, 1, NULL);
	return r < 0 ? fail(-r) : 0;
}

static int timeo_set(uint64_t *to, const void *val, socklen_t len)
{
	struct timeval tv;
	if (len < sizeof(tv))
		return fail(EINVAL);
	memcpy(&tv, val, sizeof(tv));
	if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
		return fail(EDOM);
	*to = tv.tv_sec < 0 ? 0 : (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
	return 0;
}

/* The server's option for (level, opt), or -1. */
static int server_opt(int level, int opt)
{
	if (level == SOL_SOCKET && opt == SO_KEEPALIVE)
		return BH_OPT_KEEPALIVE;
	if (level == IPPROTO_TCP && opt == TCP_NODELAY)
		return BH_OPT_NODELAY;
	if (level == IPPROTO_TCP && opt == TCP_KEEPIDLE)
		return BH_OPT_KEEPIDLE;
	if (level == IPPROTO_TCP && opt == TCP_KEEPINTVL)
		return BH_OPT_KEEPINTVL;
	if (level == IPPROTO_TCP && opt == TCP_KEEPCNT)
		return BH_OPT_KEEPCNT;
	return -1;
}

int bh_setsockopt(int s, int level, int opt, const void *val, socklen_t len)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	if (val == NULL)
		return fail(EFAULT);
	if (level == SOL_SOCKET && (opt == SO_RCVTIMEO || opt == SO_SNDTIMEO))
		return timeo_set(opt == SO_RCVTIMEO ? &l->rcvtimeo : &l->sndtimeo, val, len);
	if (level == SOL_SOCKET && opt == SO_LINGER) {
		struct linger lg;
		if (len < sizeof(lg))
			return fail(EINVAL);
		memcpy(&lg, val, sizeof(lg));
		l->linger = lg;
		return 0;
	}
	if (len < sizeof(int))
		return fail(EINVAL);
	int v;
	memcpy(&v, val, sizeof(v));
	int bo = server_opt(level, opt);
	if (bo < 0) {
		/* Kept here: what getsockopt reads back; documented as having
		 * no effect where they have none (preload/README.md). */
		if (level == SOL_SOCKET && opt == SO_REUSEADDR)
			l->reuseaddr = v != 0;
		else if (level == SOL_SOCKET && opt == SO_REUSEPORT)
			l->reuseport = v != 0;
		else if (level == SOL_SOCKET && opt == SO_BROADCAST && l->udp)
			l->broadcast = v != 0;
		else if (level == SOL_SOCKET && (opt == SO_RCVBUF || opt == SO_SNDBUF))
			; /* the rings' sizes are the instance's */
		else if (level == IPPROTO_TCP && opt == TCP_QUICKACK && !l->udp)
			;
		else
			return fail(ENOPROTOOPT);
		return 0;
	}
	if (l->udp)
		return fail(ENOPROTOOPT);
	if (v < 0)
		return fail(EINVAL);
	if (bo == BH_OPT_NODELAY || bo == BH_OPT_KEEPALIVE)
		v = v != 0;
	struct bh_rpc_req rq = {.op = BH_RPC_SETOPT, .slot = (uint32_t)s, .a = (uint32_t)bo,
				.b = (uint32_t)v};
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	if (r < 0)
		return fail(-r);
	l->opt[bo] = (uint32_t)v;
	l->opt_set |= 1u << bo;
	return 0;
}

int bh_getsockopt(int s, int level, int opt, void *val, socklen_t *len)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	if (val == NULL || len == NULL)
		return fail(EFAULT);
	if (level == SOL_SOCKET && (opt == SO_RCVTIMEO || opt == SO_SNDTIMEO)) {
		uint64_t ns = opt == SO_RCVTIMEO ? l->rcvtimeo : l->sndtimeo;
		struct timeval tv = {.tv_sec = (time_t)(ns / 1000000000u),
				     .tv_usec = (suseconds_t)(ns % 1000000000u / 1000u)};
		socklen_t n = *len < sizeof(tv) ? *len : (socklen_t)sizeof(tv);
		memcpy(val, &tv, n);
		*len = n;
		return 0;
	}
	if (level == SOL_SOCKET && opt == SO_LINGER) {
		socklen_t n = *len < sizeof(l->linger) ? *len : (socklen_t)sizeof(l->linger);
		memcpy(val, &l->linger, n);
		*len = n;
		return 0;
	}
	/* Linux's defaults for what was never set (tcp(7), socket(7)). */
	static const uint32_t dflt[5] = {[BH_OPT_KEEPIDLE] = 7200, [BH_OPT_KEEPINTVL] = 75,
					 [BH_OPT_KEEPCNT] = 9};
	int v;
	int bo = server_opt(level, opt);
	if (bo >= 0 && !l->udp) {
		v = (int)((l->opt_set & (1u << bo)) ? l->opt[bo] : dflt[bo]);
	} else if (level == SOL_SOCKET && opt == SO_ERROR) {
		v = l->err_taken ? 0 : sock_error(s);
		if (v == EPIPE)
			v = 0;
		l->err_taken = v != 0;
	} else if (level == SOL_SOCKET && opt == SO_TYPE) {
		v = l->udp ? SOCK_DGRAM : SOCK_STREAM;
	} else if (level == SOL_SOCKET && opt == SO_DOMAIN) {
		v = AF_INET;
	} else if (level == SOL_SOCKET && opt == SO_PROTOCOL) {
		v = l->udp ? IPPROTO_UDP : IPPROTO_TCP;
	} else if (level == SOL_SOCKET && opt == SO_ACCEPTCONN) {
		v = (state(s) & BH_SS_LISTENING) != 0;
	} else if (level == SOL_SOCKET && opt == SO_REUSEADDR) {
		v = l->reuseaddr;
	} else if (level == SOL_SOCKET && opt == SO_REUSEPORT) {
		v = l->reuseport;
	} else if (level == SOL_SOCKET && opt == SO_BROADCAST && l->udp) {
		v = l->broadcast;
	} else if (level == SOL_SOCKET && (opt == SO_RCVBUF || opt == SO_SNDBUF)) {
		v = (int)g.meta.ring;
	} else if (level == IPPROTO_TCP && opt == TCP_MAXSEG && !l->udp) {
		v = 1460; /* tcp's default MSS (tcp/tcp.h) */
	} else {
		return fail(ENOPROTOOPT);
	}
	socklen_t n = *len < sizeof(v) ? *len : (socklen_t)sizeof(v);
	memcpy(val, &v, n);
	*len = n;
	return 0;
}

static int getname(int s, struct sockaddr *a, socklen_t *len, bool peer)
{
	if (ls_of(s) == NULL)
		return fail(EBADF);
	struct bh_rpc_req rq = {.op = BH_RPC_GETNAME, .slot = (uint32_t)s};
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	if (r < 0)
		return fail(-r);
	if (peer && rp.rport == 0)
		return fail(ENOTCONN);
	from_sin(a, len, peer ? rp.raddr : rp.laddr, peer ? rp.rport : rp.lport);
	return 0;
}

int bh_getsockname(int s, struct sockaddr *a, socklen_t *len)
{
	return getname(s, a, len, false);
}

int bh_getpeername(int s, struct sockaddr *a, socklen_t *len)
{
	return getname(s, a, len, true);
}

/* Readiness as Linux's tcp_poll and udp_poll report it: a socket that
 * failed or is gone is readable and writable (the call returns at
 * once, with the end or the error); after shutdown(SHUT_WR) it is
 * writable (EPIPE at once); a TCP socket neither connected, connecting
 * nor listening is POLLOUT | POLLHUP. */
static short revents_of(int s, short events)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return POLLNVAL;
	uint32_t st = state(s);
	if (__atomic_load_n(&g.server_gone, __ATOMIC_RELAXED)) {
		/* The instance is gone: a connection fails at once; a
		 * listener never gets another (reporting it would spin an
		 * event loop that retries accept). */
		if (st & BH_SS_LISTENING)
			return 0;
		return (short)((events & (POLLIN | POLLOUT)) | POLLERR | POLLHUP);
	}
	bool dead = (st & (BH_SS_ERROR | BH_SS_HUP)) != 0;
	bool idle = !l->udp && !(st & (BH_SS_CONNECTED | BH_SS_CONNECTING | BH_SS_LISTENING));
	short r = 0;
	if ((events & (POLLIN | POLLRDNORM)) &&
	    (rx_ready(s) || ((st & BH_SS_LISTENING) && g.slots[s].accq > 0)))
		r |= (short)(events & (POLLIN | POLLRDNORM));
	if ((events & POLLRDHUP) && (st & BH_SS_RX_EOF))
		r |= POLLRDHUP;
	if ((events & (POLLOUT | POLLWRNORM)) &&
	    (dead || idle || (st & BH_SS_TX_SHUT) ||
	     ((l->udp || (st & BH_SS_CONNECTED)) && tx_space(s) > 0)))
		r |= (short)(events & (POLLOUT | POLLWRNORM));
	if (st & BH_SS_ERROR)
		r |= POLLERR;
	if ((st & BH_SS_HUP) || idle)
		r |= POLLHUP;
	return r;
}

short bh_revents(int s, short events)
{
	return revents_of(s, events);
}

uint32_t bh_changes(int s)
{
	return ls_of(s) ? bh_load_acquire32(&g.slots[s].seq) : 0;
}

int bh_rx_avail(int s)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	uint32_t tail = bh_load_relaxed32(&g.slots[s].rx_tail);
	uint32_t avail = bh_load_acquire32(&g.slots[s].rx_head) - tail;
	if (avail > g.meta.ring)
		return fail(EPROTO);
	if (l->udp && avail >= sizeof(struct bh_dgram_hdr)) {
		struct bh_dgram_hdr h;
		bh_ring_get(&h, rx_ring(s), g.meta.ring, tail, sizeof(h));
		return h.len > g.meta.dgram_max ? 0 : (int)h.len;
	}
	return l->udp ? 0 : (int)avail;
}

bool bh_nonblock(int s)
{
	struct lsock *l = ls_of(s);
	return l && l->nonblock;
}

int bh_info(struct bh_info *i)
{
	if (g.fd < 0)
		return fail(ENOTCONN);
	i->addr = g.meta.addr;
	i->gw = g.meta.gw;
	i->prefix = g.meta.prefix;
	i->nslots = g.meta.nslots;
	return 0;
}

bool bh_server_lost(void)
{
	return server_gone();
}

bool bh_server_was_lost(void)
{
	return __atomic_load_n(&g.server_gone, __ATOMIC_RELAXED) || g.fd < 0;
}

int bh_internal_fds(int *out, int max)
{
	int n = 0;
	int f = __atomic_load_n(&g.fd, __ATOMIC_RELAXED);
	if (f >= 0 && n < max)
		out[n++] = f;
	for (unsigned i = 0; i < BH_APP_WAITERS && n < max; i++) {
		f = __atomic_load_n(&g.wake_fd[i], __ATOMIC_RELAXED);
		if (f > 0)
			out[n++] = f - 1;
	}
	return n;
}

bool bh_internal_fd(int fd)
{
	if (fd < 0)
		return false;
	if (fd == __atomic_load_n(&g.fd, __ATOMIC_RELAXED))
		return true;
	for (unsigned i = 0; i < BH_APP_WAITERS; i++)
		if (__atomic_load_n(&g.wake_fd[i], __ATOMIC_RELAXED) == fd + 1)
			return true;
	return false;
}

/* Sets (or clears) this thread's bit on the sides of a slot a poll
 * entry waits for; errors and hang-ups come with a state change, which
 * signals both. */
static void want_poll(const struct pollfd *p, bool on)
{
	bh_want(p->fd, p->events, on);
}

void bh_want(int s, short events, bool on)
{
	if (ls_of(s) == NULL)
		return;
	struct bh_app_slot *sl = &g.slots[s];
	uint64_t bit = 1ull << waiter();
	bool rx = (events & POLLIN) || !(events & POLLOUT);
	bool tx = (events & POLLOUT) != 0;
	if (rx)
		on ? bh_or64(&sl->want_rx, bit) : bh_and64(&sl->want_rx, ~bit);
	if (tx)
		on ? bh_or64(&sl->want_tx, bit) : bh_and64(&sl->want_tx, ~bit);
}

int bh_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	uint64_t deadline = timeout >= 0 ? bh_now_ns() + (uint64_t)timeout * 1000000u : 0;
	for (;;) {
		int ready = 0;
		for (nfds_t i = 0; i < n; i++) {
			fds[i].revents = fds[i].fd < 0 ? 0 : revents_of(fds[i].fd, fds[i].events);
			ready += fds[i].revents != 0;
		}
		if (ready || timeout == 0)
			return ready;
		for (nfds_t i = 0; i < n; i++)
			want_poll(&fds[i], true);
		bh_full_barrier();
		for (nfds_t i = 0; i < n; i++) {
			fds[i].revents = fds[i].fd < 0 ? 0 : revents_of(fds[i].fd, fds[i].events);
			ready += fds[i].revents != 0;
		}
		int64_t slice = WAIT_SLICE_NS;
		if (!ready) {
			if (deadline) {
				uint64_t now = bh_now_ns();
				if (now >= deadline)
					slice = 0;
				else if ((int64_t)(deadline - now) < slice)
					slice = (int64_t)(deadline - now);
			}
			int64_t woke = slice > 0 ? sleep_slice(slice) : 1;
			if (woke == -EINTR) {
				for (nfds_t i = 0; i < n; i++)
					want_poll(&fds[i], false);
				return fail(EINTR);
			}
			if (!woke && server_gone())
				slice = -1;
		}
		for (nfds_t i = 0; i < n; i++)
			want_poll(&fds[i], false);
		if (ready)
			return ready;
		if (deadline && bh_now_ns() >= deadline)
			return 0;
		if (g.fd < 0 || slice < 0)
			return fail(ECONNRESET);
	}
}
