/*
 * ip/ip_wire.c - checked parsers and emitters for the formats in ip/ip_wire.h.
 */
#include "ip/ip_wire.h"

#include <stdio.h>

#include "ip/checksum.h"

static const char *const wire_err_text[BH_WIRE_NERRORS] = {
#define BH_WIRE_TEXT(name, text) [BH_WIRE_##name] = text,
	BH_WIRE_ERRORS(BH_WIRE_TEXT)
#undef BH_WIRE_TEXT
};

const char *bh_wire_strerror(enum bh_wire_err e)
{
	if ((unsigned)e >= BH_WIRE_NERRORS)
		return "unknown wire error";
	return wire_err_text[e];
}

char *bh_ip4_text(char *out, size_t n, bh_ip4 a)
{
	snprintf(out, n, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	return out;
}

/* ---- Ethernet II ---- */

enum bh_wire_err bh_eth_parse(const uint8_t *p, size_t len, struct bh_eth_repr *out)
{
	if (len < BH_ETH_HLEN)
		return BH_WIRE_TRUNCATED;
	memcpy(out->dst.b, p, 6);
	memcpy(out->src.b, p + 6, 6);
	out->type = bh_ld16(p + 12);
	/* IEEE 802.3: values up to 1500 are a length (802.2 LLC follows),
	 * 1536 and up an Ethernet II type; 1501..1535 are undefined. */
	if (out->type < 0x0600)
		return BH_WIRE_ETH_LENGTH_FIELD;
	if (out->type == BH_ETHERTYPE_VLAN || out->type == BH_ETHERTYPE_QINQ)
		return BH_WIRE_ETH_VLAN;
	/* A source address is always an individual address (802.3 3.2.3). */
	if (bh_mac_is_group(&out->src))
		return BH_WIRE_ETH_SRC_GROUP;
	return BH_WIRE_OK;
}

void bh_eth_emit(uint8_t *p, const struct bh_eth_repr *e)
{
	memcpy(p, e->dst.b, 6);
	memcpy(p + 6, e->src.b, 6);
	bh_st16(p + 12, e->type);
}

/* ---- ARP ---- */

enum bh_wire_err bh_arp_parse(const uint8_t *p, size_t len, struct bh_arp_repr *out)
{
	if (len < BH_ARP_LEN)
		return BH_WIRE_TRUNCATED;
	/* RFC 826 "Packet Reception": ar$hrd, ar$pro and the lengths must be
	 * ones we speak, else the packet is discarded. */
	if (bh_ld16(p) != 1 || bh_ld16(p + 2) != BH_ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4)
		return BH_WIRE_ARP_FORMAT;
	out->op = bh_ld16(p + 6);
	if (out->op != BH_ARP_REQUEST && out->op != BH_ARP_REPLY)
		return BH_WIRE_ARP_OP;
	memcpy(out->sha.b, p + 8, 6);
	out->spa = bh_ld32(p + 14);
	memcpy(out->tha.b, p + 18, 6);
	out->tpa = bh_ld32(p + 24);
	return BH_WIRE_OK;
}

void bh_arp_emit(uint8_t *p, const struct bh_arp_repr *a)
{
	bh_st16(p, 1);
	bh_st16(p + 2, BH_ETHERTYPE_IPV4);
	p[4] = 6;
	p[5] = 4;
	bh_st16(p + 6, a->op);
	memcpy(p + 8, a->sha.b, 6);
	bh_st32(p + 14, a->spa);
	memcpy(p + 18, a->tha.b, 6);
	bh_st32(p + 24, a->tpa);
}

/* ---- IPv4 ---- */

/* RFC 791 3.1 / RFC 1122 3.2.1.8: walks the options. Single-byte EOL and
 * NOP; every other option has a length byte of at least 2 that must stay
 * within the header. Unknown options are skipped, not refused. */
static enum bh_wire_err ipv4_walk_options(const uint8_t *o, size_t n, bool *source_routed)
{
	size_t i = 0;
	while (i < n) {
		uint8_t type = o[i];
		if (type == BH_IPV4_OPT_EOL)
			break;
		if (type == BH_IPV4_OPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= n)
			return BH_WIRE_IP_OPTIONS;
		uint8_t olen = o[i + 1];
		if (olen < 2 || olen > n - i)
			return BH_WIRE_IP_OPTIONS;
		if (type == BH_IPV4_OPT_LSRR || type == BH_IPV4_OPT_SSRR)
			*source_routed = true;
		i += olen;
	}
	return BH_WIRE_OK;
}

enum bh_wire_err bh_ipv4_parse(const uint8_t *p, size_t len, struct bh_ipv4_repr *out)
{
	if (len < BH_IPV4_HLEN)
		return BH_WIRE_TRUNCATED;
	if ((p[0] >> 4) != 4)
		return BH_WIRE_IP_VERSION;
	unsigned hlen = (unsigned)(p[0] & 0xf) * 4;
	if (hlen < BH_IPV4_HLEN || hlen > len)
		return BH_WIRE_IP_IHL;
	uint16_t total = bh_ld16(p + 2);
	if (total < hlen || total > len)
		return BH_WIRE_IP_TOTAL_LEN;
	if (bh_csum_fold(bh_csum_partial(p, hlen, 0)) != 0)
		return BH_WIRE_IP_CHECKSUM;

	uint16_t frag = bh_ld16(p + 6);
	out->hlen = (uint8_t)hlen;
	out->tos = p[1];
	out->total_len = total;
	out->id = bh_ld16(p + 4);
	out->evil = frag & 0x8000;
	out->df = frag & 0x4000;
	out->mf = frag & 0x2000;
	out->frag_off = (uint16_t)((frag & 0x1fff) * 8);
	out->ttl = p[8];
	out->proto = p[9];
	out->src = bh_ld32(p + 12);
	out->dst = bh_ld32(p + 16);
	out->source_routed = false;
	out->payload = p + hlen;
	out->payload_len = (uint16_t)(total - hlen);
	/* "Ping of death": the offset can place a fragment's end past the
	 * largest datagram. */
	if ((uint32_t)out->frag_off + out->payload_len > BH_IPV4_MAX_LEN - hlen)
		return BH_WIRE_IP_FRAG_BEYOND;
	if (hlen > BH_IPV4_HLEN)
		return ipv4_walk_options(p + BH_IPV4_HLEN, hlen - BH_IPV4_HLEN,
					 &out->source_routed);
	return BH_WIRE_OK;
}

void bh_ipv4_emit(uint8_t *p, const struct bh_ipv4_repr *ip)
{
	p[0] = 0x45;
	p[1] = ip->tos;
	bh_st16(p + 2, ip->total_len);
	bh_st16(p + 4, ip->id);
	uint16_t frag = (uint16_t)(ip->frag_off / 8);
	if (ip->df)
		frag |= 0x4000;
	if (ip->mf)
		frag |= 0x2000;
	bh_st16(p + 6, frag);
	p[8] = ip->ttl;
	p[9] = ip->proto;
	p[10] = p[11] = 0;
	bh_st32(p + 12, ip->src);
	bh_st32(p + 16, ip->dst);
	uint16_t c = bh_csum_fold(bh_csum_partial(p, BH_IPV4_HLEN, 0));
	memcpy(p + 10, &c, 2);
}

uint32_t bh_ipv4_pseudo_sum(bh_ip4 src, bh_ip4 dst, uint8_t proto, uint16_t len)
{
	uint8_t ph[12];
	bh_st32(ph, src);
	bh_st32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = proto;
	bh_st16(ph + 10, len);
	return bh_csum_partial(ph, sizeof ph, 0);
}

static unsigned l4_csum_field(uint8_t proto)
{
	return proto == BH_IPPROTO_TCP ? 16u : proto == BH_IPPROTO_UDP ? 6u : 0u;
}

void bh_l4_partial(uint8_t *l4, uint32_t len, uint8_t proto, bh_ip4 src, bh_ip4 dst)
{
	unsigned at = l4_csum_field(proto);
	if (at == 0 || len < at + 2u)
		return;
	uint16_t ck = (uint16_t)~bh_csum_fold(bh_ipv4_pseudo_sum(src, dst, proto, (uint16_t)len));
	memcpy(l4 + at, &ck, 2);
}

void bh_l4_csum_complete(uint8_t *l4, uint32_t len, uint8_t proto)
{
	unsigned at = l4_csum_field(proto);
	if (at == 0 || len < at + 2u)
		return;
	uint16_t ck = bh_csum_fold(bh_csum_partial(l4, len, 0));
	/* UDP: a computed 0 goes out as all ones (RFC 768). */
	if (ck == 0 && proto == BH_IPPROTO_UDP)
		ck = 0xffff;
	memcpy(l4 + at, &ck, 2);
}

bool bh_frame_csum_complete(uint8_t *frame, uint32_t len)
{
	if (len < BH_ETH_HLEN + BH_IPV4_HLEN || bh_ld16(frame + 12) != BH_ETHERTYPE_IPV4)
		return false;
	const uint8_t *iph = frame + BH_ETH_HLEN;
	uint32_t hlen = (uint32_t)(iph[0] & 0x0f) * 4u, total = bh_ld16(iph + 2);
	if ((iph[0] >> 4) != 4 || hlen < BH_IPV4_HLEN || total < hlen ||
	    total > len - BH_ETH_HLEN || (bh_ld16(iph + 6) & 0x3fff) != 0)
		return false;
	uint8_t proto = iph[9];
	if (l4_csum_field(proto) == 0)
		return false;
	bh_l4_csum_complete(frame + BH_ETH_HLEN + hlen, total - hlen, proto);
	return true;
}

/* ---- ICMP ---- */

enum bh_wire_err bh_icmp_parse(const uint8_t *p, size_t len, struct bh_icmp_repr *out)
{
	if (len < BH_ICMP_HLEN)
		return BH_WIRE_TRUNCATED;
	out->type = p[0];
	out->code = p[1];
	out->rest = bh_ld32(p + 4);
	return BH_WIRE_OK;
}

void bh_icmp_emit(uint8_t *p, const struct bh_icmp_repr *ic)
{
	p[0] = ic->type;
	p[1] = ic->code;
	p[2] = p[3] = 0;
	bh_st32(p + 4, ic->rest);
}

/* ---- UDP ---- */

enum bh_wire_err bh_udp_parse(const uint8_t *p, size_t avail, struct bh_udp_repr *out)
{
	if (avail < BH_UDP_HLEN)
		return BH_WIRE_TRUNCATED;
	out->sport = bh_ld16(p);
	out->dport = bh_ld16(p + 2);
	out->len = bh_ld16(p + 4);
	memcpy(&out->checksum, p + 6, 2);
	if (out->len < BH_UDP_HLEN || out->len > avail)
		return BH_WIRE_UDP_LENGTH;
	return BH_WIRE_OK;
}

void bh_udp_emit(uint8_t *p, const struct bh_udp_repr *u)
{
	bh_st16(p, u->sport);
	bh_st16(p + 2, u->dport);
	bh_st16(p + 4, u->len);
	memcpy(p + 6, &u->checksum, 2);
}

/* The header lengths of a frame bh_tcp_gso_count() takes: 0 if not one. */
static uint32_t gso_headers(const uint8_t *frame, uint32_t len, uint32_t *plen)
{
	if (len < BH_ETH_HLEN + BH_IPV4_HLEN + 20u || bh_ld16(frame + 12) != BH_ETHERTYPE_IPV4)
		return 0;
	const uint8_t *iph = frame + BH_ETH_HLEN;
	uint32_t ihl = (uint32_t)(iph[0] & 0x0f) * 4u, total = bh_ld16(iph + 2);
	if ((iph[0] >> 4) != 4 || ihl < BH_IPV4_HLEN || iph[9] != BH_IPPROTO_TCP ||
	    (bh_ld16(iph + 6) & 0x3fff) != 0 || total > len - BH_ETH_HLEN ||
	    total < ihl + 20u)
		return 0;
	const uint8_t *th = iph + ihl;
	uint32_t thl = (uint32_t)(th[12] >> 4) * 4u;
	if (thl < 20u || ihl + thl > total)
		return 0;
	*plen = total - ihl - thl;
	return BH_ETH_HLEN + ihl + thl;
}

uint32_t bh_tcp_frame_hdrs(const uint8_t *frame, uint32_t len, uint32_t *plen)
{
	return gso_headers(frame, len, plen);
}

uint32_t bh_tcp_gso_count(const uint8_t *frame, uint32_t len, uint32_t mss, uint32_t room)
{
	uint32_t plen;
	uint32_t hdrs = gso_headers(frame, len, &plen);
	if (hdrs == 0 || mss == 0 || plen == 0 || room < hdrs || room - hdrs < mss)
		return 0;
	return (plen + mss - 1) / mss;
}

bool bh_tcp_gso_csum_ok(const uint8_t *frame, uint32_t len)
{
	uint32_t plen;
	uint32_t hdrs = gso_headers(frame, len, &plen);
	if (hdrs == 0)
		return false;
	const uint8_t *iph = frame + BH_ETH_HLEN;
	uint32_t ihl = (uint32_t)(iph[0] & 0x0f) * 4u;
	uint32_t tlen = hdrs - BH_ETH_HLEN - ihl + plen;
	uint32_t sum = bh_ipv4_pseudo_sum(bh_ld32(iph + 12), bh_ld32(iph + 16), BH_IPPROTO_TCP,
					  (uint16_t)tlen);
	return bh_csum_fold(bh_csum_partial(iph + ihl, tlen, sum)) == 0;
}

uint32_t bh_tcp_gso_segment(const uint8_t *frame, uint32_t len, uint32_t mss, uint32_t i,
			    uint8_t *out, uint32_t room)
{
	uint32_t plen;
	uint32_t hdrs = gso_headers(frame, len, &plen);
	uint32_t n = bh_tcp_gso_count(frame, len, mss, room);
	if (n == 0 || i >= n)
		return 0;
	uint32_t at = i * mss, seg = plen - at < mss ? plen - at : mss;
	memcpy(out, frame, hdrs);
	memcpy(out + hdrs, frame + hdrs + at, seg);
	uint8_t *iph = out + BH_ETH_HLEN;
	uint32_t ihl = (uint32_t)(iph[0] & 0x0f) * 4u;
	uint8_t *th = iph + ihl;
	uint32_t tlen = hdrs - BH_ETH_HLEN - ihl + seg;
	bh_st16(iph + 2, (uint16_t)(ihl + tlen));
	bh_st16(iph + 4, (uint16_t)(bh_ld16(iph + 4) + i));
	iph[10] = iph[11] = 0;
	uint16_t c = bh_csum_fold(bh_csum_partial(iph, ihl, 0));
	memcpy(iph + 10, &c, 2);
	bh_st32(th + 4, bh_ld32(th + 4) + at);
	if (i + 1 < n)
		th[13] &= (uint8_t)~(0x01u | 0x08u); /* FIN, PSH */
	if (i > 0)
		th[13] &= (uint8_t)~0x80u; /* CWR */
	th[16] = th[17] = 0;
	bh_ip4 src = bh_ld32(iph + 12), dst = bh_ld32(iph + 16);
	uint32_t sum = bh_ipv4_pseudo_sum(src, dst, BH_IPPROTO_TCP, (uint16_t)tlen);
	c = bh_csum_fold(bh_csum_partial(th, tlen, sum));
	memcpy(th + 16, &c, 2);
	return hdrs + seg;
}
