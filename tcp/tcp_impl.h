/*
 * tcp/tcp_impl.h - the TCP library's private state, shared by tcp.c
 * (table, queues, what IP delivers), api.c (the application calls),
 * timer.c (the tick, keepalive), tcp_in.c (segment arrival), ack.c (the
 * ACK field), tcp_out.c (segment building), sack.c, cc.c, cookie.c and
 * check.c. Not for users of the library.
 *
 * Times inside the library are microseconds (bh_us at the API, plain
 * uint64_t here): now, and the absolute deadlines rtx_at, delack_at,
 * tw_at and ka_at.
 */
#ifndef BH_TCP_IMPL_H
#define BH_TCP_IMPL_H

#include <errno.h>

#include "tcp/tcp.h"

#define NONE UINT32_MAX
#define BH_TCP_CWND_MAX (1u << 30) /* growth saturates here */

/* A queued buffer: data [seq, seq + len) in pkt's off/len span. */
struct tseg {
	uint32_t next; /* index in the segment store, NONE at the end */
	bh_seq seq;
	uint32_t len;
	struct bh_pkt pkt;
};

/* One transmission of [seq, seq + len) of the send space (data, and the
 * FIN): when it last went and what became of it, for RACK-TLP (RFC 8985;
 * rack.c). A connection with SACK keeps them in order, tiling
 * [SND.UNA, SND.MAX) once its SYN is acknowledged; segments sent in the
 * same microsecond share one. */
struct trec {
	uint32_t next; /* index in the record store, NONE at the end */
	bh_seq seq;
	uint32_t len;
	uint8_t flags; /* BH_REC_* */
	/* The latest transmission: microseconds, and its place in the
	 * connection's order of transmissions (tx_order), which orders
	 * what went in the same microsecond (a resend after new data in
	 * one pass is the later, whatever its number). */
	uint32_t order;
	uint64_t sent;
};
#define BH_REC_SACKED 1u  /* the peer holds it (SACK) */
#define BH_REC_LOST 2u    /* marked lost (RACK, or a timeout); stays once resent */
#define BH_REC_RETRANS 4u /* resent, and that copy is not known lost */
#define BH_REC_AGAIN 8u   /* sent more than once: an ACK of it is ambiguous */
/* grown past its first send when the store ran dry (rec_append): its
 * time is its newest part's, too late for the rest (no RTT for the RTO) */
#define BH_REC_COARSE 16u

struct trecq {
	uint32_t head, tail, count;
};

/* The buffer memory one connection's receive queues may pin: twice its
 * buffer, for tiny segments in large buffers (queue_data). */
#define BH_TCP_RCV_MEM(c) (2ull * (c)->rcv_space + 65536)
/* rcv_fill before any data: half, as Linux's default scaling ratio; and
 * its floor, one byte per 64 KiB buffer, below any real piece: the
 * window never invites more than the memory keeps, and with the queues
 * empty it is still at least a byte (the bound is over 64 KiB), so a
 * peer of one-byte segments never sees a zero window that only new data
 * could reopen. */
#define BH_TCP_FILL_ONE 65536u
#define BH_TCP_FILL_START (BH_TCP_FILL_ONE / 2)
#define BH_TCP_FILL_MIN 1u

struct tqueue {
	uint32_t head, tail; /* NONE when empty */
	uint32_t bytes;      /* data bytes */
	uint32_t mem;        /* buffer bytes held (pkt.size), the memory bound */
	uint32_t count;
};

/* A SACKed range [l, r) of our send space (RFC 6675 scoreboard). */
struct tsb {
	bh_seq l, r;
};
/* Ranges kept per connection; past this the highest is forgotten, which
 * only costs a needless retransmission (RFC 6675 leaves the size open). */
#define BH_TCP_SB 16

/* CUBIC's state (RFC 9438 4), in segments and seconds. */
struct cubic {
	double w_max;    /* window before the last reduction */
	double k;        /* time to climb back to w_max */
	double origin;   /* the plateau the curve is centred on */
	double w_est;    /* the Reno-friendly estimate (RFC 9438 4.3) */
	double frac;     /* bytes of growth not yet whole */
	uint64_t epoch;  /* start of the current climb, 0: none */
};

struct tconn;

/* Congestion control behind one small interface (tcp/cc.c). The generic
 * code owns cwnd on loss (one segment after a timeout, ssthresh after
 * recovery); an algorithm decides growth and the reduction. */
