/*
 * tests/tcp/test_ext.c - what RFC 9293 leaves to its extensions: SACK both
 * ways (RFC 2018, RFC 6675), congestion control (RFC 5681, RFC 9438, RFC
 * 3042, RFC 5681 4.1), PAWS (RFC 7323 5), SYN cookies (RFC 4987 3.6),
 * keepalive (RFC 1122 4.2.3.6), Nagle's switch and silly window avoidance
 * (RFC 9293 3.7.4, 3.8.6.2.1), urgent data (RFC 9293 3.8.5, RFC 6093) and
 * the memory bounds. Segment by segment through the harness, leak-checked.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tcp/tcp_impl.h"
#include "tests/tcp/harness.h"

static struct harness H;

static void setup(void) { h_init(&H, NULL); }
static void teardown(void)
{
	cr_expect_eq(h_fini(&H), 0, "buffers leaked, released twice, or unknown");
}

TestSuite(sack, .init = setup, .fini = teardown);
TestSuite(cc, .init = setup, .fini = teardown);
TestSuite(paws, .init = setup, .fini = teardown);
TestSuite(cookie, .init = setup, .fini = teardown);
TestSuite(keepalive, .init = setup, .fini = teardown);
TestSuite(offload, .init = setup, .fini = teardown);
TestSuite(sending, .init = setup, .fini = teardown);
TestSuite(urgent, .init = setup, .fini = teardown);
TestSuite(memory, .init = setup, .fini = teardown);

static struct bh_tcp_info info(bh_tcp_conn c)
{
	struct bh_tcp_info i;
	cr_assert_eq(bh_tcp_info(H.tcp, c, &i), 0);
	return i;
}

static const struct h_seg *last(void)
{
	cr_assert_gt(H.nout, 0, "nothing was sent");
	return &H.out[H.nout - 1];
}

static const struct bh_tcp_counters *ctr(void) { return bh_tcp_counters(H.tcp); }

static void reinit(void (*tweak)(struct bh_tcp_config *))
{
	cr_assert_eq(h_fini(&H), 0);
	struct bh_tcp_config cfg;
	h_config(&cfg);
	tweak(&cfg);
	h_init(&H, &cfg);
}

static uint8_t D[1460 * 16];

/* A connection whose peer offers SACK (and timestamps if ts). */
static bh_tcp_conn sack_conn(bool ts)
{
	struct h_opts o = {.mss = true, .mss_v = 1460, .sack_ok = true, .ts = ts, .ts_val = 1};
	bh_tcp_conn c = h_connect(&H, &o);
	cr_assert(c);
	cr_assert(info(c).sack);
	return c;
}

/* n full segments written and sent (the initial window is 10). */
static void write_segs(bh_tcp_conn c, int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(h_write(&H, c, D + 1460 * i, 1460), 0);
}

static void use_newreno(struct bh_tcp_config *c) { c->cc = "newreno"; }

/* A round trip passes (10 ms, as the handshake's): what was just sent
 * reaches the peer, and its ACKs come back. */
static void rtt_passes(void) { H.now += 10 * MS; }

/* A peer ACK carrying SACK blocks (relative to our ISS). */
static void sack_ack(uint32_t ack, unsigned n, const uint32_t (*b)[2])
{
	struct h_opts o = {.nsack = (uint8_t)n};
	if (n)
		memcpy(o.sack, b, n * sizeof *b);
	h_send(&H, BH_TCP_ACK, 1, ack, 65535, NULL, 0, &o);
}

/* ---- SACK, receive side (RFC 2018 4) ---- */

Test(sack, blocks_we_send_put_the_newest_arrival_first)
{
	bh_tcp_conn c = sack_conn(false);
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 1461, 1, 65535, D, 1460, NULL);
	cr_assert_eq(H.nout, 1, "out of order: an ACK at once");
	cr_expect_eq(h_rel_ack(&H, 0), 1);
	cr_assert_eq(last()->t.opt.nsack, 1);
	cr_expect_eq(h_rel_sack(&H, 0, 0, false), 1461);
	cr_expect_eq(h_rel_sack(&H, 0, 0, true), 2921);
	h_send(&H, BH_TCP_ACK, 4381, 1, 65535, D, 1460, NULL);
	cr_assert_eq(last()->t.opt.nsack, 2);
	cr_expect_eq(h_rel_sack(&H, 1, 0, false), 4381, "the newest block first");
	cr_expect_eq(h_rel_sack(&H, 1, 1, false), 1461, "then the one reported before");
	/* Filling the gap between them merges the two into one block. */
	h_send(&H, BH_TCP_ACK, 2921, 1, 65535, D, 1460, NULL);
	cr_assert_eq(last()->t.opt.nsack, 1);
	cr_expect_eq(h_rel_sack(&H, 2, 0, false), 1461);
	cr_expect_eq(h_rel_sack(&H, 2, 0, true), 5841);
	/* The first hole filled: everything is in order, no blocks. */
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 1460, NULL);
	cr_expect_eq(h_rel_ack(&H, H.nout - 1), 5841);
	cr_expect_eq(last()->t.opt.nsack, 0);
	uint8_t buf[8000];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 5840);
}

/* RFC 2883 4: a segment we hold already is reported in the next ACK's
 * first block (a D-SACK), once; the part of one below RCV.NXT too. */
Test(sack, a_duplicate_segment_is_reported_by_a_dsack)
{
	bh_tcp_conn c = sack_conn(false);
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 1460, NULL);
	h_send(&H, BH_TCP_ACK, 1461, 1, 65535, D, 1460, NULL);
	h_tick(&H, H.now + 50 * MS); /* the delayed ACK, if any */
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 1460, NULL); /* again */
	cr_assert_eq(H.nout, 1, "answered at once");
	cr_expect_eq(h_rel_ack(&H, 0), 2921);
	cr_assert_eq(last()->t.opt.nsack, 1);
	cr_expect_eq(h_rel_sack(&H, 0, 0, false), 1, "the duplicate, below the ACK");
	cr_expect_eq(h_rel_sack(&H, 0, 0, true), 1461);
	cr_expect_eq(ctr()->dsacks_out, 1);
	/* Half old, half new: the old half is reported, the new taken. */
	h_send(&H, BH_TCP_ACK, 2191, 1, 65535, D, 1460, NULL);
	h_tick(&H, H.now + 50 * MS);
	cr_assert_geq(H.nout, 2);
	bool seen = false;
	for (unsigned i = 1; i < H.nout; i++)
		if (H.out[i].t.opt.nsack && h_rel_sack(&H, i, 0, false) == 2191 &&
		    h_rel_sack(&H, i, 0, true) == 2921)
			seen = true;
	cr_expect(seen, "the part below RCV.NXT");
	cr_expect_eq(ctr()->dsacks_out, 2);
	cr_expect_eq(h_rel_ack(&H, H.nout - 1), 3651);
	/* Nothing more to report: no block. */
	h_send(&H, BH_TCP_ACK, 3651, 1, 65535, D, 1460, NULL);
	h_tick(&H, H.now + 50 * MS);
	cr_expect_eq(last()->t.opt.nsack, 0);
	uint8_t buf[8000];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 5110);
}

/* RFC 2883 4 as the sender reads it (the first block below the ACK),
 * and RFC 8985 6.2 step 4: a D-SACK widens RACK's reordering window by
 * min_RTT / 4, once per round trip. */
Test(sack, a_dsack_widens_the_reordering_window)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 4);
	rtt_passes();
	const struct tconn *k = bh_tcp__from_handle(H.tcp, c);
	cr_assert(k);
	cr_expect_eq(k->reo_mult, 1);
	const uint32_t d[][2] = {{1, 1461}};
	sack_ack(1461, 1, d);
	cr_expect_eq(ctr()->dsacks_in, 1);
	cr_expect_eq(k->reo_mult, 2);
	sack_ack(2921, 1, d); /* the same round trip */
	cr_expect_eq(ctr()->dsacks_in, 2);
	cr_expect_eq(k->reo_mult, 2, "once per round trip");
	cr_expect_eq(info(c).sacked, 0, "a D-SACK marks nothing SACKed");
	write_segs(c, 2);
	rtt_passes();
	sack_ack(5841, 0, NULL); /* past the round's end */
	sack_ack(5841, 1, d);
	cr_expect_eq(k->reo_mult, 3, "the next round trip");
}

Test(sack, four_blocks_fit_three_beside_timestamps)
{
	bh_tcp_conn c = sack_conn(false);
	for (uint32_t k = 0; k < 5; k++)
		h_send(&H, BH_TCP_ACK, 1 + 2000 * (k + 1), 1, 65535, D, 100, NULL);
	cr_expect_eq(last()->t.opt.nsack, 4);
	cr_expect_eq(info(c).ooo_queued, 500);
	cr_assert_eq(h_fini(&H), 0);
	h_init(&H, NULL);
	sack_conn(true);
	for (uint32_t k = 0; k < 5; k++) {
		struct h_opts o = {.ts = true, .ts_val = 2 + k};
		h_send(&H, BH_TCP_ACK, 1 + 2000 * (k + 1), 1, 65535, D, 100, &o);
	}
	cr_expect_eq(last()->t.opt.nsack, 3);
	cr_expect(last()->t.opt.has_ts);
}

Test(sack, overlapping_out_of_order_data_is_kept_once)
{
	bh_tcp_conn c = sack_conn(false);
	for (unsigned i = 0; i < sizeof D; i++)
		D[i] = (uint8_t)(i * 7 + 3);
	/* [1001, 2001), then [501, 2501) covering it, then [1501, 3001)
	 * overlapping the tail, then the front [1, 1001). */
	h_send(&H, BH_TCP_ACK, 1001, 1, 65535, D + 1000, 1000, NULL);
	h_send(&H, BH_TCP_ACK, 501, 1, 65535, D + 500, 2000, NULL);
	h_send(&H, BH_TCP_ACK, 1501, 1, 65535, D + 1500, 1500, NULL);
	cr_expect_eq(info(c).ooo_queued, 2500, "each byte held once");
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 1000, NULL);
	cr_expect_eq(info(c).rcv_nxt - H.peer_iss, 3001);
	uint8_t buf[4000];
	cr_assert_eq(h_read(&H, c, buf, sizeof buf), 3000);
	cr_expect_arr_eq(buf, D, 3000);
}

/* ---- SACK, send side (RFC 6675) ---- */

