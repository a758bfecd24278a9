/*
 * ip/stack.c - the stack's frame: configuration, Ethernet input, IPv4
 * input checks, routing, IPv4 output and fragmentation, timers, counters.
 *
 * Call chain: bh_ip_input -> (bh_arp__input | ipv4_input)
 *             ipv4_input -> (bh_reasm__input | bh_ip__transport_input)
 *             bh_ip_output -> next_hop -> (in place | bh_ip__send_segs:
 *                          copy, fragment) -> bh_arp__output
 */
#include <stdlib.h>
#include <string.h>

#include "ip/checksum.h"
#include "ip/ip_impl.h"
#include "ip/siphash.h"

/* ---- counters ---- */

static const char *const ctr_name[] = {
#define BH_IP_CTR_NAME(name, text) #name,
	BH_IP_COUNTERS(BH_IP_CTR_NAME)
#undef BH_IP_CTR_NAME
};
static const char *const ctr_text[] = {
#define BH_IP_CTR_TEXT(name, text) text,
	BH_IP_COUNTERS(BH_IP_CTR_TEXT)
#undef BH_IP_CTR_TEXT
};

const char *bh_ip_counter_name(unsigned i) { return i < BH_IP_NCOUNTERS ? ctr_name[i] : NULL; }
const char *bh_ip_counter_text(unsigned i) { return i < BH_IP_NCOUNTERS ? ctr_text[i] : NULL; }

uint64_t bh_ip_counter_value(const struct bh_ip_counters *c, unsigned i)
{
	_Static_assert(sizeof(struct bh_ip_counters) == BH_IP_NCOUNTERS * sizeof(uint64_t),
		       "counters are a flat array of uint64_t");
	if (i >= BH_IP_NCOUNTERS)
		return 0;
	uint64_t v;
	memcpy(&v, (const char *)c + i * sizeof(uint64_t), sizeof v);
	return v;
}

const struct bh_ip_counters *bh_ip_counters(const struct bh_ip *ip) { return &ip->ctr; }

/* ---- token bucket ---- */

bool bh_bucket_take(struct bh_bucket *b, uint64_t now)
{
	if (now > b->last) {
		uint64_t add = (now - b->last) * b->rate; /* ms * tokens/s = milli-tokens */
		uint64_t cap = (uint64_t)b->burst * 1000;
		b->milli = add >= cap || b->milli + add >= cap ? cap : b->milli + add;
		b->last = now;
	}
	if (b->milli < 1000)
		return false;
	b->milli -= 1000;
	return true;
}

static void bucket_init(struct bh_bucket *b, uint32_t rate, uint32_t burst)
{
	b->rate = rate;
	b->burst = burst;
	b->milli = (uint64_t)burst * 1000;
	b->last = 0;
}

/* ---- environment calls ---- */

bool bh_ip__alloc(struct bh_ip *ip, struct bh_pkt *out)
{
	if (!ip->ops.alloc(ip->ctx, out)) {
		ip->ctr.ip_no_buffers++;
		return false;
	}
	/* The environment is trusted, but a buffer without the promised
	 * headroom would make every header write below go out of bounds. */
	if (out->off < BH_IP_HEADROOM || out->off > out->size) {
		ip->ops.release(ip->ctx, out);
		ip->ctr.ip_no_buffers++;
		return false;
	}
	out->len = 0;
	out->writable = true;
	return true;
}

void bh_ip__release(struct bh_ip *ip, const struct bh_pkt *p) { ip->ops.release(ip->ctx, p); }

void bh_ip__transmit(struct bh_ip *ip, const struct bh_pkt *frame)
{
	ip->ctr.eth_tx++;
	ip->ops.transmit(ip->ctx, frame);
}

void bh_ip__event(struct bh_ip *ip, const struct bh_ip_event *ev)
{
	if (ip->ops.event)
		ip->ops.event(ip->ctx, ev);
}

/* ---- configuration ---- */

#define DEF(field, value)                \
	do {                             \
		if (c->field == 0)       \
			c->field = value; \
	} while (0)