struct bh_tcp_cc_algo {
	const char *name;
	void (*init)(struct tconn *c);
	/* acked bytes newly acknowledged outside loss recovery */
	void (*ack)(struct tconn *c, uint32_t acked, uint64_t now);
	/* A congestion event (fast retransmit, SACK loss, timeout, a loss
	 * a tail loss probe repaired) with `flight` bytes out when it was
	 * found: the new ssthresh. */
	uint32_t (*ssthresh)(struct tconn *c, uint32_t flight, uint64_t now);
	/* Sending restarts after idle (RFC 5681 4.1). */
	void (*restart)(struct tconn *c, uint64_t now);
};
const struct bh_tcp_cc_algo *bh_tcp__cc_find(const char *name);

struct tconn {
	uint32_t live_at; /* index in bh_tcp.live while used */
	bool used;
	bool listener;
	bool app_owned;  /* the application holds the handle */
	bool app_closed; /* ... and has given it back (close/abort) */
	uint16_t gen;
	enum bh_tcp_state state;
	uint64_t cookie;
	bh_ip4 raddr;
	uint16_t lport, rport;
	uint32_t hnext; /* hash chain */
	bool hashed;    /* in the table (segments can find it) */

	/* listener: nchild counts its children in SYN-RECEIVED (the SYN
	 * queue), naccept those whose handshake is done (the accept queue) */
	uint32_t backlog, nchild, naccept;
	uint32_t parent; /* a passive child's listener slot until accepted */
	/* A child: which of its listener's counts holds it, false nchild,
	 * true naccept. Its own flag, never read from its state, which
	 * bh_tcp__finish() has set to CLOSED by the time the slot is freed. */
	bool in_acceptq;
	uint64_t born;   /* for accept order */
	uint64_t cookie_at; /* the last SYN cookie sent, 0: never */

	/* send sequence space (RFC 9293 3.3.1) */
	bh_seq iss, snd_una, snd_nxt, snd_max, snd_wl1, snd_wl2;
	uint32_t snd_wnd, max_snd_wnd;
	struct tqueue sndq; /* from snd_una (SYN excluded) */
	uint32_t snd_cur;   /* sndq entry the last copy ended in, or NONE */
	bool fin_queued;    /* shutdown: FIN after the queue */
	bool out_owed;      /* queued in a batch: sends at bh_tcp_batch_end */
	bool nobuf;         /* a segment found no buffer: output again at bh_tcp_buffers_back */
	bh_seq fin_seq;     /* the FIN's number, once queued */
	bool syn_acked;     /* SND.UNA has passed our SYN: data starts there */
	uint16_t smss;      /* what we send: min(peer MSS, ours) less options */
	uint32_t seg_max;   /* new data per segment: k x smss (cfg.seg_max), or 0 */
	uint8_t snd_wscale, rcv_wscale;
	bool ws_ok, ts_ok, sack_ok;
	uint32_t ts_recent;

	/* receive sequence space */
	bh_seq irs, rcv_nxt, rcv_adv; /* rcv_adv: right edge advertised */
	struct tqueue rcvq, oooq;
	bool fin_rcvd;
	/* Payload per buffer byte of what came in, in 1/65536ths (a moving
	 * average seeded by the first piece; Linux's scaling_ratio): how
	 * much window the buffer memory still free can honour
	 * (bh_tcp__rcv_window). 0: nothing yet (BH_TCP_FILL_START). */
	uint32_t rcv_fill;
	/* Receive-buffer auto-tuning (rcvbuf.c). rcv_space: the buffer now,
	 * cfg.rcv_buf to cfg.rcv_buf_max, never shrinking; the window's
	 * bound. rcv_rtt: the receiver's round-trip estimate (us, 0: none
	 * yet), the least of its samples: an edge advertised at
	 * rtt_from (rtt_edge) that no data can pass before an ACK sent later
	 * has reached the peer. The measure: bytes handed to the
	 * application (taken), the count at the start of the round trip
	 * being measured (tune_mark, at tune_from), and the most one round
	 * trip delivered so far (tune_last). */
	uint32_t rcv_space;
	uint32_t rcv_rtt;
	bh_seq rtt_edge;
	uint64_t rtt_from;
	uint64_t taken, tune_mark, tune_from;
	uint32_t tune_last;