Test(sack, limited_transmit_then_recovery_on_the_third_duplicate)
{
	bh_tcp_conn c = sack_conn(false);
	h_clear(&H);
	write_segs(c, 12);
	cr_assert_eq(H.nout, 10, "the initial window, ten segments");
	h_clear(&H);
	rtt_passes();
	/* The first segment is lost; the peer SACKs the next ones. One
	 * segment SACKed could be reordering: RACK waits a quarter of the
	 * minimum RTT (RFC 8985 6.2 step 4). */
	const uint32_t b1[][2] = {{1461, 2921}};
	sack_ack(1, 1, b1);
	cr_assert_eq(H.nout, 1, "RFC 3042: a new segment on the first duplicate");
	cr_expect_eq(h_rel_seq(&H, 0), 1 + 10 * 1460);
	const uint32_t b2[][2] = {{1461, 4381}};
	sack_ack(1, 1, b2);
	cr_assert_eq(H.nout, 2, "and on the second");
	cr_expect_eq(h_rel_seq(&H, 1), 1 + 11 * 1460);
	cr_expect_eq(ctr()->limited_transmits, 2);
	cr_expect_eq(ctr()->fast_retransmits, 0);
	cr_expect_eq(ctr()->rack_lost, 0, "not yet: the reordering window has not passed");
	/* Three SACKed: no reordering window any more (RFC 8985 6.2 step 4,
	 * as DupThresh). */
	const uint32_t b3[][2] = {{1461, 5841}};
	sack_ack(1, 1, b3);
	cr_expect_eq(ctr()->fast_retransmits, 1);
	cr_expect_eq(ctr()->sack_recoveries, 1);
	cr_assert_geq(H.nout, 3);
	cr_expect_eq(h_rel_seq(&H, 2), 1, "the lost segment again");
	cr_expect_eq(H.out[2].len, 1460);
	cr_expect(info(c).in_recovery);
	cr_expect_eq(ctr()->rack_lost, 1, "RACK marked it");
}

/* One segment SACKed, then nothing: RACK's reordering timer marks the
 * hole lost a quarter of the minimum RTT later (RFC 8985 6.2 step 5,
 * 6.3), and recovery starts without another ACK. */
Test(sack, the_reordering_timer_finds_a_loss_without_another_ack)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 2);
	h_clear(&H);
	rtt_passes();
	const uint32_t b[][2] = {{1461, 2921}};
	sack_ack(1, 1, b);
	cr_expect_eq(H.nout, 0);
	cr_expect(!info(c).in_recovery);
	uint64_t next = h_tick(&H, H.now);
	cr_assert_leq(next, H.now + 10 * MS / 4, "due within min RTT / 4: %llu",
		      (unsigned long long)(next - H.now));
	h_tick(&H, next);
	cr_expect_eq(ctr()->rack_reo_timeouts, 1);
	cr_expect(info(c).in_recovery);
	cr_assert_eq(H.nout, 1, "the hole, once");
	cr_expect_eq(h_rel_seq(&H, 0), 1);
	cr_expect_eq(ctr()->timeouts, 0, "no RTO");
}

Test(sack, recovery_resends_only_the_holes)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 10);
	h_clear(&H);
	/* Segments 0 and 4 lost: one ACK SACKs the rest. More than two
	 * segments SACKed above the first: it is lost at once (RFC 6675 5,
	 * IsLost), no need for three duplicates. */
	const uint32_t b[][2] = {{7301, 14601}, {1461, 5841}};
	sack_ack(1, 2, b);
	struct bh_tcp_info i = info(c);
	cr_expect(i.in_recovery);
	cr_expect_eq(i.sack_holes, 2);
	cr_expect_eq(i.sacked, 4380 + 7300);
	cr_assert_eq(H.nout, 2, "two holes, two segments, nothing SACKed resent");
	cr_expect_eq(h_rel_seq(&H, 0), 1);
	cr_expect_eq(h_rel_seq(&H, 1), 5841);
	cr_expect_eq(ctr()->sack_retransmits, 2);
	cr_expect_eq(i.ssthresh, (uint32_t)(14600 * 0.7), "CUBIC: beta 0.7 of the flight");
	cr_expect_eq(i.cwnd, i.ssthresh, "RFC 6675 5 (4.2): cwnd = ssthresh");
	/* A partial ACK leaves recovery on; the full one ends it. */
	const uint32_t b2[][2] = {{7301, 14601}};
	sack_ack(1461, 1, b2);
	cr_expect(info(c).in_recovery);
	cr_expect_eq(H.nout, 2, "nothing else is missing");
	sack_ack(14601, 0, NULL);
	i = info(c);
	cr_expect(!i.in_recovery);
	cr_expect_eq(i.sack_holes, 0);
	cr_expect_eq(i.cwnd, i.ssthresh);
	cr_expect_eq(info(c).snd_queued, 0);
}

Test(sack, a_lost_tail_is_found_by_the_resend_acknowledged_after_it)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 10);
	h_clear(&H);
	rtt_passes();
	/* Segment 0 lost, and the last one: only 1..8 are SACKed. */
	const uint32_t b[][2] = {{1461, 13141}};
	sack_ack(1, 1, b);
	cr_assert_eq(H.nout, 1, "segment 0, sent before what was SACKed, is lost");
	cr_expect_eq(h_rel_seq(&H, 0), 1);
	/* The resend comes back: it was sent after the tail, so the tail,
	 * still missing, is lost too (RFC 8985 3.3: RACK by time, where
	 * RFC 6675 needed its rescue rule). */
	rtt_passes();
	sack_ack(13141, 0, NULL);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(h_rel_seq(&H, 1), 13141, "the tail");
	sack_ack(13141, 0, NULL);
	cr_expect_eq(H.nout, 2, "once");
	cr_expect(info(c).in_recovery);
	sack_ack(14601, 0, NULL);
	cr_expect(!info(c).in_recovery);
	cr_expect_eq(ctr()->timeouts, 0);
}

/* A lost tail with nothing after it: no ACK says anything, so a probe
 * goes after 2 SRTT (RFC 8985 7.2, 7.3), not the RTO; its SACK shows
 * the segment before it lost. */
Test(sack, a_tail_loss_is_answered_by_a_probe)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 4);
	h_clear(&H);
	rtt_passes();
	sack_ack(2921, 0, NULL); /* 0 and 1 arrive; 2 and 3 are lost */
	cr_expect_eq(H.nout, 0);
	uint64_t next = h_tick(&H, H.now);
	uint32_t srtt = info(c).srtt_us;
	cr_assert_leq(next, H.now + 2ull * srtt + 2 * MS, "the probe timeout, not the RTO (%u)",
		      info(c).rto_us);
	h_tick(&H, next);
	cr_expect_eq(ctr()->tlp_probes, 1);
	cr_assert_eq(H.nout, 1, "one probe");
	cr_expect_eq(h_rel_seq(&H, 0), 1 + 3 * 1460, "the last segment again");
	cr_expect_eq(ctr()->timeouts, 0);
	/* The probe is SACKed: segment 2, sent before it, is lost. */
	rtt_passes();
	const uint32_t b[][2] = {{4381, 5841}};
	sack_ack(2921, 1, b);
	cr_expect(info(c).in_recovery);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(h_rel_seq(&H, 1), 2921);
	/* All in: recovery ends, the probe's episode with it, no timeout. */
	rtt_passes();
	sack_ack(5841, 0, NULL);
	cr_expect(!info(c).in_recovery);
	cr_expect_eq(ctr()->timeouts, 0);
	cr_expect_eq(info(c).snd_queued, 0);
}

/* A probe with new data when there is some (RFC 8985 7.3), and one
 * probe per flight. */
Test(sack, a_probe_sends_new_data_when_the_window_allows)
{
	bh_tcp_conn c = sack_conn(false);
	h_clear(&H);
	write_segs(c, 12);
	cr_assert_eq(H.nout, 10, "the initial window; two wait");
	h_clear(&H);
	rtt_passes();
	/* Every segment is lost; the peer is silent. The probe takes new
	 * data past cwnd, as the receive window allows (7.3). */
	uint64_t next = h_tick(&H, H.now);
	h_tick(&H, next);
	cr_expect_eq(ctr()->tlp_probes, 1);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, 0), 1 + 10 * 1460, "new data");
	next = h_tick(&H, H.now);
	cr_expect_geq(next, H.now + info(c).rto_us - 1, "then only the RTO");
	h_tick(&H, next);
	cr_expect_eq(ctr()->tlp_probes, 1, "one probe per flight");
	cr_expect_eq(ctr()->timeouts, 1);
}

/* A retransmission that is lost again is found by RACK, as any segment
 * is, once something sent after it is delivered (RFC 8985 3.3.2), and
 * resent without a timeout. */
Test(sack, a_lost_retransmission_is_found_and_resent)
{
	bh_tcp_conn c = sack_conn(false);
	h_clear(&H);
	write_segs(c, 16);
	h_clear(&H);
	rtt_passes();
	const uint32_t b[][2] = {{1461, 5841}};
	sack_ack(1, 1, b);
	cr_assert(info(c).in_recovery);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, 0), 1, "the first resend");
	const uint32_t b1[][2] = {{1461, 7301}};
	sack_ack(1, 1, b1);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(h_rel_seq(&H, 1), 1 + 10 * 1460, "then new data, after it");
	unsigned first = H.nout;
	/* The resend is lost; the new segment sent after it is SACKed. */
	rtt_passes();
	const uint32_t b2[][2] = {{14601, 16061}, {1461, 14601}};
	sack_ack(1, 2, b2);
	cr_expect_eq(ctr()->lost_retransmits, 1);
	cr_assert_gt(H.nout, first);
	cr_expect_eq(h_rel_seq(&H, first), 1, "segment 0 a third time");
	cr_expect_eq(ctr()->timeouts, 0);
	sack_ack(16061, 0, NULL);
	cr_expect(!info(c).in_recovery);
}

/* ---- RTT from every ACK (RFC 7323 4, Appendix G) ---- */

/* With SACK the send records time every segment: each ACK that moves
 * SND.UNA is a sample (not only the one timed segment per round trip of
 * RFC 6298 with Karn), each weighted by the samples a round trip brings
 * (ExpectedSamples = ceil(FlightSize / (2 SMSS))): four segments out,
 * two per round trip, so the gains are 1/16 and 1/8. */
Test(sack, every_ack_is_an_rtt_sample_weighted_by_the_samples_per_round_trip)
{
	bh_tcp_conn c = sack_conn(false);
	cr_assert_eq(info(c).srtt_us, 10000, "the handshake's");
	cr_assert_eq(info(c).rttvar_us, 5000);
	write_segs(c, 4);
	H.now += 20 * MS;
	sack_ack(2921, 0, NULL);
	/* srtt 10000 + (20000 - 10000) / 16; rttvar 5000 + (10000 - 5000) / 8 */
	cr_expect_eq(info(c).srtt_us, 10625);
	cr_expect_eq(info(c).rttvar_us, 5625);
	H.now += 10 * MS;
	sack_ack(5841, 0, NULL);
	/* the second ACK: 30 ms, two segments out, one sample per round
	 * trip: 10625 + (30000 - 10625) / 8 */
	cr_expect_eq(info(c).srtt_us, 13046, "srtt %u: the second ACK is a sample too",
		     info(c).srtt_us);
}

/* An ACK that covers data sent more than once is no sample from the
 * send records, even for data in it sent once (Linux:
 * FLAG_RETRANS_DATA_ACKED): it may answer the resend or the original.
 * Without timestamps, and with Karn's timed segment resent, SRTT stays. */
Test(sack, an_ack_covering_resent_data_is_no_record_sample)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 5);
	rtt_passes();
	const uint32_t b[][2] = {{1461, 5841}};
	sack_ack(1, 1, b); /* segment 0 lost, 4 not yet SACKed */
	cr_assert(info(c).in_recovery);
	cr_assert_eq(ctr()->retransmits, 1);
	cr_assert_eq(info(c).srtt_us, 10000);
	H.now += 2 * MS;
	sack_ack(7301, 0, NULL); /* 0 (resent), 1-3 (SACKed), 4 (sent once) */
	cr_expect_eq(info(c).snd_queued, 0);
	cr_expect_eq(info(c).srtt_us, 10000, "srtt %u", info(c).srtt_us);
}