static const char *config_fill(struct bh_ip_config *c)
{
	if (bh_mac_is_group(&c->mac) || bh_mac_is_zero(&c->mac))
		return "the MAC address must be an individual, non-zero address";
	if (c->prefix_len > 32)
		return "the prefix length must be 0..32";
	if (c->addr == 0 || bh_ip4_is_multicast(c->addr) || bh_ip4_is_loopback(c->addr) ||
	    bh_ip4_is_this_net(c->addr) || bh_ip4_is_reserved(c->addr) ||
	    c->addr == BH_IP4_BROADCAST)
		return "the address must be a unicast IPv4 address";
	bh_ip4 mask = bh_ip4_mask(c->prefix_len);
	if (c->prefix_len <= 30 && ((c->addr & ~mask) == 0 || (c->addr & ~mask) == ~mask))
		return "the address is the subnet's network or broadcast address";
	if (c->gateway) {
		if (c->prefix_len == 32 || (c->gateway & mask) != (c->addr & mask))
			return "the gateway is not on the local subnet";
		if (c->gateway == c->addr)
			return "the gateway is our own address";
	}
	DEF(mtu, 1500);
	if (c->mtu < 68 || c->mtu > 65535 - BH_ETH_HLEN)
		return "the MTU must be 68..65521 (RFC 791: every host takes 68)";
	DEF(ttl, 64);
	DEF(arp_entries, 64);
	DEF(arp_queue, 64);
	DEF(arp_queue_per_host, 8);
	DEF(arp_retry_ms, 1000);
	DEF(arp_tries, 3);
	DEF(arp_reachable_ms, 30000);
	DEF(arp_stale_ms, 60000);
	DEF(reasm_datagrams, 64);
	DEF(reasm_bytes, 256 * 1024);
	DEF(reasm_timeout_ms, 30000);
	DEF(max_pieces, BH_IP_MAX_PIECES);
	DEF(icmp_err_rate, 1000);
	DEF(icmp_err_burst, 50);
	DEF(echo_rate, 10000);
	DEF(echo_burst, 100);
	DEF(arp_reply_rate, 1000);
	DEF(arp_reply_burst, 100);
	DEF(udp_bindings, 256);
	DEF(routes, 16);
	if (c->max_pieces > BH_IP_MAX_PIECES)
		return "max_pieces is at most 64";
	if (c->large_max && (c->large_max <= c->mtu || c->large_max > 65535 - BH_ETH_HLEN))
		return "large_max must be above the MTU and at most 65535 - 14";
	if (c->arp_entries > 65536 || c->arp_queue > 65536 || c->reasm_datagrams > 65536 ||
	    c->routes > 4096 || c->udp_bindings > 65535)
		return "a table size is beyond its limit";
	if (c->arp_queue_per_host > c->arp_queue)
		return "arp_queue_per_host exceeds arp_queue";
	return NULL;
}
#undef DEF