	/* timers, absolute microseconds, 0 when off */
	uint64_t rtx_at, delack_at, tw_at; /* tw_at: TIME-WAIT's end, or a closed FIN-WAIT-2's */
	uint32_t rto, srtt, rttvar; /* microseconds; srtt 0: no sample yet */
	/* The same in 1/65536 us (RFC 7323 App. G's small gains need the
	 * precision), and the ACK's own sample from the send records: the
	 * oldest data it acknowledged that was sent once (us, 0: none). */
	uint64_t srtt_fx, rttvar_fx;
	uint32_t una_rtt;
	bool rtt_timing;
	bh_seq rtt_seq;
	uint64_t rtt_start;
	uint32_t backoff;  /* consecutive timeouts */
	uint32_t retransmits;

	/* congestion control (RFC 5681; cc.c) and loss recovery: NewReno
	 * (RFC 6582) without SACK, RFC 6675 with it */
	const struct bh_tcp_cc_algo *cc;
	struct cubic cubic;
	uint32_t cwnd, ssthresh, dupacks;
	uint32_t bytes_acked; /* congestion avoidance by byte counting */
	bool in_recovery;
	bh_seq recover;     /* RecoveryPoint */
	bool rto_recover;   /* a timeout's recovery point is not yet passed */
	bool app_limited;   /* the last ACK found the window not in use */
	uint32_t sent_flight; /* the flight when new data last went */
	uint8_t lt;         /* RFC 3042: segments limited transmit may add */
	struct tsb sb[BH_TCP_SB]; /* RFC 6675 scoreboard, sorted, disjoint */
	uint8_t nsb;
	uint64_t last_send; /* for slow start after idle (RFC 5681 4.1) */
	/* RFC 6937 (PRR) during a SACK recovery: bytes delivered and sent
	 * since it began, and the flight when it began (RecoverFS). */
	uint32_t prr_delivered, prr_out, recover_fs;
	/* Undo (RFC 2883 4; Linux's tcp_try_undo_dsack): a SACK recovery
	 * every resend of which comes back D-SACKed was needless, and its
	 * cut is taken back once it is over. From the recovery's start
	 * (undo_on) until undone, a timeout, or the next recovery:
	 * undo_marker is SND.UNA then, undo_bytes the bytes resent at or
	 * above it since less those D-SACKed there (undo_dsacked: some
	 * were), prior_cwnd and prior_ssthresh the window before the cut. */
	bool undo_on, undo_dsacked;
	bh_seq undo_marker;
	uint32_t undo_bytes, prior_cwnd, prior_ssthresh;

	/* RACK-TLP (RFC 8985; rack.c), with SACK. recs: what was sent and
	 * when. RACK.xmit_ts / end_seq: the latest-sent data delivered;
	 * fack: the highest end delivered; rtt: RACK.rtt of that data;
	 * min_rtt over min_rtt_win (10 s). reo_at: the reordering timer;
	 * tlp_at: the probe timeout (PTO); tlp_end: SND.MAX when the probe
	 * went (TLP.end_seq), while tlp_out. */
	struct trecq recs;
	uint32_t tx_order, rack_order;
	uint64_t rack_sent;
	bh_seq rack_end, rack_fack;
	uint32_t rack_rtt, min_rtt;
	uint64_t min_rtt_at;
	bool reord_seen;
	/* RFC 8985 6.2 step 4: RACK.reo_wnd_mult grows by one per round
	 * trip with a D-SACK (dsack_round: SND.MAX then, while
	 * dsack_round_on), back to 1 after 16 recoveries without one
	 * (reo_persist). */
	uint8_t reo_mult, reo_persist;
	bool dsack_round_on;
	bh_seq dsack_round;
	uint64_t reo_at, tlp_at;
	bool tlp_out, tlp_retrans;
	bh_seq tlp_end;
	/* A duplicate segment came (RFC 2883): [l, r) goes first in the
	 * next ACK's SACK blocks. */
	bool dsack_owed;
	bh_seq dsack_l, dsack_r;

	/* SACK blocks we send (RFC 2018 4): starts of the latest
	 * out-of-order arrivals, newest first */
	bh_seq sack_recent[BH_TCP_MAX_SACK];
	uint8_t nrecent;

	/* RFC 7323 5 (PAWS) */
	bh_seq last_ack_sent;
	uint64_t ts_recent_at;
	/* a FIN that came ahead of a hole, taken when the hole fills */
	bool fin_ahead;
	bh_seq fin_ahead_seq;