/* The timers run until one more segment is resent (the probe, or the
 * RTO) than `before`. */
static void resend_by_timer_from(uint64_t before)
{
	for (int i = 0; i < 10 && ctr()->retransmits + ctr()->tlp_probes == before; i++) {
		uint64_t next = h_tick(&H, H.now);
		cr_assert_neq(next, 0, "no timer runs");
		H.now = next;
		h_tick(&H, H.now);
	}
	cr_assert_gt(ctr()->retransmits + ctr()->tlp_probes, before);
}
static void resend_by_timer(void) { resend_by_timer_from(0); }
static void resend_by_timer_again(void)
{
	resend_by_timer_from(ctr()->retransmits + ctr()->tlp_probes);
}

/* A resend's ACK is no sample by Karn's rule, but its timestamp echo is
 * one (RFC 7323 4.1: the echo names the copy that arrived): the echo of
 * the resend's TSval, 30 ms after it went, moves SRTT from the
 * handshake's 10 ms towards 30. */
Test(sack, an_acked_resend_gives_an_rtt_from_its_timestamp_echo)
{
	bh_tcp_conn c = sack_conn(true);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, D, 1000), 0); /* one segment */
	cr_assert_eq(info(c).srtt_us, 10000);
	resend_by_timer();
	const struct h_seg *re = last();
	cr_assert_eq(h_rel_seq(&H, H.nout - 1), 1, "the segment again");
	cr_assert(re->t.opt.has_ts);
	uint32_t tsval = re->t.opt.ts_val;
	H.now += 30 * MS;
	struct h_opts o = {.ts = true, .ts_val = 100, .ts_ecr = tsval};
	h_send(&H, BH_TCP_ACK, 1, 1001, 65535, NULL, 0, &o);
	cr_expect_eq(info(c).snd_queued, 0);
	/* 10000 + (30000 - 10000) / 8 */
	cr_expect_eq(info(c).srtt_us, 12500, "srtt %u", info(c).srtt_us);
}

/* An echo from the future (a peer's error, or an attack), or one older
 * than the longest RTO, is no sample. */
Test(sack, a_timestamp_echo_from_the_future_is_no_sample)
{
	bh_tcp_conn c = sack_conn(true);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, D, 1000), 0); /* one segment */
	resend_by_timer();
	cr_assert_eq(h_rel_seq(&H, H.nout - 1), 1);
	H.now += 30 * MS;
	struct h_opts o = {.ts = true, .ts_val = 100, .ts_ecr = (uint32_t)(H.now / 1000) + 5000};
	h_send(&H, BH_TCP_ACK, 1, 1001, 65535, NULL, 0, &o);
	cr_expect_eq(info(c).snd_queued, 0);
	cr_expect_eq(info(c).srtt_us, 10000, "srtt %u", info(c).srtt_us);
	/* the same with an echo 200 s old (the longest RTO is 120 s) */
	cr_assert_eq(h_write(&H, c, D, 1000), 0);
	resend_by_timer_again();
	H.now += 30 * MS;
	o.ts_ecr = (uint32_t)(H.now / 1000) - 200000;
	h_send(&H, BH_TCP_ACK, 1, 2001, 65535, NULL, 0, &o);
	cr_expect_eq(info(c).snd_queued, 0);
	cr_expect_eq(info(c).srtt_us, 10000, "srtt %u", info(c).srtt_us);
}

/* ---- undo (RFC 2883 4) ---- */

/* Ten segments out (the initial window), a round trip later the peer
 * SACKs `n` blocks: the holes are marked lost and resent; then it ACKs
 * all ten, which ends the recovery with the window cut. Returns the
 * window before the recovery. */
static uint32_t recovery_then_all_acked(bh_tcp_conn c, unsigned n, const uint32_t (*b)[2])
{
	write_segs(c, 10);
	rtt_passes();
	uint32_t before = info(c).cwnd;
	sack_ack(1, n, b);
	cr_assert(info(c).in_recovery);
	sack_ack(14601, 0, NULL);
	cr_assert(!info(c).in_recovery);
	cr_assert_lt(info(c).cwnd, before, "the recovery cut the window");
	return before;
}

/* The resend came back D-SACKed after the recovery ended (the original
 * was only late): the cut was needless, and the window goes back. */
Test(sack, a_recovery_whose_every_resend_is_dsacked_is_undone)
{
	bh_tcp_conn c = sack_conn(false);
	h_clear(&H);
	const uint32_t b[][2] = {{1461, 5841}};
	uint32_t before = recovery_then_all_acked(c, 1, b);
	cr_expect_eq(ctr()->retransmits, 1);
	const uint32_t d[][2] = {{1, 1461}};
	sack_ack(14601, 1, d);
	cr_expect_eq(ctr()->undos, 1);
	cr_expect_geq(info(c).cwnd, before, "cwnd %u, before %u", info(c).cwnd, before);
}

/* Two resends, one of them D-SACKed: the other may have repaired a real
 * loss, so the cut stays until it is D-SACKed too. */
Test(sack, a_recovery_is_undone_only_when_all_its_resends_are_dsacked)
{
	bh_tcp_conn c = sack_conn(false);
	h_clear(&H);
	const uint32_t b[][2] = {{7301, 14601}, {1461, 5841}};
	uint32_t before = recovery_then_all_acked(c, 2, b);
	cr_assert_eq(ctr()->retransmits, 2, "segments 1 and 5 resent");
	uint32_t cut = info(c).cwnd;
	const uint32_t d1[][2] = {{1, 1461}};
	sack_ack(14601, 1, d1);
	cr_expect_eq(ctr()->undos, 0);
	cr_expect_eq(info(c).cwnd, cut);
	const uint32_t d2[][2] = {{5841, 7301}};
	sack_ack(14601, 1, d2);
	cr_expect_eq(ctr()->undos, 1);
	cr_expect_geq(info(c).cwnd, before);
}

/* A probe resent the tail before the recovery began; the probe's
 * D-SACK (its original had arrived) says nothing of the hole the
 * recovery resent, which was a real loss: no undo. */
Test(sack, a_probes_dsack_does_not_undo_the_recovery_after_it)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 4);
	h_clear(&H);
	rtt_passes();
	sack_ack(2921, 0, NULL); /* 0 and 1 arrive */
	uint64_t next = h_tick(&H, H.now);
	h_tick(&H, next);
	cr_assert_eq(ctr()->tlp_probes, 1);
	cr_assert_eq(h_rel_seq(&H, H.nout - 1), 1 + 3 * 1460, "the probe: the last segment again");
	rtt_passes();
	const uint32_t b[][2] = {{4381, 5841}};
	sack_ack(2921, 1, b); /* segment 2 is lost */
	cr_assert(info(c).in_recovery);
	cr_assert_eq(h_rel_seq(&H, H.nout - 1), 2921, "the hole resent");
	uint32_t before = info(c).cwnd;
	rtt_passes();
	sack_ack(5841, 0, NULL);
	cr_assert(!info(c).in_recovery);
	const uint32_t d[][2] = {{4381, 5841}}; /* the probe's duplicate */
	sack_ack(5841, 1, d);
	cr_expect_eq(ctr()->dsacks_in, 1);
	cr_expect_eq(ctr()->undos, 0);
	cr_expect_leq(info(c).cwnd, before);
}

/* A D-SACK of an earlier recovery's resend, arriving after a later
 * recovery ended, says nothing of the later one's resends (which lie at
 * or above its start): no undo. */
Test(sack, a_dsack_of_an_earlier_recovery_does_not_undo_a_later_one)
{
	bh_tcp_conn c = sack_conn(false);
	h_clear(&H);
	const uint32_t b[][2] = {{1461, 5841}};
	recovery_then_all_acked(c, 1, b);
	/* more data, and a second recovery from 14601 */
	uint32_t una = 14601;
	write_segs(c, 10);
	rtt_passes();
	cr_assert_gt(info(c).snd_nxt - info(c).iss - 1, una + 4 * 1460 - 1, "new data went");
	const uint32_t b2[][2] = {{una + 1460, una + 4 * 1460}};
	sack_ack(una, 1, b2);
	cr_assert(info(c).in_recovery, "the second recovery");
	uint32_t end = info(c).snd_nxt - info(c).iss;
	sack_ack(end, 0, NULL);
	cr_assert(!info(c).in_recovery);
	uint32_t cut = info(c).cwnd;
	const uint32_t d[][2] = {{1, 1461}}; /* the first recovery's resend */
	sack_ack(end, 1, d);
	cr_expect_eq(ctr()->dsacks_in, 1);
	cr_expect_eq(ctr()->undos, 0);
	cr_expect_eq(info(c).cwnd, cut);
}

/* A peer that SACKs a byte here and there splits the send records
 * wherever its blocks end; past a cap per connection the splits are
 * refused (coarser marks), so it can neither exhaust the record store
 * nor make every ACK's walk long; the data still all goes through. */
Test(sack, odd_sack_blocks_cannot_split_records_without_end)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 10);
	rtt_passes();
	const struct tconn *k = bh_tcp__from_handle(H.tcp, c);
	cr_assert(k);
	uint32_t cap = 2 * (262144 / 1460) + 64;
	/* Each block below the last: the scoreboard keeps the lowest
	 * ranges, so every one of them is taken and splits. */
	for (uint32_t a = 0; a < 1500; a++) {
		uint32_t at = 14590 - 9 * a;
		const uint32_t b[][2] = {{at, at + 1}};
		sack_ack(1, 1, b);
		cr_assert_leq(k->recs.count, cap, "records %u past the cap %u", k->recs.count, cap);
	}
	cr_expect_gt(ctr()->rec_capped, 0, "the cap was reached (%u records, %llu lost marks)", k->recs.count, (unsigned long long)ctr()->rack_lost);
	cr_expect_eq(ctr()->rec_short, 0, "the store never ran dry");
	sack_ack(14601, 0, NULL);
	cr_expect_eq(info(c).snd_queued, 0);
	cr_expect_eq(k->recs.count, 0);
}

/* RFC 8985 6.2 step 2: an ACK of a segment sent twice that comes sooner
 * than any round trip can be for the first copy, so RACK does not take
 * the resend's time from it; one a round trip after the resend does. */
static void ambiguous_ack(bool late)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 4);
	uint64_t first = H.now;
	rtt_passes();
	const uint32_t b[][2] = {{1461, 5841}};
	sack_ack(1, 1, b);
	cr_assert(info(c).in_recovery);
	uint64_t resent = H.now;
	const struct tconn *k = bh_tcp__from_handle(H.tcp, c);
	cr_assert(k);
	cr_assert_eq(k->rack_sent, first, "RACK.xmit_ts: the SACKed originals");
	if (late)
		rtt_passes();
	sack_ack(5841, 0, NULL);
	if (late)
		cr_expect_eq(k->rack_sent, resent, "a round trip later: the resend's time");
	else
		cr_expect_eq(k->rack_sent, first, "too soon to be the resend's: not taken");
}

