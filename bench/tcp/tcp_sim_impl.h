/*
 * bench/tcp/tcp_sim_impl.h - the simulation's private state, shared by
 * tcp_sim.c (the pool, the path, the run) and tcp_sim_app.c (the two
 * applications). Not for users of tcp_sim.h.
 */
#ifndef BH_BENCH_TCP_SIM_IMPL_H
#define BH_BENCH_TCP_SIM_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/tcp/tcp_sim.h"
#include "ipc/clock.h"
#include "tcp/tcp.h"

#define ADDR_A BH_IP4(10, 0, 0, 1)
#define ADDR_B BH_IP4(10, 0, 0, 2)
#define PORT_B 80
#define START_US 1000000ull
#define MAX_EVENTS 256

enum owner { FREE = 0, OWN_A = 1, OWN_B = 2, WIRE = 3 };

/* ---- PRNG: xoshiro256** (seeded through splitmix64 in tcp_sim.c) ---- */

struct rng {
	uint64_t s[4];
};

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* Uniform in [0, n), n > 0 (the modulo bias is immaterial here). */
static inline uint64_t rng_below(struct rng *r, uint64_t n) { return rng_next(r) % n; }
static inline bool rng_ppm(struct rng *r, uint32_t ppm)
{
	return ppm && rng_below(r, 1000000) < ppm;
}

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* ---- the buffer pool ---- */

struct pool {
	uint8_t *mem;
	uint8_t *owner;
	uint32_t *free; /* stack of free indices */
	uint32_t n, nfree;
	uint64_t empty, bad_releases;
};

/* ---- segments in flight: a binary heap by (at, order) ---- */

struct flight {
	uint64_t at, order;
	int to; /* 0: A, 1: B */
	struct bh_pkt pkt;
};

struct heap {
	struct flight *v;
	size_t n, cap;
};

/* ---- the two sides ---- */

struct sim;

struct link {
	struct bh_sim_link cfg;
	struct rng rng;
	uint64_t free_ns; /* when the link has finished the last segment */
	bool bad;         /* in a loss burst (cfg.burst_us) at state_ns */
	uint64_t state_ns;
	uint64_t bursts;  /* spells begun, as segments found them */
};

struct side {
	struct sim *sim;
	int id; /* 0: A, 1: B */
	const char *name;
	struct bh_tcp *tcp;
	struct bh_sim_side *res;
	struct link link; /* what this side sends */
	struct rng rng;   /* its application's write sizes */
	bh_tcp_conn conn, listener;
	bool connected, shut, eof, close_called, closed, listener_closed;
	bool readable, writable; /* told by events; cleared by -EAGAIN */
	uint64_t tx_total, tx_done, tx_hash, tx_key;
	uint64_t rx_total, rx_done, rx_hash, rx_key;
	struct bh_pkt pending;
	bool has_pending;
	uint64_t deadline;
	uint64_t wake; /* a slow reader's next read, UINT64_MAX: none */
	bool dirty;
	bh_seq iss; /* from its first SYN, for the trace */
	bool iss_known;
	struct bh_pkt *outbox;
	size_t nout, capout;
	struct bh_tcp_event ev[MAX_EVENTS];
	unsigned nev;
};

struct sim {
	const struct bh_sim_spec *spec;
	const struct bh_sim_opts *opts;
	struct bh_sim_result *r;
	struct pool pool;
	struct heap heap;
	struct side side[2];
	uint64_t now, order, iters;
	bool failed;
};

static inline uint8_t owner_of(const struct side *x) { return x->id == 0 ? OWN_A : OWN_B; }

/* Runs `call` on side x, timed into ns_<what>/n_<what> when timing. */
#define TIMED(x, what, call)                                             \
	do {                                                             \
		(x)->dirty = true;                                       \
		if ((x)->sim->opts->timing) {                            \
			uint64_t t0_ = bh_now_ns();                        \
			call;                                            \
			(x)->res->ns_##what += bh_now_ns() - t0_;          \
			(x)->res->n_##what++;                            \
		} else {                                                 \
			call;                                            \
		}                                                        \
	} while (0)

/* tcp_sim.c */
/* The run fails with this reason (the first one given stands). */
void bh_sim__fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Bytes [off, off + n) of the stream with this key. */
void bh_sim__stream_fill(uint64_t key, uint64_t off, uint8_t *dst, uint32_t n);
uint64_t bh_sim__fnv1a(uint64_t h, const uint8_t *p, uint32_t n);
bool bh_sim__pool_get(struct pool *p, uint8_t owner, struct bh_pkt *out);
/* Gives a buffer back; false if `owner` did not own it. */
bool bh_sim__pool_put(struct pool *p, uint8_t owner, const struct bh_pkt *k);
void bh_sim__trace_app(const struct sim *s, const struct side *x, const char *what);
/* Moves what the side's library output to its link. */
void bh_sim__flush(struct sim *s, struct side *x);

/* tcp_sim_app.c */
const char *bh_sim__err_name(int e);
/* Handles the side's events; returns true if there were any. */
bool bh_sim__app_events(struct sim *s, struct side *x);
/* Writes, shuts down, reads and closes as far as it can; true if it did
 * anything. */
bool bh_sim__app_step(struct sim *s, struct side *x);

#endif /* BH_BENCH_TCP_SIM_IMPL_H */
