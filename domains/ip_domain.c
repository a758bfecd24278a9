/*
 * domains/ip_domain.c - the IP domain: the IP library (ip/ip.h) between the
 * driver below and TCP and the socket server (UDP) above.
 *
 *   link DI   frames in (rx pool) → bh_ip_input, a large frame's chain
 *             of buffers → bh_ip_input_chain; frames out (pools IP and
 *             SEG) ← ops.transmit
 *   link IT   segments up: each received piece by descriptor (zero
 *             copy); segments down from tcp → bh_ip_output, headers
 *             written into the segment's headroom
 *   link IS   UDP datagrams up (a header message, then the pieces);
 *             datagrams down (copied once into an IP buffer); binds
 *
 * Buffers this domain forwards but does not own (received frames going
 * up, segments going to the driver) are tracked, and come home only from
 * the domain that holds them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domains/recover.h"
#include "domains/rt.h"
#include "domains/track.h"
#include "ip/ip.h"

#define BATCH BH_RT_BATCH

/* The IP domain's own counters (the library's come first, by its names). */
#define IPD_COUNTERS(X)                                                                    \
	X(bad_desc)        /* descriptors of a type or shape not expected */               \
	X(bad_chain)       /* large frames whose pieces did not all come: dropped */       \
	X(tx_ring_full)    /* frames dropped: the link to the driver was full */           \
	X(up_ring_full)    /* datagrams dropped: the link up was full */                   \
	X(tcp_not_unicast) /* TCP to a broadcast or multicast address: dropped */          \
	X(udp_no_buffer)   /* datagrams dropped: no buffer for the header or copy */       \
	X(udp_too_big)     /* datagrams from sock larger than an IP buffer: dropped */     \
	X(events_lost)     /* ICMP events for tcp not passed on: no buffer or ring room */

struct ipd_stats {
#define IPD_COUNTER_FIELD(name) uint64_t name;
	IPD_COUNTERS(IPD_COUNTER_FIELD)
#undef IPD_COUNTER_FIELD
};

struct ipd {
	struct bh_env *env;
	struct bh_ip *ip;
	/* The driver's word that the link vouched for a frame's checksum
	 * counts only where the plan leaves checksums to the link (mono). */
	bool vouch_ok;
	struct bh_track tr;
	/* A large frame's pieces, gathered across batches. */
	struct bh_pkt chain[BH_IP_MAX_PIECES];
	unsigned nchain, chain_want;
	struct bh_ctlq cq_sock;
	uint64_t next_tick_ms;
	bool started;
	struct ipd_stats st;
};

static struct bh_pkt pkt_of(struct ipd *d, const struct bh_desc *x, bool writable)
{
	const struct bh_pool_geom *g = &d->env->plan->pools.g[x->pool];
	uint8_t *base = writable ? d->env->wview[x->pool] : (uint8_t *)d->env->view[x->pool];
	return (struct bh_pkt){.base = base + (size_t)x->buf * g->buf_size,
			       .size = g->buf_size,
			       .off = x->off,
			       .len = x->len,
			       .handle = bh_handle(x->pool, x->buf),
			       .writable = writable};
}

static void give_home(struct ipd *d, uint8_t pool, uint32_t buf)
{
	struct bh_desc x = {.buf = buf, .pool = pool};
	switch (pool) {
	case BH_POOL_IP:
		bh_pool_free(&d->env->own, buf);
		break;
	case BH_POOL_RX:
		bh_chan_give_back(d->env->chan[BH_LINK_DI], &x, 1);
		break;
	case BH_POOL_SEG:
		bh_chan_give_back(d->env->chan[BH_LINK_IT], &x, 1);
		break;
	case BH_POOL_SOCK:
		bh_chan_give_back(d->env->chan[BH_LINK_IS], &x, 1);
		break;
	}
}

/* --- library callbacks --- */