struct bh_ip *bh_ip_create(const struct bh_ip_config *cfg, const struct bh_ip_ops *ops, void *ctx,
			   const char **err)
{
	const char *dummy;
	if (!err)
		err = &dummy;
	if (!cfg || !ops || !ops->alloc || !ops->release || !ops->transmit || !ops->deliver) {
		*err = "configuration and the alloc, release, transmit and deliver calls are required";
		return NULL;
	}
	struct bh_ip *ip = calloc(1, sizeof *ip);
	if (!ip) {
		*err = "out of memory";
		return NULL;
	}
	ip->cfg = *cfg;
	if ((*err = config_fill(&ip->cfg)) != NULL) {
		free(ip);
		return NULL;
	}
	const struct bh_ip_config *c = &ip->cfg;
	ip->ops = *ops;
	ip->ctx = ctx;
	ip->mask = bh_ip4_mask(c->prefix_len);
	ip->bcast = c->prefix_len <= 30 ? (c->addr | ~ip->mask) : BH_IP4_BROADCAST;
	ip->max_routes = c->routes + 2;
	ip->routes = calloc(ip->max_routes, sizeof *ip->routes);
	ip->arp = calloc(c->arp_entries, sizeof *ip->arp);
	ip->waitq = calloc(c->arp_queue, sizeof *ip->waitq);
	ip->reasm = calloc(c->reasm_datagrams, sizeof *ip->reasm);
	ip->frag_store = calloc((size_t)c->reasm_datagrams * c->max_pieces, sizeof *ip->frag_store);
	uint32_t slots = 16;
	while (slots < 2 * c->udp_bindings)
		slots *= 2;
	ip->udp_mask = slots - 1;
	ip->udp = calloc(slots, sizeof *ip->udp);
	if (!ip->routes || !ip->arp || !ip->waitq || !ip->reasm || !ip->frag_store ||
	    !ip->udp) {
		*err = "out of memory";
		bh_ip_destroy(ip);
		return NULL;
	}
	for (uint32_t i = 0; i < c->reasm_datagrams; i++)
		ip->reasm[i].frag = &ip->frag_store[(size_t)i * c->max_pieces];
	/* RFC 1122 3.3.1.1: on-link destinations go direct, the rest to a
	 * gateway; both are plain routes here. */
	if (c->prefix_len > 0)
		ip->routes[ip->nroutes++] = (struct route){c->addr & ip->mask, c->prefix_len, 0};
	if (c->gateway)
		ip->routes[ip->nroutes++] = (struct route){0, 0, c->gateway};
	bucket_init(&ip->icmp_err, c->icmp_err_rate, c->icmp_err_burst);
	bucket_init(&ip->echo, c->echo_rate, c->echo_burst);
	bucket_init(&ip->arp_reply, c->arp_reply_rate, c->arp_reply_burst);
	return ip;
}

void bh_ip_destroy(struct bh_ip *ip)
{
	if (!ip)
		return;
	if (ip->waitq && ip->arp)
		bh_arp__flush(ip);
	if (ip->reasm && ip->frag_store)
		bh_reasm__flush(ip);
	free(ip->routes);
	free(ip->arp);
	free(ip->waitq);
	free(ip->reasm);
	free(ip->frag_store);
	free(ip->udp);
	free(ip);
}

bh_ip4 bh_ip_addr(const struct bh_ip *ip) { return ip->cfg.addr; }
uint16_t bh_ip_mtu(const struct bh_ip *ip) { return ip->cfg.mtu; }

unsigned bh_ip_held(const struct bh_ip *ip)
{
	unsigned n = ip->nwaiting;
	for (uint32_t i = 0; i < ip->cfg.reasm_datagrams; i++)
		if (ip->reasm[i].used)
			n += ip->reasm[i].nfrags;
	return n;
}

/* ---- addresses and routes ---- */

bool bh_ip__is_broadcast(const struct bh_ip *ip, bh_ip4 a)
{
	return a == BH_IP4_BROADCAST || a == ip->bcast;
}

int bh_ip_route_add(struct bh_ip *ip, bh_ip4 prefix, uint8_t plen, bh_ip4 gw)
{
	if (plen > 32 || (prefix & ~bh_ip4_mask(plen)) != 0)
		return -EINVAL;
	if (gw) {
		/* RFC 1122 3.3.1.1: a gateway must be directly reachable. */
		if (ip->cfg.prefix_len == 32 || (gw & ip->mask) != (ip->cfg.addr & ip->mask) ||
		    gw == ip->cfg.addr)
			return -ENETUNREACH;
	}
	if (ip->nroutes == ip->max_routes)
		return -ENOSPC;
	ip->routes[ip->nroutes++] = (struct route){prefix, plen, gw};
	return 0;
}

int bh_ip_route_lookup(const struct bh_ip *ip, bh_ip4 dst, bh_ip4 *next_hop)
{
	int best = -1;
	for (uint32_t i = 0; i < ip->nroutes; i++) {
		const struct route *r = &ip->routes[i];
		if ((dst & bh_ip4_mask(r->plen)) != r->prefix)
			continue;
		if (best < 0 || r->plen > ip->routes[best].plen)
			best = (int)i;
	}
	if (best < 0)
		return -ENETUNREACH;
	*next_hop = ip->routes[best].gw ? ip->routes[best].gw : dst;
	return 0;
}

