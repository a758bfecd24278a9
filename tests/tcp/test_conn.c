/*
 * tests/tcp/test_conn.c - the connection state machine, segment by
 * segment: opens, data both ways, delayed ACKs, retransmission, closes,
 * resets (RFC 9293 3.10.7, RFC 5961), with a leak check after each test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/tcp/harness.h"

static struct harness H;

static void setup(void) { h_init(&H, NULL); }
static void teardown(void)
{
	cr_expect_eq(h_fini(&H), 0, "buffers leaked, released twice, or unknown");
}

TestSuite(open, .init = setup, .fini = teardown);
TestSuite(data, .init = setup, .fini = teardown);
TestSuite(close, .init = setup, .fini = teardown);
TestSuite(reset, .init = setup, .fini = teardown);
TestSuite(listener, .init = setup, .fini = teardown);

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

/* ---- opens ---- */

Test(open, active_open_sends_a_full_syn_and_completes)
{
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, 40000, 0, 7, &c), 0);
	cr_assert_eq(H.nout, 1);
	const struct h_seg *syn = &H.out[0];
	cr_expect_eq(syn->t.flags, BH_TCP_SYN);
	cr_expect_eq(syn->dst, H_PEER);
	cr_expect_eq(syn->t.dport, 40000);
	cr_expect_geq(syn->t.sport, 49152, "an ephemeral port");
	cr_expect(syn->t.opt.has_mss && syn->t.opt.mss == 1460);
	cr_expect(syn->t.opt.has_wscale && syn->t.opt.sack_ok && syn->t.opt.has_ts);
	cr_expect_eq(info(c).state, BH_TCP_SYN_SENT);
	H.our_iss = syn->t.seq;
	H.our_port = syn->t.sport;
	struct h_opts o = {.mss = true, .mss_v = 1400, .ws = true, .ws_v = 7, .sack_ok = true,
			   .ts = true, .ts_val = 5000, .ts_ecr = syn->t.opt.ts_val};
	H.now += 20 * MS;
	h_send(&H, BH_TCP_SYN | BH_TCP_ACK, 0, 1, 1000, NULL, 0, &o);
	cr_assert_eq(H.nout, 2);
	const struct h_seg *ack = last();
	cr_expect_eq(ack->t.flags, BH_TCP_ACK);
	cr_expect_eq(h_rel_seq(&H, 1), 1);
	cr_expect_eq(h_rel_ack(&H, 1), 1);
	cr_expect(ack->t.opt.has_ts && ack->t.opt.ts_ecr == 5000, "RFC 7323: echo their value");
	struct bh_tcp_info i = info(c);
	cr_expect_eq(i.state, BH_TCP_ESTABLISHED);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CONNECTED, c), 1);
	cr_expect_eq(i.snd_wscale, 7);
	cr_expect_eq(i.snd_wnd, 1000u << 7, "the window scales after the SYN");
	cr_expect_eq(i.mss, 1400 - 12, "the peer's MSS less the timestamp option");
	cr_expect(i.ts && i.sack);
	cr_expect_eq(i.srtt_us, 20000, "RTT from the SYN (RFC 6298 2.2)");
	cr_expect_eq(i.rto_us, 200000, "max(srtt + 4 rttvar, rto_min)");
}

Test(open, passive_open_through_the_accept_queue)
{
	bh_tcp_conn l, c;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 4, 1, &l), 0);
	cr_expect_eq(bh_tcp_listen(H.tcp, 80, 4, 1, &l), -EADDRINUSE);
	cr_expect_eq(bh_tcp_accept(H.tcp, l, 9, &c), -EAGAIN);
	struct h_opts o = {.mss = true, .mss_v = 1460};
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, &o);
	cr_assert_eq(H.nout, 1);
	const struct h_seg *sa = last();
	cr_expect_eq(sa->t.flags, BH_TCP_SYN | BH_TCP_ACK);
	cr_expect_eq(sa->t.ack, H.peer_iss + 1);
	cr_expect(sa->t.opt.has_mss);
	cr_expect(!sa->t.opt.has_wscale && !sa->t.opt.sack_ok && !sa->t.opt.has_ts,
		  "nothing the peer did not offer (RFC 7323 1.3, RFC 2018 2)");
	H.our_iss = sa->t.seq;
	cr_expect_eq(bh_tcp_accept(H.tcp, l, 9, &c), -EAGAIN, "not before the handshake ends");
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	cr_expect_eq(h_events(&H, BH_TCP_EV_ACCEPTABLE, l), 1);
	cr_assert_eq(bh_tcp_accept(H.tcp, l, 9, &c), 0);
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED);
	cr_expect_eq(info(c).rport, 40000);
	cr_expect_eq(bh_tcp_accept(H.tcp, l, 9, &c), -EAGAIN);
}

Test(open, isn_is_keyed_and_moves_with_time)
{
	uint64_t k1[2] = {1, 2}, k2[2] = {1, 3};
	bh_seq a = bh_tcp_isn(k1, H_US, 80, H_PEER, 40000, 0);
	cr_expect_neq(a, bh_tcp_isn(k2, H_US, 80, H_PEER, 40000, 0), "another key");
	cr_expect_neq(a, bh_tcp_isn(k1, H_US, 80, H_PEER, 40001, 0), "another tuple");
	cr_expect_eq(bh_tcp_isn(k1, H_US, 80, H_PEER, 40000, 4000) - a, 1000,
		     "RFC 6528: a 4 us clock");
}

Test(open, refused_by_reset)
{
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, 40000, 0, 7, &c), 0);
	H.our_iss = last()->t.seq;
	H.our_port = last()->t.sport;
	/* A reset without an acceptable ACK is ignored (RFC 5961 3.2)... */
	h_send(&H, BH_TCP_RST, 0, 0, 0, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_SYN_SENT);
	/* ...with one, the connection is refused. */
	h_send(&H, BH_TCP_RST | BH_TCP_ACK, 0, 1, 0, NULL, 0, NULL);
	cr_expect_eq(h_last_error(&H), ECONNREFUSED);
	cr_expect_eq(info(c).state, BH_TCP_CLOSED);
	struct bh_pkt p[1];
	cr_expect_eq(bh_tcp_recv(H.tcp, H.now, c, p, 1), -ECONNREFUSED);
	cr_expect_eq(bh_tcp_close(H.tcp, H.now, c), 0);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
	cr_expect_eq(bh_tcp_close(H.tcp, H.now, c), -EINVAL, "the handle is gone");
}

Test(open, syn_retries_end_in_etimedout)
{
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, 40000, 0, 7, &c), 0);
	uint64_t t = H.now;
	unsigned syns = 1;
	for (int k = 0; k < 20 && !h_last_error(&H); k++) {
		uint64_t next = h_tick(&H, t);
		if (next == UINT64_MAX)
			break;
		t = next;
		h_tick(&H, t);
		syns = H.nout;
	}
	cr_expect_eq(h_last_error(&H), ETIMEDOUT);
	cr_expect_eq(syns, 7, "the SYN and 6 retries");
	/* Backed off: 1, 2, 4, 8, 16, 32, 64 s. */
	cr_expect_eq(H.out[1].at - H.out[0].at, 1000 * MS);
	cr_expect_eq(H.out[6].at - H.out[5].at, 32000 * MS);
	bh_tcp_close(H.tcp, H.now, c);
}