static bool op_alloc(void *ctx, struct bh_pkt *out)
{
	struct ipd *d = ctx;
	uint32_t buf;
	if (bh_pool_alloc(&d->env->own, &buf) != 0)
		return false;
	const struct bh_pool_geom *g = &d->env->own.geom;
	*out = (struct bh_pkt){.base = bh_pool_buf(&d->env->own, buf),
			       .size = g->buf_size,
			       .off = g->headroom,
			       .len = 0,
			       .handle = bh_handle(BH_POOL_IP, buf),
			       .writable = true};
	return true;
}

static void op_release(void *ctx, const struct bh_pkt *p)
{
	struct ipd *d = ctx;
	give_home(d, bh_handle_pool(p->handle), bh_handle_buf(p->handle));
}

static void op_transmit(void *ctx, const struct bh_pkt *f)
{
	struct ipd *d = ctx;
	uint8_t pool = bh_handle_pool(f->handle);
	uint32_t buf = bh_handle_buf(f->handle);
	struct bh_desc x = {.buf = buf,
			    .off = (uint16_t)f->off,
			    .len = (uint16_t)f->len,
			    .pool = pool,
			    .flags = f->chain ? BH_M_FRAME_CHAIN : BH_M_FRAME,
			    .meta = (uint16_t)((f->csum == BH_CSUM_PARTIAL ? BH_DESC_CSUM_PARTIAL : 0) |
					       (f->gso << BH_DESC_GSO_SHIFT))};
	if (pool == BH_POOL_IP)
		bh_pool_lend(&d->env->own, buf, BH_HOLDER_DOM(BH_DOM_DRIVER));
	else if (!bh_track_out(&d->tr, pool, buf, BH_DOM_DRIVER, 0))
		return;
	if (bh_chan_send(d->env->chan[BH_LINK_DI], &x, 1) == 1)
		return;
	d->st.tx_ring_full++;
	if (pool == BH_POOL_IP)
		bh_pool_take_back(&d->env->own, buf, BH_HOLDER_DOM(BH_DOM_DRIVER));
	else
		bh_track_back(&d->tr, pool, buf, BH_DOM_DRIVER, NULL);
	give_home(d, pool, buf);
}

static void release_rx(struct ipd *d, const struct bh_ip_rx *rx, unsigned from)
{
	for (unsigned i = from; i < rx->npieces; i++)
		op_release(d, &rx->piece[i]);
}

/* Sends n descriptors up; the pieces among them are tracked as held by
 * `to`; what does not fit goes home. */
static void send_up(struct ipd *d, int link, int to, struct bh_desc *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (x[i].pool == BH_POOL_IP)
			bh_pool_lend(&d->env->own, x[i].buf, BH_HOLDER_DOM(to));
		else
			bh_track_out(&d->tr, x[i].pool, x[i].buf, to, 0);
	}
	unsigned k = bh_chan_send(d->env->chan[link], x, n);
	if (k == n)
		return;
	d->st.up_ring_full++;
	for (unsigned i = k; i < n; i++) {
		if (x[i].pool == BH_POOL_IP) {
			bh_pool_take_back(&d->env->own, x[i].buf, BH_HOLDER_DOM(to));
			bh_pool_free(&d->env->own, x[i].buf);
		} else {
			bh_track_back(&d->tr, x[i].pool, x[i].buf, to, NULL);
			give_home(d, x[i].pool, x[i].buf);
		}
	}
}

/* The descriptor that carries one piece of a received datagram up. */
static struct bh_desc piece_desc(const struct bh_pkt *p, uint8_t flags, uint16_t meta,
				 uint32_t aux)
{
	return (struct bh_desc){.buf = bh_handle_buf(p->handle),
				.off = (uint16_t)p->off,
				.len = (uint16_t)p->len,
				.pool = bh_handle_pool(p->handle),
				.flags = flags,
				.meta = meta,
				.aux = aux};
}