int bh_ip_join(struct bh_ip *ip, bh_ip4 group)
{
	if (!bh_ip4_is_multicast(group))
		return -EINVAL;
	for (uint32_t i = 0; i < ip->ngroups; i++)
		if (ip->groups[i] == group)
			return -EEXIST;
	if (ip->ngroups == BH_IP_MAX_GROUPS)
		return -ENOSPC;
	ip->groups[ip->ngroups] = group;
	ip->group_macs[ip->ngroups] = bh_mac_of_group(group);
	ip->ngroups++;
	return 0;
}

int bh_ip_leave(struct bh_ip *ip, bh_ip4 group)
{
	for (uint32_t i = 0; i < ip->ngroups; i++) {
		if (ip->groups[i] == group) {
			ip->ngroups--;
			ip->groups[i] = ip->groups[ip->ngroups];
			ip->group_macs[i] = ip->group_macs[ip->ngroups];
			return 0;
		}
	}
	return -ENOENT;
}

static bool joined(const struct bh_ip *ip, bh_ip4 group)
{
	for (uint32_t i = 0; i < ip->ngroups; i++)
		if (ip->groups[i] == group)
			return true;
	return false;
}

/* ---- IP ID (RFC 7739 4.2) ---- */

uint16_t bh_ip_next_id(struct bh_ip *ip, bh_ip4 src, bh_ip4 dst, uint8_t proto)
{
	uint8_t key[9];
	bh_st32(key, src);
	bh_st32(key + 4, dst);
	key[8] = proto;
	uint64_t h = bh_siphash(ip->cfg.secret, key, sizeof key);
	uint16_t *ctr = &ip->ids[h % BH_IP_ID_BUCKETS];
	(*ctr)++;
	/* The keyed offset hides where each bucket's counter started. */
	return (uint16_t)(*ctr + (uint16_t)(h >> 48));
}

/* ---- input ---- */

/* RFC 1122 3.2.1.3: sources that cannot be a single host are discarded;
 * so is our own address arriving from the wire (a spoof or a loop). */
static bool martian_source(const struct bh_ip *ip, bh_ip4 s)
{
	return bh_ip4_is_this_net(s) || bh_ip4_is_loopback(s) || bh_ip4_is_multicast(s) ||
	       bh_ip4_is_reserved(s) || bh_ip__is_broadcast(ip, s) || s == ip->cfg.addr;
}

uint32_t bh_ip_rx_sum(const struct bh_ip_rx *rx, uint32_t len, uint32_t sum)
{
	for (unsigned i = 0; i < rx->npieces && len; i++) {
		uint32_t n = rx->piece[i].len < len ? rx->piece[i].len : len;
		sum = bh_csum_partial(bh_pkt_data(&rx->piece[i]), n, sum);
		len -= n;
	}
	return sum;
}

static void release_pieces(struct bh_ip *ip)
{
	for (unsigned i = 0; i < ip->rx.npieces; i++)
		bh_ip__release(ip, &ip->rx.piece[i]);
	ip->rx.npieces = 0;
}

void bh_ip__transport_input(struct bh_ip *ip, uint64_t now, const struct ip_dgram *d)
{
	struct bh_ip_rx *rx = &ip->rx;
	rx->proto = d->hdr.proto;
	rx->ttl = d->hdr.ttl;
	rx->tos = d->hdr.tos;
	rx->cast = d->cast;
	rx->src = d->hdr.src;
	rx->dst = d->hdr.dst;
	rx->sport = rx->dport = 0;
	rx->cookie = 0;

	bool kept = false;
	switch (d->hdr.proto) {
	case BH_IPPROTO_ICMP:
		kept = bh_icmp__input(ip, now, d);
		break;
	case BH_IPPROTO_UDP:
		kept = bh_udp__input(ip, now, d);
		break;
	case BH_IPPROTO_TCP:
		/* RFC 1122 4.2.3.10: TCP is unicast only. */
		if (d->cast != BH_IP_UNICAST) {
			ip->ctr.ip_not_ours++;
			break;
		}
		ip->ctr.ip_delivered++;
		ip->ops.deliver(ip->ctx, rx);
		kept = true;
		break;
	default:
		ip->ctr.ip_unknown_proto++;
		/* RFC 1122 3.2.2.1: protocol unreachable. */
		bh_icmp__error(ip, now, BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PROTOCOL, d,
			       bh_pkt_data(&rx->piece[0]), rx->piece[0].len);
		break;
	}
	if (!kept)
		release_pieces(ip);
	ip->rx.npieces = 0;
}

