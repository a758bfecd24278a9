/*
 * tcp/tcp.h - the TCP domain's protocol logic (RFC 9293) as a library that
 * does no I/O and owns no clock: segments, application requests and the
 * time go in; segments, events and data for the application come out.
 *
 * Read first: RFC 9293 (the protocol; section 3.10 is the event
 * processing this follows), RFC 6298 (RTO), RFC 5681, RFC 6582 and RFC
 * 9438 (congestion control), RFC 2018 and RFC 6675 (SACK and SACK-based
 * recovery), RFC 7323 (window scale, timestamps, PAWS), RFC 5961
 * (blind-attack defences), RFC 6528 (ISNs), RFC 4987 3.6 (SYN cookies),
 * RFC 1122 4.2 (host rules).
 *
 * Call chains (names with a double underscore are internal, declared in
 * tcp_impl.h; the file each is in follows it once)
 *   segment in:  bh_tcp_input (tcp.c) -> bh_tcp_parse (tcp_wire.c), checksum
 *                -> bh_tcp__segment (tcp_in.c) -> bh_tcp__lookup
 *                -> listen_input | syn_sent_input | synchronized_input
 *                synchronized_input: RFC 9293 3.10.7.4's steps in order,
 *                  check_seq -> check_rst -> check_syn -> check_ack
 *                  (-> bh_tcp__ack_processing, ack.c) -> process_text
 *                  -> process_fin -> bh_tcp__output
 *   app:         bh_tcp_connect (api.c), bh_tcp_send, bh_tcp_recv (a
 *                window update), bh_tcp_setopt -> bh_tcp__output;
 *                bh_tcp_shutdown -> do_shutdown -> bh_tcp__output;
 *                bh_tcp_close -> close_conn -> do_shutdown, or
 *                bh_tcp__send_rst (data left unread); bh_tcp_abort
 *                -> bh_tcp__send_rst; bh_tcp_probe_lost -> bh_tcp__emit;
 *                bh_tcp_listen and bh_tcp_accept send nothing
 *   out:         bh_tcp__output (tcp_out.c) -> send_loop | sack_loop
 *                -> bh_tcp__xmit -> bh_tcp__emit -> ops.output (one
 *                segment at a time)
 *   time:        bh_tcp_tick (timer.c) -> bh_tcp__timeout (retransmission,
 *                persist), bh_tcp__output (delayed ACK), keepalive
 *                -> bh_tcp__keepalive_probe, bh_tcp__finish (TIME_WAIT over)
 *
 * Files: tcp.c (table, queues, what IP delivers), api.c (the application
 *   calls), timer.c (the tick, keepalive), tcp_in.c (segment arrival),
 *   ack.c (an arriving segment's ACK field: RTT, congestion window, loss
 *   recovery's start), tcp_out.c (sending), sack.c (RFC 2018 / RFC 6675),
 *   cc.c (congestion control algorithms), cookie.c (SYN cookies), check.c
 *   (the invariants, bh_tcp_check_invariants).
 *
 * Buffers
 *   As in ip/ip.h: the environment owns memory, the library names buffers
 *   by handle. A segment given to bh_tcp_input() is the library's: its
 *   pieces are released, or held in a receive queue until the application
 *   takes them with bh_tcp_recv() (zero copy on receive). Data given to
 *   bh_tcp_send() is held, as buffers, in the send queue until it is
 *   acknowledged (the retransmission queue holds the buffers, never
 *   copies). Each segment sent is built in a fresh buffer from ops.alloc()
 *   and handed to ops.output(), which owns it from then on; with
 *   cfg.send_chain its payload may stay in the send queue's buffers,
 *   named by the segment (ip/ip.h, struct bh_chain).
 *
 * Time: in microseconds (bh_us, ip/units.h; the IP library below counts
 *   in milliseconds): every entry point that takes `now` takes it as a
 *   count from any fixed origin, which must not go backwards, and
 *   bh_tcp_tick() returns the next deadline in the same unit; any call
 *   may set a timer, so the environment asks again after each batch of
 *   calls. The configuration's durations say their unit in their names
 *   (_ms, _s), as bh_tcp_info's do (_us).
 *
 * Re-entry: callbacks may not call back into the library.
 * Concurrency: none; one thread per instance.
 */
