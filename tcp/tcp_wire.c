/*
 * tcp/tcp_wire.c - checked parsing and emission of TCP headers and options.
 */
#include "tcp/tcp_wire.h"

#include <string.h>

#include "ip/ip_wire.h"

const char *bh_tcp_wire_strerror(enum bh_tcp_wire_err e)
{
	switch (e) {
	case BH_TCP_WIRE_OK:
		return "ok";
	case BH_TCP_WIRE_TRUNCATED:
		return "TCP header truncated";
	case BH_TCP_WIRE_OFFSET:
		return "TCP data offset below 5";
	}
	return "unknown TCP wire error";
}

/* RFC 9293 3.1 (options), 3.2: kinds 0 and 1 are single bytes, every other
 * option carries a length covering kind and length. As Linux's
 * tcp_parse_options(), kind by kind:
 *   EOL            ends the list; what follows is padding
 *   NOP            skipped
 *   a length that cannot be followed (no length byte, below 2, past the
 *                  header) ends the list: the options before it count,
 *                  the segment is kept (RFC 1122 4.2.2.5 and RFC 9293
 *                  MUST-7: robust to illegal lengths, never following
 *                  one; a reset, the RFCs' suggestion, would let any SYN
 *                  or segment in the window end a connection)
 *   MSS, window scale, SACK-permitted, timestamps of any length but 4,
 *                  3, 2, 10, SACK of any but 2 + 8n (n >= 1): ignored,
 *                  skipped by their length, counted in `ignored`
 *   window scale above 14: used as 14, flagged (RFC 7323 2.3)
 *   MSS 0 is kept as sent; the connection takes it as no MSS (syn_options)
 *   unknown kinds: skipped by their length (RFC 9293 MUST-6)
 *   a kind that comes twice: the last one counts */
static void parse_options(const uint8_t *o, unsigned n, struct bh_tcp_opts *opt)
{
	unsigned i = 0;
	while (i < n) {
		uint8_t kind = o[i];
		if (kind == BH_TCPOPT_EOL)
			break;
		if (kind == BH_TCPOPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= n || o[i + 1] < 2 || o[i + 1] > n - i) {
			opt->cut_short = true;
			break;
		}
		uint8_t len = o[i + 1];
		const uint8_t *v = o + i + 2;
		switch (kind) {
		case BH_TCPOPT_MSS:
			if (len != 4) {
				opt->ignored++;
				break;
			}
			opt->has_mss = true;
			opt->mss = bh_ld16(v);
			break;
		case BH_TCPOPT_WSCALE:
			if (len != 3) {
				opt->ignored++;
				break;
			}
			opt->has_wscale = true;
			opt->wscale = v[0];
			/* RFC 7323 2.3: a shift above 14 is used as 14. */
			if (opt->wscale > BH_TCP_MAX_WSCALE) {
				opt->wscale = BH_TCP_MAX_WSCALE;
				opt->wscale_clamped = true;
			}
			break;
		case BH_TCPOPT_SACK_OK:
			if (len != 2) {
				opt->ignored++;
				break;
			}
			opt->sack_ok = true;
			break;
		case BH_TCPOPT_SACK:
			if (len < 10 || (len - 2) % 8 != 0) {
				opt->ignored++;
				break;
			}
			opt->nsack = 0;
			for (unsigned b = 0; b < (unsigned)(len - 2) / 8 && b < BH_TCP_MAX_SACK; b++) {
				opt->sack[b].left = bh_ld32(v + 8 * b);
				opt->sack[b].right = bh_ld32(v + 8 * b + 4);
				opt->nsack++;
			}
			break;
		case BH_TCPOPT_TIMESTAMP:
			if (len != 10) {
				opt->ignored++;
				break;
			}
			opt->has_ts = true;
			opt->ts_val = bh_ld32(v);
			opt->ts_ecr = bh_ld32(v + 4);
			break;
		default:
			break; /* unknown: skipped by its length (RFC 9293 MUST-6) */
		}
		i += len;
	}
}

