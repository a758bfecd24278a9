/*
 * ipc/endpoint.c - call/reply endpoints. The state machine and its
 * ordering argument are in endpoint.h.
 */
#include "ipc/endpoint.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <urcu/futex.h>

#include "ipc/clock.h"

#define BH_EP_SPIN 200

void bh_ep_format(struct bh_ep_shared *sh)
{
	memset(sh, 0, sizeof(*sh));
}

static int ep_init(struct bh_ep *ep, struct bh_ep_shared *sh, pid_t other)
{
	memset(ep, 0, sizeof(*ep));
	ep->sh = sh;
	ep->peer.pidfd = -1;
	if (other > 0)
		return bh_peer_open(&ep->peer, other);
	return 0;
}

int bh_ep_client_init(struct bh_ep *ep, struct bh_ep_shared *sh, uint64_t badge, pid_t server)
{
	int err = ep_init(ep, sh, server);
	ep->badge = badge;
	ep->seq = bh_load_relaxed32(&sh->seq);
	return err;
}

int bh_ep_server_init(struct bh_ep *ep, struct bh_ep_shared *sh, pid_t client)
{
	return ep_init(ep, sh, client);
}

void bh_ep_fini(struct bh_ep *ep)
{
	bh_peer_close(&ep->peer);
	ep->sh = NULL;
}

