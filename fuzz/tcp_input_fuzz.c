/*
 * fuzz/tcp_input_fuzz.c - segments from a hostile peer against a live
 * connection, in whatever state the script drives it to, mixed with the
 * application's calls and the passing of time.
 *
 * The input starts with one byte choosing the opening (bit 0 clear: we
 * connect, set: we listen and the script must open; bits 1-3: the peer
 * offers SACK, timestamps, window scaling; bit 4: NewReno instead of
 * CUBIC; bit 5: receive-buffer auto-tuning up to 64 KiB). Then records
 * of 8 bytes:
 *   [op][flags][seq_rel hi][seq_rel lo][ack_rel hi][ack_rel lo][len][window]
 * op & 7: 0 a peer segment (numbers relative to the two ISNs, so they land
 *           near the windows; op bit 0x80 makes them absolute garbage;
 *           0x08 and 0x10 add SACK blocks near the ACK, 0x20 a timestamp
 *           that may go backwards, 0x40 another source port (from
 *           flags bits 5-7), so SYNs can fill the SYN queue and draw
 *           cookies),
 *         1 the application writes `len` bytes, 2 it reads everything,
 *         3 shutdown, 4 close, 5 abort, 6 time passes (len * 8 ms),
 *         7 buffers run out (flags bit 0) or come back; flags bit 1
 *           turns Nagle off, bit 2 keepalive on (short timers).
 * The peer's bytes are a function of their sequence number (pat()), so
 * whatever the script sends, overlapping, duplicated or out of order, the
 * stream is one: every byte the application reads must be pat() of its
 * place after the connection's initial receive number.
 * Invariants, checked after every record: no buffer released twice or
 * unknown; every byte read is the byte the peer sent at that place; the
 * library's own invariants (bh_tcp_check_invariants, through the
 * harness). Liveness, at the end: once the hostile input stops, time
 * passes and the application accepts what waits for it, a fresh
 * handshake to the listener completes and is accepted, and a fresh
 * active open is established (check_alive). Then, once the library is
 * destroyed, every buffer back.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tcp/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct harness *h)
{
	if (h->double_release || h->bad_handle) {
		fprintf(stderr, "tcp_input_fuzz: %u double releases, %u bad handles\n",
			h->double_release, h->bad_handle);
		abort();
	}
}

/* The peer's byte at sequence number s. */
static uint8_t pat(bh_seq s) { return (uint8_t)((s * 2654435761u) >> 24); }

/* The peer's payload for a segment whose sequence number is seq. */
static const uint8_t *payload_at(uint8_t *buf, uint8_t flags, bh_seq seq, uint32_t len)
{
	bh_seq first = seq + ((flags & BH_TCP_SYN) ? 1 : 0); /* a SYN's data follows it */
	for (uint32_t i = 0; i < len; i++)
		buf[i] = pat(first + i);
	return buf;
}

/* The application read n bytes of c, after `done` bytes before them. */
static void check_read(const struct harness *h, bh_tcp_conn c, const uint8_t *got, int n,
		       uint64_t done)
{
	struct bh_tcp_info in;
	if (bh_tcp_info(h->tcp, c, &in) != 0) {
		fprintf(stderr, "tcp_input_fuzz: no info for a connection that delivered data\n");
		abort();
	}
	for (int i = 0; i < n; i++) {
		bh_seq s = in.irs + 1 + (bh_seq)(done + (uint64_t)i);
		if (got[i] != pat(s)) {
			fprintf(stderr,
				"tcp_input_fuzz: byte %llu of the stream is %u, the peer sent %u\n",
				(unsigned long long)(done + (uint64_t)i), got[i], pat(s));
			abort();
		}
	}
}

static void dead(const char *what)
{
	fprintf(stderr, "tcp_input_fuzz: liveness: %s once the input stopped\n", what);
	abort();
}