/* An ICMP error from IP about our flow to H_PEER:40000 (RFC 1122 4.2.3.9,
 * RFC 5927). */
static struct bh_ip_event icmp_ev(enum bh_ip_event_type type, uint8_t code, bh_seq quoted)
{
	return (struct bh_ip_event){.type = type,
				    .proto = BH_IPPROTO_TCP,
				    .icmp_type = BH_ICMP_DEST_UNREACH,
				    .icmp_code = code,
				    .src = H_US,
				    .dst = H_PEER,
				    .sport = H.our_port,
				    .dport = 40000,
				    .seq = quoted};
}

static void icmp(enum bh_ip_event_type type, uint8_t code, bh_seq quoted)
{
	struct bh_ip_event ev = icmp_ev(type, code, quoted);
	bh_tcp_ip_event(H.tcp, H.now, &ev);
}

Test(open, port_unreachable_refuses_a_connection_attempt)
{
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, 40000, 0, 7, &c), 0);
	H.our_iss = last()->t.seq;
	H.our_port = last()->t.sport;
	/* Quoting a sequence number that is not in flight: ignored (RFC 5927 4.1). */
	icmp(BH_IP_EV_ICMP_ERROR, BH_ICMP_UNREACH_PORT, H.our_iss + 5000);
	cr_expect_eq(info(c).state, BH_TCP_SYN_SENT);
	cr_expect_eq(bh_tcp_counters(H.tcp)->icmp_ignored, 1);
	/* Quoting our SYN: a hard error ends SYN-SENT with ECONNREFUSED. */
	icmp(BH_IP_EV_ICMP_ERROR, BH_ICMP_UNREACH_PORT, H.our_iss);
	cr_expect_eq(h_last_error(&H), ECONNREFUSED);
	cr_expect_eq(info(c).state, BH_TCP_CLOSED);
	cr_expect_eq(bh_tcp_counters(H.tcp)->icmp_refused, 1);
	cr_expect_eq(bh_tcp_counters(H.tcp)->icmp_errors, 1);
	cr_expect_eq(bh_tcp_close(H.tcp, H.now, c), 0);
}

Test(open, soft_errors_replace_etimedout)
{
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, 40000, 0, 7, &c), 0);
	H.our_iss = last()->t.seq;
	H.our_port = last()->t.sport;
	/* Network unreachable is soft: the attempt goes on... */
	icmp(BH_IP_EV_ICMP_ERROR, BH_ICMP_UNREACH_NET, H.our_iss);
	cr_expect_eq(info(c).state, BH_TCP_SYN_SENT);
	cr_expect_eq(h_last_error(&H), 0);
	/* ...and when the retries run out, it is the error reported. */
	uint64_t t = H.now;
	for (int k = 0; k < 20 && !h_last_error(&H); k++) {
		uint64_t next = h_tick(&H, t);
		if (next == UINT64_MAX)
			break;
		t = next;
		h_tick(&H, t);
	}
	cr_expect_eq(h_last_error(&H), ENETUNREACH);
	bh_tcp_close(H.tcp, H.now, c);
}

Test(open, errors_about_other_flows_or_protocols_are_ignored)
{
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, 40000, 0, 7, &c), 0);
	H.our_iss = last()->t.seq;
	H.our_port = last()->t.sport;
	struct bh_ip_event ev = icmp_ev(BH_IP_EV_ICMP_ERROR, BH_ICMP_UNREACH_PORT, H.our_iss);
	ev.dport = 40001; /* another flow */
	bh_tcp_ip_event(H.tcp, H.now, &ev);
	ev.dport = 40000;
	ev.proto = BH_IPPROTO_UDP; /* not ours */
	bh_tcp_ip_event(H.tcp, H.now, &ev);
	cr_expect_eq(info(c).state, BH_TCP_SYN_SENT);
	cr_expect_eq(bh_tcp_counters(H.tcp)->icmp_ignored, 1, "the unknown flow");
	cr_expect_eq(bh_tcp_counters(H.tcp)->icmp_errors, 0);
	/* ARP giving up is "host unreachable": soft. */
	ev.proto = BH_IPPROTO_TCP;
	ev.type = BH_IP_EV_HOST_UNREACH;
	bh_tcp_ip_event(H.tcp, H.now, &ev);
	cr_expect_eq(info(c).state, BH_TCP_SYN_SENT);
	cr_expect_eq(bh_tcp_counters(H.tcp)->icmp_errors, 1);
	bh_tcp_close(H.tcp, H.now, c);
}

Test(open, simultaneous_open)
{
	bh_tcp_conn c;
	H.our_port = 5555;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, 40000, 5555, 7, &c), 0);
	H.our_iss = last()->t.seq;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_SYN_RECEIVED);
	cr_expect_eq(last()->t.flags, BH_TCP_SYN | BH_TCP_ACK);
	cr_expect_eq(h_rel_seq(&H, H.nout - 1), 0, "our SYN again, now with an ACK");
	h_send(&H, BH_TCP_SYN | BH_TCP_ACK, 0, 1, 65535, NULL, 0, NULL);
	/* RFC 9293 figure 8: their SYN-ACK is a SYN in SYN-RECEIVED: it gets
	 * a challenge ACK (RFC 5961 4), and their ACK completes. */
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CONNECTED, c), 1);
}

Test(open, backlog_bounds_the_syn_queue)
{
	/* Without SYN cookies, a full SYN queue drops SYNs. */
	cr_assert_eq(h_fini(&H), 0);
	struct bh_tcp_config cfg;
	h_config(&cfg);
	cfg.no_syncookies = true;
	h_init(&H, &cfg);
	bh_tcp_conn l;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 2, 1, &l), 0);
	for (int i = 0; i < 5; i++) {
		H.peer_port = (uint16_t)(41000 + i);
		h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	}
	cr_expect_eq(H.nout, 2, "two SYN-ACKs");
	cr_expect_eq(bh_tcp_counters(H.tcp)->backlog_drops, 3);
}

/* ---- data ---- */

