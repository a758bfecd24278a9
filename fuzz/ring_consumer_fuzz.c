/*
 * fuzz/ring_consumer_fuzz.c - a hostile peer's view of a link, driven by
 * fuzzer input.
 *
 * The input is a script of operations. Some are a peer writing whatever it
 * likes into the parts of the link it owns (ring heads and tails, slots,
 * want_signal); others are our side using the channel normally (recv,
 * reclaim, send, give_back, arm, notify). After every step the invariants
 * that protect us must hold:
 *   - every descriptor recv() or reclaim() hands out passes the geometry
 *     check for the queue it came from;
 *   - our own indices never run more than `cap` ahead of what we accepted
 *     from the peer;
 *   - nothing crashes or reads outside the region (ASan watches).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/channel.h"

#define CAP 16

static const struct bh_pool_geom MINE = {.nbufs = 64, .buf_size = 2048, .headroom = 0};
static const struct bh_pool_geom THEIRS = {.nbufs = 32, .buf_size = 1024, .headroom = 0};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bh_region link;
static struct bh_ntfn ntfn;
static int ready;

static void quiet(const char *line)
{
	(void)line;
}

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready) {
		bh_log_set_hook(quiet);
		if (bh_region_create(&link, "fuzz", BH_REGION_RINGS, bh_link_bytes(CAP)) != 0)
			abort();
		ready = 1;
	}
	/* A fresh link for every input, so runs are reproducible. */
	memset((char *)link.base + bh_page_size(), 0, link.size - bh_page_size());
	if (bh_link_format(&link, CAP) != 0)
		abort();
	struct bh_chan ch;
	if (bh_chan_shm_attach(&ch, "fuzz", &link, 0, CAP, &ntfn, 1) != 0)
		abort();
	bh_chan_accept_tx_pool(&ch, 0, &MINE);
	bh_chan_accept_rx_pool(&ch, 1, &THEIRS);

	size_t page = bh_page_size();
	struct bh_desc d[CAP * 2];
	size_t i = 0;
	while (i + 1 < size) {
		uint8_t op = data[i++];
		uint8_t arg = data[i++];
		/* the peer's rings: side 1 produces ACTIVE_10 and FREE_10 */
		int ring = (op >> 4) & 3;
		char *r = (char *)link.base + page + (size_t)ring * bh_ring_bytes(CAP);
		switch (op & 0xf) {
		case 0: /* peer writes a head */
		case 1: /* peer writes a tail */
			if (i + 4 <= size) {
				uint32_t v;
				memcpy(&v, data + i, 4);
				i += 4;
				memcpy(r + (op & 1) * page, &v, 4);
			}
			break;
		case 2: /* peer writes a slot */
			if (i + sizeof(struct bh_desc) <= size) {
				memcpy(r + 2 * page + (arg % CAP) * sizeof(struct bh_desc), data + i,
				       sizeof(struct bh_desc));
				i += sizeof(struct bh_desc);
			}
			break;
		case 3: /* peer toggles want_signal */
			memcpy(r + page + offsetof(struct bh_ring_cons_page, want_signal),
			       &(uint32_t){arg & 1}, 4);
			break;
		case 4: {
			unsigned k = bh_chan_recv(&ch, d, 1 + arg % (CAP * 2));
			for (unsigned j = 0; j < k; j++)
				check(d[j].pool == 1 && d[j].buf < THEIRS.nbufs &&
					  (uint32_t)d[j].off + d[j].len <= THEIRS.buf_size,
				      "recv handed out a bad descriptor");
			break;
		}
		case 5: {
			unsigned k = bh_chan_reclaim(&ch, d, 1 + arg % (CAP * 2));
			for (unsigned j = 0; j < k; j++)
				check(d[j].pool == 0 && d[j].buf < MINE.nbufs &&
					  (uint32_t)d[j].off + d[j].len <= MINE.buf_size,
				      "reclaim handed out a bad descriptor");
			break;
		}
		case 6:
		case 7: {
			unsigned n = 1 + arg % CAP;
			for (unsigned j = 0; j < n; j++)
				d[j] = (struct bh_desc){.pool = (op & 1) ? 1 : 0, .buf = j};
			if (op & 1)
				bh_chan_give_back(&ch, d, n);
			else
				bh_chan_send(&ch, d, n);
			break;
		}
		case 8:
			if (bh_chan_arm(&ch))
				bh_chan_disarm(&ch);
			break;
		case 9:
			bh_chan_notify(&ch);
			bh_ntfn_poll(&ntfn);
			break;
		default:
			break;
		}
		const struct bh_ring_producer *p[2] = {&ch.u.shm.tx_active, &ch.u.shm.rx_free};
		const struct bh_ring_consumer *c[2] = {&ch.u.shm.rx_active, &ch.u.shm.tx_free};
		for (int k = 0; k < 2; k++) {
			check(p[k]->head - p[k]->tail_seen <= CAP, "producer ran past the tail");
			check(c[k]->head_seen - c[k]->tail <= CAP, "consumer accepted too much");
		}
	}
	bh_chan_fini(&ch);
	return 0;
}
