/*
 * domains/stats.h - what a domain shows the supervisor: a region of its
 * own (written by it alone; the supervisor made and formatted it, and
 * from then on only reads it) with a heartbeat, its counters by name,
 * and, for the TCP domain, a connection table.
 *
 *   offset 64    struct bh_stats_hdr
 *   page 1       struct bh_stat_ctr[max_counters]
 *   then         struct bh_stat_conn[max_conns]
 *
 * The writer (one thread) updates under a sequence lock: seq odd while
 * writing. The reader copies everything out, retries if seq moved, and
 * treats the copy as untrusted: counts are clamped to the geometry it
 * computed itself and names are cut at their last byte. The heartbeat and
 * `ready` are single words outside the lock.
 */
#ifndef BH_DOMAINS_STATS_H
#define BH_DOMAINS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/region.h"

#define BH_STATS_MAGIC 0x54415453u /* "STAT" */
#define BH_STATS_MAX_CTRS 1024u

struct bh_stats_hdr {
	uint32_t magic;
	uint32_t seq;
	uint64_t heartbeat;  /* bumped on every wake of the main loop */
	uint64_t updated_ns; /* CLOCK_MONOTONIC of the last update */
	uint32_t pid;
	uint32_t ready;
	uint32_t ncounters;
	uint32_t nconns;
	uint32_t max_conns;
	uint32_t pad;
};

struct bh_stat_ctr {
	char name[56];
	uint64_t value;
};

struct bh_stat_conn {
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint8_t state; /* enum bh_tcp_state */
	uint8_t rtx_armed;
	uint8_t pad[2];
	uint32_t sid;
	uint32_t cwnd, ssthresh, srtt_us, rto_us, retransmits, mss;
	uint32_t snd_queued, rcv_queued, snd_wnd, rcv_wnd;
	uint32_t rcv_buf, rcv_rtt_us; /* the receive buffer now (auto-tuned) */
	uint32_t in_flight, ooo_queued;
	/* The TCP domain's side: received buffers the socket server holds,
	 * and descriptors waiting in the domain (for sock, for the library). */
	uint32_t with_sock, wait_rx, wait_tx;
	char cc[8];
};

size_t bh_stats_region_bytes(uint32_t max_conns);

struct bh_stats_w {
	struct bh_stats_hdr *h;
	struct bh_stat_ctr *ctr;
	struct bh_stat_conn *conn;
	uint32_t max_conns;
	uint32_t nc, nconn;
};

/* Formats the region (creator) and opens it for writing (the domain). */
void bh_stats_format(struct bh_region *r, uint32_t max_conns);
int bh_stats_writer(struct bh_stats_w *w, struct bh_region *r);

void bh_stats_begin(struct bh_stats_w *w);
void bh_stats_add(struct bh_stats_w *w, const char *prefix, const char *name, uint64_t v);
struct bh_stat_conn *bh_stats_conn(struct bh_stats_w *w);
void bh_stats_end(struct bh_stats_w *w, uint64_t now_ns);
void bh_stats_beat(struct bh_stats_w *w);
void bh_stats_ready(struct bh_stats_w *w);

/* A reader's copy. */
struct bh_stats_snap {
	struct bh_stats_hdr h;
	struct bh_stat_ctr *ctr;   /* h.ncounters, malloc'd */
	struct bh_stat_conn *conn; /* h.nconns, malloc'd */
};
/* 0, or -EAGAIN if the writer kept it busy, -EPROTO if it is not a stats
 * region of the expected shape. */
int bh_stats_read(const struct bh_region *r, uint32_t max_conns, struct bh_stats_snap *out);
void bh_stats_snap_free(struct bh_stats_snap *s);

/* The heartbeat alone, read without the lock (one word); 0 if r is not
 * a stats region. */
uint64_t bh_stats_heartbeat(const struct bh_region *r);

#endif /* BH_DOMAINS_STATS_H */