/* The checks every IPv4 datagram passes, whole or in pieces; false
 * (counted) when it is dropped. */
static bool ipv4_accept(struct bh_ip *ip, const uint8_t *p, size_t len, bool link_group,
			struct bh_ipv4_repr *hp, enum bh_ip_cast *castp)
{
	struct bh_ipv4_repr h;
	ip->ctr.ip_rx++;
	enum bh_wire_err e = bh_ipv4_parse(p, len, &h);
	if (e == BH_WIRE_IP_CHECKSUM) {
		ip->ctr.ip_bad_checksum++;
		return false;
	}
	if (e == BH_WIRE_IP_FRAG_BEYOND) {
		ip->ctr.frag_bad++;
		return false;
	}
	if (e != BH_WIRE_OK) {
		ip->ctr.ip_bad_header++;
		return false;
	}
	if (martian_source(ip, h.src)) {
		ip->ctr.ip_bad_src++;
		return false;
	}
	/* RFC 1122 3.3.4: we are a host and forward nothing. */
	enum bh_ip_cast cast;
	if (h.dst == ip->cfg.addr && !link_group)
		cast = BH_IP_UNICAST;
	else if (bh_ip__is_broadcast(ip, h.dst))
		cast = BH_IP_BROADCAST;
	else if (bh_ip4_is_multicast(h.dst) && joined(ip, h.dst))
		cast = BH_IP_MULTICAST;
	else {
		ip->ctr.ip_not_ours++;
		return false;
	}
	/* Linux's default (accept_source_route=0): a host has no use for a
	 * source route, and honouring one lets a sender steer our replies. */
	if (h.source_routed) {
		ip->ctr.ip_source_routed++;
		return false;
	}
	/* RFC 1122 3.2.1.7: a host MUST NOT discard a datagram just because
	 * its TTL is below 2. TTL 0 should never be on a wire; count it. */
	if (h.ttl == 0)
		ip->ctr.ip_ttl_zero++;

	*hp = h;
	*castp = cast;
	return true;
}

static bool ipv4_input(struct bh_ip *ip, uint64_t now, const struct bh_pkt *frame,
		       const uint8_t *p, size_t len, bool link_group)
{
	struct bh_ipv4_repr h;
	enum bh_ip_cast cast;
	if (!ipv4_accept(ip, p, len, link_group, &h, &cast))
		return false;
	if (h.mf || h.frag_off)
		return bh_reasm__input(ip, now, frame, &h, cast);

	if (h.payload_len < bh_ip__transport_min(h.proto)) {
		ip->ctr.ip_short_transport++;
		return false;
	}
	struct ip_dgram d = {.hdr = h, .iph = p, .cast = cast};
	ip->rx.npieces = 1;
	ip->rx.len = h.payload_len;
	ip->rx.csum_valid = frame->csum == BH_CSUM_VALID;
	ip->rx.piece[0] = *frame;
	ip->rx.piece[0].off = (uint32_t)(h.payload - frame->base);
	ip->rx.piece[0].len = h.payload_len;
	bh_ip__transport_input(ip, now, &d); /* the frame is a piece now */
	return true;
}

static bool eth_dst_ours(const struct bh_ip *ip, const struct bh_mac *dst, bool *group)
{
	*group = false;
	if (bh_mac_eq(dst, &ip->cfg.mac))
		return true;
	*group = true;
	if (bh_mac_is_broadcast(dst))
		return true;
	for (uint32_t i = 0; i < ip->ngroups; i++)
		if (bh_mac_eq(dst, &ip->group_macs[i]))
			return true;
	return false;
}