#ifndef BH_TCP_TCP_H
#define BH_TCP_TCP_H

#include <stdbool.h>
#include <stdint.h>

#include "ip/ip.h"
#include "ip/units.h"
#include "tcp/seq.h"
#include "tcp/tcp_wire.h"

/* RFC 9293 3.3.2 */
enum bh_tcp_state {
	BH_TCP_CLOSED,
	BH_TCP_LISTEN,
	BH_TCP_SYN_SENT,
	BH_TCP_SYN_RECEIVED,
	BH_TCP_ESTABLISHED,
	BH_TCP_FIN_WAIT_1,
	BH_TCP_FIN_WAIT_2,
	BH_TCP_CLOSE_WAIT,
	BH_TCP_CLOSING,
	BH_TCP_LAST_ACK,
	BH_TCP_TIME_WAIT,
};

const char *bh_tcp_state_name(enum bh_tcp_state s);

/* A connection or listener, named by slot and generation so that a stale
 * handle never reaches a reused slot. 0 is never a valid handle. */
typedef uint32_t bh_tcp_conn;

enum bh_tcp_event_type {
	BH_TCP_EV_CONNECTED,  /* an active open completed */
	BH_TCP_EV_ACCEPTABLE, /* a listener has a connection to accept */
	BH_TCP_EV_READABLE,   /* data (or the peer's FIN) to read */
	BH_TCP_EV_WRITABLE,   /* send-buffer space opened */
	BH_TCP_EV_ERROR,      /* the connection failed: err says why */
	BH_TCP_EV_CLOSED,     /* the handle is released: forget it */
};

struct bh_tcp_event {
	enum bh_tcp_event_type type;
	bh_tcp_conn conn;
	uint64_t cookie;
	int err; /* ERROR: ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ... */
};

struct bh_tcp_ops {
	/* A writable buffer with at least BH_IP_HEADROOM + 60 bytes of
	 * headroom before off; false when none is free. */
	bool (*alloc)(void *ctx, struct bh_pkt *out);
	void (*release)(void *ctx, const struct bh_pkt *p);
	/* A finished segment (TCP header at off, checksum filled in) for
	 * the IP layer, to dst. The environment owns it from here. */
	void (*output)(void *ctx, const struct bh_pkt *seg, bh_ip4 dst);
	void (*event)(void *ctx, const struct bh_tcp_event *ev);
};

struct bh_tcp_config {
	bh_ip4 addr;         /* ours: the pseudo-header and every 4-tuple */
	uint16_t mss;        /* what we accept: IP MTU - 40; 0 means 1460 */
	uint32_t conns;      /* connections and listeners in all: 1024 */
	uint32_t segs;       /* queued buffers in all connections: 16384 */
	uint32_t rcv_buf;    /* bytes per connection at the start: 262144 */
	/* Receive-buffer auto-tuning (tcp/rcvbuf.c): a connection's buffer
	 * grows from rcv_buf up to this with the rate it delivers times the
	 * round trip. 0 (the default) or rcv_buf: fixed at rcv_buf. */
	uint32_t rcv_buf_max;
	uint32_t snd_buf;    /* bytes per connection: 262144 */
	uint32_t time_wait_ms; /* 2 * MSL: 60000 (Linux's TIME_WAIT) */
	/* How long a connection the application closed waits in FIN-WAIT-2
	 * for the peer's FIN before it is reset: 60000 (Linux's
	 * tcp_fin_timeout); a peer that never ends its side holds nothing
	 * for good. */
	uint32_t fin_timeout_ms;
	uint32_t rto_initial_ms; /* 1000 (RFC 6298 2.1) */
	uint32_t rto_min_ms;     /* 200 (Linux; RFC 6298 2.4 says 1 s) */
	uint32_t rto_max_ms;     /* 120000 (RFC 6298 2.5: at least 60 s) */
	uint32_t syn_retries;    /* 6 */
	uint32_t retries;        /* 15 data retransmissions before ETIMEDOUT */
	uint32_t delack_ms;      /* 40 (RFC 9293 3.8.6.3: under 500 ms) */
	uint64_t mem;            /* buffer bytes held in all queues: 64 MiB */
	const char *cc;          /* congestion control: "cubic" (default), "newreno" */
	/* Keepalive (RFC 1122 4.2.3.6), off unless a connection turns it
	 * on (BH_TCP_OPT_KEEPALIVE); these are the defaults it starts with. */
	uint32_t keepidle_s;     /* 7200 */
	uint32_t keepintvl_s;    /* 75 */
	uint32_t keepcnt;        /* 9 */
	bool no_syncookies;      /* drop SYNs when the SYN queue is full */
	bool no_wscale, no_timestamps, no_sack; /* options we offer */
	/* Segments leave with the checksum left to the device
	 * (BH_CSUM_PARTIAL): the link may offload it, and the driver
	 * completes it where it does not. */
	bool csum_offload;
	/* Large frames (a link that carries segments longer than the MTU
	 * and cuts them, or whose other end takes them whole): the most
	 * payload one new-data segment carries, rounded down to a multiple
	 * of the connection's MSS; each goes out as one buffer with
	 * bh_pkt.gso = the MSS. 0 (the default): one MSS. Resent data
	 * always goes out in MSS-sized segments. */
	uint32_t seg_max;
	/* Send chains (ip/ip.h, struct bh_chain): a segment's payload is
	 * named, not copied, where it lies in at most BH_CHAIN_MAX send
	 * queue buffers (bh_pkt.chain set; more pieces than that: copied as
	 * usual). The environment then must not reuse a send queue buffer
	 * the library releases while a segment naming it is still out: it
	 * holds it until that segment's buffer comes home. */
	bool send_chain;
	uint64_t secret[2];  /* keys the ISN hash (RFC 6528) */
};

