/*
 * tcp/cookie.c - SYN cookies (RFC 4987 3.6): when a listener's SYN queue
 * is full, the SYN-ACK's initial sequence number carries what the
 * connection needs, under a keyed hash, and no state is kept; the ACK
 * that completes the handshake brings it back.
 *
 * The 32 bits of the cookie (our ISS):
 *   31..27  a 64-second counter (t), so a cookie lives two periods
 *   26..25  an index into the MSS table: 256, 536, 1200, 1460
 *   24..21  the peer's window scale + 1 (0: not offered)
 *   20      SACK-permitted offered
 *   19..0   SipHash of the 4-tuple, the peer's ISN, t and the bits above
 *
 * The MAC has 20 bits: a blind attacker needs about a million ACKs to
 * forge one connection, as with other cookie schemes (RFC 4987 3.6).
 *
 * Timestamps need no bits: the ACK carries them only if the SYN offered
 * them, and then the SYN-ACK did too. What is lost, as in every cookie
 * scheme: data on the SYN, and options beyond these.
 */
#include "ip/siphash.h"
#include "tcp/tcp_impl.h"

/* Common MSS values: the RFC 9293 default, a tunnel's, Ethernet's; 256
 * for peers below the default, so a cookie never exceeds what was
 * offered. */
static const uint16_t mss_table[4] = {256, 536, 1200, 1460};

#define PERIOD_US (64ull * 1000000)

static uint32_t cookie_hash(const struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport,
			    bh_seq peer_isn, uint32_t t, uint32_t bits)
{
	/* A key of its own, so a cookie says nothing about ISNs. */
	const uint64_t key[2] = {tcp->cfg.secret[0] ^ 0x636f6f6b69657321ull,
				 tcp->cfg.secret[1] + 0x53594e20636f6f6bull};
	uint8_t m[24];
	bh_st32(m, tcp->cfg.addr);
	bh_st16(m + 4, lport);
	bh_st32(m + 6, raddr);
	bh_st16(m + 10, rport);
	bh_st32(m + 12, peer_isn);
	bh_st32(m + 16, t);
	bh_st32(m + 20, bits);
	return (uint32_t)bh_siphash(key, m, sizeof m) & 0xfffff;
}

bh_seq bh_tcp__cookie_make(const struct bh_tcp *tcp, bh_ip4 raddr, const struct bh_tcp_repr *syn,
			   uint64_t now)
{
	uint32_t t = (uint32_t)(now / PERIOD_US) & 31;
	uint16_t peer = syn->opt.has_mss && syn->opt.mss ? syn->opt.mss : 536;
	uint16_t want = peer < tcp->cfg.mss ? peer : tcp->cfg.mss;
	uint32_t mi = 0;
	for (uint32_t i = 0; i < 4; i++)
		if (mss_table[i] <= want)
			mi = i;
	uint32_t ws = syn->opt.has_wscale && !tcp->cfg.no_wscale ? syn->opt.wscale + 1u : 0;
	uint32_t sack = syn->opt.sack_ok && !tcp->cfg.no_sack;
	uint32_t bits = t << 27 | mi << 25 | ws << 21 | sack << 20;
	return bits | cookie_hash(tcp, raddr, syn->sport, syn->dport, syn->seq, t, bits);
}

bool bh_tcp__cookie_check(const struct bh_tcp *tcp, bh_ip4 raddr, const struct bh_tcp_repr *ack,
			  uint64_t now, struct bh_tcp_cookie *out)
{
	bh_seq cookie = ack->ack - 1, peer_isn = ack->seq - 1;
	uint32_t t_now = (uint32_t)(now / PERIOD_US) & 31;
	uint32_t t = cookie >> 27;
	if (t != t_now && t != ((t_now - 1) & 31))
		return false;
	uint32_t bits = cookie & ~0xfffffu;
	if (cookie_hash(tcp, raddr, ack->sport, ack->dport, peer_isn, t, bits) != (cookie & 0xfffff))
		return false;
	uint32_t ws = (cookie >> 21) & 15;
	if (ws > BH_TCP_MAX_WSCALE + 1)
		return false;
	out->mss = mss_table[(cookie >> 25) & 3];
	out->has_wscale = ws != 0;
	out->wscale = ws ? (uint8_t)(ws - 1) : 0;
	out->sack_ok = (cookie >> 20) & 1;
	return true;
}