	/* options (bh_tcp_setopt) */
	bool nodelay;
	bool keepalive;
	uint32_t ka_idle_s, ka_intvl_s, ka_cnt; /* keepalive, 0 idle: off */
	uint64_t ka_at;       /* next keepalive probe */
	uint32_t ka_probes;   /* sent without an answer */
	uint64_t last_heard;  /* the last segment from the peer */

	uint32_t unacked; /* full segments received since our last ACK */
	bool ack_now;
	int err; /* why it failed, reported once */
	int soft_err; /* the last soft ICMP error (RFC 1122 4.2.3.9) */
};

struct bh_tcp {
	struct bh_tcp_config cfg;
	struct bh_tcp_ops ops;
	void *ctx;
	struct bh_tcp_counters ctr;
	struct tconn *conn;
	/* The slots in use, densely (each tconn knows its place: live_at),
	 * so that timers and lookups by listener cost per connection, not
	 * per slot; and the free slots, as a stack. */
	uint32_t *live, nlive;
	uint32_t *spare, nspare;
	uint32_t *hash; /* heads of chains, by 4-tuple */
	uint32_t hmask;
	struct tseg *seg;
	uint32_t seg_free; /* free list through tseg.next */
	uint32_t segs_used;
	struct trec *rec; /* send records (rack.c): nrec, free list through next */
	uint32_t nrec, rec_free, recs_used;
	uint64_t mem_used; /* buffer bytes held in all queues (cfg.mem) */
	const struct bh_tcp_cc_algo *cc;
	uint16_t next_port;
	uint64_t born;
	/* A batch of sends (bh_tcp_batch_begin): the slots of the
	 * connections owed an output at its end. */
	bool batching;
	uint32_t *owed, nowed;
	bool nobuf_any; /* some connection's nobuf is set */
	/* The earliest timer armed since the last bh_tcp_tick (0 at the
	 * start: tick at once), for bh_tcp_timer_hint; and what the last
	 * tick returned. No timer is earlier than both (check.c). */
	uint64_t timer_hint, tick_next;
	/* The latest time a tick was asked for at once (bh_tcp__tick_soon)
	 * since the last tick (0: none): timers overdue then are seen. */
	uint64_t soon_at;
};
/* A timer (rtx_at, delack_at, tw_at, ka_at) was set to `at` (0: none):
 * bh_tcp_timer_hint must not be later. Every place that sets one calls
 * this, or runs inside bh_tcp_tick, which returns the next due time. */
static inline void bh_tcp__armed(struct bh_tcp *tcp, uint64_t at)
{
	if (at && at < tcp->timer_hint)
		tcp->timer_hint = at;
}

/* A change that may make a deadline due at once (a keep-alive option:
 * the idle time may be past already): tick at `now`. */
static inline void bh_tcp__tick_soon(struct bh_tcp *tcp, uint64_t now)
{
	bh_tcp__armed(tcp, now ? now : 1);
	if (now > tcp->soon_at)
		tcp->soon_at = now;
}

/* Keep-alive's next deadline, when it is running (on, in a state it
 * covers, nothing outstanding): ka_idle_s after the peer was last heard
 * before the first probe (or when probing stopped while data was out),
 * then the probe interval's deadline. 0: not
 * running (the retransmission timer covers a connection with data out). */
static inline uint64_t bh_tcp__ka_due(const struct tconn *c)
{
	bool idle_state = c->state == BH_TCP_ESTABLISHED || c->state == BH_TCP_CLOSE_WAIT ||
			  c->state == BH_TCP_FIN_WAIT_2;
	if (!c->keepalive || !idle_state || bh_seq_lt(c->snd_una, c->snd_max))
		return 0;
	if (c->ka_probes == 0 || c->ka_at == 0)
		return c->last_heard + (uint64_t)c->ka_idle_s * 1000000;
	return c->ka_at;
}


/* The flight a congestion event hands the algorithm's ssthresh: what is
 * outstanding, which counts data the peer SACKed and data lost, so never
 * more than cwnd: a loss never raises the window. */
static inline uint32_t bh_tcp__loss_flight(const struct tconn *c)
{
	uint32_t flight = bh_seq_span(c->snd_una, c->snd_max);
	return flight < c->cwnd ? flight : c->cwnd;
}