static void op_deliver(void *ctx, const struct bh_ip_rx *rx)
{
	struct ipd *d = ctx;
	struct bh_desc x[BH_IP_MAX_PIECES + 1];
	unsigned n = 0;
	if (rx->proto == BH_IPPROTO_TCP) {
		if (rx->cast != BH_IP_UNICAST) {
			d->st.tcp_not_unicast++;
			release_rx(d, rx, 0);
			return;
		}
		for (unsigned i = 0; i < rx->npieces; i++)
			x[n++] = piece_desc(&rx->piece[i], i == 0 ? BH_M_SEG : BH_M_MORE,
					    (uint16_t)(rx->npieces | (rx->csum_valid
									  ? BH_DESC_SEG_CSUM_VALID
									  : 0)),
					    rx->src);
		send_up(d, BH_LINK_IT, BH_DOM_TCP, x, n);
		return;
	}
	if (rx->proto == BH_IPPROTO_UDP) {
		/* The header message first, then the pieces, in one batch. */
		uint32_t hb;
		if (bh_pool_alloc(&d->env->own, &hb) != 0) {
			d->st.udp_no_buffer++;
			release_rx(d, rx, 0);
			return;
		}
		struct bh_ctl c = {.op = BH_CTL_DGRAM,
				   .sid = (uint32_t)rx->cookie,
				   .laddr = rx->dst,
				   .raddr = rx->src,
				   .lport = rx->dport,
				   .rport = rx->sport,
				   .arg = rx->npieces,
				   .len = rx->len}; /* the library strips the UDP header */
		uint32_t off = d->env->own.geom.headroom;
		memcpy(bh_pool_buf(&d->env->own, hb) + off, &c, sizeof(c));
		x[n++] = (struct bh_desc){
		    .buf = hb, .off = (uint16_t)off, .len = sizeof(c), .pool = BH_POOL_IP,
		    .flags = BH_M_CTL};
		for (unsigned i = 0; i < rx->npieces; i++)
			x[n++] = piece_desc(&rx->piece[i], BH_M_DATA, 0, c.sid);
		send_up(d, BH_LINK_IS, BH_DOM_SOCK, x, n);
		return;
	}
	release_rx(d, rx, 0);
}

static void op_event(void *ctx, const struct bh_ip_event *ev)
{
	struct ipd *d = ctx;
	if (ev->proto != BH_IPPROTO_TCP)
		return;
	uint32_t buf;
	if (bh_pool_alloc(&d->env->own, &buf) != 0) {
		d->st.events_lost++;
		return;
	}
	uint32_t off = d->env->own.geom.headroom;
	memcpy(bh_pool_buf(&d->env->own, buf) + off, ev, sizeof(*ev));
	struct bh_desc x = {.buf = buf,
			    .off = (uint16_t)off,
			    .len = sizeof(*ev),
			    .pool = BH_POOL_IP,
			    .flags = BH_M_IPEVENT};
	bh_pool_lend(&d->env->own, buf, BH_HOLDER_DOM(BH_DOM_TCP));
	if (bh_chan_send(d->env->chan[BH_LINK_IT], &x, 1) != 1) {
		bh_pool_take_back(&d->env->own, buf, BH_HOLDER_DOM(BH_DOM_TCP));
		bh_pool_free(&d->env->own, buf);
		d->st.events_lost++;
	}
}

static const struct bh_ip_ops ip_ops = {
    .alloc = op_alloc,
    .release = op_release,
    .transmit = op_transmit,
    .deliver = op_deliver,
    .event = op_event,
};

/* --- the domain --- */