void bh_ip_input(struct bh_ip *ip, uint64_t now, const struct bh_pkt *frame)
{
	bool kept = false;
	ip->ctr.eth_rx++;
	/* The environment vouches for base/size; off and len are checked
	 * here once, so nothing below can index past the buffer. */
	if (frame->off > frame->size || frame->len > frame->size - frame->off) {
		ip->ctr.eth_bad++;
		goto out;
	}
	const uint8_t *p = bh_pkt_data(frame);
	struct bh_eth_repr eth;
	enum bh_wire_err e = bh_eth_parse(p, frame->len, &eth);
	if (e == BH_WIRE_ETH_VLAN) {
		ip->ctr.eth_vlan++;
		goto out;
	}
	if (e != BH_WIRE_OK) {
		ip->ctr.eth_bad++;
		goto out;
	}
	bool group;
	if (!eth_dst_ours(ip, &eth.dst, &group)) {
		ip->ctr.eth_not_ours++;
		goto out;
	}
	if (bh_mac_eq(&eth.src, &ip->cfg.mac)) {
		ip->ctr.eth_own_src++;
		goto out;
	}
	switch (eth.type) {
	case BH_ETHERTYPE_IPV4:
		kept = ipv4_input(ip, now, frame, p + BH_ETH_HLEN, frame->len - BH_ETH_HLEN, group);
		break;
	case BH_ETHERTYPE_ARP:
		bh_arp__input(ip, now, p + BH_ETH_HLEN, frame->len - BH_ETH_HLEN);
		break;
	default:
		ip->ctr.eth_unknown_type++;
		break;
	}
out:
	if (!kept)
		bh_ip__release(ip, frame);
}

/* A large frame in pieces (ip.h): one unfragmented datagram to us, its
 * Ethernet, IPv4 and transport headers whole in the first piece. */
void bh_ip_input_chain(struct bh_ip *ip, uint64_t now, const struct bh_pkt *pieces, unsigned n)
{
	if (n == 1) {
		bh_ip_input(ip, now, &pieces[0]);
		return;
	}
	ip->ctr.eth_rx++;
	uint32_t total = 0;
	bool ok = n > 1 && n <= BH_IP_MAX_PIECES && ip->cfg.large_max != 0;
	for (unsigned i = 0; ok && i < n; i++) {
		const struct bh_pkt *f = &pieces[i];
		ok = f->off <= f->size && f->len <= f->size - f->off && f->len > 0;
		total += ok ? f->len : 0;
	}
	/* Room for the longest headers in the first piece. */
	const uint32_t head = BH_ETH_HLEN + 60u + 60u;
	ok = ok && total <= BH_ETH_HLEN + ip->cfg.large_max && pieces[0].len >= head;
	struct bh_eth_repr eth;
	bool group = false;
	const uint8_t *p = ok ? bh_pkt_data(&pieces[0]) : NULL;
	if (!ok || bh_eth_parse(p, pieces[0].len, &eth) != BH_WIRE_OK ||
	    eth.type != BH_ETHERTYPE_IPV4 || !eth_dst_ours(ip, &eth.dst, &group) || group ||
	    bh_mac_eq(&eth.src, &ip->cfg.mac)) {
		ip->ctr.eth_bad_large++;
		goto drop;
	}
	struct bh_ipv4_repr h;
	enum bh_ip_cast cast;
	if (!ipv4_accept(ip, p + BH_ETH_HLEN, total - BH_ETH_HLEN, false, &h, &cast))
		goto drop;
	uint32_t first = (uint32_t)(h.payload - bh_pkt_data(&pieces[0]));
	/* An empty payload would leave the first piece (which holds the
	 * headers an ICMP error quotes) released below: no large frame has
	 * one. */
	if (h.mf || h.frag_off || cast != BH_IP_UNICAST || h.payload_len == 0 ||
	    h.payload_len < bh_ip__transport_min(h.proto) || first >= pieces[0].len) {
		ip->ctr.eth_bad_large++;
		goto drop;
	}
	/* The pieces, trimmed to the datagram (a frame never pads past 60
	 * bytes, but a sender may). */
	struct bh_ip_rx *rx = &ip->rx;
	uint32_t left = h.payload_len;
	rx->npieces = 0;
	for (unsigned i = 0; i < n; i++) {
		struct bh_pkt q = pieces[i];
		if (i == 0) {
			q.off += first;
			q.len -= first;
		}
		if (left == 0) {
			bh_ip__release(ip, &pieces[i]);
			continue;
		}
		if (q.len > left)
			q.len = left;
		left -= q.len;
		rx->piece[rx->npieces++] = q;
	}
	rx->len = h.payload_len;
	rx->csum_valid = pieces[0].csum == BH_CSUM_VALID;
	ip->ctr.ip_rx_large++;
	struct ip_dgram d = {.hdr = h, .iph = p + BH_ETH_HLEN, .cast = cast};
	bh_ip__transport_input(ip, now, &d); /* the pieces are its now */
	return;
drop:
	for (unsigned i = 0; i < n; i++)
		bh_ip__release(ip, &pieces[i]);
}