Test(data, receive_in_order_with_delayed_acks)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	static uint8_t d[1460 * 3];
	for (unsigned i = 0; i < sizeof d; i++)
		d[i] = (uint8_t)(i * 31);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, d, 1460, NULL);
	cr_expect_eq(H.nout, 0, "the first full segment waits for a second");
	cr_expect_eq(h_events(&H, BH_TCP_EV_READABLE, c), 1);
	h_send(&H, BH_TCP_ACK, 1461, 1, 65535, d + 1460, 1460, NULL);
	cr_assert_eq(H.nout, 1, "every second full segment is acknowledged at once");
	cr_expect_eq(h_rel_ack(&H, 0), 2921);
	h_send(&H, BH_TCP_ACK | BH_TCP_PSH, 2921, 1, 65535, d + 2920, 100, NULL);
	cr_expect_eq(H.nout, 1);
	uint64_t next = h_tick(&H, H.now);
	cr_expect_eq(next, H.now + 40 * MS, "the delayed ACK timer");
	h_tick(&H, next);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(h_rel_ack(&H, 1), 3021);
	uint8_t buf[8192];
	cr_assert_eq(h_read(&H, c, buf, sizeof buf), 3020);
	cr_expect_arr_eq(buf, d, 3020);
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), -EAGAIN);
}

Test(data, send_and_acknowledge)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, "hello, world", 12), 0);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, 0), 1);
	cr_expect_eq(H.out[0].len, 12);
	cr_expect_arr_eq(H.out[0].data, "hello, world", 12);
	cr_expect(H.out[0].t.flags & BH_TCP_PSH);
	cr_expect_eq(info(c).snd_queued, 12);
	h_send(&H, BH_TCP_ACK, 1, 13, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).snd_queued, 0, "acknowledged data is released");
	cr_expect_eq(bh_tcp_held(H.tcp), 0);
}

/* What the TCP domain does with a pass's worth of SOCK buffers: sent one
 * by one with Nagle off, each is a short segment; queued in a batch, the
 * connection sends once at its end, in full segments. */
Test(data, a_batch_of_small_sends_goes_out_in_full_segments)
{
	uint8_t d[6000];
	for (unsigned i = 0; i < sizeof d; i++)
		d[i] = (uint8_t)(i * 7 + 3);
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	cr_assert_eq(bh_tcp_setopt(H.tcp, H.now, c, BH_TCP_OPT_NODELAY, 1), 0);
	h_clear(&H);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(h_write(&H, c, d + 1000 * i, 1000), 0);
	cr_assert_eq(H.nout, 3, "outside a batch, each send goes out at once");
	for (int i = 0; i < 3; i++)
		cr_expect_eq(H.out[i].len, 1000);
	h_send(&H, BH_TCP_ACK, 1, 3001, 65535, NULL, 0, NULL);
	h_clear(&H);
	bh_tcp_batch_begin(H.tcp);
	for (int i = 3; i < 6; i++)
		cr_assert_eq(h_write(&H, c, d + 1000 * i, 1000), 0);
	cr_expect_eq(H.nout, 0, "inside a batch, sends only queue");
	cr_expect_eq(bh_tcp_batch_end(H.tcp, H.now), 1);
	h_check(&H, "after bh_tcp_batch_end");
	cr_assert_eq(H.nout, 3);
	cr_expect_eq(H.out[0].len, 1460);
	cr_expect_eq(H.out[1].len, 1460);
	cr_expect_eq(H.out[2].len, 80);
	cr_expect_eq(h_rel_seq(&H, 0), 3001);
	cr_expect_arr_eq(H.out[0].data, d + 3000, 1460);
	cr_expect_arr_eq(H.out[1].data, d + 4460, 1460);
	cr_expect_arr_eq(H.out[2].data, d + 5920, 80);
	cr_expect_eq(bh_tcp_batch_end(H.tcp, H.now), 0, "an empty batch sends nothing");
	h_send(&H, BH_TCP_ACK, 1, 6001, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).snd_queued, 0);
}

/* A connection closed inside the batch it queued in is not sent for at
 * its end (its slot may hold another connection by then). */
Test(data, a_batch_skips_a_connection_aborted_inside_it)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	bh_tcp_batch_begin(H.tcp);
	cr_assert_eq(h_write(&H, c, "gone", 4), 0);
	cr_assert_eq(bh_tcp_abort(H.tcp, H.now, c), 0);
	unsigned rsts = H.nout;
	cr_expect_eq(bh_tcp_batch_end(H.tcp, H.now), 0);
	cr_expect_eq(H.nout, rsts, "nothing more after the abort's RST");
	h_check(&H, "after bh_tcp_batch_end");
}

/* A pass of input in a batch gets one ACK for all its in-order data, at
 * the batch's end (as behind GRO); data out of order is ACKed at once,
 * every segment (RFC 5681 4.2). */
Test(data, a_batch_of_input_is_acked_once_at_its_end)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	static uint8_t d[1460];
	memset(d, 'a', sizeof d);
	h_clear(&H);
	bh_tcp_batch_begin(H.tcp);
	for (int i = 0; i < 6; i++)
		h_send(&H, BH_TCP_ACK, 1 + 1460u * i, 1, 65535, d, sizeof d, NULL);
	cr_expect_eq(H.nout, 0, "no ACK inside the batch");
	cr_expect_eq(bh_tcp_batch_end(H.tcp, H.now), 1);
	h_check(&H, "after bh_tcp_batch_end");
	cr_assert_eq(H.nout, 1, "one ACK for the pass");
	cr_expect_eq(h_rel_ack(&H, 0), 1 + 6 * 1460);
	/* A hole: each segment past it is ACKed at once, in the batch. */
	h_clear(&H);
	bh_tcp_batch_begin(H.tcp);
	h_send(&H, BH_TCP_ACK, 1 + 7 * 1460u, 1, 65535, d, sizeof d, NULL);
	h_send(&H, BH_TCP_ACK, 1 + 8 * 1460u, 1, 65535, d, sizeof d, NULL);
	cr_expect_eq(H.nout, 2, "duplicate ACKs at once (%u)", H.nout);
	cr_expect_eq(h_rel_ack(&H, 1), 1 + 6 * 1460);
	bh_tcp_batch_end(H.tcp, H.now);
	h_check(&H, "after bh_tcp_batch_end");
	uint8_t buf[16384];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), 6 * 1460);
}

Test(data, nagle_holds_small_segments_while_data_is_unacked)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	h_write(&H, c, "a", 1);
	h_write(&H, c, "b", 1);
	h_write(&H, c, "c", 1);
	cr_expect_eq(H.nout, 1, "RFC 9293 3.7.4: one small segment in flight");
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(H.out[1].len, 2);
	cr_expect_arr_eq(H.out[1].data, "bc", 2);
}

Test(data, retransmission_timeout_backs_off)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	h_write(&H, c, "lost", 4);
	uint64_t t0 = H.now;
	uint32_t rto = info(c).rto_us;
	uint64_t next = h_tick(&H, H.now);
	cr_expect_eq(next, t0 + rto);
	h_tick(&H, next);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(h_rel_seq(&H, 1), 1);
	cr_expect_arr_eq(H.out[1].data, "lost", 4);
	cr_expect_eq(info(c).rto_us, 2 * rto, "RFC 6298 5.5");
	next = h_tick(&H, H.now);
	cr_expect_eq(next, H.now + 2 * rto);
	h_send(&H, BH_TCP_ACK, 1, 5, 65535, NULL, 0, NULL);
	cr_expect_eq(h_tick(&H, H.now), UINT64_MAX, "nothing left to time");
	cr_expect_eq(info(c).retransmits, 1);
}

