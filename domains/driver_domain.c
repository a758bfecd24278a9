/*
 * domains/driver_domain.c - the driver domain: moves frames between the wire
 * (drivers/backend.h) and the IP domain, in batches.
 *
 *   wire → rx pool buffer (owned here) → link DI → ip ... and back home
 *   ip's frames (pools IP and SEG, read-only here) → wire → back to ip
 *
 * Optional on the way: --capture (every frame both ways, pcap format)
 * and --impair (drivers/impair.h, both directions).
 *
 * Large frames (domains/plan.h, bh_plan_large_frames): a received one
 * goes to ip as a chain of rx buffers (BH_M_FRAME with the count, then
 * BH_M_MORE); a large TCP frame from ip goes to the device whole if it
 * takes it (bh_backend.tx_max), else cut into MTU-sized frames here.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "domains/recover.h"
#include "domains/rt.h"
#include "drivers/backend.h"
#include "drivers/impair.h"
#include "ip/checksum.h"
#include "ip/ip.h"

#define BATCH BH_RT_BATCH

/* The driver domain's own counters, published under their names (the
 * backend's as dev.*, the impairment's as impair.tx.* and impair.rx.*). */
#define DRV_COUNTERS(X)                                                                    \
	X(rx_no_buffer) /* frames not read: rx pool empty */                               \
	X(rx_ring_full) /* frames dropped: the link to ip was full */                       \
	X(tx_bad_desc)  /* descriptors from ip that were not a frame */                    \
	X(tx_frames)    /* frames handed to the backend */                                 \
	X(tx_cut)       /* large frames cut in software: the device takes no such */       \
	X(tx_cut_frames) /* ... and the frames they were cut into */                       \
	X(tx_cut_bad)   /* large frames whose checksum failed before the cut: dropped */  \
	X(tx_chains)    /* send chains taken (a frame whose payload is in SOCK buffers) */ \
	X(tx_bad_chain) /* send chains whose pieces did not check out: dropped */          \
	X(tx_linear_bytes) /* chain bytes gathered into one buffer here, for a consumer   \
			    * that needs frames whole (cut, capture, impair, no gather) */ \
	X(captured)     /* frames written to --capture */

struct drv_stats {
#define DRV_COUNTER_FIELD(name) uint64_t name;
	DRV_COUNTERS(DRV_COUNTER_FIELD)
#undef DRV_COUNTER_FIELD
};

struct drv {
	struct bh_env *env;
	struct bh_chan *ch;
	struct bh_backend *bk;
	struct bh_driver_spec spec;
	struct bh_poller poller;
	/* The backend's own word is slept on beside the bell (no poller
	 * thread, no hop): wire: on a kernel with futex_waitv. */
	bool direct;
	bool armed;
	/* Frames whose checksum tcp left partial go to the backend marked
	 * (wire: takes them or completes them); fixed at start. */
	bool pass_partial;
	pcap_t *cap_dead;
	pcap_dumper_t *dumper;
	bool impair;
	struct bh_impair im_tx, im_rx;
	struct bh_desc pend[BATCH]; /* frames from ip the device has not taken */
	unsigned npend, pend_at;
	/* ... each in pieces: one for a whole frame; the headers and then
	 * the SOCK pieces for a send chain (chain: SOCK is mapped). */
	struct bh_frag frag[BATCH][2 + BH_CHAIN_MAX];
	_Static_assert(2 + BH_CHAIN_MAX <= BH_TXV_MAX_FRAGS, "a chain's pieces fit a txv");
	uint8_t nfrag[BATCH];
	/* tap:, factored: a large TCP frame goes to the kernel with its
	 * checksum partial, in a copy of its headers (tap_partial). */
	bool tap_gso_verify;
	bool partial[BATCH];
	uint8_t hcopy[BATCH][14 + 60 + 60];
	bool chain;
	uint8_t *lin; /* a chain gathered whole (max_frame bytes) */
	struct bh_desc out[BATCH];
	uint32_t max_frame; /* the longest frame ip may hand over */
	bool large;         /* large frames: received in chains, sent whole */
	/* Cutting a large frame: MTU-sized frames, GSO_BATCH at a time, and
	 * how many of the pending frame's are sent. */
	uint8_t *cut_buf;
	uint32_t cut_room, cut_next;
	bool cut_verify; /* TCP's checksums are whole (not left to the link) */
	struct drv_stats st;
};