Test(sack, an_ack_of_a_resend_sooner_than_a_round_trip_is_not_taken) { ambiguous_ack(false); }
Test(sack, an_ack_of_a_resend_a_round_trip_later_is_taken) { ambiguous_ack(true); }

/* RFC 6937: in recovery, the window falls to ssthresh in proportion to
 * what is delivered (ssthresh / RecoverFS of it), not all at once. */
Test(sack, prr_spreads_the_reduction_over_the_acks)
{
	reinit(use_newreno);
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 16); /* ten go, six wait */
	h_clear(&H);
	rtt_passes();
	/* Segment 0 lost; the first ACK SACKs three segments, then one ACK
	 * per segment, as a receiver sends them. */
	uint32_t b[][2] = {{1461, 1461 + 3 * 1460}};
	sack_ack(1, 1, (const uint32_t(*)[2])b);
	cr_assert(info(c).in_recovery);
	cr_expect_eq(info(c).ssthresh, 7300, "NewReno: half of 10 segments");
	unsigned after[7];
	after[0] = H.nout;
	for (int k = 4; k < 10; k++) {
		b[0][1] = 1461 + (uint32_t)k * 1460;
		sack_ack(1, 1, (const uint32_t(*)[2])b);
		after[k - 3] = H.nout;
	}
	/* RFC 6937 3: while the pipe is above ssthresh, ceil(delivered x
	 * ssthresh / RecoverFS) = half of what is delivered goes (in whole
	 * segments): 3 delivered, 2 sent (the resend and one new); 4, 2;
	 * 5, 3; 6, 3. At 7 the pipe has fallen to ssthresh: nothing (the
	 * old rule, cwnd = ssthresh at once, sent nothing until here, then
	 * a burst); from there PRR-SSRB holds it: one out per one in. */
	unsigned want[7] = {2, 2, 3, 3, 3, 4, 5};
	for (int k = 0; k < 7; k++)
		cr_expect_eq(after[k], want[k], "after %d delivered: %u sent, PRR says %u", k + 3,
			     after[k], want[k]);
	cr_expect_eq(h_rel_seq(&H, 0), 1, "the first is the resend");
	cr_expect_eq(ctr()->timeouts, 0);
}

Test(sack, blocks_outside_what_was_sent_are_ignored)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 4);
	h_clear(&H);
	const uint32_t bad[][2] = {{1461, 900000}, {3000, 2000}, {0x80000000u, 0x80001000u}};
	for (int k = 0; k < 3; k++)
		sack_ack(1, 3, bad);
	cr_expect_eq(ctr()->sack_bad_blocks, 9);
	cr_expect_eq(info(c).sacked, 0);
	cr_expect(!info(c).in_recovery);
	cr_expect_eq(H.nout, 0);
}

Test(sack, timeout_forgets_the_scoreboard)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 4);
	const uint32_t b[][2] = {{1461, 2921}};
	sack_ack(1, 1, b);
	cr_expect_eq(info(c).sacked, 1460);
	h_clear(&H);
	h_tick(&H, h_tick(&H, H.now));
	cr_assert_geq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, 0), 1);
	cr_expect_eq(info(c).sacked, 0, "RFC 2018 8: the receiver may have reneged");
	cr_expect_eq(info(c).cwnd, 1460);
}

/* ---- congestion control ---- */


Test(cc, cubic_by_default_newreno_on_request_unknown_refused)
{
	bh_tcp_conn c = sack_conn(false);
	cr_expect_str_eq(info(c).cc, "cubic");
	reinit(use_newreno);
	c = sack_conn(false);
	cr_expect_str_eq(info(c).cc, "newreno");
	struct bh_tcp_config cfg;
	h_config(&cfg);
	cfg.cc = "vegas";
	const char *err = NULL;
	static const struct bh_tcp_ops ops;
	cr_expect_null(bh_tcp_create(&cfg, &ops, NULL, &err));
	cr_expect_not_null(err);
}

Test(cc, newreno_halves_cubic_keeps_seven_tenths)
{
	reinit(use_newreno);
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 10);
	const uint32_t b[][2] = {{1461, 14601}};
	sack_ack(1, 1, b);
	cr_expect_eq(info(c).ssthresh, 7300, "RFC 5681 (4): FlightSize / 2");
}

/* The algorithms themselves, on a connection's state alone. */
static struct tconn ca_conn(const char *name, uint32_t segs)
{
	struct tconn c;
	memset(&c, 0, sizeof c);
	c.cc = bh_tcp__cc_find(name);
	cr_assert_not_null(c.cc);
	c.cc->init(&c);
	c.smss = 1000;
	c.srtt = 100000; /* 100 ms */
	c.cwnd = segs * 1000;
	c.snd_max = c.cwnd;
	return c;
}

/* One RTT of ACKs, one per segment in the window. */
static void one_rtt(struct tconn *c, uint64_t *now)
{
	uint32_t n = c->cwnd / c->smss;
	for (uint32_t k = 0; k < n; k++)
		c->cc->ack(c, c->smss, *now + (uint64_t)k * 100000 / n);
	*now += 100000;
}

Test(cc, newreno_grows_one_segment_per_rtt)
{
	struct tconn c = ca_conn("newreno", 50);
	c.ssthresh = c.cwnd;
	uint64_t now = 1000000;
	one_rtt(&c, &now);
	cr_expect(c.cwnd >= 50990 && c.cwnd <= 51010, "cwnd %u", c.cwnd);
}

Test(cc, cubic_climbs_back_to_w_max_in_k_seconds_concave_then_convex)
{
	struct tconn c = ca_conn("cubic", 100);
	uint64_t now = 1000000;
	uint32_t s = c.cc->ssthresh(&c, bh_seq_span(c.snd_una, c.snd_max), now);
	cr_expect_eq(s, 70000, "RFC 9438 4.6: beta 0.7");
	cr_expect_float_eq(c.cubic.w_max, 100.0, 1e-9);
	c.cwnd = c.ssthresh = s;
	/* K = cbrt(W_max (1 - beta) / C) = cbrt(75) s (RFC 9438 4.2). */
	double k = cbrt(75.0);
	uint32_t w_prev = c.cwnd, first = 0, mid = 0, lastinc = 0;
	int rtts = (int)(k * 10);
	for (int r = 0; r < rtts; r++) {
		one_rtt(&c, &now);
		uint32_t inc = c.cwnd - w_prev;
		if (r == 0)
			first = inc;
		if (r == rtts - 3)
			mid = inc;
		w_prev = c.cwnd;
	}
	cr_expect(c.cwnd > 96000 && c.cwnd < 102000, "near W_max after K: %u", c.cwnd);
	cr_expect_gt(first, mid, "concave: growth slows towards W_max (%u, %u)", first, mid);
	for (int r = 0; r < 20; r++) {
		one_rtt(&c, &now);
		lastinc = c.cwnd - w_prev;
		w_prev = c.cwnd;
	}
	cr_expect_gt(lastinc, mid, "convex: growth speeds up past W_max");
	cr_expect_gt(c.cwnd, 102000, "W(K + 2 s) = W_max + 0.4 * 2^3");
}

Test(cc, fast_convergence_lowers_w_max_when_the_window_shrank)
{
	struct tconn c = ca_conn("cubic", 100);
	c.cc->ssthresh(&c, bh_seq_span(c.snd_una, c.snd_max), 1);
	c.cwnd = 80000;
	c.snd_max = c.cwnd;
	c.cc->ssthresh(&c, bh_seq_span(c.snd_una, c.snd_max), 2);
	cr_expect_float_eq(c.cubic.w_max, 80 * 1.7 / 2, 1e-9, "RFC 9438 4.7");
}

Test(cc, cubic_is_never_slower_than_reno)
{
	/* At a tiny RTT the cubic curve is flat; the Reno-friendly
	 * estimate (RFC 9438 4.3) carries the window. */
	struct tconn c = ca_conn("cubic", 20);
	c.srtt = 100;
	c.cubic.w_max = 20;
	c.ssthresh = c.cwnd;
	uint64_t now = 1000000;
	for (int r = 0; r < 100; r++) {
		uint32_t n = c.cwnd / c.smss;
		for (uint32_t q = 0; q < n; q++)
			c.cc->ack(&c, c.smss, now);
		now += 100;
	}
	/* Reno-friendly alpha is 0.53 segments per RTT below W_max. */
	cr_expect_gt(c.cwnd, 20000 + 40 * 1000, "cwnd %u", c.cwnd);
}

Test(cc, slow_start_restarts_after_idle)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	write_segs(c, 10);
	for (uint32_t k = 1; k <= 10; k++)
		h_send(&H, BH_TCP_ACK, 1, 1 + 1460 * k, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).cwnd, 20 * 1460, "slow start doubled the window");
	H.now += 5000 * MS; /* longer than the RTO */
	h_clear(&H);
	write_segs(c, 1);
	cr_expect_eq(info(c).cwnd, 10 * 1460, "RFC 5681 4.1: back to the initial window");
	cr_expect_eq(H.nout, 1);
}

Test(cc, a_second_timeout_keeps_ssthresh)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	write_segs(c, 10);
	h_tick(&H, h_tick(&H, H.now));
	uint32_t s1 = info(c).ssthresh;
	cr_expect_eq(s1, (uint32_t)(14600 * 0.7));
	h_tick(&H, h_tick(&H, H.now));
	cr_expect_eq(info(c).ssthresh, s1, "RFC 5681 3.1: held on a repeated timeout");
	cr_expect_eq(ctr()->timeouts, 2);
}

/* ---- PAWS (RFC 7323 5) ---- */

Test(paws, an_old_timestamp_is_answered_and_dropped)
{
	bh_tcp_conn c = sack_conn(true);
	struct h_opts o = {.ts = true, .ts_val = 100};
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, "new", 3, &o);
	h_clear(&H);
	struct h_opts old = {.ts = true, .ts_val = 50};
	h_send(&H, BH_TCP_ACK, 4, 1, 65535, "old", 3, &old);
	cr_expect_eq(ctr()->paws_drops, 1);
	cr_assert_eq(H.nout, 1, "an ACK answers it");
	cr_expect_eq(h_rel_ack(&H, 0), 4, "the old segment's data is not taken");
	cr_expect_eq(last()->t.opt.ts_ecr, 100, "TS.Recent is unchanged");
	/* The wrap rule (RFC 7323 5.5): after 24 days idle an older value
	 * is taken. */
	H.now += 25ull * 86400 * 1000 * MS;
	h_send(&H, BH_TCP_ACK, 4, 1, 65535, "yes", 3, &old);
	cr_expect_eq(ctr()->paws_drops, 1);
	uint8_t buf[8];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 6);
}

Test(paws, ts_recent_is_taken_only_from_segments_at_the_left_edge)
{
	sack_conn(true);
	/* Out of order, ahead of the last ACK: its timestamp is not kept. */
	struct h_opts ahead = {.ts = true, .ts_val = 500};
	h_send(&H, BH_TCP_ACK, 1001, 1, 65535, D, 100, &ahead);
	cr_expect_eq(last()->t.opt.ts_ecr, 1);
	struct h_opts edge = {.ts = true, .ts_val = 400};
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 100, &edge);
	cr_expect_eq(last()->t.opt.ts_ecr, 400);
}