/* The number of the first byte in sndq: after the SYN until the SYN is
 * acknowledged, then SND.UNA. A flag, not a comparison with the ISS,
 * which turns around after 2 GiB. */
static inline bh_seq bh_tcp__data_start(const struct tconn *c)
{
	return c->syn_acked ? c->snd_una : bh_seq_add(c->iss, 1);
}

/* The number after the last byte queued to send. */
static inline bh_seq bh_tcp__data_end(const struct tconn *c)
{
	return bh_seq_add(bh_tcp__data_start(c), c->sndq.bytes);
}

/* A FIN queued (shutdown, close) that has not been sent yet. */
static inline bool bh_tcp__fin_owed(const struct tconn *c)
{
	return c->fin_queued && !bh_seq_gt(c->snd_max, c->fin_seq);
}

/* tcp.c */
struct tconn *bh_tcp__lookup(struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport);
struct tconn *bh_tcp__listener(struct bh_tcp *tcp, uint16_t lport);
struct tconn *bh_tcp__new_conn(struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport);
bh_tcp_conn bh_tcp__handle(const struct bh_tcp *tcp, const struct tconn *c);
/* The connection handle h names while the application holds it; NULL for
 * a stale, closed or unknown handle. */
struct tconn *bh_tcp__from_handle(const struct bh_tcp *tcp, bh_tcp_conn h);
void bh_tcp__event(struct bh_tcp *tcp, struct tconn *c, enum bh_tcp_event_type type, int err);
/* The connection is over: queues dropped, the error reported, the slot
 * freed unless the application still holds the handle. */