/* The last segment sent to port `to` with exactly these of SYN and ACK. */
static const struct h_seg *sent_to(const struct harness *h, uint16_t to, uint8_t flags)
{
	for (unsigned i = h->nout < H_LOG ? h->nout : H_LOG; i-- > 0;)
		if (h->out[i].t.dport == to &&
		    (h->out[i].t.flags & (BH_TCP_SYN | BH_TCP_ACK)) == flags)
			return &h->out[i];
	return NULL;
}

/* A listener on `port` (the script's, or a fresh one) still completes a
 * handshake from a new peer, and an active open still succeeds. */
static void check_alive(struct harness *h, bh_tcp_conn l, uint16_t port)
{
	h->fail_alloc = false;
	/* The application takes what waits for it (and lets it go). */
	bh_tcp_conn k;
	while (bh_tcp_accept(h->tcp, l, 3, &k) == 0)
		bh_tcp_abort(h->tcp, h->now, k);
	h_tick(h, h->now + 1000 * MS);
	h_clear(h);
	struct h_opts o = {.mss = true, .mss_v = 1460};
	h->peer_port = 50001;
	h->our_port = port;
	h->peer_iss = 0x20000000;
	h_send(h, BH_TCP_SYN, 0, 0, 65535, NULL, 0, &o);
	const struct h_seg *sa = sent_to(h, 50001, BH_TCP_SYN | BH_TCP_ACK);
	if (sa == NULL)
		dead("a fresh SYN to the listener got no SYN-ACK");
	h->our_iss = sa->t.seq;
	h_send(h, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	struct bh_tcp_info in;
	if (bh_tcp_accept(h->tcp, l, 4, &k) != 0 || bh_tcp_info(h->tcp, k, &in) != 0 ||
	    in.rport != 50001 || in.state != BH_TCP_ESTABLISHED)
		dead("a fresh handshake to the listener was not accepted");
	bh_tcp_abort(h->tcp, h->now, k);
	h_clear(h);
	h->peer_port = 50002;
	h->peer_iss = 0x30000000;
	bh_tcp_conn a = h_connect(h, NULL);
	if (a == 0 || bh_tcp_info(h->tcp, a, &in) != 0 || in.state != BH_TCP_ESTABLISHED)
		dead("a fresh active open was not established");
	bh_tcp_abort(h->tcp, h->now, a);
}

static uint8_t payload[1600];

/* One segment from the peer, shaped by the record r: flags r[1],
 * sequence and acknowledgment relative to the connection (or absolute
 * with r[0] & 0x80), up to two SACK blocks, a timestamp, another source
 * port. A listener's child, once there is one, becomes the connection. */
static void peer_segment(struct harness *h, const uint8_t *r, size_t at,
			 const struct h_opts *peer, bh_tcp_conn l, bh_tcp_conn *c, uint64_t *done)
{
	uint32_t srel = (uint32_t)(r[2] << 8 | r[3]), arel = (uint32_t)(r[4] << 8 | r[5]);
	uint32_t len = r[6];
	struct h_opts o = *peer;
	o.nsack = 0;
	if (r[0] & 0x08) {
		o.sack[o.nsack][0] = arel + len * 8u;
		o.sack[o.nsack++][1] = arel + len * 8u + r[7] * 16u;
	}
	if (r[0] & 0x10) {
		o.sack[o.nsack][0] = srel;
		o.sack[o.nsack++][1] = srel + 1460;
	}
	o.ts = peer->ts || (r[0] & 0x20);
	o.ts_val = (r[0] & 0x20) ? srel << 12 | arel : 1 + at;
	uint16_t port = h->peer_port;
	if (r[0] & 0x40)
		h->peer_port = (uint16_t)(40000 + (r[1] >> 5));
	if (r[0] & 0x80)
		h_send_abs(h, r[1], srel * 0x10001u, arel * 0x10001u, r[7],
			   payload_at(payload, r[1], srel * 0x10001u, len), len, &o,
			   false);
	else
		h_send(h, r[1], srel, arel, (uint16_t)(r[7] << 8 | 0xff),
		       payload_at(payload, r[1], h->peer_iss + srel, len * 6), len * 6,
		       &o);
	h->peer_port = port;
	/* Learn our ISN from a SYN-ACK when listening. */
	const struct h_seg *last = &h->out[h->nout - 1 < H_LOG ? h->nout - 1 : 0];
	if (l && h->nout && (last->t.flags & BH_TCP_SYN))
		h->our_iss = last->t.seq;
	if (l && !*c && bh_tcp_accept(h->tcp, l, 2, c) == 0)
		*done = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct harness h;
	if (size < 1)
		return 0;
	struct bh_tcp_config cfg;
	h_config(&cfg);
	cfg.rcv_buf = 8192; /* small, so windows close and memory bounds bite */
	cfg.rcv_buf_max = (data[0] & 32) ? 65536 : 0; /* auto-tuning, or fixed */
	cfg.snd_buf = 8192;
	cfg.segs = 256;
	cfg.conns = 8;
	cfg.cc = (data[0] & 16) ? "newreno" : "cubic";
	h_init(&h, &cfg);
	struct h_opts peer = {.mss = true, .mss_v = 1460, .sack_ok = data[0] & 2, .ts = data[0] & 4,
			      .ts_val = 1, .ws = data[0] & 8, .ws_v = 2};
	bh_tcp_conn c = 0, l = 0;
	uint64_t done = 0; /* bytes of c the application has read */
	if (data[0] & 1) {
		bh_tcp_listen(h.tcp, h.our_port, 4, 1, &l); /* our ISS: from the SYN-ACK */
	} else {
		c = h_connect(&h, &peer);
	}
	size_t at = 1;
	while (at + 8 <= size) {
		const uint8_t *r = data + at;
		at += 8;
		uint32_t len = r[6];
		switch (r[0] & 7) {
		case 0:
			peer_segment(&h, r, at, &peer, l, &c, &done);
			break;
		case 1:
			if (c)
				h_write(&h, c, payload, len * 6);
			break;
		case 2:
			if (c) {
				static uint8_t sink[65536];
				int n = h_read(&h, c, sink, sizeof sink);
				if (n > 0) {
					check_read(&h, c, sink, n, done);
					done += (uint64_t)n;
				}
			}
			break;
		case 3:
			if (c)
				bh_tcp_shutdown(h.tcp, h.now, c);
			break;
		case 4:
			if (c && bh_tcp_close(h.tcp, h.now, c) == 0)
				c = 0;
			break;
		case 5:
			if (c && bh_tcp_abort(h.tcp, h.now, c) == 0)
				c = 0;
			break;
		case 6:
			h_tick(&h, h.now + (uint64_t)len * 8 * MS);
			break;
		case 7:
			h.fail_alloc = r[1] & 1;
			if (c && (r[1] & 2))
				bh_tcp_setopt(h.tcp, h.now, c, BH_TCP_OPT_NODELAY, 1);
			if (c && (r[1] & 4)) {
				bh_tcp_setopt(h.tcp, h.now, c, BH_TCP_OPT_KEEPIDLE, 1);
				bh_tcp_setopt(h.tcp, h.now, c, BH_TCP_OPT_KEEPINTVL, 1);
				bh_tcp_setopt(h.tcp, h.now, c, BH_TCP_OPT_KEEPALIVE, 1);
			}
			break;
		}
		if (h.nout >= H_LOG - 16 || h.nev >= H_LOG - 16)
			h_clear(&h);
		check(&h);
	}
	h.fail_alloc = false;
	for (int k = 0; k < 40; k++)
		h_tick(&h, h.now + 30000 * MS);
	check(&h);
	uint16_t lport = 80;
	if (l == 0 && bh_tcp_listen(h.tcp, lport = 8080, 4, 1, &l) != 0)
		dead("a fresh listener could not be made");
	check_alive(&h, l, lport);
	check(&h);
	uint32_t bad = h_fini(&h);
	if (bad) {
		fprintf(stderr, "tcp_input_fuzz: %u buffers not returned\n", bad);
		abort();
	}
	return 0;
}
