/*
 * bench/ipc/ipc_bench_link.c - the links of `bulkhead bench ipc`: each
 * mechanism under test as both parties use it (struct bh_bench_ops: send
 * and receive), and their setup and teardown. Rings with notifications
 * (ipc/ring.h, ipc/ntfn.h), and the baselines: a shared cache line, two
 * futex words, pipes, eventfds and a UNIX socketpair. The method is at the
 * top of ipc_bench.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench/ipc/ipc_bench_impl.h"
#include "ipc/clock.h"

static long bh_bench_futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

/* --- rings ------------------------------------------------------- */

static size_t bh_bench_ring_off(int ring)
{
	return bh_page_size() + (size_t)ring * bh_ring_bytes(BH_BENCH_RING_CAP);
}

/* Round trips move one descriptor. Domain code sending one passes the count
 * as a constant, and the inlined copy in ring.h becomes a 16-byte move; with
 * a count known only at run time it is a call to memcpy, four per round trip,
 * which measured about 10 ns (5%) more per polling round trip here. These
 * wrappers give round trips the constant (in functions of their own: the
 * compiler folds `n == 1 ? f(1) : f(n)` back into f(n)). */
static unsigned bh_bench_produce1(struct bh_ring_producer *p, const struct bh_desc *d)
{
	return bh_ring_produce(p, d, 1);
}

static unsigned bh_bench_consume1(struct bh_ring_consumer *c, struct bh_desc *out)
{
	return bh_ring_consume(c, out, 1);
}

static int bh_bench_ring_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	uint32_t turns = 0;
	unsigned sent = 0;
	for (;;) {
		sent += n == 1 ? bh_bench_produce1(&e->tx, d)
			       : bh_ring_produce(&e->tx, d + sent, n - sent);
		if (sent == n)
			break;
		/* Full. The consumer cannot be asleep on a non-empty ring
		 * (it re-checks after asking for a signal), so waiting for room
		 * without signalling cannot deadlock. */
		if (bh_bench_stop)
			return -EINTR;
		bh_bench_idle(&turns);
	}
	/* One notification per send, and only when the consumer asked. */
	if (e->notify && bh_ring_producer_need_signal(&e->tx))
		bh_ntfn_signal(e->peer_ntfn, BH_BENCH_BADGE, &e->nst);
	return 0;
}

static int bh_bench_ring_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	uint32_t turns = 0;
	for (;;) {
		unsigned n = max == 1 ? bh_bench_consume1(&e->rx, out)
				      : bh_ring_consume(&e->rx, out, max);
		if (n)
			return (int)n;
		if (bh_bench_stop)
			return -EINTR;
		if (!e->notify) {
			bh_bench_idle(&turns);
			continue;
		}
		/* sDDF's request, re-check, cancel: sleep only if the ring is
		 * still empty once the producer can see our request. A stale
		 * badge left by a signal we did not need only costs one more
		 * turn of this loop. */
		if (!bh_ring_consumer_request_signal(&e->rx))
			bh_ntfn_wait(e->self_ntfn, e->spin, BH_BENCH_SLICE_NS, &e->nst);
		bh_ring_consumer_cancel_signal(&e->rx);
	}
}

static const struct bh_bench_ops bh_bench_ring_ops = {
    .seq_mask = UINT32_MAX,
    .send = bh_bench_ring_send,
    .recv = bh_bench_ring_recv,
};

/* Side `side` produces into ring `side` and consumes from the other. */
static int bh_bench_ring_attach(struct bh_bench_link *l, int side, struct bh_region *r)
{
	struct bh_bench_end *e = &l->end[side];
	int err = bh_ring_producer_attach(&e->tx, r, bh_bench_ring_off(side), BH_BENCH_RING_CAP);
	if (!err)
		err = bh_ring_consumer_attach(&e->rx, r, bh_bench_ring_off(1 - side),
					      BH_BENCH_RING_CAP);
	e->self_ntfn = bh_region_at(&l->bells, bh_page_size() + side * sizeof(struct bh_ntfn),
				    sizeof(struct bh_ntfn));
	e->peer_ntfn = bh_region_at(&l->bells, bh_page_size() + (1 - side) * sizeof(struct bh_ntfn),
				    sizeof(struct bh_ntfn));
	if (!err && (e->self_ntfn == NULL || e->peer_ntfn == NULL))
		err = -EINVAL;
	return err;
}

