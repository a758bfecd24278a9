/*
 * ip/icmp.c - ICMP (RFC 792) for a host (RFC 1122 3.2.2): echo replies,
 * the errors a host sends (protocol and port unreachable, reassembly time
 * exceeded), and errors received about our own datagrams, handed to the
 * transport that owns the flow. Both replies and errors are rate-limited
 * (RFC 1122 3.2.2: "SHOULD" limit; token buckets as Linux's
 * icmp_msgs_per_sec).
 */
#include <string.h>

#include "ip/checksum.h"
#include "ip/ip_impl.h"

/* RFC 1812 4.3.2.3 (and Linux): quote as much of the datagram as fits in
 * 576 bytes; RFC 1122 3.2.2 requires the header and 8 bytes at least. */
#define ICMP_ERR_MAX 576

/* RFC 1122 3.2.2: when an ICMP error must not be sent. */
static bool may_send_error(const struct bh_ip *ip, const struct ip_dgram *d,
			   const uint8_t *payload, uint32_t len)
{
	/* not about an ICMP error */
	if (d->hdr.proto == BH_IPPROTO_ICMP) {
		if (len < 1)
			return false;
		uint8_t t = payload[0];
		if (t != BH_ICMP_ECHO_REQUEST && t != BH_ICMP_ECHO_REPLY && t != 13 && t != 14)
			return false;
	}
	/* not about a broadcast or multicast datagram */
	if (d->cast != BH_IP_UNICAST)
		return false;
	/* not about a non-initial fragment */
	if (d->hdr.frag_off != 0)
		return false;
	/* not to a source that is not a single host */
	bh_ip4 s = d->hdr.src;
	if (bh_ip4_is_this_net(s) || bh_ip4_is_loopback(s) || bh_ip4_is_multicast(s) ||
	    bh_ip4_is_reserved(s) || bh_ip__is_broadcast(ip, s))
		return false;
	return true;
}

void bh_icmp__error(struct bh_ip *ip, uint64_t now, uint8_t type, uint8_t code,
		    const struct ip_dgram *d, const uint8_t *payload, uint32_t payload_len)
{
	if (!may_send_error(ip, d, payload, payload_len))
		return;
	if (!bh_bucket_take(&ip->icmp_err, now)) {
		ip->ctr.icmp_err_limited++;
		return;
	}
	uint32_t quote = ICMP_ERR_MAX - BH_IPV4_HLEN - BH_ICMP_HLEN - d->hdr.hlen;
	if (payload_len < quote)
		quote = payload_len;
	uint8_t hdr[BH_ICMP_HLEN];
	struct bh_icmp_repr ic = {.type = type, .code = code, .rest = 0};
	bh_icmp_emit(hdr, &ic);
	uint32_t sum = bh_csum_partial(hdr, sizeof hdr, 0);
	sum = bh_csum_partial(d->iph, d->hdr.hlen, sum);
	sum = bh_csum_partial(payload, quote, sum);
	uint16_t c = bh_csum_fold(sum);
	memcpy(hdr + 2, &c, 2);
	struct seg segs[3] = {{hdr, sizeof hdr}, {d->iph, d->hdr.hlen}, {payload, quote}};
	/* Precedence 6, internetwork control (RFC 1812 4.3.2.5; Linux's
	 * hosts send their errors so too). */
	struct bh_ip_tx tx = {.dst = d->hdr.src, .proto = BH_IPPROTO_ICMP, .tos = 0xc0};
	if (bh_ip__send_segs(ip, now, &tx, segs, 3) >= 0)
		ip->ctr.icmp_err_tx++;
}

/* Echo request -> reply (RFC 792; RFC 1122 3.2.2.6: the data MUST be
 * returned entirely). The request's buffers are read-only, so the reply
 * is built in fresh ones, fragmented like any datagram. */
