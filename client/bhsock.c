/*
 * client/bhsock.c - the client library: requests over the control
 * socket, data through the application's own region (domains/app_abi.h).
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

struct lsock {
	bool open, nonblock, udp, err_taken;
	uint32_t rx_tail, tx_head; /* our indices */
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

/* This thread's waiter word (see app_abi.h): a free one is claimed on
 * first use and given back when the thread exits; when all are taken,
 * threads share (and may wait out a slice). */
static uint64_t waiters_used;
static pthread_key_t waiter_key;
static pthread_once_t waiter_once = PTHREAD_ONCE_INIT;
static __thread int my_waiter = -1;

static void waiter_release(void *p)
{
	uint64_t bit = 1ull << ((uintptr_t)p - 1);
	__atomic_fetch_and(&waiters_used, ~bit, __ATOMIC_RELEASE);
}

static void waiter_key_make(void)
{
	pthread_key_create(&waiter_key, waiter_release);
}

static unsigned waiter(void)
{
	if (my_waiter >= 0)
		return (unsigned)my_waiter;
	pthread_once(&waiter_once, waiter_key_make);
	uint64_t used = __atomic_load_n(&waiters_used, __ATOMIC_ACQUIRE);
	while (~used) {
		int i = __builtin_ctzll(~used);
		if (__atomic_compare_exchange_n(&waiters_used, &used, used | (1ull << i), false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			/* The key holds i + 1: its destructor runs only for
			 * non-NULL values. */
			pthread_setspecific(waiter_key, (void *)(uintptr_t)(i + 1));
			my_waiter = i;
			return (unsigned)i;
		}
	}
	my_waiter = (int)((uintptr_t)pthread_self() % BH_APP_WAITERS); /* all taken: share */
	return (unsigned)my_waiter;
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

void bh_detach(void)
{
	pthread_mutex_lock(&g.lock);
	if (g.fd >= 0)
		close(g.fd);
	g.fd = -1;
	bh_region_close(&g.region);
	bh_region_close(&g.bell_region);
	free(g.ls);
	g.ls = NULL;
	g.slots = NULL;
	pthread_mutex_unlock(&g.lock);
}

int bh_attach(const char *name)
{
	if (!bh_name_ok(name))
		return fail(EINVAL);
	if (g.fd >= 0)
		return fail(EISCONN);
	char path[256];
	if (bh_inst_path(path, sizeof(path), name, "app.sock") != 0)
		return fail(ENAMETOOLONG);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return fail(fd < 0 ? errno : ENAMETOOLONG);
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		return fail(e == ENOENT || e == ECONNREFUSED ? ENOENT : e);
	}
	struct bh_rpc_req rq = {.op = BH_RPC_HELLO, .a = BH_APP_VERSION};
	struct bh_rpc_rep rp;
	int fds[2] = {-1, -1};
	if (send(fd, &rq, sizeof(rq), MSG_NOSIGNAL) != (ssize_t)sizeof(rq) ||
	    recv_fds(fd, &rp, sizeof(rp), fds, 2) != 2 || rp.ret != 0) {
		int e = rp.ret < 0 ? -rp.ret : EPROTO;
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		close(fd);
		return fail(e);
	}
	int e = bh_region_attach(&g.region, fds[0], BH_REGION_APP, BH_ACCESS_RW);
	if (e == 0)
		e = bh_region_attach(&g.bell_region, fds[1], BH_REGION_DOORBELL, BH_ACCESS_RW);
	if (e) {
		close(fds[0]);
		close(fds[1]);
		close(fd);
		bh_region_close(&g.region);
		return fail(-e);
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
	    m->dgram_max == 0 || m->dgram_max > 65507) {
		bh_region_close(&g.region);
		bh_region_close(&g.bell_region);
		close(fd);
		return fail(EPROTO);
	}
	g.slots = (struct bh_app_slot *)((char *)g.region.base + m->slots_off);
	g.data = (uint8_t *)g.region.base + m->data_off;
	g.dirty = (uint32_t *)((char *)g.region.base + m->dirty_off);
	g.ntfn = (struct bh_ntfn *)((char *)g.region.base + m->ntfn_off);
	g.bell = bh_region_at(&g.bell_region, 64, sizeof(struct bh_ntfn));
	g.ls = calloc(m->nslots, sizeof(*g.ls));
	g.fd = fd;
	g.spin = bh_ntfn_spin_budget(WAIT_SPIN);
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

/* Sleeps until cond(s) or the deadline (ns, 0: none), on the side of
 * the slot cond is about (tx: room to send or a connection completing;
 * else data or a connection to accept). Returns 0 or -ETIMEDOUT. */
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
		int64_t slice = WAIT_SLICE_NS;
		if (deadline) {
			uint64_t now = bh_now_ns();
			if (now >= deadline) {
				bh_and64(want, ~bit);
				return -ETIMEDOUT;
			}
			if ((int64_t)(deadline - now) < slice)
				slice = (int64_t)(deadline - now);
		}
		uint32_t woke = bh_ntfn_wait(&g.ntfn[waiter()], g.spin, slice, NULL);
		bh_and64(want, ~bit);
		if (g.fd < 0 || (!woke && server_gone()))
			return -ECONNRESET;
	}
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
	return bh_load_acquire32(&g.slots[s].rx_head) != g.ls[s].rx_tail ||
	       (st & (BH_SS_RX_EOF | BH_SS_ERROR | BH_SS_HUP));
}