Test(data, out_of_order_is_acked_at_once_and_reassembled)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 11, 1, 65535, "0123456789", 10, NULL);
	cr_assert_eq(H.nout, 1, "a duplicate ACK at once (RFC 5681 4.2)");
	cr_expect_eq(h_rel_ack(&H, 0), 1);
	uint8_t buf[64];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), -EAGAIN);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, "abcdefghij", 10, NULL);
	cr_expect_eq(h_rel_ack(&H, H.nout - 1), 21);
	cr_assert_eq(h_read(&H, c, buf, sizeof buf), 20);
	cr_expect_arr_eq(buf, "abcdefghij0123456789", 20);
}

Test(data, overlapping_and_old_data_is_trimmed)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, "abcdef", 6, NULL);
	h_send(&H, BH_TCP_ACK, 4, 1, 65535, "defghi", 6, NULL);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, "abc", 3, NULL);
	uint8_t buf[64];
	cr_assert_eq(h_read(&H, c, buf, sizeof buf), 9);
	cr_expect_arr_eq(buf, "abcdefghi", 9);
}

Test(data, bad_checksum_is_dropped)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_send_abs(&H, BH_TCP_ACK, H.peer_iss + 1, H.our_iss + 1, 65535, "x", 1, NULL, true);
	cr_expect_eq(bh_tcp_counters(H.tcp)->bad_checksum, 1);
	uint8_t buf[4];
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), -EAGAIN);
}

Test(data, fast_retransmit_after_three_duplicate_acks)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	static uint8_t d[1460 * 5];
	memset(d, 'q', sizeof d);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(h_write(&H, c, d + 1460 * i, 1460), 0);
	h_clear(&H);
	h_tick(&H, H.now);
	/* All five went at once (initial window 10 segments); the first is
	 * acknowledged, then three duplicates say the second is lost. */
	h_send(&H, BH_TCP_ACK, 1, 1461, 65535, NULL, 0, NULL);
	cr_expect_eq(H.nout, 0);
	for (int k = 0; k < 3; k++)
		h_send(&H, BH_TCP_ACK, 1, 1461, 65535, NULL, 0, NULL);
	cr_expect_eq(bh_tcp_counters(H.tcp)->dup_acks, 3);
	cr_assert_geq(H.nout, 1);
	cr_expect_eq(h_rel_seq(&H, H.nout - 1), 1461, "the first unacknowledged segment again");
	cr_expect_eq(bh_tcp_counters(H.tcp)->fast_retransmits, 1);
}

/* ---- close ---- */

Test(close, active_close_through_time_wait)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	cr_assert_eq(bh_tcp_close(H.tcp, H.now, c), 0);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_FIN | BH_TCP_ACK);
	cr_expect_eq(h_rel_seq(&H, 0), 1);
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	h_send(&H, BH_TCP_FIN | BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(h_rel_ack(&H, 1), 2, "their FIN acknowledged");
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 0, "TIME-WAIT holds the tuple");
	/* A retransmitted FIN in TIME-WAIT is acknowledged again. */
	h_send(&H, BH_TCP_FIN | BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	cr_expect_eq(H.nout, 3);
	uint64_t next = h_tick(&H, H.now);
	cr_expect_eq(next, H.now + 60000 * MS, "2 MSL");
	h_tick(&H, next);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 0);
}

/* A FIN nobody acknowledges is resent with backoff, and after `retries`
 * the connection ends: the application that closed hears CLOSED, the
 * counters say why (RFC 1122 4.2.3.5). */
static void few_retries(struct bh_tcp_config *c) { c->retries = 3; }

Test(close, fin_retries_end_the_connection)
{
	cr_assert_eq(h_fini(&H), 0);
	struct bh_tcp_config cfg;
	h_config(&cfg);
	few_retries(&cfg);
	h_init(&H, &cfg);
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	cr_assert_eq(bh_tcp_close(H.tcp, H.now, c), 0);
	for (int k = 0; k < 10 && bh_tcp_list(H.tcp, NULL, 0); k++)
		h_tick(&H, h_tick(&H, H.now));
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 0, "the connection is gone");
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
	cr_expect_eq(bh_tcp_counters(H.tcp)->conn_timeouts, 1);
	unsigned fins = 0;
	for (unsigned i = 0; i < H.nout; i++)
		fins += (H.out[i].t.flags & BH_TCP_FIN) != 0;
	cr_expect_eq(fins, 4, "the FIN and 3 retries");
	cr_expect_eq(H.out[2].at - H.out[1].at, 2 * (H.out[1].at - H.out[0].at), "backed off");
}

Test(close, passive_close)
{
	bh_tcp_conn c = h_accept(&H, NULL);
	cr_assert(c);
	h_send(&H, BH_TCP_FIN | BH_TCP_ACK, 1, 1, 65535, "bye", 3, NULL);
	cr_expect_eq(info(c).state, BH_TCP_CLOSE_WAIT);
	uint8_t buf[8];
	cr_assert_eq(h_read(&H, c, buf, sizeof buf), 3);
	cr_expect_eq(h_read(&H, c, buf, sizeof buf), -1, "end of stream");
	h_clear(&H);
	cr_assert_eq(bh_tcp_close(H.tcp, H.now, c), 0);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_FIN | BH_TCP_ACK);
	h_send(&H, BH_TCP_ACK, 5, 2, 65535, NULL, 0, NULL);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
}

Test(close, half_close_still_receives)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	cr_assert_eq(bh_tcp_shutdown(H.tcp, H.now, c), 0);
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, "more", 4, NULL);
	cr_expect_eq(info(c).state, BH_TCP_FIN_WAIT_2);
	uint8_t buf[8];
	cr_assert_eq(h_read(&H, c, buf, sizeof buf), 4);
	cr_expect_arr_eq(buf, "more", 4);
	cr_expect_eq(h_write(&H, c, "x", 1), -EPIPE);
	bh_tcp_abort(H.tcp, H.now, c);
}

Test(close, simultaneous_close)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	bh_tcp_close(H.tcp, H.now, c);
	h_send(&H, BH_TCP_FIN | BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_CLOSING);
	h_send(&H, BH_TCP_ACK, 2, 2, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_TIME_WAIT);
	h_tick(&H, H.now + 60000 * MS);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
}

Test(close, unread_data_makes_close_a_reset)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, "unread", 6, NULL);
	h_clear(&H);
	bh_tcp_close(H.tcp, H.now, c);
	cr_assert_eq(H.nout, 1);
	cr_expect(last()->t.flags & BH_TCP_RST, "RFC 1122 4.2.2.13");
	cr_expect_eq(bh_tcp_held(H.tcp), 0);
}