/* --- raw shared cache line --------------------------------------- */

/* One word, written by both: side 0 writes odd values, side 1 even ones,
 * each (seq + 1) << 1 | parity, so a side waits for a non-zero value of the
 * other's parity and never mistakes its own last write for an answer. */
static int bh_bench_line_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	if (n != 1)
		return -EINVAL;
	/* RELEASE: pairs with the ACQUIRE in bh_bench_line_recv. */
	bh_store_release32(e->line, ((d->aux + 1) << 1) | (e->side == 0));
	return 0;
}

static int bh_bench_line_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	uint32_t peer_parity = e->side == 0 ? 0 : 1, turns = 0;
	for (;;) {
		uint32_t v = bh_load_acquire32(e->line);
		if (v != 0 && (v & 1) == peer_parity) {
			bh_bench_desc_make(out, (v >> 1) - 1);
			return 1;
		}
		if (bh_bench_stop)
			return -EINTR;
		bh_bench_idle(&turns);
	}
}

static const struct bh_bench_ops bh_bench_line_ops = {
    .seq_mask = 0x3fffffffu,
    .send = bh_bench_line_send,
    .recv = bh_bench_line_recv,
};

/* --- raw futex ----------------------------------------------------- */

/* Two words, one inbox per side. The sender stores seq + 1 into the peer's
 * inbox and always makes the FUTEX_WAKE call; the receiver checks its inbox
 * once and otherwise sleeps in FUTEX_WAIT (shared futex, no spinning), then
 * clears it. Round trips alternate strictly, so an inbox is never written
 * while its owner clears it. */
static int bh_bench_futex_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	if (n != 1)
		return -EINVAL;
	/* RELEASE: pairs with the ACQUIRE in bh_bench_futex_recv. */
	bh_store_release32(e->outbox, d->aux + 1);
	bh_bench_futex(e->outbox, FUTEX_WAKE, 1, NULL);
	return 0;
}

static int bh_bench_futex_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	static const struct timespec slice = {0, BH_BENCH_SLICE_NS};
	for (;;) {
		uint32_t v = bh_load_acquire32(e->inbox);
		if (v != 0) {
			bh_store_relaxed32(e->inbox, 0);
			bh_bench_desc_make(out, v - 1);
			return 1;
		}
		if (bh_bench_stop)
			return -EINTR;
		/* Sleeps only while the inbox still reads 0. */
		bh_bench_futex(e->inbox, FUTEX_WAIT, 0, &slice);
	}
}

static const struct bh_bench_ops bh_bench_futex_ops = {
    .seq_mask = UINT32_MAX,
    .send = bh_bench_futex_send,
    .recv = bh_bench_futex_recv,
};

/* --- pipes, sockets and eventfds ---------------------------------- */

/* Writes one message of len bytes, retrying on EINTR until stopped. */
static int bh_bench_write_msg(struct bh_bench_end *e, const void *msg, size_t len)
{
	for (;;) {
		ssize_t w = write(e->wfd, msg, len);
		if (w == (ssize_t)len)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (bh_bench_stop)
			return -EINTR;
	}
}

/* Pipes and sockets: one byte per message. */
static int bh_bench_fd_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t b = (uint8_t)d[i].aux;
		int err = bh_bench_write_msg(e, &b, 1);
		if (err)
			return err;
	}
	return 0;
}