static uint32_t tx_space(int s)
{
	uint32_t tail = bh_load_acquire32(&g.slots[s].tx_tail);
	uint32_t used = g.ls[s].tx_head - tail;
	return used > g.meta.ring ? 0 : g.meta.ring - used;
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
		struct lsock ls = {.open = true};
		int r = call_slot(&rq, &rp, 0, &ls);
		if (r >= 0) {
			from_sin(a, len, rp.raddr, rp.rport);
			return (int)rp.slot;
		}
		if (r != -EAGAIN || l->nonblock)
			return fail(-r);
		wait_for(s, accept_ready, false, 0);
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
	struct bh_rpc_req rq = {.op = BH_RPC_CONNECT, .slot = (uint32_t)s,
				.flags = l->nonblock ? BH_RPC_NONBLOCK : 0};
	int e = to_sin(a, len, &rq.addr, &rq.port);
	if (e)
		return fail(-e);
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	return r < 0 ? fail(-r) : 0;
}

static ssize_t send_stream(int s, struct lsock *l, const uint8_t *buf, size_t n, bool nb)
{
	struct bh_app_slot *sl = &g.slots[s];
	size_t sent = 0;
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
			if (wait_for(s, tx_ready, true, 0) == -ECONNRESET)
				return sent ? (ssize_t)sent : fail(ECONNRESET);
			continue;
		}
		uint32_t k = n - sent < space ? (uint32_t)(n - sent) : space;
		bh_ring_put(tx_ring(s), g.meta.ring, l->tx_head, buf + sent, k);
		l->tx_head += k;
		bh_store_release32(&sl->tx_head, l->tx_head);
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
	while (tx_space(s) < need) {
		if (nb)
			return fail(EAGAIN);
		wait_for(s, tx_ready, true, 0);
		int e = sock_error(s);
		if (e)
			return fail(e);
	}
	struct bh_dgram_hdr h = {.len = (uint32_t)n, .addr = addr, .port = port};
	bh_ring_put(tx_ring(s), g.meta.ring, l->tx_head, &h, sizeof(h));
	bh_ring_put(tx_ring(s), g.meta.ring, l->tx_head + (uint32_t)sizeof(h), buf, (uint32_t)n);
	l->tx_head += need;
	bh_store_release32(&g.slots[s].tx_head, l->tx_head);
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

ssize_t bh_recvfrom(int s, void *buf, size_t n, int flags, struct sockaddr *from,
		    socklen_t *fromlen)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	bool nb = l->nonblock || (flags & MSG_DONTWAIT);
	struct bh_app_slot *sl = &g.slots[s];
	for (;;) {
		/* The state before the head: the server stores the head, then
		 * the state, so an end or error seen here comes with every
		 * byte that came before it. (Head first would lose data that
		 * arrived, with the end, between the two loads.) */
		uint32_t st = state(s);
		uint32_t head = bh_load_acquire32(&sl->rx_head);
		uint32_t avail = head - l->rx_tail;
		if (avail > g.meta.ring)
			return fail(EPROTO);
		if (avail == 0) {
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
			if (wait_for(s, rx_ready, false, 0) == -ECONNRESET)
				return fail(ECONNRESET);
			continue;
		}
		size_t k;
		if (l->udp) {
			struct bh_dgram_hdr h;
			if (avail < sizeof(h))
				return fail(EPROTO);
			bh_ring_get(&h, rx_ring(s), g.meta.ring, l->rx_tail, sizeof(h));
			uint32_t need = bh_dgram_space(h.len);
			if (need > avail)
				return fail(EPROTO);
			k = h.len < n ? h.len : n;
			bh_ring_get(buf, rx_ring(s), g.meta.ring, l->rx_tail + (uint32_t)sizeof(h),
				    (uint32_t)k);
			from_sin(from, fromlen, h.addr, h.port);
			l->rx_tail += need;
		} else {
			k = avail < n ? avail : n;
			bh_ring_get(buf, rx_ring(s), g.meta.ring, l->rx_tail, (uint32_t)k);
			l->rx_tail += (uint32_t)k;
			if (from)
				from_sin(from, fromlen, sl->raddr, sl->rport);
		}
		bh_store_release32(&sl->rx_tail, l->rx_tail);
		bh_full_barrier(); /* rx_tail before reading RX_WANTS (the server: the reverse) */
		if (state(s) & BH_SS_RX_WANTS)
			kick(s);
		return (ssize_t)k;
	}
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