/* Closed by us, our FIN acknowledged: FIN-WAIT-2 with no one to read. */
static bh_tcp_conn closed_in_fin_wait_2(void)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	bh_tcp_close(H.tcp, H.now, c);
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	cr_assert_eq(info(c).state, BH_TCP_FIN_WAIT_2);
	h_clear(&H);
	return c;
}

Test(close, data_after_close_is_answered_with_a_reset)
{
	bh_tcp_conn c = closed_in_fin_wait_2();
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, "late", 4, NULL);
	cr_assert_eq(H.nout, 1);
	cr_expect(last()->t.flags & BH_TCP_RST, "RFC 1122 4.2.2.13: data after CLOSE");
	cr_expect_eq(h_rel_seq(&H, H.nout - 1), 2, "at SND.NXT, after our FIN");
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
	cr_expect_eq(bh_tcp_counters(H.tcp)->abort_on_data, 1);
	cr_expect_eq(bh_tcp_held(H.tcp), 0, "the data is not kept");
}

Test(close, a_closed_fin_wait_2_ends_after_fin_timeout)
{
	bh_tcp_conn c = closed_in_fin_wait_2();
	/* A bare ACK (a keepalive, say) is no FIN and changes nothing. */
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	h_tick(&H, H.now + 59000 * MS);
	cr_expect_eq(info(c).state, BH_TCP_FIN_WAIT_2);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 0);
	h_clear(&H);
	h_tick(&H, H.now + 1001 * MS);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
	cr_assert_eq(H.nout, 1);
	cr_expect(last()->t.flags & BH_TCP_RST, "the peer is told");
	cr_expect_eq(bh_tcp_counters(H.tcp)->fin_timeouts, 1);
}

Test(close, a_half_closed_fin_wait_2_has_no_timeout)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	cr_assert_eq(bh_tcp_shutdown(H.tcp, H.now, c), 0);
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	cr_assert_eq(info(c).state, BH_TCP_FIN_WAIT_2);
	h_tick(&H, H.now + 600000 * MS);
	cr_expect_eq(info(c).state, BH_TCP_FIN_WAIT_2, "the application may still read");
	/* Closed later, still in FIN-WAIT-2: the timeout starts then. */
	bh_tcp_close(H.tcp, H.now, c);
	h_tick(&H, H.now + 61000 * MS);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
	cr_expect_eq(bh_tcp_counters(H.tcp)->fin_timeouts, 1);
}

/* ---- resets and blind attacks ---- */

Test(reset, closed_port_is_answered_with_a_reset)
{
	H.our_port = 81;
	h_send_abs(&H, BH_TCP_SYN, 1000, 0, 65535, NULL, 0, NULL, false);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_RST | BH_TCP_ACK);
	cr_expect_eq(last()->t.seq, 0);
	cr_expect_eq(last()->t.ack, 1001, "RFC 9293 3.10.7.1: SEG.SEQ + SEG.LEN");
	h_send_abs(&H, BH_TCP_ACK, 1000, 5000, 65535, "x", 1, NULL, false);
	cr_expect_eq(last()->t.flags, BH_TCP_RST);
	cr_expect_eq(last()->t.seq, 5000, "<SEQ=SEG.ACK>");
	h_send_abs(&H, BH_TCP_RST, 1000, 5000, 65535, NULL, 0, NULL, false);
	cr_expect_eq(H.nout, 2, "a reset is never answered");
}

/* A connection a replaced tcp carried: the probe is a bare ACK far from
 * anything the peer expects; the peer's answering ACK finds no connection
 * and is reset with SEG.ACK as its sequence number, the one value the
 * peer accepts (RFC 5961 3.2). */
Test(reset, a_lost_connection_is_probed_and_its_peer_reset)
{
	H.our_port = 4000;
	cr_assert_eq(bh_tcp_probe_lost(H.tcp, H.now, H_PEER, 4000, H.peer_port), 0);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_ACK, "a bare ACK");
	cr_expect_eq(last()->dst, H_PEER);
	cr_expect_eq(last()->t.sport, 4000);
	cr_expect_eq(last()->t.dport, H.peer_port);
	cr_expect_eq(bh_tcp_counters(H.tcp)->lost_probes, 1);
	/* the peer answers <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> */
	h_send_abs(&H, BH_TCP_ACK, 777, 424242, 65535, NULL, 0, NULL, false);
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(last()->t.flags, BH_TCP_RST);
	cr_expect_eq(last()->t.seq, 424242, "<SEQ=SEG.ACK>: the peer's RCV.NXT");
	cr_expect_eq(bh_tcp_probe_lost(H.tcp, H.now, H_PEER, 0, H.peer_port), -EINVAL);
}

Test(reset, exact_reset_ends_the_connection)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_send(&H, BH_TCP_RST, 1, 0, 0, NULL, 0, NULL);
	cr_expect_eq(h_last_error(&H), ECONNRESET);
	cr_expect_eq(info(c).state, BH_TCP_CLOSED);
	uint8_t b[1];
	cr_expect_eq(h_write(&H, c, b, 1), -ECONNRESET);
	bh_tcp_close(H.tcp, H.now, c);
}

Test(reset, in_window_reset_draws_a_challenge_ack)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	h_send(&H, BH_TCP_RST, 100, 0, 0, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED, "RFC 5961 3.2");
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_ACK);
	cr_expect_eq(h_rel_ack(&H, 0), 1);
	cr_expect_eq(bh_tcp_counters(H.tcp)->challenge_acks, 1);
	/* Out of the window altogether: ignored, no ACK either. */
	h_send(&H, BH_TCP_RST, 10000000, 0, 0, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED);
	cr_expect_eq(H.nout, 1);
	bh_tcp_abort(H.tcp, H.now, c);
}

Test(reset, syn_in_a_synchronized_state_draws_a_challenge_ack)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	h_send(&H, BH_TCP_SYN, 1, 0, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED, "RFC 5961 4.2");
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_ACK);
	bh_tcp_abort(H.tcp, H.now, c);
}

Test(reset, ack_of_unsent_data_is_answered_not_taken)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 1, 5000, 65535, "x", 1, NULL);
	cr_expect_eq(bh_tcp_counters(H.tcp)->bad_acks, 1);
	cr_expect_eq(info(c).snd_una, H.our_iss + 1);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_ACK);
	uint8_t b[2];
	cr_expect_eq(h_read(&H, c, b, 2), -EAGAIN, "the segment's data is dropped too");
	bh_tcp_abort(H.tcp, H.now, c);
}

/* RFC 9293 3.8.6.1 and RFC 1122 4.2.2.17: a shut window is probed with
 * one byte at growing intervals, for as long as the peer answers. */