/* Counters, one list (as ip/ip.h). */
#define BH_TCP_COUNTERS(X)                                                        \
	X(segs_in, "segments received")                                           \
	X(segs_out, "segments sent")                                              \
	X(copy_bytes, "payload bytes copied into segments sent")                  \
	X(chain_bytes, "payload bytes sent in send chains, not copied")          \
	X(chain_segs, "segments sent as send chains")                            \
	X(csum_bytes, "payload bytes summed for checksums, sent and received")  \
	X(bad_header, "segments malformed (header, split header, port or source 0)") \
	X(bad_checksum, "segments with a wrong checksum")                         \
	X(bad_options, "segments with options ignored (wrong or illegal lengths)") \
	X(wscale_clamped, "window scales above 14 taken as 14 (RFC 7323 2.3)")   \
	X(no_conn, "segments for no connection (answered with RST)")              \
	X(rst_out, "resets sent")                                                 \
	X(lost_probes, "probes sent for connections lost with a replaced domain")  \
	X(rst_in, "resets accepted")                                              \
	X(rst_ignored, "resets out of window, ignored")                           \
	X(challenge_acks, "challenge ACKs sent (RFC 5961)")                       \
	X(out_of_window, "segments outside the receive window")                   \
	X(dup_acks, "duplicate ACKs received")                                    \
	X(bad_acks, "ACKs of data never sent")                                    \
	X(retransmits, "segments retransmitted")                                  \
	X(timeouts, "retransmission timeouts")                                    \
	X(syn_timeouts, "of those, in the handshake (SYN or SYN-ACK sent again)") \
	X(fast_retransmits, "loss recoveries started (fast retransmit)")         \
	X(sack_recoveries, "loss recoveries driven by SACK (RFC 6675)")         \
	X(sack_retransmits, "segments resent by SACK recovery")                   \
	X(sack_blocks_in, "SACK blocks received")                                \
	X(sack_bad_blocks, "SACK blocks ignored: outside what was sent")          \
	X(limited_transmits, "new segments sent on the first two duplicate ACKs") \
	X(rack_lost, "segments marked lost by RACK (RFC 8985)")                  \
	X(rack_reo_timeouts, "RACK reordering timer expiries")                   \
	X(lost_retransmits, "retransmissions found lost (RACK) and sent again")  \
	X(tlp_probes, "tail loss probes sent (RFC 8985 7)")                     \
	X(tlp_recoveries, "losses repaired by a tail loss probe")               \
	X(dsacks_in, "D-SACK blocks received (RFC 2883)")                       \
	X(dsacks_out, "D-SACK blocks sent for duplicate segments")              \
	X(undos, "recoveries undone: every resend came back D-SACKed")          \
	X(rec_short, "send records short: RACK's marks coarser for a while")    \
	X(rec_capped, "send records not split: the connection's cap (odd SACKs)") \
	X(rcvbuf_grown, "receive buffers grown by auto-tuning")                 \
	X(rcvbuf_held, "receive buffer growth held back: memory bound near")    \
	X(paws_drops, "segments dropped by PAWS (old timestamp)")               \
	X(syncookies_sent, "SYN-ACKs with a cookie (SYN queue full)")            \
	X(syncookies_ok, "connections made from a valid cookie")                 \
	X(syncookies_bad, "ACKs at a listener with an invalid cookie")          \
	X(keepalive_probes, "keepalive probes sent")                             \
	X(mem_drops, "segments dropped: total memory bound reached")            \
	X(mem_forced, "in-order segments taken past the total bound (none queued)") \
	X(ooo_pruned, "out-of-order buffers given up for in-order data")        \
	X(ooo_segs, "segments queued out of order")                              \
	X(rcv_drops, "segments dropped: receive memory full")                     \
	X(active_opens, "connections opened by us")                               \
	X(passive_opens, "connections accepted")                                  \
	X(backlog_drops, "SYNs dropped: SYN queue or accept backlog full")       \
	X(table_full, "connections refused: table full")                          \
	X(no_buffers, "segments not sent: no buffer")                             \
	X(nobuf_timeouts, "timeouts that found no buffer (not backed off)")      \
	X(conn_timeouts, "connections ended by retransmission timeout")          \
	X(conn_resets, "connections ended by a reset")                           \
	X(abort_on_data, "closed connections reset: new data came (RFC 1122 4.2.2.13)") \
	X(fin_timeouts, "closed connections reset: no FIN within fin_timeout_ms") \
	X(icmp_errors, "ICMP errors and unreachable reports about our flows")   \
	X(icmp_refused, "connection attempts ended by port or protocol unreachable") \
	X(icmp_ignored, "ICMP errors ignored (no flow, or a sequence outside it)")