static int bh_bench_fd_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	uint8_t bytes[BH_BENCH_BURST];
	if (max > BH_BENCH_BURST)
		max = BH_BENCH_BURST;
	for (;;) {
		ssize_t r = read(e->rfd, bytes, max);
		if (r > 0) {
			for (ssize_t i = 0; i < r; i++)
				bh_bench_desc_make(&out[i], bytes[i]);
			return (int)r;
		}
		if (r == 0)
			return -EPIPE; /* the peer closed its end: it is gone */
		if (errno != EINTR)
			return -errno;
		if (bh_bench_stop)
			return -EINTR;
	}
}

static const struct bh_bench_ops bh_bench_fd_ops = {
    .seq_mask = 0xffu,
    .send = bh_bench_fd_send,
    .recv = bh_bench_fd_recv,
};

/* Eventfd: a counter, so only the number of messages is checked. */
static int bh_bench_efd_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	const uint64_t one = 1;
	for (unsigned i = 0; i < n; i++) {
		int err = bh_bench_write_msg(e, &one, sizeof(one));
		if (err)
			return err;
	}
	return 0;
}

static int bh_bench_efd_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	while (e->pending == 0) {
		uint64_t v;
		ssize_t r = read(e->rfd, &v, sizeof(v));
		if (r == (ssize_t)sizeof(v)) {
			e->pending = v;
			break;
		}
		if (r < 0 && errno != EINTR)
			return -errno;
		if (bh_bench_stop)
			return -EINTR;
	}
	unsigned k = e->pending < max ? (unsigned)e->pending : max;
	for (unsigned i = 0; i < k; i++)
		bh_bench_desc_make(&out[i], 0);
	e->pending -= k;
	return (int)k;
}

static const struct bh_bench_ops bh_bench_efd_ops = {
    .seq_mask = 0,
    .send = bh_bench_efd_send,
    .recv = bh_bench_efd_recv,
};

/* --- setup and teardown ------------------------------------------ */

/* Closes the descriptors of side `side`'s end that the other end does not
 * also use (an eventfd pair is shared by both ends; a pipe's or a socket's
 * ends are not). Each party drops the other's ends after fork: that is what
 * lets a reader see EOF when its peer dies. */
void bh_bench_link_drop_end(struct bh_bench_link *l, int side)
{
	struct bh_bench_end *e = &l->end[side], *keep = &l->end[1 - side];
	for (int i = 0; i < 4; i++) {
		int fd = l->fds[i];
		if (fd < 0 || (fd != e->rfd && fd != e->wfd) || fd == keep->rfd || fd == keep->wfd)
			continue;
		close(fd);
		l->fds[i] = -1;
	}
	e->rfd = e->wfd = -1;
}

