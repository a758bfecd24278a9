/*
 * tcp/tcp_wire.h - the TCP header and its options (RFC 9293 3.1, RFC 7323,
 * RFC 2018), parsed through one checked entry point and emitted.
 *
 * Formats only; no connection logic. bh_tcp_parse() takes the untrusted
 * bytes of a segment's header (at least the whole header, which must lie
 * in one piece) and the segment's total length, and fills a host-order
 * representation. Checksums need the IPv4 pseudo-header and may span
 * several buffers, so they are checked separately.
 */
#ifndef BH_TCP_WIRE_H
#define BH_TCP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tcp/seq.h"

#define BH_TCP_HLEN 20
#define BH_TCP_MAX_HLEN 60

#define BH_TCP_FIN 0x01
#define BH_TCP_SYN 0x02
#define BH_TCP_RST 0x04
#define BH_TCP_PSH 0x08
#define BH_TCP_ACK 0x10
#define BH_TCP_URG 0x20
#define BH_TCP_ECE 0x40
#define BH_TCP_CWR 0x80

#define BH_TCPOPT_EOL 0
#define BH_TCPOPT_NOP 1
#define BH_TCPOPT_MSS 2       /* RFC 9293 3.2, length 4 */
#define BH_TCPOPT_WSCALE 3    /* RFC 7323 2.2, length 3 */
#define BH_TCPOPT_SACK_OK 4   /* RFC 2018 2, length 2 */
#define BH_TCPOPT_SACK 5      /* RFC 2018 3, length 2 + 8n */
#define BH_TCPOPT_TIMESTAMP 8 /* RFC 7323 3.2, length 10 */

#define BH_TCP_MAX_WSCALE 14 /* RFC 7323 2.3 */
#define BH_TCP_MAX_SACK 4    /* blocks that fit beside nothing else */

struct bh_sack_block {
	bh_seq left, right; /* [left, right) */
};

struct bh_tcp_opts {
	bool has_mss, has_wscale, sack_ok, has_ts;
	uint16_t mss;
	uint8_t wscale;       /* clamped to 14 (RFC 7323 2.3) */
	bool wscale_clamped;  /* the peer sent more than 14 */
	uint32_t ts_val, ts_ecr;
	uint8_t nsack;
	struct bh_sack_block sack[BH_TCP_MAX_SACK];
	uint8_t ignored;      /* known options of the wrong length, skipped */
	bool cut_short;       /* an illegal length ended the list early */
};

struct bh_tcp_repr {
	uint16_t sport, dport;
	bh_seq seq, ack;
	uint8_t hlen;  /* 20..60 */
	uint8_t flags; /* BH_TCP_* */
	uint16_t window;
	uint16_t urgent;
	struct bh_tcp_opts opt;
	uint32_t payload_len; /* segment length minus the header */
};

enum bh_tcp_wire_err {
	BH_TCP_WIRE_OK = 0,
	BH_TCP_WIRE_TRUNCATED,   /* fewer than 20 bytes, or the header runs past the data */
	BH_TCP_WIRE_OFFSET,      /* data offset below 5 */
};

const char *bh_tcp_wire_strerror(enum bh_tcp_wire_err e);

/* hdr: at least `avail` contiguous bytes holding the header; seg_len: the
 * whole segment (header and data) as IP delivered it. Options never make
 * a segment malformed (RFC 1122 4.2.2.5, as Linux): an illegal option
 * length ends the list there (opt.cut_short), never followed; a known
 * option of the wrong length is ignored (opt.ignored). tcp_wire.c lists the
 * rule for each kind. */
enum bh_tcp_wire_err bh_tcp_parse(const uint8_t *hdr, size_t avail, uint32_t seg_len,
				  struct bh_tcp_repr *out);

/* The segment length of RFC 9293 3.3.1: data, plus one for each of SYN
 * and FIN. */
static inline uint32_t bh_tcp_seg_len(const struct bh_tcp_repr *s)
{
	return s->payload_len + ((s->flags & BH_TCP_SYN) ? 1u : 0) + ((s->flags & BH_TCP_FIN) ? 1u : 0);
}

/* Bytes the options of `o` take on the wire, padded to a multiple of 4. */
unsigned bh_tcp_opts_len(const struct bh_tcp_opts *o);

/* Writes header and options (checksum zero) into p, which must have room
 * for BH_TCP_HLEN + bh_tcp_opts_len(&t->opt). Options go in the order
 * Linux uses (MSS, SACK-permitted with timestamps, window scale, SACK
 * blocks), NOP-aligned. Returns the header length. */
unsigned bh_tcp_emit(uint8_t *p, const struct bh_tcp_repr *t);

#endif /* BH_TCP_WIRE_H */
