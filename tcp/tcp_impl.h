/*
 * tcp/tcp_impl.h - the TCP library's private state, shared by tcp.c
 * (table, applications, timers), tcp_in.c (segment arrival) and tcp_out.c
 * (segment building). Not for users of the library.
 */
#ifndef BH_TCP_IMPL_H
#define BH_TCP_IMPL_H

#include <errno.h>

#include "tcp/tcp.h"

#define NONE UINT32_MAX

/* A queued buffer: data [seq, seq + len) in pkt's off/len span. */
struct tseg {
	uint32_t next; /* index in the segment store, NONE at the end */
	bh_seq seq;
	uint32_t len;
	struct bh_pkt pkt;
};

struct tqueue {
	uint32_t head, tail; /* NONE when empty */
	uint32_t bytes;      /* data bytes */
	uint32_t mem;        /* buffer bytes held (pkt.size), the memory bound */
	uint32_t count;
};

struct tconn {
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

	/* listener */
	uint32_t backlog, nchild, naccept;
	uint32_t parent; /* a passive child's listener slot until accepted */
	uint64_t born;   /* for accept order */

	/* send sequence space (RFC 9293 3.3.1) */
	bh_seq iss, snd_una, snd_nxt, snd_max, snd_wl1, snd_wl2;
	uint32_t snd_wnd, max_snd_wnd;
	struct tqueue sndq; /* from snd_una (SYN excluded) */
	bool fin_queued;    /* shutdown: FIN after the queue */
	bh_seq fin_seq;     /* the FIN's number, once queued */
	uint16_t smss;      /* what we send: min(peer MSS, ours) less options */
	uint8_t snd_wscale, rcv_wscale;
	bool ws_ok, ts_ok, sack_ok;
	uint32_t ts_recent;

	/* receive sequence space */
	bh_seq irs, rcv_nxt, rcv_adv; /* rcv_adv: right edge advertised */
	struct tqueue rcvq, oooq;
	bool fin_rcvd;

	/* timers, absolute microseconds, 0 when off */
	uint64_t rtx_at, delack_at, tw_at;
	uint32_t rto, srtt, rttvar; /* microseconds; srtt 0: no sample yet */
	bool rtt_timing;
	bh_seq rtt_seq;
	uint64_t rtt_start;
	uint32_t backoff;  /* consecutive timeouts */
	uint32_t retransmits;

	/* congestion control: NewReno (RFC 5681, RFC 6582) */
	uint32_t cwnd, ssthresh, dupacks;
	bool in_recovery;
	bh_seq recover;

	uint32_t unacked; /* full segments received since our last ACK */
	bool ack_now;
	int err; /* why it failed, reported once */
};

struct bh_tcp {
	struct bh_tcp_config cfg;
	struct bh_tcp_ops ops;
	void *ctx;
	struct bh_tcp_counters ctr;
	struct tconn *conn;
	uint32_t *hash; /* heads of chains, by 4-tuple */
	uint32_t hmask;
	struct tseg *seg;
	uint32_t seg_free; /* free list through tseg.next */
	uint32_t segs_used;
	uint16_t next_port;
	uint64_t born;
};

/* tcp.c */
struct tconn *bh_tcp__lookup(struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport);
struct tconn *bh_tcp__listener(struct bh_tcp *tcp, uint16_t lport);
struct tconn *bh_tcp__new_conn(struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport);
bh_tcp_conn bh_tcp__handle(const struct bh_tcp *tcp, const struct tconn *c);
void bh_tcp__event(struct bh_tcp *tcp, struct tconn *c, enum bh_tcp_event_type type, int err);
/* The connection is over: queues dropped, the error reported, the slot
 * freed unless the application still holds the handle. */
void bh_tcp__finish(struct bh_tcp *tcp, struct tconn *c, int err);
void bh_tcp__enter_time_wait(struct bh_tcp *tcp, struct tconn *c, uint64_t now);

/* queues */
bool bh_tcp__q_push(struct bh_tcp *tcp, struct tqueue *q, bh_seq seq, const struct bh_pkt *p);
void bh_tcp__q_drop(struct bh_tcp *tcp, struct tqueue *q);
/* Drops whole buffers before seq and trims a buffer that straddles it. */
void bh_tcp__q_trim_front(struct bh_tcp *tcp, struct tqueue *q, bh_seq seq);

/* tcp_out.c */
/* Sends what the windows and state allow, an ACK if one is owed. */
void bh_tcp__output(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
/* A reset for a segment that has no connection (RFC 9293 3.10.7.1). */
void bh_tcp__reset_reply(struct bh_tcp *tcp, bh_ip4 raddr, const struct bh_tcp_repr *seg);
/* A RST from a connection. */
void bh_tcp__send_rst(struct bh_tcp *tcp, struct tconn *c);
/* Retransmission timer fired: back off, go back to snd_una, resend. */
void bh_tcp__timeout(struct bh_tcp *tcp, struct tconn *c, uint64_t now);
uint32_t bh_tcp__rcv_window(const struct bh_tcp *tcp, const struct tconn *c);

/* tcp_in.c */
void bh_tcp__segment(struct bh_tcp *tcp, uint64_t now, const struct bh_ip_rx *rx,
		     const struct bh_tcp_repr *seg);

#endif /* BH_TCP_IMPL_H */