/* ---- SYN cookies (RFC 4987 3.6) ---- */

static bh_tcp_conn listen_full(uint32_t backlog)
{
	bh_tcp_conn l;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, backlog, 1, &l), 0);
	for (uint32_t i = 0; i < backlog; i++) {
		H.peer_port = (uint16_t)(41000 + i);
		h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	}
	cr_assert_eq(H.nout, backlog);
	return l;
}

Test(cookie, a_full_syn_queue_answers_with_a_cookie_and_the_ack_completes)
{
	bh_tcp_conn l = listen_full(2);
	h_clear(&H);
	H.peer_port = 42000;
	struct h_opts o = {.mss = true, .mss_v = 1400, .ws = true, .ws_v = 6, .sack_ok = true};
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, &o);
	cr_expect_eq(ctr()->syncookies_sent, 1);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_SYN | BH_TCP_ACK);
	cr_expect(last()->t.opt.has_wscale && last()->t.opt.sack_ok);
	cr_expect_eq(last()->t.window, 65535, "the SYN-ACK offers the starting buffer (unscaled)");
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 3, "no state for the cookie");
	H.our_iss = last()->t.seq;
	H.now += 10 * MS;
	h_send(&H, BH_TCP_ACK, 1, 1, 1000, "hello", 5, NULL);
	cr_expect_eq(ctr()->syncookies_ok, 1);
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_accept(H.tcp, l, 3, &c), 0);
	struct bh_tcp_info i = info(c);
	cr_expect_eq(i.state, BH_TCP_ESTABLISHED);
	cr_expect_eq(i.mss, 1200, "the MSS from the table, at or below what was offered");
	cr_expect_eq(i.snd_wscale, 6);
	cr_expect_eq(i.snd_wnd, 1000u << 6);
	cr_expect(i.sack);
	uint8_t buf[8];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 5, "data on the ACK is taken");
	cr_expect_arr_eq(buf, "hello", 5);
}

Test(cookie, a_forged_or_stale_cookie_is_reset)
{
	listen_full(1);
	H.peer_port = 42000;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	bh_seq cookie = last()->t.seq;
	h_clear(&H);
	h_send_abs(&H, BH_TCP_ACK, H.peer_iss + 1, cookie + 2, 1000, NULL, 0, NULL, false);
	cr_expect_eq(ctr()->syncookies_bad, 1);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_RST);
	/* The right cookie, three minutes late. */
	H.now += 180000 * MS;
	h_send_abs(&H, BH_TCP_ACK, H.peer_iss + 1, cookie + 1, 1000, NULL, 0, NULL, false);
	cr_expect_eq(ctr()->syncookies_ok, 0);
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 2);
}

Test(cookie, the_right_cookie_from_another_port_fails)
{
	listen_full(1);
	H.peer_port = 42000;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	bh_seq cookie = last()->t.seq;
	H.peer_port = 42001;
	h_send_abs(&H, BH_TCP_ACK, H.peer_iss + 1, cookie + 1, 1000, NULL, 0, NULL, false);
	cr_expect_eq(ctr()->syncookies_bad, 1);
	cr_expect_eq(ctr()->syncookies_ok, 0);
}

/* ---- keepalive (RFC 1122 4.2.3.6) ---- */

Test(keepalive, off_by_default)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	uint32_t v = 9;
	cr_assert_eq(bh_tcp_getopt(H.tcp, c, BH_TCP_OPT_KEEPALIVE, &v), 0);
	cr_expect_eq(v, 0);
	cr_expect_eq(h_tick(&H, H.now), UINT64_MAX, "an idle connection has no timer");
}

Test(keepalive, probes_after_idle_and_gives_up)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPIDLE, 10), 0);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPINTVL, 2), 0);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPCNT, 3), 0);
	cr_expect_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPCNT, 0), -EINVAL);
	cr_expect_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPIDLE, 40000), -EINVAL);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPALIVE, 1), 0);
	h_clear(&H);
	uint64_t start = H.now;
	uint64_t next = h_tick(&H, H.now);
	cr_expect_eq(next, start + 10000 * MS);
	h_tick(&H, next);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, 0), 0, "SND.UNA - 1");
	cr_expect_eq(last()->len, 0);
	/* Answered: the idle period starts again. */
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	next = h_tick(&H, H.now);
	cr_expect_eq(next, H.now + 10000 * MS);
	/* Unanswered: three probes two seconds apart, then ETIMEDOUT. */
	h_tick(&H, next);
	for (int k = 0; k < 3; k++)
		h_tick(&H, h_tick(&H, H.now));
	cr_expect_eq(H.nout, 5, "four probes and the reset");
	cr_expect_eq(ctr()->keepalive_probes, 4);
	cr_expect_eq(info(c).state, BH_TCP_CLOSED);
	cr_expect_eq(h_last_error(&H), ETIMEDOUT);
	cr_expect_eq(H.now - next, 6000 * MS);
	cr_expect_eq(last()->t.flags & BH_TCP_RST, BH_TCP_RST);
}

/* The tcp domain ticks only when the last tick's deadline or
 * bh_tcp_timer_hint comes. Data sent with keep-alive on stops it (the
 * retransmission timer covers that time); when the data is acknowledged
 * after the retransmission timer backed off past the idle time, the hint
 * must bring keep-alive's deadline forward, or the first probe would wait
 * for a timer that is no longer there. */
Test(keepalive, resumes_by_the_hint_after_data_is_acknowledged)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPIDLE, 1), 0);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPALIVE, 1), 0);
	cr_expect_leq(bh_tcp_timer_hint(H.tcp), H.now, "turning keep-alive on asks for a tick");
	h_tick(&H, H.now);
	cr_assert_eq(h_write(&H, c, D, 100), 0);
	/* Unanswered until the retransmission timer is past a second. */
	uint64_t next = h_tick(&H, H.now);
	while (next - H.now <= 1000 * MS)
		next = h_tick(&H, next);
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 1, 101, 65535, NULL, 0, NULL);
	uint64_t acked = H.now;
	uint64_t hint = bh_tcp_timer_hint(H.tcp);
	uint64_t at = next < hint ? next : hint;
	cr_expect_leq(at, H.now + 1000 * MS, "keep-alive's deadline is before the next tick");
	/* Ticked then, and when it says: the probe goes a second after. */
	while (H.nout == 0 && at != UINT64_MAX)
		at = h_tick(&H, at);
	cr_expect_eq(ctr()->keepalive_probes, 1);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(H.out[0].at, acked + 1000 * MS, "the probe a second after the peer was heard");
}

/* Keep-alive options set again on a connection silent past the idle
 * time (found by tcp_input_fuzz): the deadline is already past, and the
 * hint asks for a tick at once, which probes. */
Test(keepalive, options_set_again_when_overdue_probe_at_the_next_tick)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPIDLE, 1), 0);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPALIVE, 1), 0);
	uint64_t next = h_tick(&H, H.now);
	next = h_tick(&H, next + 500 * MS); /* the first probe, late */
	cr_expect_eq(ctr()->keepalive_probes, 1);
	H.now = next + 2000 * MS;
	h_clear(&H);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPIDLE, 1), 0);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_KEEPALIVE, 1), 0);
	h_check(&H, "after the options");
	cr_expect_leq(bh_tcp_timer_hint(H.tcp), H.now, "a tick at once");
	h_tick(&H, H.now);
	cr_expect_eq(ctr()->keepalive_probes, 2, "the probe at that tick");
}

/* ---- Nagle, no-delay, silly window avoidance ---- */

Test(sending, nodelay_lifts_nagle)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, "a", 1), 0);
	cr_assert_eq(h_write(&H, c, "b", 1), 0);
	cr_expect_eq(H.nout, 1, "Nagle holds the second small segment");
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_NODELAY, 1), 0);
	cr_expect_eq(H.nout, 2, "turning Nagle off sends what it held");
	cr_assert_eq(h_write(&H, c, "c", 1), 0);
	cr_expect_eq(H.nout, 3);
	cr_expect_eq(last()->data[0], 'c');
}

Test(sending, a_silly_window_is_not_filled_until_it_is_worth_it)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	/* The peer offered 65535 in its SYN-ACK, now offers 1000 with
	 * nothing out. */
	h_send(&H, BH_TCP_ACK, 1, 1, 1000, NULL, 0, NULL);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, D, 2500), 0);
	cr_expect_eq(H.nout, 0, "RFC 9293 3.8.6.2.1: under a segment and half the max window");
	/* Still under half the largest window, but a full segment fits. */
	h_send(&H, BH_TCP_ACK, 1, 1, 2000, NULL, 0, NULL);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->len, 1460);
	/* The window opens: the rest (all that is queued) goes. */
	h_send(&H, BH_TCP_ACK, 1, 1461, 40000, NULL, 0, NULL);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(last()->len, 2500 - 1460);
}

Test(sending, the_persist_timer_overrides_silly_window_avoidance)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	h_send(&H, BH_TCP_ACK, 1, 1, 20000, NULL, 0, NULL);
	h_send(&H, BH_TCP_ACK, 1, 1, 1000, NULL, 0, NULL);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, D, 3000), 0);
	cr_expect_eq(H.nout, 0);
	h_tick(&H, h_tick(&H, H.now));
	cr_assert_eq(H.nout, 1, "the timer sends what fits rather than wait forever");
	cr_expect_eq(last()->len, 1000);
}

/* ---- urgent data (RFC 9293 3.8.5, RFC 6093: in line) ---- */

Test(urgent, urgent_data_is_delivered_in_line_and_counted_once)
{
	bh_tcp_conn c = h_accept(&H, NULL);
	cr_assert(c);
	struct h_opts u = {.urg = 3};
	h_send(&H, BH_TCP_ACK | BH_TCP_URG, 1, 1, 65535, "abcdef", 6, &u);
	/* A pointer past the segment, and one of zero. */
	struct h_opts far = {.urg = 60000};
	h_send(&H, BH_TCP_ACK | BH_TCP_URG, 7, 1, 65535, "gh", 2, &far);
	struct h_opts zero = {.urg = 0};
	h_send(&H, BH_TCP_ACK | BH_TCP_URG | BH_TCP_PSH, 9, 1, 65535, "ij", 2, &zero);
	cr_expect_eq(info(c).rcv_nxt - H.peer_iss, 11, "the pointer moves no sequence number");
	uint8_t buf[16];
	cr_assert_eq(h_read(&H, c, buf, sizeof buf), 10);
	cr_expect_arr_eq(buf, "abcdefghij", 10);
}

/* ---- memory bounds ---- */

static void small_total(struct bh_tcp_config *c) { c->mem = 4 * H_BUF; }
static void small_rcvbuf(struct bh_tcp_config *c) { c->rcv_buf = 4096; }

