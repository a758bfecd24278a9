/*
 * tests/tcp/harness.h - a deterministic harness for the TCP library: a
 * virtual clock, a buffer pool that tracks ownership, a log of the
 * segments the library sends (parsed) and of its events, and a scripted
 * peer that sends segments numbered relative to the connection (in the
 * spirit of packetdrill and smoltcp's tests).
 *
 * Our side is 10.0.0.2, the peer 10.0.0.9. Time is in microseconds.
 */
#ifndef BH_TESTS_TCP_HARNESS_H
#define BH_TESTS_TCP_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "tcp/tcp.h"

#define H_BUF 4096
#define H_HEADROOM 128
#define H_LOG 512
#define H_US BH_IP4(10, 0, 0, 2)
#define H_PEER BH_IP4(10, 0, 0, 9)
#define MS 1000ull

struct h_seg {
	struct bh_tcp_repr t;
	bh_ip4 dst;
	uint32_t len;
	uint8_t data[H_BUF];
	uint64_t at;
};

struct harness {
	struct bh_tcp *tcp;
	uint64_t now;
	uint32_t nbufs;
	uint8_t *mem;
	bool *used;
	uint32_t in_use, double_release, bad_handle;
	bool fail_alloc;
	/* Segments in come with the link's word for their checksum
	 * (bh_ip_rx.csum_valid); segments out that left it partial. */
	bool vouch;
	unsigned partial_out;
	unsigned chain_out; /* segments sent as send chains (cfg.send_chain) */
	unsigned nout, nev;
	struct h_seg *out;
	struct bh_tcp_event ev[H_LOG];
	/* the peer's side of the one connection under test */
	uint16_t peer_port, our_port;
	bh_seq peer_iss; /* the peer's initial number */
	bh_seq our_iss;  /* learned from our SYN or SYN-ACK */
};

void h_config(struct bh_tcp_config *c);
void h_init(struct harness *h, const struct bh_tcp_config *c);
/* Destroys; returns buffers not given back + double releases + bad handles. */
uint32_t h_fini(struct harness *h);
void h_clear(struct harness *h);
/* bh_tcp_check_invariants(), or abort() with the broken one and where.
 * Every harness call that gives the library input runs it before (which
 * catches what the test's own calls to the library broke) and after. */
void h_check(const struct harness *h, const char *where);
uint64_t h_tick(struct harness *h, uint64_t now);

/* Peer segment: seq and ack are offsets from the peer's ISS and our ISS
 * (so 1 is the first data byte of either side); options optional. */
struct h_opts {
	bool mss, ws, sack_ok, ts;
	uint16_t mss_v;
	uint8_t ws_v;
	uint32_t ts_val, ts_ecr;
	/* SACK blocks [left, right), relative to our ISS */
	uint8_t nsack;
	uint32_t sack[4][2];
	uint16_t urg; /* the urgent pointer, with BH_TCP_URG */
};
void h_send(struct harness *h, uint8_t flags, uint32_t seq_rel, uint32_t ack_rel, uint16_t window,
	    const void *data, uint32_t len, const struct h_opts *o);
/* The same with absolute numbers, and a corruptible checksum. */
void h_send_abs(struct harness *h, uint8_t flags, bh_seq seq, bh_seq ack, uint16_t window,
		const void *data, uint32_t len, const struct h_opts *o, bool bad_checksum);
/* A segment whose options are exactly the bytes given (at most 40; the
 * header is padded with zeros, EOL, to a multiple of 4), however
 * malformed; absolute numbers. */
void h_send_raw(struct harness *h, uint8_t flags, bh_seq seq, bh_seq ack, uint16_t window,
		const uint8_t *opts, unsigned olen, const void *data, uint32_t len);

/* i-th segment sent, with seq/ack made relative (as h_send takes them). */
uint32_t h_rel_seq(const struct harness *h, unsigned i);
uint32_t h_rel_ack(const struct harness *h, unsigned i);
/* SACK block k of the i-th segment sent, relative to the peer's ISS. */
uint32_t h_rel_sack(const struct harness *h, unsigned i, unsigned k, bool right);
/* Number of events of a type for handle c (0: any handle). */
unsigned h_events(const struct harness *h, enum bh_tcp_event_type t, bh_tcp_conn c);
int h_last_error(const struct harness *h);

/* Scripts: connect and complete the handshake (the peer offers
 * MSS 1460, no other options unless o says); listen, accept. */
bh_tcp_conn h_connect(struct harness *h, const struct h_opts *peer_syn_ack);
bh_tcp_conn h_accept(struct harness *h, const struct h_opts *peer_syn);
/* Queues len bytes for sending (one buffer). */
int h_write(struct harness *h, bh_tcp_conn c, const void *data, uint32_t len);
/* Reads everything available into buf; returns bytes, -1 at EOF with
 * nothing, or -errno. */
int h_read(struct harness *h, bh_tcp_conn c, uint8_t *buf, uint32_t cap);

#endif /* BH_TESTS_TCP_HARNESS_H */