static int ipd_init(void *self, struct bh_env *env, char *err, size_t errlen)
{
	struct ipd *d = self;
	const struct bh_plan *p = env->plan;
	d->env = env;
	unsigned tracked = (1u << BH_POOL_RX) | (1u << BH_POOL_SEG);
	env->track = &d->tr;
	if (bh_track_init(&d->tr, &p->pools, tracked) || bh_ctlq_init(&d->cq_sock, 1024)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	struct bh_ip_config cfg = {
	    .mac = p->mac,
	    .addr = p->addr,
	    .prefix_len = p->prefix,
	    .gateway = p->gw,
	    .mtu = p->mtu,
	    .large_max = bh_plan_large_frames(p) ? 65535u - BH_ETH_HLEN : 0,
	    /* Fragments held: 128 receive buffers, whatever their size
	     * (16 KiB where large frames come, domains/plan.c). */
	    .reasm_bytes = 128u * p->pools.g[BH_POOL_RX].buf_size,
	    .secret = {p->secret[0], p->secret[1]},
	};
	const char *why = NULL;
	d->vouch_ok = bh_plan_csum_offload(p);
	d->ip = bh_ip_create(&cfg, &ip_ops, d, &why);
	if (d->ip == NULL) {
		snprintf(err, errlen, "ip: %s", why ? why : "cannot create");
		return -EINVAL;
	}
	return 0;
}

static void drop_chain(struct ipd *d)
{
	for (unsigned i = 0; i < d->nchain; i++)
		give_home(d, BH_POOL_RX, bh_handle_buf(d->chain[i].handle));
	d->nchain = d->chain_want = 0;
	d->st.bad_chain++;
}

static void from_driver(struct ipd *d, uint64_t now_ms, const struct bh_desc *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		bool first = x[i].flags == BH_M_FRAME;
		if ((!first && x[i].flags != BH_M_MORE) || x[i].pool != BH_POOL_RX) {
			d->st.bad_desc++;
			bh_chan_give_back(d->env->chan[BH_LINK_DI], &x[i], 1);
			continue;
		}
		if (first && d->chain_want)
			drop_chain(d); /* a chain cut short (the link was full) */
		if (!first && d->chain_want == 0) {
			d->st.bad_chain++;
			bh_chan_give_back(d->env->chan[BH_LINK_DI], &x[i], 1);
			continue;
		}
		struct bh_pkt p = pkt_of(d, &x[i], false);
		if ((x[i].meta & BH_DESC_CSUM_VALID) && d->vouch_ok)
			p.csum = BH_CSUM_VALID;
		unsigned pieces = first ? BH_DESC_FRAME_PIECES(x[i].meta) : 0;
		if (first && pieces <= 1) {
			bh_ip_input(d->ip, now_ms, &p);
			continue;
		}
		if (first) {
			if (pieces > BH_IP_MAX_PIECES) {
				d->st.bad_chain++;
				bh_chan_give_back(d->env->chan[BH_LINK_DI], &x[i], 1);
				continue;
			}
			d->chain_want = pieces;
		}
		d->chain[d->nchain++] = p;
		if (d->nchain == d->chain_want) {
			bh_ip_input_chain(d->ip, now_ms, d->chain, d->nchain);
			d->nchain = d->chain_want = 0;
		}
	}
}

static void from_tcp(struct ipd *d, uint64_t now_ms, const struct bh_desc *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		bool chain = x[i].flags == BH_M_SEG_CHAIN;
		if ((x[i].flags != BH_M_SEG && !chain) || x[i].pool != BH_POOL_SEG || x[i].len < 20) {
			d->st.bad_desc++;
			bh_chan_give_back(d->env->chan[BH_LINK_IT], &x[i], 1);
			continue;
		}
		struct bh_pkt p = pkt_of(d, &x[i], true);
		if (x[i].meta & BH_DESC_CSUM_PARTIAL)
			p.csum = BH_CSUM_PARTIAL;
		p.gso = BH_DESC_GSO_OF(x[i].meta);
		p.chain = chain; /* passed on as it came: the driver checks it */
		const uint8_t *h = bh_pkt_data(&p);
		struct bh_ip_tx tx = {.dst = x[i].aux,
				      .proto = BH_IPPROTO_TCP,
				      .df = true,
				      .sport = (uint16_t)(h[0] << 8 | h[1]),
				      .dport = (uint16_t)(h[2] << 8 | h[3])};
		bh_ip_output(d->ip, now_ms, &p, &tx);
	}
}