struct bh_tcp_counters {
#define BH_TCP_COUNTER_FIELD(name, text) uint64_t name;
	BH_TCP_COUNTERS(BH_TCP_COUNTER_FIELD)
#undef BH_TCP_COUNTER_FIELD
};

const char *bh_tcp_counter_name(unsigned i);
uint64_t bh_tcp_counter_value(const struct bh_tcp_counters *c, unsigned i);

struct bh_tcp;

struct bh_tcp *bh_tcp_create(const struct bh_tcp_config *cfg, const struct bh_tcp_ops *ops,
			     void *ctx, const char **err);
/* Releases every buffer held and frees; sends nothing. */
void bh_tcp_destroy(struct bh_tcp *tcp);
const struct bh_tcp_counters *bh_tcp_counters(const struct bh_tcp *tcp);
/* Buffer bytes held in all queues, against cfg.mem: a send refused
 * with -ENOBUFS may succeed once this has fallen. */
uint64_t bh_tcp_mem_used(const struct bh_tcp *tcp);

/* A segment from IP (rx->proto is TCP). The library owns its pieces. */
void bh_tcp_input(struct bh_tcp *tcp, bh_us now, const struct bh_ip_rx *rx);
/* An ICMP error or "host unreachable" about one of our flows. */
void bh_tcp_ip_event(struct bh_tcp *tcp, bh_us now, const struct bh_ip_event *ev);
bh_us bh_tcp_tick(struct bh_tcp *tcp, bh_us now);
/* The earliest timer armed since the last bh_tcp_tick (UINT64_MAX: none;
 * 0 before the first tick): a caller that ticks only when the deadline
 * bh_tcp_tick returned comes takes this as an earlier deadline, instead
 * of ticking (a walk over every connection) after every batch. */
bh_us bh_tcp_timer_hint(const struct bh_tcp *tcp);

/* Applications. Handles and negative errno values. */
int bh_tcp_listen(struct bh_tcp *tcp, uint16_t port, uint32_t backlog, uint64_t cookie,
		  bh_tcp_conn *out);
