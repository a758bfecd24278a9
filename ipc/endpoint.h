/*
 * ipc/endpoint.h - seL4-style endpoints over shared memory: synchronous
 * call/reply with a badge and a few message words, for the control plane.
 *
 * One endpoint joins one client and one server (the supervisor gives each
 * client an endpoint of its own). Shared state, one cache-line-aligned
 * struct bh_ep_shared in a region both map read-write:
 *
 *   state   futex word, the only thing either side waits on:
 *
 *        client: call          server: recv            server: reply
 *     IDLE ---------> CALLING -----------> SERVING -----------> REPLIED
 *      ^                 |                    |                     |
 *      |  client gives up|      client gives up                     |
 *      +-----------------+                    v                     |
 *      |                                  ABANDONED                 |
 *      |     server's reply finds ABANDONED   |                     |
 *      +--------------------------------------+                     |
 *      +------------------ client: takes the reply -----------------+
 *
 *   Every transition is a compare-and-swap from the state the mover expects
 *   (a full barrier), so the message words written before it are visible to
 *   the side that observes the new state: the client writes the request
 *   then CASes IDLE->CALLING; the server observes CALLING, CASes to SERVING,
 *   copies the request out once; it writes the reply and CASes
 *   SERVING->REPLIED; the client observes REPLIED, copies the reply out
 *   once and stores IDLE (release).
 *
 *   seq     incremented by the client per call and echoed by the server, so
 *           a stale reply is never taken for a new call.
 *
 * No hang: every wait has a timeout and sleeps on the futex in slices of
 * BH_EP_SLICE_NS; between slices the waiter checks the other party with a
 * pidfd (peer.h) and returns -EPIPE once it has died. A client that times
 * out withdraws its call (CALLING->IDLE) or abandons it (SERVING->ABANDONED)
 * so the endpoint stays usable. A state outside the diagram (a scribbling
 * peer) yields -EPROTO, never a crash.
 */
#ifndef BH_IPC_ENDPOINT_H
#define BH_IPC_ENDPOINT_H

#include <stdint.h>

#include "ipc/ntfn.h"
#include "ipc/peer.h"

#define BH_EP_MR 6 /* message words per call or reply */
#define BH_EP_SLICE_NS (20 * 1000 * 1000)

enum bh_ep_state {
	BH_EP_IDLE = 0,
	BH_EP_CALLING = 1,
	BH_EP_SERVING = 2,
	BH_EP_REPLIED = 3,
	BH_EP_ABANDONED = 4,
};

struct bh_ep_shared {
	uint32_t state;
	uint32_t seq;
	uint32_t reply_seq;
	uint32_t label;
	uint32_t len;
	uint32_t pad;
	uint64_t badge;
	uint64_t mr[BH_EP_MR];
} __attribute__((aligned(BH_CACHE_LINE)));

struct bh_msg {
	uint64_t badge;  /* who is calling (set by whoever made the endpoint) */
	uint32_t label;  /* operation or result code */
	uint32_t len;    /* message words used, <= BH_EP_MR */
	uint64_t mr[BH_EP_MR];
};

struct bh_ep {
	struct bh_ep_shared *sh;
	struct bh_peer peer; /* the other party */
	uint32_t seq;        /* client: last call's sequence number */
	uint64_t badge;      /* client: the badge it calls with */
	uint32_t cur_seq;    /* server: sequence of the call being served */
	uint64_t protocol_errors;
};

void bh_ep_format(struct bh_ep_shared *sh);

/* The pid is the other party's, for liveness (0: unknown). */
int bh_ep_client_init(struct bh_ep *ep, struct bh_ep_shared *sh, uint64_t badge, pid_t server);
int bh_ep_server_init(struct bh_ep *ep, struct bh_ep_shared *sh, pid_t client);
void bh_ep_fini(struct bh_ep *ep);

/* Client: sends msg and blocks for the reply (written back into msg).
 * 0, -ETIMEDOUT, -EPIPE (server died), -EBUSY (an abandoned call is still
 * being served), -EPROTO (corrupt shared state), -EINVAL. */
int bh_ep_call(struct bh_ep *ep, struct bh_msg *msg, int64_t timeout_ns);

/* Server: waits for a call. 0, -ETIMEDOUT, -EPIPE (client died), -EPROTO. */
int bh_ep_recv(struct bh_ep *ep, struct bh_msg *msg, int64_t timeout_ns);

/* Server: answers the call being served. -ETIMEDOUT if the client gave up. */
int bh_ep_reply(struct bh_ep *ep, const struct bh_msg *reply);

/* Server: reply, then wait for the next call. */
int bh_ep_reply_recv(struct bh_ep *ep, struct bh_msg *msg, int64_t timeout_ns);

#endif /* BH_IPC_ENDPOINT_H */