Test(memory, the_total_bound_drops_segments_and_refuses_sends)
{
	reinit(small_total);
	bh_tcp_conn c = h_connect(&H, NULL);
	/* Out-of-order segments each hold a buffer. */
	for (uint32_t k = 0; k < 6; k++)
		h_send(&H, BH_TCP_ACK, 1001 + 100 * k, 1, 65535, D, 100, NULL);
	cr_expect_eq(ctr()->mem_drops, 2);
	cr_expect_eq(info(c).ooo_queued, 400);
	cr_expect_eq(h_write(&H, c, "x", 1), -ENOBUFS, "the stack is full, not the connection");
	/* In-order data comes first: the highest out-of-order buffer is
	 * given up to make room for it (the sender resends it). */
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 1000, NULL);
	cr_expect_eq(ctr()->ooo_pruned, 1);
	uint8_t buf[2000];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 1300);
	cr_expect_eq(h_write(&H, c, "x", 1), 0);
}

Test(memory, tiny_segments_cannot_pin_more_than_the_connection_bound)
{
	reinit(small_rcvbuf);
	bh_tcp_conn c = h_connect(&H, NULL);
	/* 4096 bytes of window, 1 byte per 4 KiB buffer, never read. */
	for (uint32_t k = 0; k < 40; k++)
		h_send(&H, BH_TCP_ACK, 1 + k, 1, 65535, D, 1, NULL);
	uint32_t held = bh_tcp_held(H.tcp);
	cr_expect_leq(held * H_BUF, 2 * 4096 + 65536, "held %u buffers", held);
	cr_expect_gt(ctr()->rcv_drops, 0);
	cr_expect_eq(info(c).rcv_queued, held);
}

/* Connection a holds all of a 4-buffer bound in four 100-byte segments
 * from its peer's byte `first` (1: in order and unread; past 1: out of
 * order); then a second connection, b, from another peer port, for which
 * the harness speaks from then on. */
static bh_tcp_conn a_holds_the_memory(uint32_t first, bh_tcp_conn *b)
{
	reinit(small_total);
	bh_tcp_conn a = h_connect(&H, NULL);
	for (uint32_t k = 0; k < 4; k++)
		h_send(&H, BH_TCP_ACK, first + 100 * k, 1, 65535, D, 100, NULL);
	cr_assert_eq(first == 1 ? info(a).rcv_queued : info(a).ooo_queued, 400,
		     "a holds all the memory");
	H.peer_port = (uint16_t)(H.peer_port + 1);
	*b = h_connect(&H, NULL);
	cr_assert(*b);
	return a;
}

/* The total bound is shared: one connection's holes must not starve
 * another's in-order data (each drop backs its sender off, until nothing
 * moves for minutes; seen with 48 downloads through a small bound). */
Test(memory, in_order_data_takes_memory_from_another_connections_holes)
{
	bh_tcp_conn b;
	bh_tcp_conn a = a_holds_the_memory(1001, &b);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 100, NULL);
	cr_expect_eq(info(b).rcv_queued, 100);
	cr_expect_eq(ctr()->ooo_pruned, 1, "a's highest out-of-order buffer given up");
	cr_expect_eq(info(a).ooo_queued, 300);
	cr_expect_eq(ctr()->mem_drops, 0);
	cr_expect_eq(ctr()->mem_forced, 0);
}

/* Memory full of another connection's unread in-order data, which
 * cannot be given up: a connection with nothing queued still takes one
 * segment (Linux's sk_forced_mem_schedule), and no more until it is read. */
Test(memory, a_connection_with_nothing_queued_takes_one_segment_past_the_bound)
{
	bh_tcp_conn b;
	a_holds_the_memory(1, &b);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 100, NULL);
	cr_expect_eq(info(b).rcv_queued, 100);
	cr_expect_eq(ctr()->mem_forced, 1);
	h_send(&H, BH_TCP_ACK, 101, 1, 65535, D, 100, NULL);
	cr_expect_eq(info(b).rcv_queued, 100, "a second one waits for memory");
	cr_expect_eq(ctr()->mem_drops, 1);
	uint8_t buf[256];
	cr_expect_eq(h_read(&H, b, buf, sizeof buf), 100);
	h_send(&H, BH_TCP_ACK, 101, 1, 65535, D, 100, NULL);
	cr_expect_eq(info(b).rcv_queued, 100, "read: the next is taken");
	cr_expect_eq(ctr()->mem_forced, 2);
}

/* The right edge of the window our newest segment offered (relative to
 * the peer's ISS), kept in *edge; the log of segments out is cleared, so
 * that it never fills. */
static void edge_now(uint32_t *edge)
{
	if (H.nout == 0)
		return;
	*edge = h_rel_ack(&H, H.nout - 1) + H.out[H.nout - 1].t.window;
	h_clear(&H);
}

/* A peer that sends `len` bytes per segment, in order from *next, up to
 * the right edge of the window offered, and stops there; returns the
 * segments it sent. */
static uint32_t send_to_the_edge(uint32_t *next, uint32_t *edge, uint32_t len)
{
	uint32_t n = 0;
	for (;;) {
		edge_now(edge);
		if (*next + len > *edge)
			return n;
		h_send(&H, BH_TCP_ACK, *next, 1, 65535, D, len, NULL);
		*next += len;
		cr_assert_lt(++n, 100000);
	}
}

static void rcvbuf_32k(struct bh_tcp_config *c) { c->rcv_buf = 32768; }

/* 100-byte segments, each in a 4 KiB buffer: a window of bytes promises
 * 41 times its size in buffers, past the connection's memory bound (64
 * buffers here). The window must offer what the memory keeps, or the
 * segments it invited are dropped, window after window (with 1448-byte
 * segments in 16 KiB buffers that cost thousands of retransmissions and
 * timeouts per 64 MiB on a lossless link). The first window was promised
 * before anything was known of the segments' size and cannot be taken
 * back (RFC 7323 2.4): the peer may fill it again and again while the
 * segments it has already sent are dropped, until it has been delivered
 * (ten rounds here); after that, nothing is dropped. */
Test(memory, the_window_offers_what_the_buffer_memory_keeps)
{
	reinit(rcvbuf_32k);
	bh_tcp_conn c = h_connect(&H, NULL);
	uint32_t next = 1, edge = 1, drops_after[20] = {0};
	uint8_t buf[40000];
	for (int round = 0; round < 20; round++) {
		uint32_t n = send_to_the_edge(&next, &edge, 100);
		cr_assert_gt(n, 0, "round %d: the window stayed shut", round);
		drops_after[round] = ctr()->rcv_drops;
		cr_assert_gt(h_read(&H, c, buf, sizeof buf), 0);
		/* what was dropped comes again, in order, as a sender would
		 * resend it: from what our newest ACK asks for */
		if (H.nout == 0) /* no window update: an old sequence number
				  * is answered with an ACK (RFC 9293 3.10.7.4) */
			h_send(&H, BH_TCP_ACK, 0, 1, 65535, D, 0, NULL);
		cr_assert_gt(H.nout, 0);
		next = h_rel_ack(&H, H.nout - 1);
	}
	cr_expect_eq(drops_after[19], drops_after[14], "drops in rounds 15 to 20: %u (all: %u)",
		     drops_after[19] - drops_after[14], drops_after[19]);
	cr_expect_leq(bh_tcp_held(H.tcp) * H_BUF, 2 * 32768 + 65536);
}

static void rcvbuf_16k(struct bh_tcp_config *c) { c->rcv_buf = 16384; }

/* 10-byte segments in 4 KiB buffers: the memory bound (96 KiB of
 * buffers) holds a window of 240 bytes, less than a segment. A reader
 * emptying the queue must still send the window update (the step is
 * held to half the window the memory can hold), or the peer waits on its
 * persist timer, backed off, every time. */
Test(memory, a_reader_reopens_a_window_smaller_than_a_segment)
{
	reinit(rcvbuf_16k);
	bh_tcp_conn c = h_connect(&H, NULL);
	uint32_t next = 1, edge = 1;
	unsigned small = 0, steady = 0, updates = 0;
	uint8_t buf[20000];
	for (int round = 0; round < 400 && steady < 10; round++) {
		/* past the 16 KiB promised before the fill was known, a
		 * round is a window the memory holds (the first two such
		 * rounds still end on the old promise's edge) */
		small += send_to_the_edge(&next, &edge, 10) <= 30;
		cr_assert_gt(h_read(&H, c, buf, sizeof buf), 0);
		if (small > 2) {
			steady++;
			updates += H.nout > 0;
		}
		if (H.nout == 0) /* no update: the peer's probe gets an ACK */
			h_send(&H, BH_TCP_ACK, 0, 1, 65535, D, 0, NULL);
		cr_assert_gt(H.nout, 0);
		next = h_rel_ack(&H, H.nout - 1);
	}
	cr_assert_eq(steady, 10, "the window never came down to what the memory holds");
	cr_expect_eq(updates, 10, "window updates after %u of %u reads", updates, steady);
	uint64_t drops = ctr()->rcv_drops;
	for (int round = 0; round < 5; round++) {
		send_to_the_edge(&next, &edge, 10);
		cr_assert_gt(h_read(&H, c, buf, sizeof buf), 0);
		cr_assert_gt(H.nout, 0);
		next = h_rel_ack(&H, H.nout - 1);
	}
	cr_expect_eq(ctr()->rcv_drops, drops, "and what it invites is kept");
}

static void rcvbuf_1m(struct bh_tcp_config *c) { c->rcv_buf = 1u << 20; }

/* With window scaling (shift 5 for a 1 MiB buffer), an ACK that holds
 * the right edge where it was (the window now held by memory, not bytes)
 * must not move it left as the shift rounds down: the edge offered never
 * retracts (RFC 7323 2.4), or data the peer was offered is cut off. */
Test(memory, a_held_edge_is_never_taken_back_by_the_window_scale)
{
	reinit(rcvbuf_1m);
	const struct h_opts o = {.mss = true, .mss_v = 1460, .ws = true, .ws_v = 0};
	h_connect(&H, &o);
	uint8_t ws = 0;
	while ((1u << 20 >> ws) > 65535)
		ws++;
	uint32_t edge = 0, held = 0;
	for (uint32_t k = 0; k < 300; k++) {
		h_clear(&H);
		h_send(&H, BH_TCP_ACK, 1 + 100 * k, 1, 65535, D, 100, NULL);
		h_tick(&H, h_tick(&H, H.now)); /* any delayed ACK */
		for (unsigned i = 0; i < H.nout && i < H_LOG; i++) {
			uint32_t e = h_rel_ack(&H, i) + ((uint32_t)H.out[i].t.window << ws);
			cr_assert_geq(e, edge, "segment %u: the edge went from %u back to %u", k, edge, e);
			held += e - edge < (1u << ws); /* held, give or take the rounding */
			edge = e;
		}
	}
	cr_expect_gt(held, 10, "the edge was held (by memory) on %u ACKs", held);
	cr_expect_eq(ctr()->rcv_drops + ctr()->mem_drops, 0);
}

/* One-byte segments drive the measured fill to its floor: the window then
 * stays open (a byte per 64 KiB of memory left), never shut. Shut,
 * it would stay shut: only data inside the window could move the fill. */
Test(memory, one_byte_segments_leave_the_window_open)
{
	reinit(small_rcvbuf);
	bh_tcp_conn c = h_connect(&H, NULL);
	uint8_t buf[64];
	/* past the 4096 bytes of window promised before the fill was known */
	for (uint32_t k = 0; k < 6000; k++) {
		h_clear(&H);
		h_send(&H, BH_TCP_ACK, 1 + k, 1, 65535, D, 1, NULL);
		cr_assert_eq(h_read(&H, c, buf, sizeof buf), 1, "byte %u", k);
	}
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 6001, 1, 65535, D, 1, NULL);
	h_tick(&H, h_tick(&H, H.now)); /* the delayed ACK */
	cr_expect_gt(last()->t.window, 0);
	cr_expect_eq(ctr()->rcv_drops + ctr()->mem_drops, 0);
}