/* A connection from the listener's accept queue, or -EAGAIN. */
int bh_tcp_accept(struct bh_tcp *tcp, bh_tcp_conn listener, uint64_t cookie, bh_tcp_conn *out);
/* sport 0 picks an ephemeral port. */
int bh_tcp_connect(struct bh_tcp *tcp, bh_us now, bh_ip4 dst, uint16_t dport, uint16_t sport,
		   uint64_t cookie, bh_tcp_conn *out);
/* Queues data (the buffer's off/len span it). On success the library owns
 * the buffer; -EAGAIN (send buffer full), -EPIPE (sending is shut), and
 * -ENOTCONN leave it with the caller. */
int bh_tcp_send(struct bh_tcp *tcp, bh_us now, bh_tcp_conn c, const struct bh_pkt *data);
/* A batch of sends: between bh_tcp_batch_begin() and bh_tcp_batch_end(),
 * bh_tcp_send() only queues, and each connection it queued on sends once
 * at the end, in segments of a full MSS where the data allows, instead of
 * once per call (a caller that hands over data in pieces smaller than the
 * MSS would otherwise send a short segment for each piece when Nagle is
 * off). Every other call sends as it always does. The environment asks
 * for the next deadline (bh_tcp_tick) after the batch ends. */
void bh_tcp_batch_begin(struct bh_tcp *tcp);
/* Returns the number of connections that sent (or tried to). */
unsigned bh_tcp_batch_end(struct bh_tcp *tcp, bh_us now);
/* Segments that found no buffer (ops.alloc failed) are owed: true while
 * any is. The environment calls bh_tcp_buffers_back() when buffers have
 * come back; each connection owed one sends what it can again (and is
 * owed again if buffers are still short). Returns the number that
 * tried. A timer that fires into the same shortage does not back off. */
bool bh_tcp_wants_buffers(const struct bh_tcp *tcp);
unsigned bh_tcp_buffers_back(struct bh_tcp *tcp, bh_us now);
/* Takes up to max buffers of in-order data (ownership passes). Returns
 * the count, 0 at end of stream, -EAGAIN if nothing is there yet. */
int bh_tcp_recv(struct bh_tcp *tcp, bh_us now, bh_tcp_conn c, struct bh_pkt *out, unsigned max);
/* No more data from us: FIN after what is queued. */
int bh_tcp_shutdown(struct bh_tcp *tcp, bh_us now, bh_tcp_conn c);
/* Done with the handle: FIN (or RST when received data was left unread,
 * RFC 1122 4.2.2.13); the library finishes the close and says CLOSED. */
int bh_tcp_close(struct bh_tcp *tcp, bh_us now, bh_tcp_conn c);
/* RST now. */
int bh_tcp_abort(struct bh_tcp *tcp, bh_us now, bh_tcp_conn c);
/* A connection this stack no longer knows (its state went with a
 * replaced domain) whose peer may still think it open and be silent:
 * sends a bare ACK far from any sequence number the peer expects, which
 * it answers with an ACK (RFC 9293 3.10.7.4); that answer finds no
 * connection here and is reset with the peer's own acknowledgement
 * number as its sequence number (RFC 9293 3.10.7.1), the one value a
 * reset is accepted with (RFC 5961 3.2). */
int bh_tcp_probe_lost(struct bh_tcp *tcp, bh_us now, bh_ip4 raddr, uint16_t lport,
		      uint16_t rport);

/* Per-connection options, as setsockopt(2) names them. */
enum bh_tcp_opt {
	BH_TCP_OPT_NODELAY,   /* 1: no Nagle (TCP_NODELAY) */
	BH_TCP_OPT_KEEPALIVE, /* 1: keepalive on (SO_KEEPALIVE) */
	BH_TCP_OPT_KEEPIDLE,  /* seconds idle before the first probe */
	BH_TCP_OPT_KEEPINTVL, /* seconds between probes */
	BH_TCP_OPT_KEEPCNT,   /* unanswered probes before ETIMEDOUT */
};
int bh_tcp_setopt(struct bh_tcp *tcp, bh_us now, bh_tcp_conn c, enum bh_tcp_opt opt,
		  uint32_t value);
int bh_tcp_getopt(const struct bh_tcp *tcp, bh_tcp_conn c, enum bh_tcp_opt opt, uint32_t *value);