static void ep_wake(struct bh_ep *ep)
{
	futex_async((int32_t *)&ep->sh->state, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * Waits until state is in `want` (a bit mask of 1 << state). Returns the
 * state, or -ETIMEDOUT, -EPIPE, -EPROTO.
 */
static int ep_wait(struct bh_ep *ep, uint32_t want, uint64_t deadline)
{
	for (int i = 0;; i++) {
		/* ACQUIRE: pairs with the other side's CAS that set this
		 * state, after it wrote the message words. */
		uint32_t s = bh_load_acquire32(&ep->sh->state);
		if (s > BH_EP_ABANDONED) {
			ep->protocol_errors++;
			return -EPROTO;
		}
		if (want & (1u << s))
			return (int)s;
		if (i < BH_EP_SPIN) {
			bh_cpu_relax();
			continue;
		}
		uint64_t now = bh_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		uint64_t left = deadline - now;
		if (left > BH_EP_SLICE_NS)
			left = BH_EP_SLICE_NS;
		struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
				      .tv_nsec = (long)(left % 1000000000u)};
		futex_async((int32_t *)&ep->sh->state, FUTEX_WAIT, (int32_t)s, &ts, NULL, 0);
		if (!bh_peer_alive(&ep->peer)) {
			/* One last look: the peer may have answered, then died. */
			s = bh_load_acquire32(&ep->sh->state);
			if (s <= BH_EP_ABANDONED && (want & (1u << s)))
				return (int)s;
			return -EPIPE;
		}
	}
}

static uint64_t deadline_of(int64_t timeout_ns)
{
	return timeout_ns < 0 ? UINT64_MAX : bh_now_ns() + (uint64_t)timeout_ns;
}

static void copy_in(struct bh_ep_shared *sh, const struct bh_msg *m)
{
	bh_store_relaxed32(&sh->label, m->label);
	bh_store_relaxed32(&sh->len, m->len);
	for (uint32_t i = 0; i < m->len; i++)
		bh_store_relaxed64(&sh->mr[i], m->mr[i]);
}

/* Copies a message out once; a length beyond BH_EP_MR is a protocol error. */
static int copy_out(struct bh_ep *ep, struct bh_msg *m)
{
	struct bh_ep_shared *sh = ep->sh;
	m->badge = bh_load_relaxed64(&sh->badge);
	m->label = bh_load_relaxed32(&sh->label);
	uint32_t len = bh_load_relaxed32(&sh->len);
	if (len > BH_EP_MR) {
		ep->protocol_errors++;
		return -EPROTO;
	}
	m->len = len;
	for (uint32_t i = 0; i < len; i++)
		m->mr[i] = bh_load_relaxed64(&sh->mr[i]);
	return 0;
}

/* Client: withdraws a call it no longer waits for. Returns the state the
 * call was in if the server already replied (the reply is then taken). */
static int withdraw(struct bh_ep *ep)
{
	if (bh_cmpxchg32(&ep->sh->state, BH_EP_CALLING, BH_EP_IDLE) == BH_EP_CALLING)
		return 0;
	uint32_t s = bh_cmpxchg32(&ep->sh->state, BH_EP_SERVING, BH_EP_ABANDONED);
	if (s == BH_EP_SERVING || s == BH_EP_ABANDONED) {
		ep_wake(ep);
		return 0;
	}
	return (int)s;
}

int bh_ep_call(struct bh_ep *ep, struct bh_msg *msg, int64_t timeout_ns)
{
	if (msg->len > BH_EP_MR)
		return -EINVAL;
	uint64_t deadline = deadline_of(timeout_ns);
	uint32_t s = bh_load_acquire32(&ep->sh->state);
	if (s == BH_EP_ABANDONED || s == BH_EP_SERVING || s == BH_EP_CALLING)
		return -EBUSY;
	if (s != BH_EP_IDLE) {
		ep->protocol_errors++;
		return -EPROTO;
	}
	copy_in(ep->sh, msg);
	bh_store_relaxed64(&ep->sh->badge, ep->badge);
	ep->seq++;
	bh_store_relaxed32(&ep->sh->seq, ep->seq);
	/* Full barrier: the request is visible before CALLING. */
	if (bh_cmpxchg32(&ep->sh->state, BH_EP_IDLE, BH_EP_CALLING) != BH_EP_IDLE) {
		ep->protocol_errors++;
		return -EPROTO;
	}
	ep_wake(ep);

	int r = ep_wait(ep, 1u << BH_EP_REPLIED, deadline);
	if (r == -ETIMEDOUT || r == -EPIPE) {
		int w = withdraw(ep);
		if (w != BH_EP_REPLIED)
			return r;
		r = BH_EP_REPLIED;
	}
	if (r < 0)
		return r;
	int err = 0;
	if (bh_load_relaxed32(&ep->sh->reply_seq) != ep->seq) {
		ep->protocol_errors++;
		err = -EPROTO;
	} else {
		err = copy_out(ep, msg);
		msg->badge = ep->badge;
	}
	/* RELEASE: we are done with the reply words. */
	bh_store_release32(&ep->sh->state, BH_EP_IDLE);
	ep_wake(ep);
	return err;
}

int bh_ep_recv(struct bh_ep *ep, struct bh_msg *msg, int64_t timeout_ns)
{
	uint64_t deadline = deadline_of(timeout_ns);
	for (;;) {
		int r = ep_wait(ep, 1u << BH_EP_CALLING, deadline);
		if (r < 0)
			return r;
		if (bh_cmpxchg32(&ep->sh->state, BH_EP_CALLING, BH_EP_SERVING) != BH_EP_CALLING)
			continue; /* the client withdrew it */
		ep->cur_seq = bh_load_relaxed32(&ep->sh->seq);
		int err = copy_out(ep, msg);
		if (err) {
			/* Answer a malformed call with an error, not silence. */
			struct bh_msg nack = {.label = (uint32_t)EPROTO, .len = 0};
			bh_ep_reply(ep, &nack);
			continue;
		}
		return 0;
	}
}

int bh_ep_reply(struct bh_ep *ep, const struct bh_msg *reply)
{
	if (reply->len > BH_EP_MR)
		return -EINVAL;
	copy_in(ep->sh, reply);
	bh_store_relaxed32(&ep->sh->reply_seq, ep->cur_seq);
	/* Full barrier: the reply is visible before REPLIED. */
	uint32_t s = bh_cmpxchg32(&ep->sh->state, BH_EP_SERVING, BH_EP_REPLIED);
	if (s == BH_EP_ABANDONED) {
		bh_cmpxchg32(&ep->sh->state, BH_EP_ABANDONED, BH_EP_IDLE);
		ep_wake(ep);
		return -ETIMEDOUT;
	}
	if (s != BH_EP_SERVING) {
		ep->protocol_errors++;
		return -EPROTO;
	}
	ep_wake(ep);
	return 0;
}

int bh_ep_reply_recv(struct bh_ep *ep, struct bh_msg *msg, int64_t timeout_ns)
{
	int err = bh_ep_reply(ep, msg);
	if (err == -EPROTO)
		return err;
	return bh_ep_recv(ep, msg, timeout_ns);
}
