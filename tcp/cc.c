/*
 * tcp/cc.c - congestion control algorithms behind struct bh_tcp_cc_algo
 * (tcp_impl.h): NewReno's window growth (RFC 5681 3.1) and CUBIC (RFC
 * 9438). Loss detection and recovery (fast retransmit, NewReno's partial
 * ACKs, RFC 6675 SACK recovery) are the generic code's; an algorithm
 * decides how the window grows and how far it falls.
 *
 * To add one: write the four calls, add it to algos[] and name it in
 * bh_tcp_config.cc.
 */
#include <math.h>
#include <string.h>

#include "tcp/tcp_impl.h"

/* RFC 5681 3.1: slow start grows by the bytes acknowledged, at most two
 * SMSS per ACK (RFC 3465 3.2, L = 2 SMSS), so that a receiver ACKing
 * every second segment does not halve the rate of growth; with large
 * segments (cfg.seg_max), two of those: one ACK then covers one. */
static void slow_start(struct tconn *c, uint32_t acked)
{
	uint32_t l = 2u * (c->seg_max > c->smss ? c->seg_max : c->smss);
	c->cwnd += acked < l ? acked : l;
}

/* ---- NewReno ---- */

static void reno_init(struct tconn *c) { (void)c; }

static void reno_ack(struct tconn *c, uint32_t acked, uint64_t now)
{
	(void)now;
	if (c->cwnd < c->ssthresh) {
		slow_start(c, acked);
		return;
	}
	/* RFC 5681 3.1: one SMSS per RTT, counted in bytes acknowledged
	 * (RFC 3465 2.1), so rounding loses nothing. */
	c->bytes_acked += acked;
	if (c->bytes_acked >= c->cwnd) {
		c->bytes_acked -= c->cwnd;
		c->cwnd += c->smss;
	}
}

/* RFC 5681 3.1 equation (4). */
static uint32_t reno_ssthresh(struct tconn *c, uint32_t flight, uint64_t now)
{
	(void)now;
	uint32_t half = flight / 2;
	return half > 2u * c->smss ? half : 2u * c->smss;
}

static void reno_restart(struct tconn *c, uint64_t now)
{
	(void)c;
	(void)now;
}

/* ---- CUBIC (RFC 9438) ---- */

#define CUBIC_C 0.4    /* 4.2 */
#define CUBIC_BETA 0.7 /* 4.6 */

static void cubic_init(struct tconn *c) { memset(&c->cubic, 0, sizeof c->cubic); }

static void cubic_ack(struct tconn *c, uint32_t acked, uint64_t now)
{
	struct cubic *k = &c->cubic;
	if (c->cwnd < c->ssthresh) {
		slow_start(c, acked); /* 4.10 */
		return;
	}
	double smss = c->smss, w = c->cwnd / smss;
	if (k->epoch == 0) {
		/* 4.2: a new congestion avoidance stage starts. */
		k->epoch = now;
		if (k->w_max <= w) {
			k->k = 0;
			k->origin = w;
		} else {
			k->k = cbrt((k->w_max - w) / CUBIC_C);
			k->origin = k->w_max;
		}
		k->w_est = w;
	}
	/* 4.2: the target is where the curve will be one RTT from now. */
	double t = (double)(now - k->epoch) / 1e6 + (double)c->srtt / 1e6;
	double target = k->origin + CUBIC_C * (t - k->k) * (t - k->k) * (t - k->k);
	/* 4.4, 4.5: never less than now, at most 1.5 times. */
	if (target < w)
		target = w;
	if (target > 1.5 * w)
		target = 1.5 * w;
	/* 4.3: the Reno-friendly estimate, alpha = 3 (1 - beta) / (1 + beta);
	 * CUBIC is never slower than it. */
	double alpha = k->w_est < k->w_max ? 3.0 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA) : 1.0;
	k->w_est += alpha * (acked / smss) / w;
	if (k->w_est > target)
		target = k->w_est;
	/* cwnd grows by (target - cwnd) / cwnd per segment acknowledged. */
	k->frac += (target - w) / w * acked;
	if (k->frac >= 1) {
		double add = floor(k->frac);
		if (add > 1e9)
			add = 1e9;
		c->cwnd += (uint32_t)add;
		k->frac -= add;
	}
}

/* 4.6 and 4.7 (fast convergence). */
static uint32_t cubic_ssthresh(struct tconn *c, uint32_t flight, uint64_t now)
{
	(void)now;
	struct cubic *k = &c->cubic;
	double w = c->cwnd / (double)c->smss;
	if (w < k->w_max)
		k->w_max = w * (1 + CUBIC_BETA) / 2;
	else
		k->w_max = w;
	k->epoch = 0;
	k->frac = 0;
	uint32_t s = (uint32_t)(flight * CUBIC_BETA);
	return s > 2u * c->smss ? s : 2u * c->smss;
}

static void cubic_restart(struct tconn *c, uint64_t now)
{
	(void)now;
	c->cubic.epoch = 0; /* the curve starts again from the current window */
}

static const struct bh_tcp_cc_algo algos[] = {
	{"cubic", cubic_init, cubic_ack, cubic_ssthresh, cubic_restart},
	{"newreno", reno_init, reno_ack, reno_ssthresh, reno_restart},
};

const struct bh_tcp_cc_algo *bh_tcp__cc_find(const char *name)
{
	if (!name || !*name)
		return &algos[0];
	for (unsigned i = 0; i < sizeof algos / sizeof algos[0]; i++)
		if (strcmp(algos[i].name, name) == 0)
			return &algos[i];
	return NULL;
}