/* ---- output ---- */

static void fill_ipv4(struct bh_ip *ip, struct bh_ipv4_repr *h, const struct bh_ip_tx *tx,
		      uint16_t id)
{
	memset(h, 0, sizeof *h);
	h->tos = tx->tos;
	h->id = id;
	h->df = tx->df;
	h->ttl = tx->ttl ? tx->ttl : ip->cfg.ttl;
	h->proto = tx->proto;
	h->src = ip->cfg.addr;
	h->dst = tx->dst;
}

/* Where a datagram to tx->dst goes on the link. */
static int next_hop(struct bh_ip *ip, const struct bh_ip_tx *tx, bh_ip4 *hop)
{
	/* Ourselves included: there is no loopback interface here, and an
	 * ARP request for our own address would read as an announcement. */
	if (tx->dst == 0 || bh_ip4_is_loopback(tx->dst) || bh_ip4_is_reserved(tx->dst) ||
	    bh_ip4_is_this_net(tx->dst) || tx->dst == ip->cfg.addr)
		return -EINVAL;
	if (bh_ip__is_broadcast(ip, tx->dst) || bh_ip4_is_multicast(tx->dst)) {
		*hop = tx->dst;
		return 0;
	}
	if (bh_ip_route_lookup(ip, tx->dst, hop) < 0) {
		ip->ctr.ip_no_route++;
		return -ENETUNREACH;
	}
	return 0;
}

/* Copies bytes [from, from + n) of the segment list into dst. */
static void gather(uint8_t *dst, const struct seg *segs, unsigned nseg, uint32_t from, uint32_t n)
{
	for (unsigned i = 0; i < nseg && n; i++) {
		if (from >= segs[i].len) {
			from -= segs[i].len;
			continue;
		}
		uint32_t take = segs[i].len - from < n ? segs[i].len - from : n;
		memcpy(dst, segs[i].p + from, take);
		dst += take;
		n -= take;
		from = 0;
	}
}

int bh_ip__send_segs(struct bh_ip *ip, uint64_t now, const struct bh_ip_tx *tx,
		     const struct seg *segs, unsigned nseg)
{
	uint32_t total = 0;
	for (unsigned i = 0; i < nseg; i++)
		total += segs[i].len;
	bh_ip4 hop;
	int rc = next_hop(ip, tx, &hop);
	if (rc < 0)
		return rc;
	if (total > BH_IPV4_MAX_LEN - BH_IPV4_HLEN) {
		ip->ctr.ip_tx_too_big++;
		return -EMSGSIZE;
	}
	uint32_t mtu_payload = ip->cfg.mtu - BH_IPV4_HLEN;
	if (total > mtu_payload && tx->df) {
		ip->ctr.ip_tx_too_big++;
		return -EMSGSIZE;
	}
	/* RFC 791 3.2 fragmentation: every fragment but the last carries a
	 * multiple of 8 bytes. */
	uint32_t chunk = total > mtu_payload ? (mtu_payload & ~7u) : total;
	struct bh_ipv4_repr h;
	fill_ipv4(ip, &h, tx, bh_ip_next_id(ip, ip->cfg.addr, tx->dst, tx->proto));
	ip->ctr.ip_tx++;
	uint32_t off = 0;
	int result = 0;
	do {
		uint32_t n = total - off < chunk ? total - off : chunk;
		struct bh_pkt f;
		if (!bh_ip__alloc(ip, &f))
			return -ENOBUFS;
		if (f.size - f.off < n) {
			bh_ip__release(ip, &f);
			ip->ctr.ip_tx_too_big++;
			return -EMSGSIZE;
		}
		uint8_t *iph = f.base + f.off - BH_IPV4_HLEN;
		gather(f.base + f.off, segs, nseg, off, n);
		h.total_len = (uint16_t)(BH_IPV4_HLEN + n);
		h.frag_off = (uint16_t)off;
		h.mf = off + n < total;
		bh_ipv4_emit(iph, &h);
		if (chunk < total)
			ip->ctr.frag_tx++;
		f.off -= BH_IP_HEADROOM;
		f.len = BH_IP_HEADROOM + n;
		rc = bh_arp__output(ip, now, &f, hop, tx);
		if (rc < 0)
			return rc;
		result |= rc;
		off += n;
	} while (off < total);
	return result;
}

