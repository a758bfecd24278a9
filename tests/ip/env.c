/*
 * tests/ip/env.c - see env.h.
 */
#include "tests/ip/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ip/checksum.h"

const struct bh_mac ENV_MAC = {{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
const struct bh_mac PEER_MAC = {{0x02, 0x00, 0x00, 0x00, 0x00, 0x09}};
const struct bh_mac PEER2_MAC = {{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}};

/* ---- ops ---- */

static bool op_alloc(void *ctx, struct bh_pkt *out)
{
	struct env *e = ctx;
	if (e->fail_alloc)
		return false;
	if (e->alloc_budget) {
		if (e->alloc_budget == 1)
			e->fail_alloc = true;
		e->alloc_budget--;
	}
	for (uint32_t i = 0; i < e->nbufs; i++) {
		if (!e->used[i]) {
			e->used[i] = true;
			e->in_use++;
			*out = (struct bh_pkt){
				.base = e->mem + (size_t)i * ENV_BUF_SIZE,
				.size = ENV_BUF_SIZE,
				.off = ENV_HEADROOM,
				.len = 0,
				.handle = i,
				.writable = true,
			};
			return true;
		}
	}
	return false;
}

static void op_release(void *ctx, const struct bh_pkt *p)
{
	struct env *e = ctx;
	if (p->handle >= e->nbufs || p->base != e->mem + p->handle * ENV_BUF_SIZE) {
		e->bad_handle++;
		return;
	}
	if (!e->used[p->handle]) {
		e->double_release++;
		return;
	}
	e->used[p->handle] = false;
	e->in_use--;
}

static void op_transmit(void *ctx, const struct bh_pkt *f)
{
	struct env *e = ctx;
	if (e->keep_log && !e->tx)
		e->tx = calloc(ENV_MAX_LOG, sizeof *e->tx); /* on first use: it is large */
	if (e->keep_log && e->tx && e->ntx < ENV_MAX_LOG && f->len <= ENV_BUF_SIZE) {
		e->tx[e->ntx].len = f->len;
		memcpy(e->tx[e->ntx].data, bh_pkt_data(f), f->len);
	}
	e->ntx++;
	op_release(ctx, f);
}

static void op_deliver(void *ctx, const struct bh_ip_rx *rx)
{
	struct env *e = ctx;
	if (e->keep_log && e->ndeliv < ENV_MAX_LOG) {
		struct env_delivery *d = &e->deliv[e->ndeliv];
		free(d->data);
		*d = (struct env_delivery){
			.proto = rx->proto, .cast = rx->cast, .src = rx->src, .dst = rx->dst,
			.sport = rx->sport, .dport = rx->dport, .cookie = rx->cookie,
			.npieces = rx->npieces, .len = rx->len,
		};
		d->data = malloc(rx->len ? rx->len : 1);
		uint32_t at = 0;
		for (unsigned i = 0; i < rx->npieces; i++) {
			memcpy(d->data + at, bh_pkt_data(&rx->piece[i]), rx->piece[i].len);
			at += rx->piece[i].len;
		}
		if (at != rx->len)
			d->len = UINT32_MAX; /* the pieces disagree with len: tests catch it */
	}
	e->ndeliv++;
	for (unsigned i = 0; i < rx->npieces; i++)
		op_release(ctx, &rx->piece[i]);
}

static void op_event(void *ctx, const struct bh_ip_event *ev)
{
	struct env *e = ctx;
	if (e->keep_log && e->nev < ENV_MAX_LOG)
		e->ev[e->nev] = *ev;
	e->nev++;
	if (e->on_event)
		e->on_event(e, ev);
}

static const struct bh_ip_ops env_ops_ = {
	.alloc = op_alloc,
	.release = op_release,
	.transmit = op_transmit,
	.deliver = op_deliver,
	.event = op_event,
};

const struct bh_ip_ops *env_ops(void) { return &env_ops_; }

/* ---- setup ---- */

void env_default_config(struct bh_ip_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->mac = ENV_MAC;
	cfg->addr = ENV_ADDR;
	cfg->prefix_len = 24;
	cfg->gateway = GW_ADDR;
	cfg->secret[0] = 0x0123456789abcdefull;
	cfg->secret[1] = 0xfedcba9876543210ull;
}

void env_init(struct env *e, const struct bh_ip_config *cfg, uint32_t nbufs)
{
	memset(e, 0, sizeof *e);
	struct bh_ip_config def;
	if (!cfg) {
		env_default_config(&def);
		cfg = &def;
	}
	e->nbufs = nbufs ? nbufs : 512;
	e->mem = calloc(e->nbufs, ENV_BUF_SIZE);
	e->used = calloc(e->nbufs, sizeof *e->used);
	e->deliv = calloc(ENV_MAX_LOG, sizeof *e->deliv);
	e->ev = calloc(ENV_MAX_LOG, sizeof *e->ev);
	e->keep_log = true;
	const char *err = NULL;
	e->ip = bh_ip_create(cfg, &env_ops_, e, &err);
	if (!e->mem || !e->used || !e->deliv || !e->ev || !e->ip) {
		fprintf(stderr, "env_init: %s\n", err ? err : "out of memory");
		abort();
	}
}

void env_clear_log(struct env *e)
{
	e->ntx = e->ndeliv = e->nev = 0;
}

uint32_t env_fini(struct env *e)
{
	bh_ip_destroy(e->ip);
	e->ip = NULL;
	uint32_t left = e->in_use;
	for (uint32_t i = 0; i < ENV_MAX_LOG; i++)
		free(e->deliv[i].data);
	free(e->mem);
	free(e->used);
	free(e->tx);
	free(e->deliv);
	free(e->ev);
	return left + e->double_release + e->bad_handle;
}

struct bh_pkt env_buffer(struct env *e, const void *data, uint32_t len)
{
	struct bh_pkt p;
	bool saved = e->fail_alloc;
	e->fail_alloc = false;
	if (!op_alloc(e, &p) || len > ENV_BUF_SIZE - ENV_HEADROOM) {
		fprintf(stderr, "env_buffer: no buffer\n");
		abort();
	}
	e->fail_alloc = saved;
	memcpy(bh_pkt_data(&p), data, len);
	p.len = len;
	return p;
}

void env_input(struct env *e, const uint8_t *frame, size_t len)
{
	struct bh_pkt p = env_buffer(e, frame, (uint32_t)len);
	p.writable = false;
	bh_ip_input(e->ip, e->now, &p);
}

uint64_t env_tick(struct env *e, uint64_t now)
{
	e->now = now;
	return bh_ip_tick(e->ip, now);
}

uint64_t env_ctr(const struct env *e, const char *name)
{
	const struct bh_ip_counters *c = bh_ip_counters(e->ip);
	for (unsigned i = 0; bh_ip_counter_name(i); i++)
		if (strcmp(bh_ip_counter_name(i), name) == 0)
			return bh_ip_counter_value(c, i);
	fprintf(stderr, "env_ctr: no counter %s\n", name);
	abort();
}

bool env_tx_arp(const struct env *e, unsigned i, struct bh_eth_repr *eth, struct bh_arp_repr *a)
{
	if (i >= e->ntx || i >= ENV_MAX_LOG)
		return false;
	const struct env_frame *f = &e->tx[i];
	return bh_eth_parse(f->data, f->len, eth) == BH_WIRE_OK && eth->type == BH_ETHERTYPE_ARP &&
	       bh_arp_parse(f->data + BH_ETH_HLEN, f->len - BH_ETH_HLEN, a) == BH_WIRE_OK;
}

bool env_tx_ipv4(const struct env *e, unsigned i, struct bh_eth_repr *eth, struct bh_ipv4_repr *h)
{
	if (i >= e->ntx || i >= ENV_MAX_LOG)
		return false;
	const struct env_frame *f = &e->tx[i];
	return bh_eth_parse(f->data, f->len, eth) == BH_WIRE_OK && eth->type == BH_ETHERTYPE_IPV4 &&
	       bh_ipv4_parse(f->data + BH_ETH_HLEN, f->len - BH_ETH_HLEN, h) == BH_WIRE_OK &&
	       h->total_len == f->len - BH_ETH_HLEN;
}

bool env_resolve_peer(struct env *e)
{
	static const struct bh_mac bcast = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
	static const struct bh_mac zero = {{0}};
	uint8_t f[64];
	env_input(e, f, build_arp(f, &bcast, &PEER_MAC, BH_ARP_REQUEST, &PEER_MAC, PEER_ADDR, &zero,
				  ENV_ADDR));
	env_input(e, f, build_arp(f, &ENV_MAC, &PEER_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR,
				  &ENV_MAC, ENV_ADDR));
	struct bh_arp_info info[2];
	bool ok = bh_ip_arp_list(e->ip, info, 2) == 1 && info[0].addr == PEER_ADDR &&
		  info[0].state == BH_ARP_REACHABLE;
	env_clear_log(e);
	return ok;
}

/* ---- builders ---- */

size_t build_eth(uint8_t *out, const struct bh_mac *dst, const struct bh_mac *src, uint16_t type)
{
	struct bh_eth_repr h = {.dst = *dst, .src = *src, .type = type};
	bh_eth_emit(out, &h);
	return BH_ETH_HLEN;
}

size_t build_arp(uint8_t *out, const struct bh_mac *eth_dst, const struct bh_mac *eth_src,
		 uint16_t op, const struct bh_mac *sha, bh_ip4 spa, const struct bh_mac *tha,
		 bh_ip4 tpa)
{
	size_t n = build_eth(out, eth_dst, eth_src, BH_ETHERTYPE_ARP);
	struct bh_arp_repr a = {.op = op, .sha = *sha, .spa = spa, .tha = *tha, .tpa = tpa};
	bh_arp_emit(out + n, &a);
	return n + BH_ARP_LEN;
}

size_t build_ip(uint8_t *out, const struct bh_mac *eth_dst, const struct ipspec *s,
		const void *payload, size_t len)
{
	size_t n = build_eth(out, eth_dst ? eth_dst : &ENV_MAC, &PEER_MAC, BH_ETHERTYPE_IPV4);
	uint8_t *h = out + n;
	unsigned hlen = BH_IPV4_HLEN + s->options_len;
	h[0] = (uint8_t)(0x40 | hlen / 4);
	h[1] = s->tos;
	bh_st16(h + 2, (uint16_t)(hlen + len));
	bh_st16(h + 4, s->id);
	uint16_t frag = (uint16_t)(s->frag_off / 8);
	if (s->df)
		frag |= 0x4000;
	if (s->mf)
		frag |= 0x2000;
	bh_st16(h + 6, frag);
	h[8] = s->ttl ? s->ttl : 64;
	h[9] = s->proto;
	h[10] = h[11] = 0;
	bh_st32(h + 12, s->src);
	bh_st32(h + 16, s->dst);
	if (s->options_len)
		memcpy(h + BH_IPV4_HLEN, s->options, s->options_len);
	uint16_t c = bh_csum_fold(bh_csum_partial(h, hlen, 0));
	memcpy(h + 10, &c, 2);
	memcpy(h + hlen, payload, len);
	return n + hlen + len;
}

size_t build_udp(uint8_t *out, bh_ip4 src, bh_ip4 dst, uint16_t sport, uint16_t dport,
		 const void *payload, size_t len)
{
	struct bh_udp_repr u = {.sport = sport, .dport = dport, .len = (uint16_t)(8 + len)};
	bh_udp_emit(out, &u);
	memcpy(out + 8, payload, len);
	uint32_t sum = bh_ipv4_pseudo_sum(src, dst, BH_IPPROTO_UDP, (uint16_t)(8 + len));
	uint16_t c = bh_csum_fold(bh_csum_partial(out, 8 + len, sum));
	if (c == 0)
		c = 0xffff;
	memcpy(out + 6, &c, 2);
	return 8 + len;
}

size_t build_icmp(uint8_t *out, uint8_t type, uint8_t code, uint32_t rest, const void *data,
		  size_t len)
{
	struct bh_icmp_repr ic = {.type = type, .code = code, .rest = rest};
	bh_icmp_emit(out, &ic);
	memcpy(out + 8, data, len);
	uint16_t c = bh_csum_fold(bh_csum_partial(out, 8 + len, 0));
	memcpy(out + 2, &c, 2);
	return 8 + len;
}

unsigned env_send_fragments(struct env *e, const struct ipspec *s, const uint8_t *payload,
			    size_t len, size_t frag, const unsigned *order)
{
	unsigned n = (unsigned)((len + frag - 1) / frag);
	static uint8_t buf[ENV_BUF_SIZE];
	for (unsigned k = 0; k < n; k++) {
		unsigned i = order ? order[k] : k;
		size_t off = (size_t)i * frag;
		size_t flen = len - off < frag ? len - off : frag;
		struct ipspec f = *s;
		f.frag_off = (uint16_t)off;
		f.mf = off + flen < len;
		size_t fl = build_ip(buf, NULL, &f, payload + off, flen);
		env_input(e, buf, fl);
	}
	return n;
}