static void reply_sock(struct ipd *d, const struct bh_ctl *req, int err)
{
	struct bh_ctl c = {.op = BH_CTL_RESULT, .sid = req->sid, .arg = req->op, .err = err,
			   .lport = req->lport};
	bh_ctl_send(d->env, &d->cq_sock, BH_LINK_IS, &c);
}

static void from_sock(struct ipd *d, uint64_t now_ms, const struct bh_desc *x, unsigned n)
{
	struct bh_chan *ch = d->env->chan[BH_LINK_IS];
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *b = bh_env_buf(d->env, x[i].pool, x[i].buf);
		if (x[i].flags == BH_M_CTL) {
			struct bh_ctl c;
			if (!bh_ctl_read(d->env, &x[i], &c)) {
				d->st.bad_desc++;
			} else if (c.op == BH_CTL_UDP_BIND) {
				int e = c.lport ? bh_udp_bind(d->ip, c.lport, c.sid) : -EINVAL;
				reply_sock(d, &c, -e);
			} else if (c.op == BH_CTL_UDP_UNBIND) {
				bh_udp_unbind(d->ip, c.lport);
			} else {
				d->st.bad_desc++;
			}
			bh_chan_give_back(ch, &x[i], 1);
			continue;
		}
		if (x[i].flags != BH_M_DGRAM || b == NULL || x[i].len < sizeof(struct bh_udp_out)) {
			d->st.bad_desc++;
			bh_chan_give_back(ch, &x[i], 1);
			continue;
		}
		struct bh_udp_out h;
		memcpy(&h, b + x[i].off, sizeof(h));
		uint32_t plen = x[i].len - (uint32_t)sizeof(h);
		struct bh_pkt p;
		if (plen > d->env->own.geom.buf_size - d->env->own.geom.headroom) {
			d->st.udp_too_big++;
		} else if (!op_alloc(d, &p)) {
			d->st.udp_no_buffer++;
		} else {
			if (plen)
				memcpy(bh_pkt_data(&p), b + x[i].off + sizeof(h), plen);
			p.len = plen;
			bh_udp_output(d->ip, now_ms, &p, h.sport, h.daddr, h.dport);
		}
		bh_chan_give_back(ch, &x[i], 1);
	}
}

/* Buffers coming home from link `link`, whose other end is `from`. */
static int reclaim(struct ipd *d, int link, int from)
{
	struct bh_desc x[BATCH];
	unsigned n = bh_env_reclaim(d->env, link, x, BATCH);
	for (unsigned i = 0; i < n; i++) {
		if (x[i].pool == BH_POOL_IP) {
			if (bh_pool_take_back(&d->env->own, x[i].buf, BH_HOLDER_DOM(from)) == 0)
				bh_pool_free(&d->env->own, x[i].buf);
			continue;
		}
		if (bh_track_back(&d->tr, x[i].pool, x[i].buf, from, NULL))
			give_home(d, x[i].pool, x[i].buf);
	}
	return n != 0;
}

static int ipd_poll(void *self, uint64_t now, uint32_t badges)
{
	(void)badges;
	struct ipd *d = self;
	uint64_t ms = bh_ns_to_ms(now);
	int progress = 0;
	progress |= reclaim(d, BH_LINK_DI, BH_DOM_DRIVER);
	progress |= reclaim(d, BH_LINK_IT, BH_DOM_TCP);
	progress |= reclaim(d, BH_LINK_IS, BH_DOM_SOCK);
	struct bh_desc x[BATCH];
	unsigned n = bh_chan_recv(d->env->chan[BH_LINK_DI], x, bh_rt_batch);
	from_driver(d, ms, x, n);
	progress |= n != 0;
	n = bh_chan_recv(d->env->chan[BH_LINK_IT], x, bh_rt_batch);
	from_tcp(d, ms, x, n);
	progress |= n != 0;
	n = bh_chan_recv(d->env->chan[BH_LINK_IS], x, bh_rt_batch);
	from_sock(d, ms, x, n);
	progress |= n != 0;
	if (d->cq_sock.head != d->cq_sock.tail)
		bh_ctlq_flush(d->env, &d->cq_sock, BH_LINK_IS);
	if (!d->started) {
		bh_ip_start(d->ip, ms);
		d->started = true;
	}
	/* Any call may have set a timer: ask again after work. */
	if (progress || ms >= d->next_tick_ms) {
		d->next_tick_ms = bh_ip_tick(d->ip, ms);
		if (d->next_tick_ms <= ms)
			d->next_tick_ms = ms + 1;
	}
	return progress;
}