Test(data, zero_window_is_probed_while_the_peer_answers)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_send(&H, BH_TCP_ACK, 1, 1, 0, NULL, 0, NULL);
	cr_expect_eq(info(c).snd_wnd, 0);
	h_clear(&H);
	cr_assert_eq(h_write(&H, c, "abc", 3), 0);
	cr_expect_eq(H.nout, 0, "nothing fits a zero window");
	uint64_t prev_gap = 0, last_at = H.now;
	for (int k = 0; k < 20; k++) {
		uint64_t next = h_tick(&H, H.now);
		cr_assert_neq(next, UINT64_MAX, "the persist timer runs");
		unsigned before = H.nout;
		h_tick(&H, next);
		cr_assert_eq(H.nout, before + 1, "probe %d", k);
		const struct h_seg *p = last();
		cr_expect_eq(p->len, 1);
		cr_expect_eq(h_rel_seq(&H, H.nout - 1), 1);
		uint64_t gap = p->at - last_at;
		cr_expect_geq(gap, prev_gap, "the interval never shrinks");
		prev_gap = gap;
		last_at = p->at;
		/* The peer keeps its window shut and does not take the byte. */
		h_send(&H, BH_TCP_ACK, 1, 1, 0, NULL, 0, NULL);
	}
	cr_expect_eq(h_last_error(&H), 0, "no timeout while probes are answered");
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED);
	cr_expect_eq(prev_gap, 120000 * MS, "backed off to rto_max");
	/* The window opens: everything goes. */
	h_clear(&H);
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	cr_assert_geq(H.nout, 1);
	cr_expect_eq(last()->len, 3);
	cr_expect_arr_eq(last()->data, "abc", 3);
	h_send(&H, BH_TCP_ACK, 1, 4, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).snd_queued, 0);
}

/* RFC 1337: a reset in TIME-WAIT is ignored; the 2 MSL wait runs out. */
Test(close, reset_does_not_cut_time_wait_short)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	bh_tcp_close(H.tcp, H.now, c);
	h_send(&H, BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	h_send(&H, BH_TCP_FIN | BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	cr_assert_eq(info(c).state, BH_TCP_TIME_WAIT);
	h_send(&H, BH_TCP_RST, 2, 0, 0, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_TIME_WAIT);
	cr_expect_eq(bh_tcp_counters(H.tcp)->rst_ignored, 1);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 0);
	h_tick(&H, H.now + 60000 * MS);
	cr_expect_eq(h_events(&H, BH_TCP_EV_CLOSED, c), 1);
}

/* Data written before the handshake ends waits; the SYN, not the data,
 * is what the timer resends (the shut window of SYN-SENT is no zero
 * window to probe). */
Test(open, data_queued_before_the_handshake_waits_for_it)
{
	bh_tcp_conn c;
	cr_assert_eq(bh_tcp_connect(H.tcp, H.now, H_PEER, 40000, 0, 7, &c), 0);
	H.our_iss = last()->t.seq;
	H.our_port = last()->t.sport;
	cr_assert_eq(h_write(&H, c, "early", 5), 0);
	cr_expect_eq(H.nout, 1, "only the SYN");
	h_tick(&H, h_tick(&H, H.now));
	cr_assert_eq(H.nout, 2);
	cr_expect_eq(last()->t.flags, BH_TCP_SYN, "the SYN again, not a data segment");
	cr_expect_eq(last()->len, 0);
	h_send(&H, BH_TCP_SYN | BH_TCP_ACK, 0, 1, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED);
	cr_expect_eq(last()->len, 5, "the data follows the handshake");
	cr_expect_arr_eq(last()->data, "early", 5);
	cr_expect_eq(h_rel_seq(&H, H.nout - 1), 1);
	bh_tcp_abort(H.tcp, H.now, c);
}

/* ---- a listener's SYN queue and accept queue ---- */

/* The window scale option with the illegal length 2, then EOL: the SYN
 * of the reported denial of service. */
static const uint8_t WS_LEN_2[4] = {3, 2, 1, 0};

/* A normal handshake from peer port `port`, accepted; 0 if it fails. */
static bh_tcp_conn handshake(bh_tcp_conn l, uint16_t port)
{
	H.peer_port = port;
	unsigned before = H.nout;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	if (H.nout != before + 1 || last()->t.flags != (BH_TCP_SYN | BH_TCP_ACK))
		return 0;
	H.our_iss = last()->t.seq;
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	bh_tcp_conn c;
	return bh_tcp_accept(H.tcp, l, 9, &c) == 0 ? c : 0;
}

/* The reported bug: a SYN the Linux host never sent (options 03 02 01
 * 00) draws our SYN-ACK; the host, which knows no such connection,
 * answers with <SEQ=SEG.ACK><CTL=RST> (RFC 9293 3.10.7.1, Linux's
 * tcp_v4_send_reset). The child goes back to LISTEN (RFC 9293 3.10.7.4,
 * second check) and must give its place in the SYN queue back: more
 * such rounds than the backlog, then a real connection. */
Test(listener, a_reset_syn_ack_gives_its_place_back)
{
	bh_tcp_conn l;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 4, 1, &l), 0);
	for (unsigned i = 0; i < 12; i++) {
		H.peer_port = (uint16_t)(41000 + i);
		h_clear(&H);
		h_send_raw(&H, BH_TCP_SYN, H.peer_iss, 0, 64240, WS_LEN_2, sizeof WS_LEN_2, NULL, 0);
		cr_assert_eq(H.nout, 1, "round %u: one SYN-ACK (backlog_drops %llu)", i,
			     (unsigned long long)bh_tcp_counters(H.tcp)->backlog_drops);
		const struct h_seg *sa = last();
		cr_assert_eq(sa->t.flags, BH_TCP_SYN | BH_TCP_ACK, "round %u", i);
		cr_expect_eq(sa->t.ack, H.peer_iss + 1);
		cr_expect(!sa->t.opt.has_wscale, "a scale of the wrong length is no offer");
		cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 2, "the listener and one child");
		h_send_abs(&H, BH_TCP_RST, sa->t.ack, 0, 0, NULL, 0, NULL, false);
		cr_expect_eq(H.nout, 1, "a reset is never answered");
		cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 1, "round %u: only the listener", i);
	}
	cr_expect_eq(bh_tcp_counters(H.tcp)->backlog_drops, 0);
	cr_expect_eq(bh_tcp_counters(H.tcp)->syncookies_sent, 0);
	cr_expect_eq(bh_tcp_counters(H.tcp)->rst_in, 12);
	h_clear(&H);
	bh_tcp_conn c = handshake(l, 42000);
	cr_assert(c, "a real connection is accepted");
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED);
	bh_tcp_conn more;
	cr_expect_eq(bh_tcp_accept(H.tcp, l, 9, &more), -EAGAIN);
	bh_tcp_abort(H.tcp, H.now, c);
	bh_tcp_close(H.tcp, H.now, l);
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 0);
}

/* Without SYN cookies, so that a count left behind shows as a dropped
 * SYN rather than a cookie; syn_retries 2 keeps the timeouts short. */
static void reinit_strict(void)
{
	cr_assert_eq(h_fini(&H), 0);
	struct bh_tcp_config cfg;
	h_config(&cfg);
	cfg.no_syncookies = true;
	cfg.syn_retries = 2;
	h_init(&H, &cfg);
}