/* ---- findings of review, each once a bug ---- */

static struct tconn *conn_of(bh_tcp_conn c) { return &H.tcp->conn[(c & 0xfffff) - 1]; }

/* More than 2 GiB from the ISS, "has the SYN been acknowledged" must not
 * be a sequence comparison with the ISS (it turns around at 2^31). */
Test(sending, two_gib_past_the_iss_nothing_changes)
{
	bh_tcp_conn c = sack_conn(false);
	struct tconn *t = conn_of(c);
	/* As if 2 GiB - 1000 bytes had gone: the ISS far behind SND.UNA. */
	t->iss = t->snd_una - 0x7ffffc18u;
	for (unsigned i = 0; i < sizeof D; i++)
		D[i] = (uint8_t)(i * 13 + 1);
	h_clear(&H);
	write_segs(c, 4);
	cr_assert_eq(H.nout, 4);
	for (unsigned k = 0; k < 4; k++) {
		cr_expect_eq(h_rel_seq(&H, k), 1 + 1460 * k);
		cr_expect_eq(H.out[k].len, 1460);
		cr_expect_arr_eq(H.out[k].data, D + 1460 * k, 1460);
	}
	const uint32_t b[][2] = {{2921, 5841}};
	sack_ack(1461, 1, b);
	cr_expect_eq(info(c).sacked, 2920, "SACK blocks past the turn are taken");
	sack_ack(5841, 0, NULL);
	cr_expect_eq(info(c).snd_queued, 0);
	h_clear(&H);
	write_segs(c, 1);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, 0), 5841);
	cr_expect_arr_eq(H.out[0].data, D, 1460);
}

/* Recovery with an empty scoreboard, a zero window, then the window
 * opens: a timer must still be running for the data in flight. */
Test(sack, a_window_opening_in_recovery_keeps_the_timer)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 10);
	for (int k = 0; k < 3; k++)
		h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	cr_assert(info(c).in_recovery);
	h_send(&H, BH_TCP_ACK, 1, 1, 0, NULL, 0, NULL);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	uint64_t next = h_tick(&H, H.now);
	cr_expect_neq(next, UINT64_MAX, "data in flight always has a timer");
	h_clear(&H);
	h_tick(&H, next);
	cr_expect_geq(H.nout, 1, "and the timer resends");
}

/* A stretch ACK that moves the cumulative point and SACKs enough above
 * it starts recovery by itself (RFC 6675 2, 5 (b)). */
Test(sack, a_cumulative_ack_with_sack_can_start_recovery)
{
	bh_tcp_conn c = sack_conn(false);
	write_segs(c, 10);
	h_clear(&H);
	const uint32_t b[][2] = {{4381, 14601}};
	sack_ack(1461, 1, b);
	cr_expect(info(c).in_recovery);
	cr_assert_geq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, 0), 1461);
	cr_expect_eq(ctr()->sack_recoveries, 1);
}

/* An application that sends little must not grow a window it never
 * fills (RFC 7661, RFC 9438 5.8). */
Test(cc, an_application_limited_sender_does_not_grow_cwnd)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	uint32_t w0 = info(c).cwnd;
	for (uint32_t k = 0; k < 50; k++) {
		cr_assert_eq(h_write(&H, c, D, 100), 0);
		h_send(&H, BH_TCP_ACK, 1, 1 + 100 * (k + 1), 65535, NULL, 0, NULL);
	}
	cr_expect_eq(info(c).cwnd, w0, "one small segment at a time leaves cwnd alone");
}

/* After 24 days idle TS.Recent is invalid (RFC 7323 5.5): a segment is
 * not dropped for its timestamp, but only one that passes the window
 * check may set TS.Recent; a blind one cannot poison it. */
Test(paws, a_blind_segment_cannot_set_ts_recent_after_a_long_idle)
{
	bh_tcp_conn c = sack_conn(true);
	struct h_opts o = {.ts = true, .ts_val = 1000};
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, "a", 1, &o);
	H.now += 25ull * 86400 * 1000 * MS;
	struct h_opts evil = {.ts = true, .ts_val = 1000 + 0x80000000u};
	h_send(&H, BH_TCP_ACK, 900000, 1, 65535, "x", 1, &evil);
	struct h_opts next = {.ts = true, .ts_val = 2000};
	h_send(&H, BH_TCP_ACK, 2, 1, 65535, "b", 1, &next);
	cr_expect_eq(ctr()->paws_drops, 0);
	h_tick(&H, H.now + 40 * MS); /* the delayed ACK */
	cr_expect_eq(h_rel_ack(&H, H.nout - 1), 3);
	cr_expect_eq(last()->t.opt.ts_ecr, 2000);
	uint8_t buf[4];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 2);
}

/* A FIN ahead of a hole is taken when the hole fills. */
Test(sack, a_fin_ahead_of_a_hole_is_taken_when_it_fills)
{
	bh_tcp_conn c = sack_conn(false);
	h_send(&H, BH_TCP_ACK | BH_TCP_FIN, 1001, 1, 65535, D + 1000, 100, NULL);
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, D, 1000, NULL);
	cr_expect_eq(info(c).state, BH_TCP_CLOSE_WAIT);
	cr_expect_eq(h_rel_ack(&H, H.nout - 1), 1102, "data and FIN acknowledged");
	uint8_t buf[2000];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 1100);
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), -1, "end of stream");
}

/* Queue entries are shared: one peer's out-of-order pieces cannot keep
 * another connection's in-order data out. */
static void few_entries(struct bh_tcp_config *c) { c->segs = 16; }

Test(memory, out_of_order_pieces_cannot_starve_another_connection)
{
	reinit(few_entries);
	bh_tcp_conn a = h_connect(&H, NULL);
	for (uint32_t k = 0; k < 20; k++)
		h_send(&H, BH_TCP_ACK, 1001 + 10 * k, 1, 65535, D, 1, NULL);
	cr_expect_eq(info(a).ooo_queued, 16);
	H.peer_port = 40001;
	bh_tcp_conn b = h_connect(&H, NULL);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, "hello", 5, NULL);
	uint8_t buf[8];
	cr_expect_eq(h_read(&H, b, buf, sizeof buf), 5);
	cr_expect_eq(info(a).ooo_queued, 15);
	cr_expect_eq(ctr()->ooo_pruned, 1);
}

/* A cookie never carries an MSS above what the peer offered. */
Test(cookie, a_small_mss_is_never_rounded_up)
{
	bh_tcp_conn l = listen_full(1);
	H.peer_port = 42000;
	struct h_opts o = {.mss = true, .mss_v = 300};
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, &o);
	cr_assert_eq(ctr()->syncookies_sent, 1);
	H.our_iss = last()->t.seq;
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_accept(H.tcp, l, 3, &c), 0);
	cr_expect_leq(info(c).mss, 300);
	cr_expect_eq(info(c).mss, 256);
}

/* A connection made from a cookie joins the accept queue like any other
 * (RFC 4987 3.6: as if from SYN-RECEIVED), and leaves it, reset before
 * it was accepted, without disturbing either count (the harness checks
 * both against the table after every segment). */
Test(cookie, a_cookie_connection_counts_in_the_accept_queue)
{
	bh_tcp_conn l = listen_full(2), c;
	H.peer_port = 42000;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	cr_assert_eq(ctr()->syncookies_sent, 1);
	H.our_iss = last()->t.seq;
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	cr_assert_eq(ctr()->syncookies_ok, 1);
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 4, "the listener, two in SYN-RECEIVED, one done");
	/* The two half-open ones are reset: the SYN queue has room again,
	 * and the next SYN gets a real SYN-ACK, not a cookie. */
	for (uint16_t p = 41000; p < 41002; p++) {
		H.peer_port = p;
		h_send(&H, BH_TCP_RST, 1, 0, 0, NULL, 0, NULL);
	}
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 2);
	H.peer_port = 43000;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	cr_expect_eq(ctr()->syncookies_sent, 1);
	bh_seq iss43 = last()->t.seq;
	/* The cookie connection is reset before it is accepted. */
	H.peer_port = 42000;
	h_send(&H, BH_TCP_RST, 1, 0, 0, NULL, 0, NULL);
	cr_expect_eq(bh_tcp_accept(H.tcp, l, 3, &c), -EAGAIN);
	H.peer_port = 43000;
	H.our_iss = iss43;
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	cr_assert_eq(bh_tcp_accept(H.tcp, l, 3, &c), 0);
	cr_expect_eq(info(c).rport, 43000);
	cr_expect_eq(ctr()->backlog_drops, 0);
}

/* --- checksums left to the link (bh_tcp_config.csum_offload) --- */

Test(offload, every_segment_leaves_its_checksum_to_the_device)
{
	cr_assert_eq(h_fini(&H), 0);
	struct bh_tcp_config cfg;
	h_config(&cfg);
	cfg.csum_offload = true;
	h_init(&H, &cfg);
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	static uint8_t d[3000];
	memset(d, 'o', sizeof d);
	cr_assert_eq(h_write(&H, c, d, sizeof d), 0);
	cr_assert_geq(H.nout, 3, "SYN, ACK and data went out");
	/* The harness completes each partial checksum as the device would,
	 * and aborts if the result does not verify. */
	cr_expect_eq(H.partial_out, H.nout, "%u of %u segments partial", H.partial_out, H.nout);
}

Test(offload, without_it_every_checksum_is_whole)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	cr_assert_eq(h_write(&H, c, "abc", 3), 0);
	cr_assert_geq(H.nout, 2);
	cr_expect_eq(H.partial_out, 0);
}

Test(offload, a_segment_the_link_vouches_for_is_not_verified)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	H.vouch = true;
	/* A wrong checksum the link vouched for: taken (the link is a
	 * shared-memory wire, which does not corrupt). */
	h_send_abs(&H, BH_TCP_ACK, H.peer_iss + 1, H.our_iss + 1, 65535, "x", 1, NULL, true);
	cr_expect_eq(bh_tcp_counters(H.tcp)->bad_checksum, 0);
	uint8_t buf[4];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 1);
	H.vouch = false;
	h_send_abs(&H, BH_TCP_ACK, H.peer_iss + 2, H.our_iss + 1, 65535, "y", 1, NULL, true);
	cr_expect_eq(bh_tcp_counters(H.tcp)->bad_checksum, 1, "without its word, verified");
}

/* csum_bytes counts the payload bytes summed, each way (the evaluation's
 * "checksum passes per payload byte"): headers and bare ACKs add nothing,
 * partial checksums and vouched segments add nothing. */