#define GSO_BATCH 64u

static int drv_wait(void *arg, int timeout_ms)
{
	struct drv *d = arg;
	return d->bk->ops->wait(d->bk, timeout_ms);
}

static void capture(struct drv *d, const uint8_t *frame, uint32_t len)
{
	if (d->dumper == NULL)
		return;
	struct pcap_pkthdr h;
	gettimeofday(&h.ts, NULL);
	h.caplen = h.len = len;
	pcap_dump((u_char *)d->dumper, &h, frame);
	d->st.captured++;
}

static int drv_init(void *self, struct bh_env *env, char *err, size_t errlen)
{
	struct drv *d = self;
	const struct bh_plan *p = env->plan;
	d->env = env;
	d->ch = env->chan[BH_LINK_DI];
	d->large = bh_plan_large_frames(p);
	d->max_frame = d->large ? 65535u : (uint32_t)p->mtu + 14u;
	d->cut_room = (uint32_t)p->mtu + 14u;
	d->cut_verify = !bh_plan_csum_offload(p);
	if (d->large && (d->cut_buf = malloc((size_t)d->cut_room * GSO_BATCH)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->chain = bh_plan_send_chain(p) && env->view[BH_POOL_SOCK] != NULL;
	if (d->chain && (d->lin = malloc(d->max_frame)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	const char *why = bh_driver_spec_parse(p->driver, &d->spec);
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	char shmlink_dir[256];
	snprintf(shmlink_dir, sizeof(shmlink_dir), "%s/..", p->dir);
	struct bh_backend_args a = {.spec = &d->spec,
				    .shmlink_dir = shmlink_dir,
				    .mtu = p->mtu,
				    .tap_fd = env->tap_fd,
				    .csum_offload = bh_plan_csum_offload(p),
				    .large = d->large};
	/* Only wire: is given partial checksums, and only when tcp leaves
	 * them (not when this end captures or impairs). */
	d->pass_partial = (d->spec.kind == BH_BK_SHMLINK || d->spec.kind == BH_BK_TAP) &&
			  bh_plan_csum_offload(p);
	d->tap_gso_verify = d->spec.kind == BH_BK_TAP && d->large && !bh_plan_csum_offload(p);
	int e = bh_backend_open(&d->bk, &a, err, errlen);
	if (e)
		return e;
	if (p->capture[0]) {
		d->cap_dead = pcap_open_dead(DLT_EN10MB, 65535);
		d->dumper = d->cap_dead ? pcap_dump_open(d->cap_dead, p->capture) : NULL;
		if (d->dumper == NULL) {
			snprintf(err, errlen, "capture %s: %s", p->capture,
				 d->cap_dead ? pcap_geterr(d->cap_dead) : "pcap_open_dead failed");
			return -EIO;
		}
	}
	struct bh_impair_cfg ic;
	why = bh_impair_parse(p->impair, &ic);
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	if (bh_impair_active(&ic)) {
		d->impair = true;
		if (bh_impair_init(&d->im_tx, &ic, p->seed, d->max_frame) ||
		    bh_impair_init(&d->im_rx, &ic, p->seed ^ 0x5bd1e995u, d->max_frame)) {
			snprintf(err, errlen, "impair: out of memory");
			return -ENOMEM;
		}
	}
	d->direct = d->bk->ops->arm != NULL && bh_ntfn_wait2_supported();
	if (!d->direct && (e = bh_poller_start(&d->poller, drv_wait, d, env->bell)) != 0) {
		snprintf(err, errlen, "poller thread: %s", strerror(-e));
		return e;
	}
	bh_logf("driver %s, MTU %u%s%s%s%s%s; %s", p->driver, p->mtu,
		d->large ? ", large frames" : "",
		p->capture[0] ? ", capture " : "", p->capture, d->impair ? ", impair " : "",
		d->impair ? p->impair : "",
		d->direct ? "sleeps on the device's word itself" : "a poller thread watches the device");
	return 0;
}

/* Buffers ip has finished with come home. */
static int drv_reclaim(struct drv *d)
{
	struct bh_desc back[BATCH];
	unsigned n = bh_env_reclaim(d->env, BH_LINK_DI, back, BATCH);
	for (unsigned i = 0; i < n; i++) {
		if (bh_pool_take_back(&d->env->own, back[i].buf, BH_HOLDER_DOM(BH_DOM_IP)) == 0)
			bh_pool_free(&d->env->own, back[i].buf);
	}
	return n != 0;
}

/* Frames received: to ip, each in a buffer lent to it (a large frame
 * in several, the first saying how many). */
static void to_ip(struct drv *d, const uint32_t *bufs, const uint32_t *lens, unsigned n)
{
	struct bh_pool *pool = &d->env->own;
	struct bh_desc *out = d->out;
	unsigned more = 0; /* pieces of the current frame still to come */
	for (unsigned i = 0; i < n; i++) {
		uint16_t meta = (lens[i] & BH_BK_CSUM_VALID) ? BH_DESC_CSUM_VALID : 0;
		uint8_t type = BH_M_FRAME;
		if (more) {
			type = BH_M_MORE;
			more--;
		} else if (lens[i] & BH_BK_MORE) {
			unsigned k = i + 1;
			while (k < n && (lens[k - 1] & BH_BK_MORE))
				k++;
			more = k - i - 1;
			meta |= (uint16_t)((k - i) << BH_DESC_FRAME_PIECES_SHIFT);
		}
		out[i] = (struct bh_desc){.buf = bufs[i],
					  .off = (uint16_t)pool->geom.headroom,
					  .len = (uint16_t)(lens[i] & BH_BK_LEN_MASK),
					  .pool = BH_POOL_RX,
					  .flags = type,
					  .meta = meta};
		bh_pool_lend(pool, bufs[i], BH_HOLDER_DOM(BH_DOM_IP));
	}
	unsigned k = bh_chan_send(d->ch, out, n);
	for (unsigned i = k; i < n; i++) {
		bh_pool_take_back(pool, bufs[i], BH_HOLDER_DOM(BH_DOM_IP));
		bh_pool_free(pool, bufs[i]);
		d->st.rx_ring_full++;
	}
}

static int drv_rx(struct drv *d, uint64_t now)
{
	struct bh_pool *pool = &d->env->own;
	uint32_t bufs[BATCH], lens[BATCH];
	uint8_t *ptr[BATCH];
	unsigned nb = 0, n = 0, want = bh_rt_batch;
	/* Buffers only for the frames that wait, where the device says. */
	uint32_t cap = pool->geom.buf_size - pool->geom.headroom;
	if (d->bk->ops->ready) {
		/* At least the first frame's buffers, however small the
		 * batch: a large frame is taken whole or not at all. */
		unsigned r = d->bk->ops->ready(d->bk, cap, want);
		want = r < BATCH ? r : BATCH;
	}
	while (nb < want && bh_pool_alloc(pool, &bufs[nb]) == 0) {
		ptr[nb] = bh_pool_buf(pool, bufs[nb]) + pool->geom.headroom;
		nb++;
	}
	if (want > 0 && nb == 0)
		d->st.rx_no_buffer++;
	if (nb > 0) {
		int got = d->bk->ops->rx(d->bk, ptr, cap, lens, nb);
		if (got < 0) {
			bh_logf("device receive failed: %s", strerror(-got));
			got = 0;
		}
		n = (unsigned)got;
		for (unsigned i = 0; i < n; i++)
			capture(d, ptr[i], lens[i] & BH_BK_LEN_MASK);
	}
	if (d->impair) {
		for (unsigned i = 0; i < n; i++)
			bh_impair_offer(&d->im_rx, now, ptr[i], lens[i]);
		for (unsigned i = 0; i < nb; i++)
			bh_pool_free(pool, bufs[i]);
		/* Frames whose time has come, into fresh buffers. */
		unsigned m = 0;
		const struct bh_impair_frame *f;
		while (m < BATCH && (f = bh_impair_peek(&d->im_rx, now)) != NULL) {
			if (bh_pool_alloc(pool, &bufs[m]) != 0)
				break;
			memcpy(bh_pool_buf(pool, bufs[m]) + pool->geom.headroom, f->data, f->len);
			lens[m++] = f->len;
			bh_impair_pop(&d->im_rx);
		}
		if (m)
			to_ip(d, bufs, lens, m);
		return n != 0 || m != 0;
	}
	for (unsigned i = n; i < nb; i++)
		bh_pool_free(pool, bufs[i]);
	if (n)
		to_ip(d, bufs, lens, n);
	return n != 0;
}

/* Gathers a frame's pieces into d->lin; returns it. */
static const uint8_t *linear(struct drv *d, const struct bh_txv *v)
{
	d->st.tx_linear_bytes += bh_txv_gather(d->lin, v, v->len & BH_BK_LEN_MASK);
	return d->lin;
}

/* Whole frames to the device (or the impairment in front of it),
 * captured as they go; returns how many it took. */
static unsigned send_whole(struct drv *d, uint64_t now, const uint8_t *const *frames,
			   const uint32_t *lens, unsigned n)
{
	unsigned took;
	if (d->impair) {
		for (unsigned i = 0; i < n; i++)
			bh_impair_offer(&d->im_tx, now, frames[i], lens[i]);
		took = n;
	} else {
		int r = d->bk->ops->tx(d->bk, frames, lens, n);
		took = r < 0 ? n : (unsigned)r; /* a failed device drops them */
	}
	for (unsigned i = 0; i < took; i++)
		capture(d, frames[i], lens[i] & BH_BK_LEN_MASK);
	d->st.tx_frames += took;
	return took;
}

/* Frames in pieces: gathered by the device in its copy where it can
 * (and nothing here needs them whole); else whole frames as they come,
 * and each chain gathered here first. Returns how many it took. */
static unsigned send_frames(struct drv *d, uint64_t now, const struct bh_txv *v, unsigned n)
{
	if (d->bk->ops->txv && !d->impair && d->dumper == NULL) {
		int r = d->bk->ops->txv(d->bk, v, n);
		unsigned took = r < 0 ? n : (unsigned)r;
		d->st.tx_frames += took;
		return took;
	}
	const uint8_t *frames[BATCH];
	uint32_t lens[BATCH];
	unsigned done = 0;
	while (done < n) {
		unsigned m = 0;
		if (v[done].nfrag > 1) {
			frames[0] = linear(d, &v[done]);
			lens[0] = v[done].len;
			m = 1;
		} else {
			for (; done + m < n && v[done + m].nfrag == 1; m++) {
				frames[m] = v[done + m].frag[0].p;
				lens[m] = v[done + m].len;
			}
		}
		unsigned took = send_whole(d, now, frames, lens, m);
		done += took;
		if (took < m)
			break;
	}
	return done;
}

/* A large frame the device does not take: cut into MTU-sized frames of
 * the size tcp asked for (the descriptor's meta), whole checksums each.
 * false when the device filled up first: the rest go on the next pass. */
static bool send_cut(struct drv *d, uint64_t now, const struct bh_desc *x, const struct bh_txv *v)
{
	/* A chain is gathered afresh on each pass: its pieces stay put
	 * until the frame goes home. */
	const uint8_t *f = v->nfrag == 1 ? v->frag[0].p : linear(d, v);
	uint32_t mss = BH_DESC_GSO_OF(x->meta);
	uint32_t n = bh_tcp_gso_count(f, x->len, mss, d->cut_room);
	if (n == 0) {
		d->st.tx_bad_desc++; /* not a TCP frame it may cut: dropped */
		return true;
	}
	/* TCP's checksum is end to end (factored): the pieces get fresh
	 * ones, so the whole is verified first, once, or a payload that a
	 * faulty ip wrote over would leave under valid checksums. Decided by
	 * the plan, not by the descriptor's partial mark, which ip sets. */
	if (d->cut_next == 0 && d->cut_verify && !bh_tcp_gso_csum_ok(f, x->len)) {
		d->st.tx_cut_bad++;
		return true;
	}
	while (d->cut_next < n) {
		const uint8_t *frames[GSO_BATCH];
		uint32_t lens[GSO_BATCH];
		unsigned m = 0;
		for (; m < GSO_BATCH && d->cut_next + m < n; m++) {
			uint8_t *o = d->cut_buf + (size_t)m * d->cut_room;
			lens[m] = bh_tcp_gso_segment(f, x->len, mss, d->cut_next + m, o, d->cut_room);
			frames[m] = o;
		}
		unsigned took = send_whole(d, now, frames, lens, m);
		d->cut_next += took;
		d->st.tx_cut_frames += took;
		if (took < m)
			return false;
	}
	d->cut_next = 0;
	d->st.tx_cut++;
	return true;
}

/* A frame from ip in pieces (fr, *nfr): itself, or for a send chain its
 * headers and then the SOCK pieces its chain names. The chain is in a
 * buffer ip could write: read once, every piece checked against the
 * SOCK pool's geometry and the lengths against the descriptor's. */
static bool pieces_of(struct drv *d, const struct bh_desc *x, struct bh_frag *fr, uint8_t *nfr)
{
	const uint8_t *b = bh_env_buf(d->env, x->pool, x->buf);
	if (x->flags == BH_M_FRAME) {
		fr[0] = (struct bh_frag){b + x->off, x->len};
		*nfr = 1;
		return true;
	}
	const struct bh_pools_geom *pg = &d->env->plan->pools;
	if (!d->chain || x->pool != BH_POOL_SEG)
		return false;
	uint32_t at = bh_chain_at(pg->g[BH_POOL_SEG].buf_size);
	struct bh_chain ch;
	memcpy(&ch, b + at, sizeof(ch));
	/* Headers: Ethernet, IPv4 and TCP at the least, clear of the chain. */
	if (ch.magic != BH_CHAIN_MAGIC || ch.n == 0 || ch.n > BH_CHAIN_MAX ||
	    ch.payload > x->len || x->len - ch.payload < 54u ||
	    (uint32_t)x->off + (x->len - ch.payload) > at)
		return false;
	fr[0] = (struct bh_frag){b + x->off, x->len - ch.payload};
	const struct bh_pool_geom *sg = &pg->g[BH_POOL_SOCK];
	uint64_t sum = 0;
	for (uint32_t i = 0; i < ch.n; i++) {
		const struct bh_chain_piece *c = &ch.piece[i];
		uint32_t buf = bh_handle_buf(c->handle);
		if (bh_handle_pool(c->handle) != BH_POOL_SOCK || buf >= sg->nbufs || c->len == 0 ||
		    c->off > sg->buf_size || c->len > sg->buf_size - c->off)
			return false;
		fr[1 + i] = (struct bh_frag){bh_env_buf(d->env, BH_POOL_SOCK, buf) + c->off, c->len};
		sum += c->len;
	}
	if (sum != ch.payload)
		return false;
	*nfr = (uint8_t)(1 + ch.n);
	d->st.tx_chains++;
	return true;
}

/* A large TCP frame for the kernel to cut (tap:, factored): TCP's
 * checksum, computed in the tcp domain over the whole segment, is
 * verified here first, over its pieces (what a faulty ip wrote over is
 * dropped, as send_cut does), and the kernel is given a copy of the
 * headers whose checksum field holds only the pseudo-header's part;
 * the frame's own buffers stay as they are (read-only here). */
static bool tap_partial(struct drv *d, unsigned k, uint32_t len)
{
	struct bh_frag *fr = d->frag[k];
	uint8_t *hc = d->hcopy[k];
	/* The headers are in a buffer ip can write: read once, into our
	 * copy, and parse, sum and send only the copy. */
	uint32_t n0 = fr[0].len < sizeof(d->hcopy[k]) ? fr[0].len : (uint32_t)sizeof(d->hcopy[k]);
	memcpy(hc, fr[0].p, n0);
	uint32_t plen, hdrs = bh_tcp_frame_hdrs(hc, len, &plen);
	if (hdrs == 0 || hdrs > n0 || d->nfrag[k] + 1u > 2 + BH_CHAIN_MAX)
		return false;
	const uint8_t *iph = hc + BH_ETH_HLEN;
	uint32_t l4 = BH_ETH_HLEN + (uint32_t)(iph[0] & 0x0f) * 4u;
	uint32_t l4len = len - l4;
	bh_ip4 src = bh_ld32(iph + 12), dst = bh_ld32(iph + 16);
	uint32_t sum = bh_ipv4_pseudo_sum(src, dst, BH_IPPROTO_TCP, (uint16_t)l4len);
	/* The TCP header from the copy (l4 < hdrs, both even), then the
	 * rest of the first piece and the other pieces where they lie. */
	sum = bh_csum_partial(hc + l4, hdrs - l4, sum);
	uint32_t at = hdrs - l4;
	for (unsigned i = 0; i < d->nfrag[k]; i++) {
		const uint8_t *q = fr[i].p;
		uint32_t n = fr[i].len;
		if (i == 0) {
			q += hdrs;
			n -= hdrs;
		}
		sum = bh_csum_add_at(sum, bh_csum_partial(q, n, 0), at & 1);
		at += n;
	}
	if (at != l4len || bh_csum_fold(sum) != 0)
		return false;
	bh_l4_partial(hc + l4, l4len, BH_IPPROTO_TCP, src, dst);
	/* [header copy, the rest of the first piece, the other pieces] */
	unsigned extra = fr[0].len > hdrs;
	memmove(&fr[1 + extra], &fr[1], (d->nfrag[k] - 1u) * sizeof(fr[0]));
	if (extra)
		fr[1] = (struct bh_frag){fr[0].p + hdrs, fr[0].len - hdrs};
	fr[0] = (struct bh_frag){hc, hdrs};
	d->nfrag[k] = (uint8_t)(d->nfrag[k] + extra);
	return true;
}

static int drv_tx(struct drv *d, uint64_t now)
{
	int progress = 0;
	if (d->npend == 0) {
		d->npend = bh_chan_recv(d->ch, d->pend, bh_rt_batch);
		d->pend_at = 0;
		/* Anything that is not a whole frame goes straight back. */
		unsigned keep = 0;
		for (unsigned i = 0; i < d->npend; i++) {
			struct bh_desc *x = &d->pend[i];
			if ((x->flags != BH_M_FRAME && x->flags != BH_M_FRAME_CHAIN) || x->len < 14 ||
			    x->len > d->max_frame || bh_env_buf(d->env, x->pool, x->buf) == NULL) {
				d->st.tx_bad_desc++;
				bh_chan_give_back(d->ch, x, 1);
				continue;
			}
			if (!pieces_of(d, x, d->frag[keep], &d->nfrag[keep])) {
				d->st.tx_bad_chain++;
				bh_chan_give_back(d->ch, x, 1);
				continue;
			}
			d->partial[keep] = false;
			if (d->tap_gso_verify && BH_DESC_GSO_OF(x->meta) != 0 && !d->impair) {
				if (!tap_partial(d, keep, x->len)) {
					d->st.tx_cut_bad++;
					bh_chan_give_back(d->ch, x, 1);
					continue;
				}
				d->partial[keep] = true;
			}
			d->pend[keep++] = *x;
		}
		d->npend = keep;
		progress |= keep != 0;
	}
	while (d->pend_at < d->npend) {
		uint32_t tx_max = d->impair ? d->cut_room : d->bk->tx_max;
		struct bh_txv v[BATCH];
		unsigned n = 0;
		for (; d->pend_at + n < d->npend; n++) {
			unsigned k = d->pend_at + n;
			const struct bh_desc *x = &d->pend[k];
			if (x->len > tx_max && n > 0)
				break;
			v[n] = (struct bh_txv){d->frag[k], d->nfrag[k], x->len, BH_DESC_GSO_OF(x->meta)};
			/* A checksum left to the link: wire: takes it (or
			 * completes it in its copy), tap: the kernel. */
			if (((x->meta & BH_DESC_CSUM_PARTIAL) && d->pass_partial) || d->partial[k])
				v[n].len |= BH_BK_CSUM_VALID;
			if (x->len > tx_max) {
				n++;
				break;
			}
		}
		if (d->pend[d->pend_at].len > tx_max) {
			if (!send_cut(d, now, &d->pend[d->pend_at], &v[0]))
				break; /* the device is full: the rest wait */
			bh_chan_give_back(d->ch, &d->pend[d->pend_at], 1);
			d->pend_at++;
			progress = 1;
			continue;
		}
		unsigned took = send_frames(d, now, v, n);
		bh_chan_give_back(d->ch, &d->pend[d->pend_at], took);
		d->pend_at += took;
		progress |= took != 0;
		if (took < n)
			break; /* the device is full: the rest wait */
	}
	if (d->pend_at >= d->npend)
		d->npend = d->pend_at = 0;
	if (d->impair) {
		const struct bh_impair_frame *f;
		while ((f = bh_impair_peek(&d->im_tx, now)) != NULL) {
			const uint8_t *fr = f->data;
			uint32_t len = f->len;
			if (d->bk->ops->tx(d->bk, &fr, &len, 1) == 0)
				break;
			bh_impair_pop(&d->im_tx);
			progress = 1;
		}
	}
	return progress;
}

static int drv_poll(void *self, uint64_t now, uint32_t badges)
{
	(void)badges;
	struct drv *d = self;
	int progress = drv_reclaim(d);
	progress |= drv_tx(d, now);
	progress |= drv_rx(d, now);
	if (d->dumper && progress)
		pcap_dump_flush(d->dumper);
	return progress;
}

static uint64_t drv_deadline(void *self)
{
	struct drv *d = self;
	if (!d->impair)
		return UINT64_MAX;
	uint64_t a = bh_impair_deadline(&d->im_tx), b = bh_impair_deadline(&d->im_rx);
	return a < b ? a : b;
}

static bool drv_arm(void *self, struct bh_ntfn **also)
{
	struct drv *d = self;
	/* With no buffers to read into, wait for ip to return some rather
	 * than be told again and again that the device has frames. */
	if (d->env->own.nfree < BATCH)
		return false;
	if (!d->direct) {
		bh_poller_arm(&d->poller);
		return false;
	}
	d->armed = true;
	return d->bk->ops->arm(d->bk, also);
}

static void drv_disarm(void *self)
{
	struct drv *d = self;
	if (d->armed)
		d->bk->ops->disarm(d->bk);
	d->armed = false;
}

static void drv_publish(void *self, struct bh_stats_w *w)
{
	struct drv *d = self;
	const struct bh_backend_stats *b = &d->bk->st;
#define DEV_COUNTER_ADD(name) bh_stats_add(w, "dev.", #name, b->name);
	BH_BACKEND_COUNTERS(DEV_COUNTER_ADD)
#undef DEV_COUNTER_ADD
	bh_stats_add(w, "dev.", "replay_done", d->bk->eof);
#define DRV_COUNTER_ADD(name) bh_stats_add(w, "", #name, d->st.name);
	DRV_COUNTERS(DRV_COUNTER_ADD)
#undef DRV_COUNTER_ADD
	bh_stats_add(w, "poller.", "wakes", __atomic_load_n(&d->poller.wakes, __ATOMIC_RELAXED));
	bh_stats_add(w, "poller.", "none", d->direct);
	if (d->impair) {
		const struct bh_impair *im[2] = {&d->im_tx, &d->im_rx};
		const char *pf[2] = {"impair.tx.", "impair.rx."};
		for (int i = 0; i < 2; i++) {
#define IMPAIR_COUNTER_ADD(name) bh_stats_add(w, pf[i], #name, im[i]->st.name);
			BH_IMPAIR_COUNTERS(IMPAIR_COUNTER_ADD)
#undef IMPAIR_COUNTER_ADD
		}
	}
}

static void drv_fini(void *self)
{
	struct drv *d = self;
	bh_poller_stop(&d->poller);
	if (d->dumper) {
		pcap_dump_flush(d->dumper);
		pcap_dump_close(d->dumper);
	}
	if (d->cap_dead)
		pcap_close(d->cap_dead);
	if (d->bk)
		d->bk->ops->close(d->bk);
	if (d->impair) {
		bh_impair_fini(&d->im_tx);
		bh_impair_fini(&d->im_rx);
	}
	free(d->cut_buf);
	free(d->lin);
}

/* DI brings home only the driver's own RX buffers. */
static bool drv_lazy_give_backs(void *self, int link)
{
	struct drv *d = self;
	return link == BH_LINK_DI && bh_rt_own_pool_plenty(d->env);
}

const struct bh_dom_vt bh_driver_vt = {
    .name = "driver",
    .size = sizeof(struct drv),
    .init = drv_init,
    .poll = drv_poll,
    .deadline = drv_deadline,
    .arm = drv_arm,
    .disarm = drv_disarm,
    .publish = drv_publish,
    .fini = drv_fini,
    .lazy_give_backs = drv_lazy_give_backs,
};
