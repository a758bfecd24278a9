/*
 * ip/udp.c - UDP (RFC 768, RFC 1122 4.1): checksum, port demultiplexing
 * to the socket layer through a port table, port unreachable when nobody
 * listens, and output with the checksum built in place.
 */
#include <string.h>

#include "ip/checksum.h"
#include "ip/ip_impl.h"

static inline uint32_t slot_of(const struct bh_ip *ip, uint16_t port)
{
	return (uint32_t)(port * 0x9e37u) >> 4 & ip->udp_mask;
}

/* The slot holding port, or the empty slot where it would go. */
static uint32_t probe(const struct bh_ip *ip, uint16_t port)
{
	uint32_t i = slot_of(ip, port);
	while (ip->udp[i].port != 0 && ip->udp[i].port != port)
		i = (i + 1) & ip->udp_mask;
	return i;
}

bool bh_udp__lookup(const struct bh_ip *ip, uint16_t port, uint64_t *cookie)
{
	if (port == 0)
		return false;
	uint32_t i = probe(ip, port);
	if (ip->udp[i].port != port)
		return false;
	*cookie = ip->udp[i].cookie;
	return true;
}

int bh_udp_bind(struct bh_ip *ip, uint16_t port, uint64_t cookie)
{
	if (port == 0)
		return -EINVAL;
	uint32_t i = probe(ip, port);
	if (ip->udp[i].port == port)
		return -EADDRINUSE;
	if (ip->nbindings >= ip->cfg.udp_bindings)
		return -ENOSPC;
	ip->udp[i].port = port;
	ip->udp[i].cookie = cookie;
	ip->nbindings++;
	return 0;
}

int bh_udp_unbind(struct bh_ip *ip, uint16_t port)
{
	if (port == 0)
		return -ENOENT;
	uint32_t i = probe(ip, port);
	if (ip->udp[i].port != port)
		return -ENOENT;
	/* Backward-shift deletion: move later members of the probe run into
	 * the hole, so lookups never need tombstones. */
	uint32_t hole = i, j = i;
	for (;;) {
		j = (j + 1) & ip->udp_mask;
		if (ip->udp[j].port == 0)
			break;
		uint32_t home = slot_of(ip, ip->udp[j].port);
		/* j may fill the hole if its home is not cyclically in (hole, j]. */
		bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
		if (!stays) {
			ip->udp[hole] = ip->udp[j];
			hole = j;
		}
	}
	ip->udp[hole].port = 0;
	ip->nbindings--;
	return 0;
}

/* Cuts the pieces down to `len` transport bytes (the UDP length may be
 * shorter than IP's; RFC 768 leaves the rest as padding). Pieces left
 * empty at the end are released. */
static void trim(struct bh_ip *ip, uint32_t len)
{
	struct bh_ip_rx *rx = &ip->rx;
	uint32_t at = 0;
	unsigned keep = 0;
	for (unsigned i = 0; i < rx->npieces; i++) {
		struct bh_pkt *p = &rx->piece[i];
		if (at >= len && i > 0) {
			bh_ip__release(ip, p);
			continue;
		}
		if (at + p->len > len)
			p->len = len - at;
		at += p->len;
		keep = i + 1;
	}
	rx->npieces = (uint16_t)keep;
	rx->len = len;
}

bool bh_udp__input(struct bh_ip *ip, uint64_t now, const struct ip_dgram *d)
{
	struct bh_ip_rx *rx = &ip->rx;
	struct bh_udp_repr u;
	ip->ctr.udp_rx++;
	if (bh_udp_parse(bh_pkt_data(&rx->piece[0]), rx->len, &u) != BH_WIRE_OK) {
		ip->ctr.udp_bad++;
		return false;
	}
	if (u.len < rx->len)
		trim(ip, u.len);
	/* RFC 768: an all-zero checksum means none was computed. */
	if (u.checksum != 0) {
		uint32_t sum = bh_ipv4_pseudo_sum(d->hdr.src, d->hdr.dst, BH_IPPROTO_UDP, u.len);
		if (bh_csum_fold(bh_ip_rx_sum(rx, u.len, sum)) != 0) {
			ip->ctr.udp_bad_checksum++;
			return false;
		}
	}
	uint64_t cookie;
	if (!bh_udp__lookup(ip, u.dport, &cookie)) {
		ip->ctr.udp_no_port++;
		/* RFC 1122 4.1.3.1: port unreachable (never for broadcast or
		 * multicast: bh_icmp__error checks). */
		bh_icmp__error(ip, now, BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, d,
			       bh_pkt_data(&rx->piece[0]), rx->piece[0].len);
		return false;
	}
	rx->sport = u.sport;
	rx->dport = u.dport;
	rx->cookie = cookie;
	/* The receiver sees the payload only. */
	rx->piece[0].off += BH_UDP_HLEN;
	rx->piece[0].len -= BH_UDP_HLEN;
	rx->len -= BH_UDP_HLEN;
	ip->ctr.ip_delivered++;
	ip->ops.deliver(ip->ctx, rx);
	return true;
}

int bh_udp_output(struct bh_ip *ip, uint64_t now, const struct bh_pkt *pkt, uint16_t sport,
		  bh_ip4 dst, uint16_t dport)
{
	if (pkt->off > pkt->size || pkt->len > pkt->size - pkt->off ||
	    pkt->len > BH_IPV4_MAX_LEN - BH_IPV4_HLEN - BH_UDP_HLEN || sport == 0 || dport == 0) {
		bh_ip__release(ip, pkt);
		return -EINVAL;
	}
	struct bh_ip_tx tx = {
		.dst = dst, .proto = BH_IPPROTO_UDP, .sport = sport, .dport = dport,
	};
	(void)bh_udp__lookup(ip, sport, &tx.cookie);
	uint16_t ulen = (uint16_t)(BH_UDP_HLEN + pkt->len);
	struct bh_udp_repr u = {.sport = sport, .dport = dport, .len = ulen, .checksum = 0};
	uint8_t hdr[BH_UDP_HLEN];
	bh_udp_emit(hdr, &u);
	uint32_t sum = bh_ipv4_pseudo_sum(ip->cfg.addr, dst, BH_IPPROTO_UDP, ulen);
	sum = bh_csum_partial(hdr, sizeof hdr, sum);
	sum = bh_csum_partial(bh_pkt_data(pkt), pkt->len, sum);
	uint16_t c = bh_csum_fold(sum);
	/* RFC 768: a computed zero is sent as all ones. */
	if (c == 0)
		c = 0xffff;
	memcpy(hdr + 6, &c, 2);
	ip->ctr.udp_tx++;
	if (pkt->writable && pkt->off >= BH_UDP_HLEN + BH_IP_HEADROOM) {
		struct bh_pkt p = *pkt;
		p.off -= BH_UDP_HLEN;
		p.len += BH_UDP_HLEN;
		memcpy(bh_pkt_data(&p), hdr, sizeof hdr);
		return bh_ip_output(ip, now, &p, &tx);
	}
	struct seg segs[2] = {{hdr, sizeof hdr}, {bh_pkt_data(pkt), pkt->len}};
	int rc = bh_ip__send_segs(ip, now, &tx, segs, 2);
	bh_ip__release(ip, pkt);
	return rc;
}