enum bh_tcp_wire_err bh_tcp_parse(const uint8_t *p, size_t avail, uint32_t seg_len,
				  struct bh_tcp_repr *out)
{
	memset(out, 0, sizeof *out);
	if (avail > seg_len)
		avail = seg_len;
	if (avail < BH_TCP_HLEN)
		return BH_TCP_WIRE_TRUNCATED;
	unsigned hlen = (unsigned)(p[12] >> 4) * 4;
	if (hlen < BH_TCP_HLEN)
		return BH_TCP_WIRE_OFFSET;
	if (hlen > avail)
		return BH_TCP_WIRE_TRUNCATED;
	out->sport = bh_ld16(p);
	out->dport = bh_ld16(p + 2);
	out->seq = bh_ld32(p + 4);
	out->ack = bh_ld32(p + 8);
	out->hlen = (uint8_t)hlen;
	out->flags = p[13];
	out->window = bh_ld16(p + 14);
	out->urgent = bh_ld16(p + 18);
	out->payload_len = seg_len - hlen;
	parse_options(p + BH_TCP_HLEN, hlen - BH_TCP_HLEN, &out->opt);
	return BH_TCP_WIRE_OK;
}

/* SACK blocks that fit in the 40 bytes of option space beside the rest. */
static unsigned sack_fit(const struct bh_tcp_opts *o, unsigned used)
{
	unsigned n = o->nsack > BH_TCP_MAX_SACK ? BH_TCP_MAX_SACK : o->nsack;
	while (n && used + 4 + 8 * n > BH_TCP_MAX_HLEN - BH_TCP_HLEN)
		n--;
	return n;
}

static unsigned fixed_len(const struct bh_tcp_opts *o)
{
	unsigned n = 0;
	if (o->has_mss)
		n += 4;
	if (o->has_ts)
		n += 12; /* SACK-permitted rides in the timestamp's padding */
	else if (o->sack_ok)
		n += 4;
	if (o->has_wscale)
		n += 4;
	return n;
}

unsigned bh_tcp_opts_len(const struct bh_tcp_opts *o)
{
	unsigned n = fixed_len(o);
	unsigned s = sack_fit(o, n);
	return n + (s ? 4 + 8 * s : 0);
}

unsigned bh_tcp_emit(uint8_t *p, const struct bh_tcp_repr *t)
{
	const struct bh_tcp_opts *o = &t->opt;
	uint8_t *q = p + BH_TCP_HLEN;
	if (o->has_mss) {
		*q++ = BH_TCPOPT_MSS;
		*q++ = 4;
		bh_st16(q, o->mss);
		q += 2;
	}
	if (o->has_ts) {
		if (o->sack_ok) {
			*q++ = BH_TCPOPT_SACK_OK;
			*q++ = 2;
		} else {
			*q++ = BH_TCPOPT_NOP;
			*q++ = BH_TCPOPT_NOP;
		}
		*q++ = BH_TCPOPT_TIMESTAMP;
		*q++ = 10;
		bh_st32(q, o->ts_val);
		bh_st32(q + 4, o->ts_ecr);
		q += 8;
	} else if (o->sack_ok) {
		*q++ = BH_TCPOPT_NOP;
		*q++ = BH_TCPOPT_NOP;
		*q++ = BH_TCPOPT_SACK_OK;
		*q++ = 2;
	}
	if (o->has_wscale) {
		*q++ = BH_TCPOPT_NOP;
		*q++ = BH_TCPOPT_WSCALE;
		*q++ = 3;
		*q++ = o->wscale > BH_TCP_MAX_WSCALE ? BH_TCP_MAX_WSCALE : o->wscale;
	}
	unsigned s = sack_fit(o, (unsigned)(q - (p + BH_TCP_HLEN)));
	if (s) {
		*q++ = BH_TCPOPT_NOP;
		*q++ = BH_TCPOPT_NOP;
		*q++ = BH_TCPOPT_SACK;
		*q++ = (uint8_t)(2 + 8 * s);
		for (unsigned b = 0; b < s; b++) {
			bh_st32(q, o->sack[b].left);
			bh_st32(q + 4, o->sack[b].right);
			q += 8;
		}
	}
	unsigned hlen = (unsigned)(q - p);
	bh_st16(p, t->sport);
	bh_st16(p + 2, t->dport);
	bh_st32(p + 4, t->seq);
	bh_st32(p + 8, t->ack);
	p[12] = (uint8_t)(hlen / 4 << 4);
	p[13] = t->flags;
	bh_st16(p + 14, t->window);
	p[16] = p[17] = 0;
	bh_st16(p + 18, t->urgent);
	return hlen;
}