int bh_ip_output(struct bh_ip *ip, uint64_t now, const struct bh_pkt *pkt, const struct bh_ip_tx *tx)
{
	if (pkt->off > pkt->size || pkt->len > pkt->size - pkt->off) {
		bh_ip__release(ip, pkt);
		return -EINVAL;
	}
	uint32_t mtu_payload = ip->cfg.mtu - BH_IPV4_HLEN;
	/* A large TCP segment (ip.h) goes out whole: the link or the driver
	 * cuts it at bh_pkt.gso bytes of payload. */
	if (pkt->len > mtu_payload && tx->proto == BH_IPPROTO_TCP && pkt->gso &&
	    ip->cfg.large_max > ip->cfg.mtu && pkt->len <= ip->cfg.large_max - BH_IPV4_HLEN)
		mtu_payload = ip->cfg.large_max - BH_IPV4_HLEN;
	if (pkt->len > mtu_payload || !pkt->writable || pkt->off < BH_IP_HEADROOM) {
		/* A send chain's payload is not here to copy; TCP sizes its
		 * segments to the path, so this is a bug upstream (or a
		 * changed MTU): counted, dropped, resent as the sender may. */
		if (pkt->chain) {
			ip->ctr.ip_tx_chain_drop++;
			bh_ip__release(ip, pkt);
			return -EMSGSIZE;
		}
		/* Fragments, or no room for headers: copy. A checksum left
		 * to the device is completed first: fragments carry no
		 * mark. */
		if (pkt->csum == BH_CSUM_PARTIAL && pkt->writable)
			bh_l4_csum_complete(bh_pkt_data(pkt), pkt->len, tx->proto);
		struct seg s = {bh_pkt_data(pkt), pkt->len};
		int rc = bh_ip__send_segs(ip, now, tx, &s, 1);
		bh_ip__release(ip, pkt);
		return rc;
	}
	bh_ip4 hop;
	int rc = next_hop(ip, tx, &hop);
	if (rc < 0) {
		bh_ip__release(ip, pkt);
		return rc;
	}
	/* The common case: headers into the headroom, no copy. */
	struct bh_ipv4_repr h;
	fill_ipv4(ip, &h, tx, bh_ip_next_id(ip, ip->cfg.addr, tx->dst, tx->proto));
	h.total_len = (uint16_t)(BH_IPV4_HLEN + pkt->len);
	bh_ipv4_emit(bh_pkt_data(pkt) - BH_IPV4_HLEN, &h);
	ip->ctr.ip_tx++;
	struct bh_pkt f = *pkt;
	f.off -= BH_IP_HEADROOM;
	f.len += BH_IP_HEADROOM;
	return bh_arp__output(ip, now, &f, hop, tx);
}

/* ---- timers ---- */

void bh_ip_start(struct bh_ip *ip, uint64_t now)
{
	ip->announce_left = 2;
	ip->announce_at = now;
	bh_ip_tick(ip, now);
}

uint64_t bh_ip_tick(struct bh_ip *ip, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	if (ip->announce_left) {
		if (now >= ip->announce_at) {
			bh_arp__announce(ip);
			ip->announce_left--;
			/* RFC 5227 1.1: ANNOUNCE_INTERVAL 2 seconds. */
			ip->announce_at = now + 2000;
		}
		if (ip->announce_left && ip->announce_at < next)
			next = ip->announce_at;
	}
	bh_arp__tick(ip, now, &next);
	bh_reasm__tick(ip, now, &next);
	return next;
}