/* For `bulkhead conns`. */
struct bh_tcp_info {
	enum bh_tcp_state state;
	bh_ip4 local, remote;
	uint16_t lport, rport;
	bh_seq iss, irs, snd_una, snd_nxt, rcv_nxt;
	uint32_t snd_wnd, rcv_wnd, cwnd, ssthresh;
	uint32_t rcv_buf;     /* the receive buffer now (auto-tuning grows it) */
	uint32_t rcv_rtt_us;  /* the receiver's round-trip estimate; 0: none yet */
	uint32_t srtt_us, rttvar_us, rto_us;
	uint32_t retransmits, mss;
	uint32_t snd_queued, rcv_queued; /* bytes */
	uint8_t snd_wscale, rcv_wscale;
	bool ts, sack;
	bool in_recovery;
	uint32_t sack_holes;  /* holes below the highest SACKed number */
	uint32_t sacked;      /* bytes the peer holds out of order */
	uint32_t pipe;        /* RFC 6675 estimate of bytes in flight */
	uint32_t ooo_queued;  /* bytes we hold out of order */
	bool rtx_armed;       /* the retransmission or persist timer runs */
	const char *cc;       /* congestion control algorithm */
};
int bh_tcp_info(const struct bh_tcp *tcp, bh_tcp_conn c, struct bh_tcp_info *out);
/* Handles in use (connections and listeners), up to n; returns the count. */
unsigned bh_tcp_list(const struct bh_tcp *tcp, bh_tcp_conn *out, unsigned n);
/* Buffers the library holds (queues), for leak checks. */
unsigned bh_tcp_held(const struct bh_tcp *tcp);

/* The library's own invariants, between calls (tcp/check.c); NULL when
 * all hold, else a static string naming the first one broken, which is
 * a bug in the library, never the peer's doing:
 *   slots     the live list holds exactly the used slots, each where its
 *             live_at says; the spare stack exactly the free ones
 *   lookup    a connection is hashed iff it is not CLOSED, on the chain
 *             of its own 4-tuple, each 4-tuple once
 *   listeners each listener's nchild is the number of its children in
 *             SYN-RECEIVED (the SYN queue, never above the backlog), its
 *             naccept the number whose handshake is done and that wait
 *             to be accepted (ESTABLISHED or CLOSE-WAIT); a child's
 *             listener is a live listener on the child's port; a child
 *             has no handle; a connection that is not a child is the
 *             application's
 *   closed    only a handle the application still holds stays CLOSED,
 *             with no buffer, no timer, out of the lookup table; a
 *             listener holds no buffer and no timer
 *   timers    the handshake has its retransmission timer; data or a FIN
 *             not yet sent or acknowledged has the retransmission (or
 *             persist) timer; TIME-WAIT its 2 MSL timer
 *   sequence  SND.UNA <= SND.NXT <= the highest sent; the send queue is
 *             gapless from the first unacknowledged byte; the receive
 *             queue gapless up to RCV.NXT; the out-of-order queue sorted,
 *             disjoint and at or above RCV.NXT; no received data held
 *             before the handshake ends
 *   records   (RACK, with SACK) send records in order, disjoint, counted
 *             right, tiling [SND.UNA, SND.MAX) once the SYN is
 *             acknowledged (unless the record store ran dry); none, and no
 *             RACK or TLP timer, without SACK
 *   buffers   every queue's count, bytes, memory and tail match its
 *             entries; the queues hold every store entry in use and the
 *             free list the rest; memory held is within the total bound
 *             (past it by at most the first receive buffer of each
 *             connection) and each connection's receive bound
 * An O(slots + buffers + listeners x connections) walk, for tests; the
 * library calls it after every entry point only when built with
 * -DBH_TCP_DEBUG_INVARIANTS (`bazel test --config=tcpcheck`). */
const char *bh_tcp_check_invariants(const struct bh_tcp *tcp);

/* RFC 6528: ISN = M + F(4-tuple, secret), M a 4-microsecond clock. */
bh_seq bh_tcp_isn(const uint64_t secret[2], bh_ip4 laddr, uint16_t lport, bh_ip4 raddr,
		  uint16_t rport, bh_us now_us);

#endif /* BH_TCP_TCP_H */