void bh_tcp__finish(struct bh_tcp *tcp, struct tconn *c, int err);
/* FIN-WAIT-2 after the application closed: the fin_timeout_ms deadline. */
void bh_tcp__fin_wait2(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
void bh_tcp__enter_time_wait(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
/* A listener's children (bh_tcp_check_invariants() states the rules):
 * c joins l's SYN queue; c's handshake is done: from the SYN queue to the
 * accept queue; c leaves whichever queue holds it (freed: conn_free();
 * accepted: bh_tcp_accept()). */
void bh_tcp__child_add(struct bh_tcp *tcp, struct tconn *l, struct tconn *c);
void bh_tcp__child_ready(struct bh_tcp *tcp, struct tconn *c);
void bh_tcp__child_remove(struct bh_tcp *tcp, struct tconn *c);
uint32_t bh_tcp__bucket(const struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport);

/* Debug builds (-DBH_TCP_DEBUG_INVARIANTS; `bazel test --config=tcpcheck`)
 * check every invariant after each entry point and abort with the broken
 * one: an O(connections + buffers) walk, so never in the -O2 build. */
#ifdef BH_TCP_DEBUG_INVARIANTS
void bh_tcp__assert_invariants(const struct bh_tcp *tcp, const char *where);
#define BH_TCP_ASSERT_INVARIANTS(tcp) bh_tcp__assert_invariants(tcp, __func__)
#else
#define BH_TCP_ASSERT_INVARIANTS(tcp) ((void)0)
#endif

/* queues */
bool bh_tcp__q_push(struct bh_tcp *tcp, struct tqueue *q, bh_seq seq, const struct bh_pkt *p);
void bh_tcp__q_drop(struct bh_tcp *tcp, struct tqueue *q);
/* Drops whole buffers before seq and trims a buffer that straddles it. */
void bh_tcp__q_trim_front(struct bh_tcp *tcp, struct tqueue *q, bh_seq seq);
/* Links p after entry prev (NONE: at the head). */
bool bh_tcp__q_insert(struct bh_tcp *tcp, struct tqueue *q, uint32_t prev, bh_seq seq,
		      const struct bh_pkt *p);
/* Unlinks entry i (after prev) and returns its buffer to the caller. */
struct bh_pkt bh_tcp__q_unlink(struct bh_tcp *tcp, struct tqueue *q, uint32_t prev, uint32_t i);
/* Room for a buffer of size bytes under the total memory bound. */
bool bh_tcp__mem_ok(const struct bh_tcp *tcp, uint32_t size);

/* sack.c: the RFC 6675 scoreboard (send side) and the RFC 2018 blocks
 * we send (receive side) */
/* Records the peer's valid SACK blocks; returns bytes newly SACKed. */
uint32_t bh_tcp__sb_update(struct tconn *c, const struct bh_tcp_opts *o, bh_seq ack,
			   unsigned *bad);
/* Forgets what the cumulative ACK (snd_una) has passed. */
void bh_tcp__sb_trim(struct tconn *c);
uint32_t bh_tcp__sb_sacked(const struct tconn *c);
/* The SACKed range holding seq, or NULL. */
const struct tsb *bh_tcp__sb_find(const struct tconn *c, bh_seq seq);
/* The start of the first SACKed range above seq, or snd_max. */
bh_seq bh_tcp__sb_next(const struct tconn *c, bh_seq seq);
/* Holes in the scoreboard below its highest SACKed number. */
uint32_t bh_tcp__sb_holes(const struct tconn *c);
/* RFC 2883 4: whether the peer's first block is a D-SACK (below the
 * ACK, or inside its second block): a duplicate arrived. */
bool bh_tcp__is_dsack(const struct bh_tcp_opts *o, bh_seq ack);
/* Notes an out-of-order arrival at seq (the first SACK block). */
void bh_tcp__sack_note(struct tconn *c, bh_seq seq);
/* Blocks for an ACK: the newest arrival's first (RFC 2018 4). */
unsigned bh_tcp__sack_blocks(const struct bh_tcp *tcp, const struct tconn *c,
			     struct bh_sack_block *out, unsigned max);

/* rack.c: send records, RACK-TLP (RFC 8985), the pipe (RFC 6675 4 with
 * RACK's marks, as RFC 8985 9.3 has it) */
/* [seq, seq + len) was sent at now: new (at SND.MAX) or again. Before
 * SND.MAX moves. */
void bh_tcp__rec_sent(struct bh_tcp *tcp, struct tconn *c, bh_seq seq, uint32_t len,
		      uint64_t now);
void bh_tcp__rec_drop(struct bh_tcp *tcp, struct tconn *c);
/* An ACK, after its SACK blocks are in the scoreboard and before SND.UNA
 * moves: what it delivered (cumulatively, or newly SACKed) updates RACK
 * (RFC 8985 6.2 steps 1-3), and the records it acknowledges go. */
void bh_tcp__rack_ack(struct bh_tcp *tcp, struct tconn *c, uint64_t now,
		      const struct bh_tcp_repr *seg);
/* RFC 8985 6.2 step 5: marks what is lost; arms or stops the
 * reordering timer. Returns the bytes newly marked lost. */
uint32_t bh_tcp__rack_detect(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
/* A round-trip sample (Karn's or RACK's) for min_RTT. */
void bh_tcp__min_rtt_sample(struct tconn *c, uint32_t rtt, uint64_t now);
/* A D-SACK came (RFC 8985 6.2 step 4: the reordering window widens);
 * a recovery ended (it narrows back after 16 without one). */
void bh_tcp__rack_dsack(struct tconn *c);
/* Bytes of [l, r) in send records sent more than once (undo). */
uint32_t bh_tcp__rec_again_bytes(const struct bh_tcp *tcp, const struct tconn *c, bh_seq l,
				 bh_seq r);
void bh_tcp__rack_recovery_over(struct tconn *c);
/* The reordering timer fired (RFC 8985 6.3). */
void bh_tcp__rack_timeout(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
/* Three duplicate ACKs without SACK blocks: the first record is lost
 * (false if there is none to mark). */
bool bh_tcp__rack_head_lost(struct bh_tcp *tcp, struct tconn *c);
/* A timeout: everything outstanding is lost, nothing SACKed (RFC 8985
 * 6.3, RFC 2018 8). */
void bh_tcp__rack_all_lost(struct bh_tcp *tcp, struct tconn *c);
/* RFC 6675 4 SetPipe() with RACK's marks: each unSACKed byte counts
 * once unless lost, once more while a retransmission of it is out. */
uint32_t bh_tcp__pipe(const struct bh_tcp *tcp, const struct tconn *c);
/* The first lost piece not yet resent (NextSeg() rule 1 with RACK's
 * marks), at most up to the end of its record. */
bool bh_tcp__next_lost(const struct bh_tcp *tcp, const struct tconn *c, bh_seq *seq, uint32_t *max);
/* TLP (RFC 8985 7): arms the probe timeout after new data went or an
 * ACK came; the probe when it fires; an ACK's bearing on a probe out
 * (dsack: it D-SACKed the probe; sacked: it SACKed new data). */
void bh_tcp__tlp_arm(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
void bh_tcp__tlp_fire(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
void bh_tcp__tlp_ack(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bh_seq ack,
		     bool una_moved, bool dsack, bool sacked);
/* Clears the RACK and TLP timers (the connection has nothing out). */
static inline void bh_tcp__rack_stop(struct tconn *c)
{
	c->reo_at = c->tlp_at = 0;
}

/* tcp_out.c */
/* Sends what the windows and state allow, an ACK if one is owed. */
void bh_tcp__output(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
/* In a batch, marks c to send at bh_tcp_batch_end and returns true;
 * outside one (or with the owed list full), false: send now. */
bool bh_tcp__owe_output(struct bh_tcp *tcp, struct tconn *c);
/* A reset for a segment that has no connection (RFC 9293 3.10.7.1). */
void bh_tcp__reset_reply(struct bh_tcp *tcp, bh_ip4 raddr, const struct bh_tcp_repr *seg);
/* A RST from a connection. */
void bh_tcp__send_rst(struct bh_tcp *tcp, struct tconn *c);
/* One segment from seq, at most max data bytes (and SMSS), the FIN if it
 * comes next; counts a retransmission. Returns the sequence space sent. */
uint32_t bh_tcp__xmit(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bh_seq seq, uint32_t max);
/* The sequence number of a segment without data (ACK, RST). */
bh_seq bh_tcp__ack_seq(const struct tconn *c);
/* A keepalive probe: SND.UNA - 1, no data. */
void bh_tcp__keepalive_probe(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
/* Retransmission timer fired: back off, go back to snd_una, resend. */
void bh_tcp__timeout(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
uint32_t bh_tcp__rcv_window(const struct bh_tcp *tcp, const struct tconn *c);
uint32_t bh_tcp__rcv_step(const struct bh_tcp *tcp, const struct tconn *c);
/* rcvbuf.c: receive-buffer auto-tuning. After in-order data: the
 * receiver's round-trip samples. After data went to the application
 * (taken bytes): grows c->rcv_space once per round trip. */
void bh_tcp__rcv_rtt_note(struct tconn *c, uint64_t now);
void bh_tcp__rcv_tune(struct bh_tcp *tcp, struct tconn *c, uint64_t now, uint32_t taken);

/* Builds one segment in a fresh buffer and hands it to IP. */
bool bh_tcp__emit(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bh_seq seq, uint8_t flags,
		  uint32_t len);

/* cookie.c (RFC 4987 3.6) */
struct bh_tcp_cookie {
	uint16_t mss;
	bool has_wscale, sack_ok;
	uint8_t wscale;
};
#define BH_TCP_COOKIE_LIFE_US (128ull * 1000000) /* two 64 s periods */
bh_seq bh_tcp__cookie_make(const struct bh_tcp *tcp, bh_ip4 raddr, const struct bh_tcp_repr *syn,
			   uint64_t now);
bool bh_tcp__cookie_check(const struct bh_tcp *tcp, bh_ip4 raddr, const struct bh_tcp_repr *ack,
			  uint64_t now, struct bh_tcp_cookie *out);

/* tcp_in.c */
/* Gives up one out-of-order buffer, c's first, else any connection's. */
bool bh_tcp__prune_any(struct bh_tcp *tcp, struct tconn *c);
void bh_tcp__segment(struct bh_tcp *tcp, uint64_t now, const struct bh_ip_rx *rx,
		     const struct bh_tcp_repr *seg);

/* ack.c */
/* The ACK field of seg for c in ESTABLISHED or a later state (RFC 9293
 * 3.10.7.4, fifth step); false when the segment is to be dropped. */
bool bh_tcp__ack_processing(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			    const struct bh_tcp_repr *seg);
/* RFC 6298 2: a round-trip sample from rtt_start to now updates SRTT,
 * RTTVAR and the RTO; timing stops. */
void bh_tcp__rtt_sample(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
/* Loss recovery starts (RFC 5681 3.2, RFC 6675 5, RFC 6937); the
 * second from the reordering timer, with no ACK to pace the first resend. */
void bh_tcp__enter_recovery(struct bh_tcp *tcp, uint64_t now, struct tconn *c);
void bh_tcp__recovery_by_timer(struct bh_tcp *tcp, uint64_t now, struct tconn *c);

#endif /* BH_TCP_IMPL_H */