static uint64_t ipd_deadline(void *self)
{
	struct ipd *d = self;
	if (d->next_tick_ms == UINT64_MAX)
		return UINT64_MAX;
	return d->next_tick_ms * 1000000u;
}

static void ipd_publish(void *self, struct bh_stats_w *w)
{
	struct ipd *d = self;
	const struct bh_ip_counters *c = bh_ip_counters(d->ip);
	for (unsigned i = 0; i < BH_IP_NCOUNTERS; i++)
		bh_stats_add(w, "", bh_ip_counter_name(i), bh_ip_counter_value(c, i));
#define IPD_COUNTER_ADD(name) bh_stats_add(w, "", #name, d->st.name);
	IPD_COUNTERS(IPD_COUNTER_ADD)
#undef IPD_COUNTER_ADD
	bh_stats_add(w, "track.", "refused", d->tr.refused);
	bh_stats_add(w, "track.", "dup_out", d->tr.dup_out);
	bh_stats_add(w, "", "held", bh_ip_held(d->ip));
}

static void ipd_fini(void *self)
{
	struct ipd *d = self;
	if (d->ip)
		bh_ip_destroy(d->ip);
	bh_track_fini(&d->tr);
	bh_ctlq_fini(&d->cq_sock);
}

/* A neighbour was replaced. The driver or tcp: nothing to forget but a
 * large frame half received (ARP, reassembly and routes are ip's own;
 * what was in flight is lost and TCP retransmits it). The socket
 * server: its UDP bindings went with it, and so did the sockets our
 * queued messages were for. */
static void ipd_peer_reset(void *self, int link)
{
	struct ipd *d = self;
	/* The pieces of a large frame the old driver did not finish: home
	 * (answers for them, recover.h). */
	if (link == BH_LINK_DI && d->chain_want)
		drop_chain(d);
	if (link != BH_LINK_IS)
		return;
	d->cq_sock.tail = d->cq_sock.head;
	unsigned n = 0;
	for (uint32_t port = 1; port <= 65535; port++)
		n += bh_udp_unbind(d->ip, (uint16_t)port) == 0;
	bh_logf("socket server replaced: %u UDP bindings dropped (it binds again what it "
		"still has)",
		n);
}

/* DI brings back ip's own buffers and the SEG buffers it forwarded to
 * the driver for tcp; IT its own and the RX buffers it forwarded to tcp
 * for the driver. Lazy while its pool has plenty and few of the
 * forwarded ones are out (IS, datagrams for sock, always wakes). */
static bool ipd_lazy_give_backs(void *self, int link)
{
	struct ipd *d = self;
	if (!bh_rt_own_pool_plenty(d->env))
		return false;
	if (link == BH_LINK_DI)
		return bh_track_few_out(&d->tr, BH_POOL_SEG);
	if (link == BH_LINK_IT)
		return bh_track_few_out(&d->tr, BH_POOL_RX);
	return false;
}

const struct bh_dom_vt bh_ip_vt = {
    .name = "ip",
    .size = sizeof(struct ipd),
    .init = ipd_init,
    .poll = ipd_poll,
    .deadline = ipd_deadline,
    .publish = ipd_publish,
    .fini = ipd_fini,
    .peer_reset = ipd_peer_reset,
    .lazy_give_backs = ipd_lazy_give_backs,
};