static void echo(struct bh_ip *ip, uint64_t now, const struct ip_dgram *d,
		 const struct bh_icmp_repr *req)
{
	const struct bh_ip_rx *rx = &ip->rx;
	ip->ctr.icmp_echo_rx++;
	/* RFC 1122 3.2.2.6: echo to a broadcast or multicast address MAY be
	 * silently discarded; Linux does by default, and so do we. */
	if (d->cast != BH_IP_UNICAST) {
		ip->ctr.icmp_other++;
		return;
	}
	if (!bh_bucket_take(&ip->echo, now)) {
		ip->ctr.icmp_echo_limited++;
		return;
	}
	uint8_t hdr[BH_ICMP_HLEN];
	struct bh_icmp_repr rep = {.type = BH_ICMP_ECHO_REPLY, .code = 0, .rest = req->rest};
	bh_icmp_emit(hdr, &rep);
	struct seg segs[BH_IP_MAX_PIECES + 1];
	unsigned n = 0;
	segs[n++] = (struct seg){hdr, sizeof hdr};
	uint32_t sum = bh_csum_partial(hdr, sizeof hdr, 0);
	for (unsigned i = 0; i < rx->npieces; i++) {
		const uint8_t *p = bh_pkt_data(&rx->piece[i]);
		uint32_t len = rx->piece[i].len;
		if (i == 0) { /* skip the request's own header */
			p += BH_ICMP_HLEN;
			len -= BH_ICMP_HLEN;
		}
		segs[n++] = (struct seg){p, len};
		sum = bh_csum_partial(p, len, sum);
	}
	uint16_t c = bh_csum_fold(sum);
	memcpy(hdr + 2, &c, 2);
	struct bh_ip_tx tx = {.dst = d->hdr.src, .proto = BH_IPPROTO_ICMP, .tos = d->hdr.tos};
	if (bh_ip__send_segs(ip, now, &tx, segs, n) >= 0)
		ip->ctr.icmp_echo_tx++;
}

/* An error about a datagram we sent: find the flow it quotes and tell its
 * transport (RFC 1122 3.2.2.1, 4.1.3.3, 4.2.3.9). */
static void error_in(struct bh_ip *ip, const struct bh_icmp_repr *ic)
{
	const struct bh_pkt *p0 = &ip->rx.piece[0];
	const uint8_t *q = bh_pkt_data(p0) + BH_ICMP_HLEN;
	uint32_t qlen = p0->len - BH_ICMP_HLEN;
	ip->ctr.icmp_err_rx++;
	/* The quoted header: untrusted like the rest. Its checksum is not
	 * checked (routers may have changed the TTL since). */
	if (qlen < BH_IPV4_HLEN || (q[0] >> 4) != 4) {
		ip->ctr.icmp_err_ignored++;
		return;
	}
	uint32_t hl = (uint32_t)(q[0] & 0xf) * 4;
	if (hl < BH_IPV4_HLEN || qlen < hl + 8) {
		ip->ctr.icmp_err_ignored++;
		return;
	}
	bh_ip4 src = bh_ld32(q + 12), dst = bh_ld32(q + 16);
	uint8_t proto = q[9];
	if (src != ip->cfg.addr || (proto != BH_IPPROTO_TCP && proto != BH_IPPROTO_UDP)) {
		ip->ctr.icmp_err_ignored++;
		return;
	}
	const uint8_t *t = q + hl;
	struct bh_ip_event ev = {
		.type = BH_IP_EV_ICMP_ERROR,
		.proto = proto,
		.icmp_type = ic->type,
		.icmp_code = ic->code,
		.src = src,
		.dst = dst,
		.sport = bh_ld16(t),
		.dport = bh_ld16(t + 2),
		.seq = bh_ld32(t + 4),
	};
	/* RFC 1191: the next-hop MTU is the low half of the second word. */
	if (ic->type == BH_ICMP_DEST_UNREACH && ic->code == BH_ICMP_UNREACH_NEEDFRAG)
		ev.mtu = (uint16_t)ic->rest;
	if (proto == BH_IPPROTO_UDP && !bh_udp__lookup(ip, ev.sport, &ev.cookie)) {
		ip->ctr.icmp_err_ignored++;
		return;
	}
	bh_ip__event(ip, &ev);
}

bool bh_icmp__input(struct bh_ip *ip, uint64_t now, const struct ip_dgram *d)
{
	struct bh_ip_rx *rx = &ip->rx;
	struct bh_icmp_repr ic;
	ip->ctr.icmp_rx++;
	if (bh_icmp_parse(bh_pkt_data(&rx->piece[0]), rx->piece[0].len, &ic) != BH_WIRE_OK ||
	    bh_csum_fold(bh_ip_rx_sum(rx, rx->len, 0)) != 0) {
		ip->ctr.icmp_bad++;
		return false;
	}
	switch (ic.type) {
	case BH_ICMP_ECHO_REQUEST:
		echo(ip, now, d, &ic);
		break;
	case BH_ICMP_DEST_UNREACH:
	case BH_ICMP_TIME_EXCEEDED:
	case BH_ICMP_PARAM_PROBLEM:
		/* RFC 1122 3.2.2: errors are never about broadcasts we sent
		 * in a way that needs a broadcast to report them. */
		if (d->cast != BH_IP_UNICAST) {
			ip->ctr.icmp_err_ignored++;
			break;
		}
		error_in(ip, &ic);
		break;
	default:
		/* Echo replies (no ping sockets yet), redirects (a host may
		 * ignore them; we have one gateway), source quench (RFC 6633:
		 * ignored), timestamps. */
		ip->ctr.icmp_other++;
		break;
	}
	return false;
}