void bh_bench_link_close(struct bh_bench_link *l)
{
	for (int i = 0; i < 4; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	bh_region_close(&l->rings);
	bh_region_close(&l->bells);
	if (l->sh != NULL)
		munmap(l->sh, sizeof(*l->sh));
	l->sh = NULL;
}

/* Creates what both sides share and attaches side 0. The peer's end is
 * attached by the peer itself (bh_bench_peer_attach), after fork. */
int bh_bench_link_open(struct bh_bench_link *l, enum bh_bench_kind kind, bool notify,
			      uint32_t spin, char *err)
{
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	l->rings.fd = l->bells.fd = -1;
	for (int i = 0; i < 4; i++)
		l->fds[i] = -1;
	for (int s = 0; s < 2; s++) {
		l->end[s].side = s;
		l->end[s].rfd = l->end[s].wfd = -1;
		l->end[s].view.fd = -1;
		l->end[s].notify = notify;
		l->end[s].spin = spin;
	}
	l->sh = mmap(NULL, sizeof(*l->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		     0);
	if (l->sh == MAP_FAILED) {
		l->sh = NULL;
		bh_bench_fail(err, "mmap: %s", strerror(errno));
		return -1;
	}

	int rc = 0;
	struct bh_bench_end *e0 = &l->end[0], *e1 = &l->end[1];
	switch (kind) {
	case BH_BENCH_RING: {
		l->ops = &bh_bench_ring_ops;
		size_t page = bh_page_size();
		rc = bh_region_create(&l->rings, "bench-rings", BH_REGION_RINGS,
				      page + 2 * bh_ring_bytes(BH_BENCH_RING_CAP));
		for (int i = 0; i < 2 && !rc; i++)
			rc = bh_ring_format(&l->rings, bh_bench_ring_off(i), BH_BENCH_RING_CAP);
		if (!rc)
			rc = bh_region_create(&l->bells, "bench-bells", BH_REGION_DOORBELL,
					      2 * page);
		if (!rc)
			rc = bh_bench_ring_attach(l, 0, &l->rings);
		if (rc) {
			bh_bench_fail(err, "ring setup: %s", bh_ipc_strerror(rc));
			return -1;
		}
		return 0;
	}
	case BH_BENCH_LINE:
		l->ops = &bh_bench_line_ops;
		e0->line = e1->line = &l->sh->line.v;
		return 0;
	case BH_BENCH_FUTEX:
		l->ops = &bh_bench_futex_ops;
		for (int s = 0; s < 2; s++) {
			l->end[s].inbox = &l->sh->inbox[s].v;
			l->end[s].outbox = &l->sh->inbox[1 - s].v;
		}
		return 0;
	case BH_BENCH_PIPE:
		l->ops = &bh_bench_fd_ops;
		if (pipe2(&l->fds[0], O_CLOEXEC) || pipe2(&l->fds[2], O_CLOEXEC))
			rc = -errno;
		/* fds[0..1]: side 0 -> 1; fds[2..3]: side 1 -> 0. */
		e0->wfd = l->fds[1];
		e1->rfd = l->fds[0];
		e1->wfd = l->fds[3];
		e0->rfd = l->fds[2];
		break;
	case BH_BENCH_EVENTFD:
		l->ops = &bh_bench_efd_ops;
		l->fds[0] = eventfd(0, EFD_CLOEXEC);
		l->fds[1] = eventfd(0, EFD_CLOEXEC);
		if (l->fds[0] < 0 || l->fds[1] < 0)
			rc = -errno;
		e0->wfd = e1->rfd = l->fds[0];
		e1->wfd = e0->rfd = l->fds[1];
		break;
	case BH_BENCH_SOCKET:
		l->ops = &bh_bench_fd_ops;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, &l->fds[0]))
			rc = -errno;
		e0->rfd = e0->wfd = l->fds[0];
		e1->rfd = e1->wfd = l->fds[1];
		break;
	case BH_BENCH_CALL:
		rc = -EINVAL;
		break;
	}
	if (rc) {
		bh_bench_fail(err, "channel setup: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* The peer's half of setup. A peer process maps the rings anew through the
 * region's descriptor, read-only, and grants itself write access to exactly
 * the pages it writes (ring.h), then drops the read-write mapping it
 * inherited: what a domain started by the supervisor would do. */
int bh_bench_peer_attach(struct bh_bench_link *l, bool process, char *err)
{
	if (l->kind != BH_BENCH_RING)
		return 0;
	struct bh_region *r = &l->rings;
	if (process) {
		struct bh_bench_end *e = &l->end[1];
		int rc = bh_region_attach(&e->view, l->rings.fd, BH_REGION_RINGS, BH_ACCESS_RO);
		if (rc) {
			bh_bench_fail(err, "peer: attaching the rings: %s", bh_ipc_strerror(rc));
			return -1;
		}
		bh_region_unmap(&l->rings);
		l->rings.fd = -1; /* now owned by the view */
		r = &e->view;
	}
	int rc = bh_bench_ring_attach(l, 1, r);
	if (rc) {
		bh_bench_fail(err, "peer: attaching its ring ends: %s", bh_ipc_strerror(rc));
		return -1;
	}
	return 0;
}