/* RFC 6298 5.5 and RFC 1122 4.2.3.5: a SYN-ACK never answered is resent
 * with backoff, then the child goes, and with it its place in the SYN
 * queue. */
Test(listener, syn_ack_retries_give_their_place_back)
{
	reinit_strict();
	bh_tcp_conn l;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 2, 1, &l), 0);
	for (unsigned i = 0; i < 5; i++) {
		H.peer_port = (uint16_t)(41000 + i);
		h_clear(&H);
		h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
		cr_assert_eq(H.nout, 1, "round %u: a SYN-ACK", i);
		for (int k = 0; k < 10 && bh_tcp_list(H.tcp, NULL, 0) > 1; k++)
			h_tick(&H, h_tick(&H, H.now));
		cr_assert_eq(bh_tcp_list(H.tcp, NULL, 0), 1, "round %u: the child timed out", i);
		cr_expect_eq(H.nout, 3, "the SYN-ACK and its two retransmissions");
	}
	cr_expect_eq(bh_tcp_counters(H.tcp)->conn_timeouts, 5);
	cr_expect_eq(bh_tcp_counters(H.tcp)->backlog_drops, 0);
	cr_expect_eq(h_events(&H, BH_TCP_EV_ERROR, 0), 0, "nobody held the children");
	cr_assert(handshake(l, 42000));
	cr_assert(handshake(l, 42001));
}

/* A reset for a connection whose handshake is done but which is not yet
 * accepted: it leaves the accept queue, its place is free, and accept
 * never returns it. */
Test(listener, a_reset_in_the_accept_queue_gives_its_place_back)
{
	reinit_strict();
	bh_tcp_conn l, c;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 2, 1, &l), 0);
	for (unsigned i = 0; i < 5; i++) {
		H.peer_port = (uint16_t)(41000 + i);
		h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
		H.our_iss = last()->t.seq;
		h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
		cr_assert_eq(bh_tcp_list(H.tcp, NULL, 0), 2, "round %u: done, waiting", i);
		h_send(&H, BH_TCP_RST, 1, 0, 0, NULL, 0, NULL);
		cr_assert_eq(bh_tcp_list(H.tcp, NULL, 0), 1, "round %u: reset", i);
	}
	cr_expect_eq(bh_tcp_accept(H.tcp, l, 9, &c), -EAGAIN, "a reset connection is never accepted");
	cr_expect_eq(bh_tcp_counters(H.tcp)->backlog_drops, 0);
	c = handshake(l, 42000);
	cr_assert(c);
	/* Accepted, it is the application's: its end leaves the queues as
	 * they are. */
	cr_expect_eq(bh_tcp_abort(H.tcp, H.now, c), 0);
	cr_assert(handshake(l, 42001));
	cr_assert(handshake(l, 42002));
}

/* The listener's children in both queues, then the listener goes. */
static void two_children(bh_tcp_conn *l)
{
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 4, 1, l), 0);
	H.peer_port = 41000;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL); /* stays in SYN-RECEIVED */
	H.peer_port = 41001;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	H.our_iss = last()->t.seq;
	h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL); /* waits in the accept queue */
	cr_assert_eq(bh_tcp_list(H.tcp, NULL, 0), 3);
	h_clear(&H);
}

static void children_reset_and_port_free(void)
{
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 0, "the children went with the listener");
	cr_assert_eq(H.nout, 2, "one reset for each");
	for (unsigned i = 0; i < 2; i++)
		cr_expect_eq(H.out[i].t.flags & BH_TCP_RST, BH_TCP_RST);
	/* A SYN for the port now finds nothing (RFC 9293 3.10.7.1)... */
	h_clear(&H);
	H.peer_port = 41002;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_RST | BH_TCP_ACK);
	/* ...and a new listener on it starts with empty queues. */
	bh_tcp_conn l;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 1, 1, &l), 0);
	cr_assert(handshake(l, 42000));
	cr_assert_eq(bh_tcp_close(H.tcp, H.now, l), 0);
}

Test(listener, closing_a_listener_resets_its_children)
{
	bh_tcp_conn l;
	two_children(&l);
	cr_assert_eq(bh_tcp_close(H.tcp, H.now, l), 0);
	children_reset_and_port_free();
}

/* Aborting a listener once left its children behind, each still naming
 * the freed slot as its listener (and the next listener in that slot
 * would have had them counted out of its own queues). */
Test(listener, aborting_a_listener_resets_its_children)
{
	bh_tcp_conn l;
	two_children(&l);
	cr_assert_eq(bh_tcp_abort(H.tcp, H.now, l), 0);
	children_reset_and_port_free();
}

/* RFC 9293 3.10.4 (SEND, CLOSE): a FIN that could not be built (no
 * buffer) is owed, and the retransmission timer is what sends it. */
Test(close, a_fin_without_a_buffer_is_sent_by_the_timer)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	H.fail_alloc = true;
	cr_assert_eq(bh_tcp_close(H.tcp, H.now, c), 0);
	cr_expect_eq(H.nout, 0);
	uint64_t next = h_tick(&H, H.now);
	cr_assert_neq(next, UINT64_MAX, "a timer for the FIN");
	H.fail_alloc = false;
	h_tick(&H, next);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(last()->t.flags, BH_TCP_FIN | BH_TCP_ACK);
	cr_expect_eq(h_rel_seq(&H, 0), 1);
	h_send(&H, BH_TCP_FIN | BH_TCP_ACK, 1, 2, 65535, NULL, 0, NULL);
	cr_expect_eq(info(c).state, BH_TCP_TIME_WAIT);
}

/* A segment that found no buffer is owed, and goes as soon as buffers
 * come back, not at a timer that may be far off or never armed. */
Test(data, a_segment_without_a_buffer_goes_when_buffers_come_back)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	h_clear(&H);
	bh_tcp_batch_begin(H.tcp);
	cr_assert_eq(h_write(&H, c, "owed", 4), 0);
	H.fail_alloc = true;
	bh_tcp_batch_end(H.tcp, H.now);
	cr_expect_eq(H.nout, 0);
	cr_expect(bh_tcp_wants_buffers(H.tcp));
	cr_expect_eq(bh_tcp_buffers_back(H.tcp, H.now), 1, "still short: tried, owed again");
	cr_expect_eq(H.nout, 0);
	H.fail_alloc = false;
	cr_expect_eq(bh_tcp_buffers_back(H.tcp, H.now), 1);
	cr_assert_eq(H.nout, 1);
	cr_expect_arr_eq(H.out[0].data, "owed", 4);
	cr_expect_not(bh_tcp_wants_buffers(H.tcp));
	cr_expect_eq(bh_tcp_buffers_back(H.tcp, H.now), 0);
}

/* Linux's rule for local congestion: a timeout whose resend finds no
 * buffer does not back off and does not count towards giving up. */