Test(offload, the_checksum_counter_counts_payload_bytes)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	const struct bh_tcp_counters *k = bh_tcp_counters(H.tcp);
	cr_expect_eq(k->csum_bytes, 0, "handshake: no payload (%llu)",
		     (unsigned long long)k->csum_bytes);
	static uint8_t d[1000];
	memset(d, 'p', sizeof d);
	cr_assert_eq(h_write(&H, c, d, sizeof d), 0);
	cr_expect_eq(k->csum_bytes, 1000, "sent: %llu", (unsigned long long)k->csum_bytes);
	h_send_abs(&H, BH_TCP_ACK, H.peer_iss + 1, H.our_iss + 1, 65535, "abcde", 5, NULL, true);
	cr_expect_eq(k->csum_bytes, 1005, "received: %llu", (unsigned long long)k->csum_bytes);
	H.vouch = true;
	h_send_abs(&H, BH_TCP_ACK, H.peer_iss + 6, H.our_iss + 1, 65535, "fg", 2, NULL, true);
	cr_expect_eq(k->csum_bytes, 1005, "vouched: %llu", (unsigned long long)k->csum_bytes);
}

/* Large frames (cfg.seg_max): new data goes in segments of several MSS
 * (a multiple of it), which the link or the driver cuts at the MSS
 * (bh_pkt.gso); resent data goes in MSS-sized segments; a large segment
 * received is ACKed at once. */
static void setup_large(void)
{
	struct bh_tcp_config c;
	h_config(&c);
	c.seg_max = 3000; /* 2 x 1460 fits a harness buffer */
	h_init(&H, &c);
}
TestSuite(large, .init = setup_large, .fini = teardown);

Test(large, new_data_goes_in_multiples_of_the_mss_and_resent_data_in_one)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	static uint8_t d[3500];
	memset(d, 'L', sizeof d);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, d, sizeof d), 0);
	cr_assert_eq(h_write(&H, c, d, sizeof d), 0);
	unsigned big = 0;
	for (unsigned i = 0; i < H.nout; i++) {
		cr_expect_leq(H.out[i].len, 2920, "segment %u: %u bytes", i, H.out[i].len);
		big += H.out[i].len == 2920;
	}
	cr_expect_geq(big, 2, "two-MSS segments sent (%u)", big);
	/* The first is lost: the timeout resends one MSS. */
	h_clear(&H);
	h_tick(&H, H.now + 1100 * MS);
	cr_assert_geq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, 0), 1);
	cr_expect_eq(H.out[0].len, 1460, "resent: %u bytes", H.out[0].len);
}

Test(large, a_large_segment_in_is_acked_at_once)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	static uint8_t d[2920];
	memset(d, 'M', sizeof d);
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, d, sizeof d, NULL);
	cr_assert_eq(H.nout, 1, "an ACK at once, not after the delayed-ACK timer");
	cr_expect_eq(h_rel_ack(&H, 0), 1 + sizeof d);
}

/* ---- send chains (cfg.send_chain, ip/ip.h) ---- */

TestSuite(chain, .init = setup, .fini = teardown);

/* The library under send chains, with D's bytes all different (a
 * checksum over zeros would not tell a misplaced piece). */
static void chained_cfg(struct bh_tcp_config *c) { c->send_chain = true; }
static void chained(struct bh_tcp_config *c)
{
	for (unsigned i = 0; i < sizeof D; i++)
		D[i] = (uint8_t)(i * 31 + 7);
	chained_cfg(c);
}
static void chained_partial(struct bh_tcp_config *c)
{
	chained(c);
	c->csum_offload = true;
}

/* The payload of every data segment sent since index `from`, in order
 * of sequence (no loss: as sent), into out; returns its length. */
static uint32_t sent_payload(unsigned from, uint8_t *out, uint32_t cap)
{
	uint32_t n = 0;
	for (unsigned i = from; i < H.nout && i < H_LOG; i++) {
		const struct h_seg *s = &H.out[i];
		cr_assert_leq(n + s->len, cap);
		memcpy(out + n, s->data, s->len);
		n += s->len;
	}
	return n;
}

/* A segment's payload is named where the send queue holds it, never
 * copied: the harness gathers each chain (every piece a buffer the
 * library still holds) and verifies the checksum the library took in
 * its read pass, with pieces that start at odd offsets (1000 + 777).
 * A resend is a chain again. */
Test(chain, segments_name_the_send_queue_instead_of_copying)
{
	reinit(chained);
	bh_tcp_conn c = h_connect(&H, NULL);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, D, 1000), 0);
	cr_assert_eq(h_write(&H, c, D + 1000, 777), 0);
	cr_assert_eq(h_write(&H, c, D + 1777, 1111), 0);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_NODELAY, 1), 0);
	uint8_t got[4096];
	cr_assert_eq(sent_payload(0, got, sizeof got), 2888, "all sent");
	cr_expect_eq(memcmp(got, D, 2888), 0, "every byte as written");
	cr_expect_eq(ctr()->copy_bytes, 0, "nothing copied");
	cr_expect_eq(ctr()->chain_bytes, 2888);
	cr_expect_eq(H.chain_out, ctr()->chain_segs);
	cr_expect_geq(H.chain_out, 2);
	/* The timeout resends from the first byte: a chain again. */
	unsigned before = H.nout, chains = H.chain_out;
	h_tick(&H, h_tick(&H, H.now));
	cr_assert_gt(H.nout, before, "resent");
	cr_expect_gt(H.chain_out, chains);
	cr_expect_eq(H.out[before].len, 1460);
	cr_expect_eq(memcmp(H.out[before].data, D, 1460), 0);
	cr_expect_eq(ctr()->copy_bytes, 0);
}

/* A segment whose payload lies in more buffers than a chain names is
 * copied as before (eleven 1-byte writes held by Nagle go in one). */
Test(chain, more_pieces_than_a_chain_holds_are_copied)
{
	reinit(chained);
	bh_tcp_conn c = h_connect(&H, NULL);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, D, 1), 0);
	for (uint32_t k = 1; k <= BH_CHAIN_MAX + 3; k++)
		cr_assert_eq(h_write(&H, c, D + k, 1), 0);
	cr_assert_eq(H.nout, 1, "Nagle holds the rest");
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(H.out[1].len, BH_CHAIN_MAX + 3);
	cr_expect_eq(memcmp(H.out[1].data, D + 1, BH_CHAIN_MAX + 3), 0);
	cr_expect_eq(H.chain_out, 1, "the first went as a chain, the second did not");
	cr_expect_eq(ctr()->copy_bytes, BH_CHAIN_MAX + 3);
	cr_expect_eq(ctr()->chain_bytes, 1);
}

/* With the checksum left to the device, a chain carries only the
 * pseudo-header's part, and no payload byte is read at all. */
Test(chain, a_chain_may_leave_its_checksum_to_the_device)
{
	reinit(chained_partial);
	bh_tcp_conn c = h_connect(&H, NULL);
	h_clear(&H);
	unsigned partial = H.partial_out;
	cr_assert_eq(h_write(&H, c, D, 1460), 0);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(H.chain_out, 1);
	cr_expect_eq(H.partial_out, partial + 1, "completed by the harness, as by the device");
	cr_expect_eq(ctr()->csum_bytes, 0);
	cr_expect_eq(memcmp(H.out[0].data, D, 1460), 0);
}

/* ---- receive-buffer auto-tuning (tcp/rcvbuf.c) ---- */

static void rcvbuf_tuned(struct bh_tcp_config *c)
{
	c->rcv_buf = 16384;
	c->rcv_buf_max = 65000; /* no window scale with this peer */
}
static void rcvbuf_fixed(struct bh_tcp_config *c) { c->rcv_buf = 16384; }

/* A peer 10 ms away (the handshake's round trip) that sends all the
 * window allows each round trip, and an application that reads it all:
 * the bytes each round carried go in per_round; returns the
 * connection's state at the end. */
static struct bh_tcp_info round_trips_of_reads(uint32_t *per_round, int rounds)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	uint32_t next = 1, edge = 1;
	static uint8_t buf[70000];
	for (int r = 0; r < rounds; r++) {
		per_round[r] = send_to_the_edge(&next, &edge, 1000) * 1000;
		cr_assert_eq(h_read(&H, c, buf, sizeof buf), (int)per_round[r]);
		cr_assert_leq(info(c).rcv_buf, 65000u, "round %d", r);
		H.now += 10 * MS; /* the peer has our last ACK a round trip later */
		h_tick(&H, H.now);
	}
	return info(c);
}

/* Fixed at 16 KiB, a round trip carries 16 KiB (less a part segment);
 * with auto-tuning, once a round trip has delivered more than ten
 * segments' worth, the buffer grows to twice that and more, within its
 * bound, and the rounds after carry more. */
Test(memory, the_receive_buffer_grows_with_what_a_round_trip_delivers)
{
	uint32_t fixed[6], tuned[6];
	reinit(rcvbuf_fixed);
	cr_expect_eq(round_trips_of_reads(fixed, 6).rcv_buf, 16384u);
	for (int r = 0; r < 6; r++)
		cr_expect_leq(fixed[r], 16384u, "round %d", r);
	cr_expect_eq(ctr()->rcvbuf_grown, 0);
	reinit(rcvbuf_tuned);
	struct bh_tcp_info end = round_trips_of_reads(tuned, 6);
	cr_expect_eq(tuned[0], fixed[0], "the first round trip: the starting window");
	cr_expect_gt(tuned[5], 2 * fixed[5], "round 6: %u bytes, fixed %u", tuned[5], fixed[5]);
	cr_expect_gt(end.rcv_buf, 32768u);
	cr_expect_leq(end.rcv_buf, 65000u);
	cr_expect_gt(ctr()->rcvbuf_grown, 0);
	cr_expect_geq(end.rcv_rtt_us, 10 * MS, "the receiver's round trip: %u us", end.rcv_rtt_us);
}

/* Near the total memory bound (half of it pinned by the growth), the
 * buffer is not grown: counted, and the window stays the starting one. */
static void rcvbuf_tuned_tight(struct bh_tcp_config *c)
{
	rcvbuf_tuned(c);
	c->mem = 96 * 1024; /* half: 48 KiB, less than the growth's 2 x 31 KiB */
}
Test(memory, the_receive_buffer_does_not_grow_near_the_memory_bound)
{
	uint32_t r[4];
	reinit(rcvbuf_tuned_tight);
	struct bh_tcp_info end = round_trips_of_reads(r, 4);
	cr_expect_eq(end.rcv_buf, 16384u);
	cr_expect_eq(ctr()->rcvbuf_grown, 0);
	cr_expect_gt(ctr()->rcvbuf_held, 0);
}

/* The window scale offered covers the largest buffer tuning may reach,
 * not only the starting one (RFC 7323 2.2: it is fixed at the SYN). */
static void rcvbuf_tuned_big(struct bh_tcp_config *c)
{
	c->rcv_buf = 65536;
	c->rcv_buf_max = 8u << 20;
}
Test(memory, the_window_scale_offered_covers_the_largest_buffer)
{
	reinit(rcvbuf_tuned_big);
	bh_tcp_conn c = 0;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, H.peer_port, 0, 7, &c), 0);
	cr_assert_geq(H.nout, 1);
	cr_expect(H.out[0].t.opt.has_wscale);
	cr_expect_eq(H.out[0].t.opt.wscale, 8, "8 MiB >> 8 fits in 16 bits, >> 7 does not");
	cr_expect_eq(info(c).rcv_buf, 65536u, "the buffer starts at rcv_buf");
}