int bh_setsockopt(int s, int level, int opt, const void *val, socklen_t len)
{
	if (ls_of(s) == NULL)
		return fail(EBADF);
	if (val == NULL || len < sizeof(int))
		return fail(EINVAL);
	int v;
	memcpy(&v, val, sizeof(v));
	uint32_t bo;
	if (level == SOL_SOCKET && (opt == SO_REUSEADDR || opt == SO_RCVBUF || opt == SO_SNDBUF))
		return 0;
	if (level == SOL_SOCKET && opt == SO_KEEPALIVE)
		bo = BH_OPT_KEEPALIVE;
	else if (level == IPPROTO_TCP && opt == TCP_NODELAY)
		bo = BH_OPT_NODELAY;
	else if (level == IPPROTO_TCP && opt == TCP_KEEPIDLE)
		bo = BH_OPT_KEEPIDLE;
	else if (level == IPPROTO_TCP && opt == TCP_KEEPINTVL)
		bo = BH_OPT_KEEPINTVL;
	else if (level == IPPROTO_TCP && opt == TCP_KEEPCNT)
		bo = BH_OPT_KEEPCNT;
	else
		return fail(ENOPROTOOPT);
	if (v < 0)
		return fail(EINVAL);
	struct bh_rpc_req rq = {.op = BH_RPC_SETOPT, .slot = (uint32_t)s, .a = bo, .b = (uint32_t)v};
	struct bh_rpc_rep rp;
	int r = call(&rq, &rp);
	return r < 0 ? fail(-r) : 0;
}

int bh_getsockopt(int s, int level, int opt, void *val, socklen_t *len)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return fail(EBADF);
	if (val == NULL || len == NULL || *len < sizeof(int))
		return fail(EINVAL);
	int v;
	if (level == SOL_SOCKET && opt == SO_ERROR) {
		v = l->err_taken ? 0 : sock_error(s);
		if (v == EPIPE)
			v = 0;
		l->err_taken = v != 0;
	} else if (level == SOL_SOCKET && opt == SO_TYPE) {
		v = l->udp ? SOCK_DGRAM : SOCK_STREAM;
	} else {
		return fail(ENOPROTOOPT);
	}
	memcpy(val, &v, sizeof(v));
	*len = sizeof(v);
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

static short revents_of(int s, short events)
{
	struct lsock *l = ls_of(s);
	if (l == NULL)
		return POLLNVAL;
	uint32_t st = state(s);
	short r = 0;
	if ((events & POLLIN) &&
	    (rx_ready(s) || ((st & BH_SS_LISTENING) && g.slots[s].accq > 0)))
		r |= POLLIN;
	if ((events & POLLOUT) && (l->udp || (st & BH_SS_CONNECTED)) && tx_space(s) > 0 &&
	    !(st & BH_SS_TX_SHUT))
		r |= POLLOUT;
	if (st & BH_SS_ERROR)
		r |= POLLERR;
	if (st & BH_SS_HUP)
		r |= POLLHUP;
	return r;
}

/* Sets (or clears) this thread's bit on the sides of a slot a poll
 * entry waits for; errors and hang-ups come with a state change, which
 * signals both. */
static void want_poll(const struct pollfd *p, bool on)
{
	if (ls_of(p->fd) == NULL)
		return;
	struct bh_app_slot *sl = &g.slots[p->fd];
	uint64_t bit = 1ull << waiter();
	bool rx = (p->events & POLLIN) || !(p->events & POLLOUT);
	bool tx = (p->events & POLLOUT) != 0;
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
			if (slice > 0 && !bh_ntfn_wait(&g.ntfn[waiter()], g.spin, slice, NULL) &&
			    server_gone())
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