Test(data, a_timeout_short_of_buffers_does_not_back_off)
{
	bh_tcp_conn c = h_connect(&H, NULL);
	cr_assert(c);
	cr_assert_eq(h_write(&H, c, "lost", 4), 0);
	uint32_t rto = info(c).rto_us;
	h_clear(&H);
	H.fail_alloc = true;
	for (int i = 0; i < 20; i++) /* more than cfg.retries */
		h_tick(&H, h_tick(&H, H.now));
	cr_expect_eq(H.nout, 0);
	cr_expect_eq(info(c).state, BH_TCP_ESTABLISHED, "not timed out");
	cr_expect_eq(info(c).rto_us, rto, "not backed off");
	cr_expect_eq(bh_tcp_counters(H.tcp)->nobuf_timeouts, 20);
	H.fail_alloc = false;
	h_tick(&H, h_tick(&H, H.now));
	cr_assert_eq(H.nout, 1);
	cr_expect_arr_eq(H.out[0].data, "lost", 4);
	cr_expect_eq(info(c).rto_us, 2 * rto, "a real timeout backs off");
}

/* The options of a SYN as Linux takes them (tcp_parse_options; tcp_wire.c
 * lists the rule per kind): whatever they hold, the SYN is answered; the
 * SYN-ACK offers only what was validly offered; the connection uses
 * what was read. */
Test(open, odd_syn_options_are_taken_as_linux_takes_them)
{
	static const struct {
		const char *what;
		uint8_t o[40];
		unsigned olen;
		bool ws, ts, sack; /* offered back in the SYN-ACK */
		uint8_t snd_wscale;
		uint16_t mss; /* what we send, less 12 with timestamps */
	} k[] = {
		{"window scale of length 2 (the reported SYN)", {3, 2, 1, 0}, 4, 0, 0, 0, 0, 536},
		{"MSS, then a length of 0: the rest unread",
		 {2, 4, 3, 0xe8, 30, 0, 4, 2, 3, 3, 7, 0}, 12, 0, 0, 0, 0, 1000},
		{"MSS, then a kind with no length byte", {2, 4, 3, 0xe8, 1, 1, 1, 4}, 8, 0, 0, 0, 0,
		 1000},
		{"MSS, then SACK-permitted past the header", {2, 4, 3, 0xe8, 4, 9, 0, 0}, 8, 0, 0, 0, 0,
		 1000},
		{"window scale 200: 14", {1, 3, 3, 200}, 4, 1, 0, 0, 14, 536},
		{"window scale 15: 14", {1, 3, 3, 15}, 4, 1, 0, 0, 14, 536},
		{"MSS 0: none", {2, 4, 0, 0}, 4, 0, 0, 0, 0, 536},
		{"MSS 1: raised to 64", {2, 4, 0, 1}, 4, 0, 0, 0, 0, 64},
		{"MSS of length 3", {2, 3, 9, 1}, 4, 0, 0, 0, 0, 536},
		{"timestamps of length 9, SACK-permitted of length 3",
		 {8, 9, 0, 0, 0, 1, 0, 0, 0, 4, 3, 0}, 12, 0, 0, 0, 0, 536},
		{"all 40 bytes: Linux's four, an unknown kind, NOPs",
		 {2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 1, 3, 3, 7,
		  254, 6, 1, 2, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
		 40, 1, 1, 1, 7, 1448},
		{"NOPs only", {1, 1, 1, 1, 1, 1, 1, 1}, 8, 0, 0, 0, 0, 536},
		{"EOL first", {0, 2, 4, 5, 0xb4, 3, 3, 7}, 8, 0, 0, 0, 0, 536},
	};
	bh_tcp_conn l, c;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 4, 1, &l), 0);
	for (unsigned i = 0; i < sizeof k / sizeof k[0]; i++) {
		H.peer_port = (uint16_t)(41000 + i);
		h_clear(&H);
		h_send_raw(&H, BH_TCP_SYN, H.peer_iss, 0, 65535, k[i].o, k[i].olen, NULL, 0);
		cr_assert_eq(H.nout, 1, "%s: answered", k[i].what);
		const struct h_seg *sa = last();
		cr_expect_eq(sa->t.flags, BH_TCP_SYN | BH_TCP_ACK, "%s", k[i].what);
		cr_expect_eq(sa->t.opt.has_wscale, k[i].ws, "%s: scale offered back", k[i].what);
		cr_expect_eq(sa->t.opt.has_ts, k[i].ts, "%s: timestamps offered back", k[i].what);
		cr_expect_eq(sa->t.opt.sack_ok, k[i].sack, "%s: SACK offered back", k[i].what);
		H.our_iss = sa->t.seq;
		h_send(&H, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
		cr_assert_eq(bh_tcp_accept(H.tcp, l, 9, &c), 0, "%s: accepted", k[i].what);
		struct bh_tcp_info in = info(c);
		cr_expect_eq(in.snd_wscale, k[i].snd_wscale, "%s", k[i].what);
		cr_expect_eq(in.mss, k[i].mss, "%s: MSS %u", k[i].what, in.mss);
		cr_expect_eq(in.ts, k[i].ts, "%s", k[i].what);
		cr_expect_eq(in.sack, k[i].sack, "%s", k[i].what);
		bh_tcp_abort(H.tcp, H.now, c);
	}
	const struct bh_tcp_counters *n = bh_tcp_counters(H.tcp);
	cr_expect_eq(n->bad_header, 0, "options never make a segment malformed");
	cr_expect_eq(n->bad_options, 6, "the wrong and illegal lengths, counted");
	cr_expect_eq(n->wscale_clamped, 2, "RFC 7323 2.3: logged");
}

/* Port 0 is no port: a SYN from it (or to it) is malformed, never a
 * child whose remote end is half the listener's own key. */
/* Linux drops SYN+FIN at a listener (a scanner's probe, no stack's
 * opening); so do we, and a plain SYN after it is answered. */
Test(listener, a_syn_with_fin_is_dropped)
{
	bh_tcp_conn l;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 4, 1, &l), 0);
	h_send(&H, BH_TCP_SYN | BH_TCP_FIN, 0, 0, 65535, NULL, 0, NULL);
	cr_expect_eq(H.nout, 0, "no SYN-ACK, no reset");
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 1, "no child made");
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	cr_assert_eq(H.nout, 1);
	cr_expect_eq(H.out[0].t.flags, BH_TCP_SYN | BH_TCP_ACK);
}

Test(listener, a_syn_from_port_0_is_malformed)
{
	bh_tcp_conn l;
	cr_assert_eq(bh_tcp_listen(H.tcp, 80, 4, 1, &l), 0);
	H.peer_port = 0;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	H.peer_port = 40000;
	H.our_port = 0;
	h_send(&H, BH_TCP_SYN, 0, 0, 65535, NULL, 0, NULL);
	cr_expect_eq(H.nout, 0, "no SYN-ACK, no reset");
	cr_expect_eq(bh_tcp_counters(H.tcp)->bad_header, 2);
	cr_expect_eq(bh_tcp_list(H.tcp, NULL, 0), 1);
}
