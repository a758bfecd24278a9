/*
 * bench/tcp/tcp_bench.c - `bulkhead bench tcp`: what the TCP library costs
 * per segment, and the goodput it reaches over a simulated path with loss.
 *
 * Method. Two library instances exchange a bulk stream through the
 * simulation of tcp_sim.c (A sends, B receives; writes of one MSS, 1448
 * bytes with timestamps).
 *
 * Processing cost: a run on a clean path with wall-clock time
 * (CLOCK_MONOTONIC) taken around every library call. The sender's cost is
 * the time inside bh_tcp_send, bh_tcp_tick and bh_tcp_input on A (the
 * library's own copy of the data into each segment it builds is in it),
 * divided by the segments A sent; the receiver's is the time inside
 * bh_tcp_input and bh_tcp_recv on B, divided by the segments B received
 * (the ACKs B sends are built inside those calls). The application's
 * copies (filling buffers, checking the received bytes) and the simulated
 * link are outside the timed calls: the output callback only appends to
 * an array. The cost of reading the clock, measured before the run, is
 * subtracted per call.
 *
 * Goodput: virtual time only, so the machine does not matter. The path is
 * 5 ms each way (10 ms RTT) at 1 Gbit/s each way with no queue limit, and
 * random loss of 0, 1 and 5% in both directions; with the library's
 * default 256 KiB buffers and with 4 MiB. Goodput is the stream's bytes
 * over the time from connect() to the receiver reading the end of the
 * stream; each figure is the mean over seeds 1..N.
 *
 * Every transfer is verified: every byte against the generated stream,
 * an FNV-1a hash, and every buffer back in the pool at the end.
 */
#include "bench/tcp/tcp_bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/tcp/tcp_sim.h"
#include "ipc/clock.h"

#define PATH "delay=5ms,rate=1g"
#define PATH_TEXT "5 ms each way (10 ms RTT), 1 Gbit/s each way, no queue limit"

/* What one timed call adds by reading the clock: the median, over 201
 * batches, of the mean cost of 100 reads in a row. */
static double clock_cost_ns(void)
{
	enum { N = 201 };
	double v[N];
	for (int i = 0; i < N; i++) {
		uint64_t t0 = bh_now_ns();
		for (int k = 0; k < 100; k++) {
			volatile uint64_t t = bh_now_ns();
			(void)t;
		}
		v[i] = (double)(bh_now_ns() - t0) / 100.0;
	}
	for (int i = 1; i < N; i++) /* insertion sort: small */
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[N / 2];
}

static void print_side(FILE *f, const char *name, const struct bh_sim_side *s)
{
	fprintf(f,
		"  %s: %llu segments out, %llu in, %llu retransmits (%llu timeouts, %llu fast), "
		"RACK: %llu lost, %llu lost again; TLP: %llu probes, %llu recoveries; %llu D-SACKs in, %llu undos; "
		"%llu bad checksums, %llu dup ACKs in, %llu out of order, %llu dropped (receive "
		"memory), %llu not sent (no buffer), %llu writes put off (pool); link out: %llu lost, "
		"%llu duplicated, %llu late, %llu corrupted, %llu split, %llu queue drops, %llu loss "
		"bursts; receive "
		"buffer grown %llu times, to %u bytes\n",
		name, (unsigned long long)s->segs_out, (unsigned long long)s->segs_in,
		(unsigned long long)s->retransmits, (unsigned long long)s->timeouts,
		(unsigned long long)s->fast_retransmits, (unsigned long long)s->rack_lost,
		(unsigned long long)s->lost_retransmits, (unsigned long long)s->tlp_probes,
		(unsigned long long)s->tlp_recoveries, (unsigned long long)s->dsacks_in, (unsigned long long)s->undos,
		(unsigned long long)s->bad_checksum, (unsigned long long)s->dup_acks, (unsigned long long)s->ooo_segs,
		(unsigned long long)s->rcv_drops, (unsigned long long)s->no_buffers,
		(unsigned long long)s->pool_waits,
		(unsigned long long)s->link_lost, (unsigned long long)s->link_dup,
		(unsigned long long)s->link_reordered, (unsigned long long)s->link_corrupted,
		(unsigned long long)s->link_split, (unsigned long long)s->link_qdrops,
		(unsigned long long)s->link_bursts,
		(unsigned long long)s->rcvbuf_grown, s->rcv_buf_peak);
}

/* --sim: one run of the simulation, as the tests run it. */
static int sim_main(uint64_t seed, const char *spec, bool trace)
{
	struct bh_sim_spec sp;
	char err[256];
	bh_sim_defaults(&sp);
	if (bh_sim_parse(spec, &sp, err, sizeof err) != 0) {
		fprintf(stderr, "bench tcp: --spec: %s\n%s", err, bh_sim_spec_help);
		return 2;
	}
	struct bh_sim_opts o = {trace ? stdout : NULL, false};
	struct bh_sim_result *r = malloc(sizeof *r);
	if (!r)
		return 1;
	bool ok = bh_sim_run(seed, &sp, &o, r);
	printf("seed %llu spec '%s': %s\n", (unsigned long long)seed, spec,
	       ok ? "verified" : "FAILED");
	if (!ok)
		printf("  %s\n", r->reason);
	printf("  %llu bytes in %.6f s virtual (%.3f MB/s), all closed at %.6f s, %llu loop "
	       "iterations, at most %llu segments in flight, %llu leaked, %llu bad releases, "
	       "pool ran dry %llu times\n",
	       (unsigned long long)r->bytes, (double)r->transfer_us / 1e6, r->goodput / 1e6,
	       (double)r->total_us / 1e6, (unsigned long long)r->iters,
	       (unsigned long long)r->max_in_flight, (unsigned long long)r->leaks,
	       (unsigned long long)r->bad_releases, (unsigned long long)r->pool_empty);
	print_side(stdout, "A", &r->a);
	print_side(stdout, "B", &r->b);
	free(r);
	return ok ? 0 : 1;
}

struct cost {
	bool ok;
	char reason[256];
	uint64_t bytes, tx_segs, rx_segs, tx_calls, rx_calls;
	double tx_ns, rx_ns; /* per segment, clock cost subtracted */
	double rx_tick_ns;   /* B's ticks (delayed ACKs), per received segment */
	/* per segment, by call: A's send, tick, input; B's input, recv */
	double a_send, a_tick, a_input, b_input, b_recv;
	uint64_t a_n_send, a_n_tick, a_n_input, b_n_input, b_n_recv;
	double wall_s;
};

static void run_cost(uint64_t bytes, double clock_ns, struct cost *c)
{
	char spec[256];
	snprintf(spec, sizeof spec, "%s,bytes=%llu,wmin=1448,wmax=1448", PATH,
		 (unsigned long long)bytes);
	struct bh_sim_spec sp;
	char err[256];
	bh_sim_defaults(&sp);
	memset(c, 0, sizeof *c);
	if (bh_sim_parse(spec, &sp, err, sizeof err) != 0) {
		snprintf(c->reason, sizeof c->reason, "%s", err);
		return;
	}
	struct bh_sim_opts o = {NULL, true};
	struct bh_sim_result *r = malloc(sizeof *r);
	if (!r)
		return;
	uint64_t t0 = bh_now_ns();
	c->ok = bh_sim_run(1, &sp, &o, r);
	c->wall_s = (double)(bh_now_ns() - t0) / 1e9;
	snprintf(c->reason, sizeof c->reason, "%.200s", r->reason);
	const struct bh_sim_side *a = &r->a, *b = &r->b;
	c->bytes = r->bytes;
	c->tx_segs = a->segs_out;
	c->rx_segs = b->segs_in;
	c->tx_calls = a->n_send + a->n_tick + a->n_input;
	c->rx_calls = b->n_input + b->n_recv;
	double tx = (double)(a->ns_send + a->ns_tick + a->ns_input) - clock_ns * (double)c->tx_calls;
	double rx = (double)(b->ns_input + b->ns_recv) - clock_ns * (double)c->rx_calls;
	double rt = (double)b->ns_tick - clock_ns * (double)b->n_tick;
	c->tx_ns = c->tx_segs ? tx / (double)c->tx_segs : 0;
	c->rx_ns = c->rx_segs ? rx / (double)c->rx_segs : 0;
	c->rx_tick_ns = c->rx_segs ? rt / (double)c->rx_segs : 0;
	double ts = c->tx_segs ? (double)c->tx_segs : 1, rs = c->rx_segs ? (double)c->rx_segs : 1;
	c->a_send = ((double)a->ns_send - clock_ns * (double)a->n_send) / ts;
	c->a_tick = ((double)a->ns_tick - clock_ns * (double)a->n_tick) / ts;
	c->a_input = ((double)a->ns_input - clock_ns * (double)a->n_input) / ts;
	c->b_input = ((double)b->ns_input - clock_ns * (double)b->n_input) / rs;
	c->b_recv = ((double)b->ns_recv - clock_ns * (double)b->n_recv) / rs;
	c->a_n_send = a->n_send;
	c->a_n_tick = a->n_tick;
	c->a_n_input = a->n_input;
	c->b_n_input = b->n_input;
	c->b_n_recv = b->n_recv;
	free(r);
}

struct tput {
	const char *buf_text;
	uint32_t buf;
	double loss; /* percent */
	unsigned seeds, verified;
	double goodput_sum, lo, hi; /* bytes per second */
	uint64_t retransmits, timeouts, fast;
	uint64_t data_timeouts, probes; /* timeouts past the handshake; tail loss probes */
	uint64_t bytes;
	char reason[256];
};

/* Timeouts past the handshake per MiB of the verified transfers. */
static double rtos_per_mib(const struct tput *t)
{
	double mib = (double)t->bytes * t->verified / 1048576.0;
	return mib > 0 ? (double)t->data_timeouts / mib : 0;
}

static void run_tput(struct tput *t, uint64_t bytes, unsigned seeds)
{
	t->seeds = seeds;
	t->bytes = bytes;
	t->lo = 1e300;
	t->hi = 0;
	for (unsigned s = 1; s <= seeds; s++) {
		char spec[256];
		snprintf(spec, sizeof spec, "%s,loss=%g%%,bytes=%llu,wmin=1448,wmax=1448%s%s", PATH,
			 t->loss, (unsigned long long)bytes, t->buf ? ",buf=" : "",
			 t->buf ? "4M" : "");
		struct bh_sim_spec sp;
		char err[256];
		bh_sim_defaults(&sp);
		if (bh_sim_parse(spec, &sp, err, sizeof err) != 0) {
			snprintf(t->reason, sizeof t->reason, "%s", err);
			return;
		}
		sp.buf = t->buf;
		struct bh_sim_result *r = malloc(sizeof *r);
		if (!r)
			return;
		if (bh_sim_run(s, &sp, NULL, r)) {
			t->verified++;
			t->goodput_sum += r->goodput;
			if (r->goodput < t->lo)
				t->lo = r->goodput;
			if (r->goodput > t->hi)
				t->hi = r->goodput;
			t->retransmits += r->a.retransmits;
			t->timeouts += r->a.timeouts;
			t->fast += r->a.fast_retransmits;
			t->data_timeouts += r->a.timeouts - r->a.syn_timeouts;
			t->probes += r->a.tlp_probes;
		} else if (!t->reason[0]) {
			char cmd[512];
			bh_sim_replay_cmd(cmd, sizeof cmd, s, spec);
			snprintf(t->reason, sizeof t->reason, "seed %u failed; replay: %.200s", s, cmd);
			fprintf(stderr, "bench tcp: %s\n%s\n", t->reason, r->reason);
		}
		free(r);
	}
}

static void usage(FILE *f)
{
	fputs("usage: bulkhead bench tcp [--quick] [--json]\n"
	      "       bulkhead bench tcp --sim [--seed N] [--spec SPEC] [--trace]\n"
	      "\n"
	      "  --quick   a shorter run: 32 MiB for the processing cost, one seed\n"
	      "            and smaller transfers for goodput (default 256 MiB, 3 seeds)\n"
	      "  --json    one JSON object instead of Markdown\n"
	      "  --sim     replay one run of the simulation the tests use (seed 1,\n"
	      "            the default spec unless given); --trace prints every segment\n"
	      "\n",
	      f);
	fputs(bh_sim_spec_help, f);
}

struct opts {
	bool quick, json, sim, trace;
	uint64_t seed;
	const char *spec;
};

/* Reads the options into *o; returns -1 to go on, else the exit status. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.seed = 1, .spec = ""};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			o->quick = true;
		else if (strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (strcmp(argv[i], "--sim") == 0)
			o->sim = true;
		else if (strcmp(argv[i], "--trace") == 0)
			o->trace = true;
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			char *e;
			errno = 0;
			o->seed = strtoull(argv[++i], &e, 0);
			if (*e || errno) {
				fprintf(stderr, "bench tcp: --seed wants a number\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--spec") == 0 && i + 1 < argc)
			o->spec = argv[++i];
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "bench tcp: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

static void print_json(bool quick, double clock_ns, const struct cost *c, const struct tput *t,
		       unsigned nt)
{
	printf("{\"bench\": \"tcp\", \"quick\": %s, \"processing\": {\"bytes\": %llu, "
	       "\"segments_sent\": %llu, \"segments_received\": %llu, "
	       "\"send_ns_per_segment\": %.1f, \"send_segments_per_s\": %.0f, "
	       "\"receive_ns_per_segment\": %.1f, \"receive_segments_per_s\": %.0f, "
	       "\"receiver_tick_ns_per_segment\": %.1f, \"clock_ns_per_call\": %.1f, "
	       "\"verified\": %s}, \"path\": \"%s\", \"goodput\": [",
	       quick ? "true" : "false", (unsigned long long)c->bytes,
	       (unsigned long long)c->tx_segs, (unsigned long long)c->rx_segs, c->tx_ns,
	       c->tx_ns > 0 ? 1e9 / c->tx_ns : 0, c->rx_ns, c->rx_ns > 0 ? 1e9 / c->rx_ns : 0,
	       c->rx_tick_ns, clock_ns, c->ok ? "true" : "false", PATH_TEXT);
	for (unsigned i = 0; i < nt; i++) {
		const struct tput *x = &t[i];
		double mean = x->verified ? x->goodput_sum / x->verified : 0;
		printf("%s{\"buffers\": \"%s\", \"loss_percent\": %g, \"bytes\": %llu, "
		       "\"seeds\": %u, \"goodput_mbit_s\": %.1f, \"min_mbit_s\": %.1f, "
		       "\"max_mbit_s\": %.1f, \"retransmits\": %llu, \"timeouts\": %llu, "
		       "\"fast_retransmits\": %llu, \"data_rtos_per_mib\": %.3f, "
		       "\"tail_probes\": %llu, \"verified\": %s}",
		       i ? ", " : "", x->buf_text, x->loss, (unsigned long long)x->bytes,
		       x->seeds, mean * 8 / 1e6, x->verified ? x->lo * 8 / 1e6 : 0,
		       x->hi * 8 / 1e6, (unsigned long long)x->retransmits,
		       (unsigned long long)x->timeouts, (unsigned long long)x->fast,
		       rtos_per_mib(x), (unsigned long long)x->probes,
		       x->verified == x->seeds ? "true" : "false");
	}
	printf("]}\n");
}

static void print_markdown(unsigned seeds, double clock_ns, const struct cost *c,
			   const struct tput *t, unsigned nt, bool all)
{
	printf("## TCP processing cost, one core (%llu MiB, clean path, MSS-sized writes)\n\n",
	       (unsigned long long)(c->bytes >> 20));
	printf("| side | calls timed | segments | ns/segment | segments/s | verified |\n"
	       "|---|---|---|---|---|---|\n");
	printf("| sender (A) | send, tick, input | %llu sent | %.0f | %.2f M | %s |\n",
	       (unsigned long long)c->tx_segs, c->tx_ns, c->tx_ns > 0 ? 1e3 / c->tx_ns : 0,
	       c->ok ? "yes" : "NO");
	printf("| receiver (B) | input, recv | %llu received | %.0f | %.2f M | %s |\n",
	       (unsigned long long)c->rx_segs, c->rx_ns, c->rx_ns > 0 ? 1e3 / c->rx_ns : 0,
	       c->ok ? "yes" : "NO");
	printf("\nPer segment, by call (calls): sender send %.0f ns (%llu), tick %.0f ns (%llu), "
	       "input %.0f ns (%llu); receiver input %.0f ns (%llu), recv %.0f ns (%llu). "
	       "Reading the clock costs %.1f ns a call, subtracted. B's ticks (delayed "
	       "ACKs) add %.1f ns per received segment. The run took %.2f s of wall-clock "
	       "time in all.\n\n",
	       c->a_send, (unsigned long long)c->a_n_send, c->a_tick, (unsigned long long)c->a_n_tick,
	       c->a_input, (unsigned long long)c->a_n_input, c->b_input,
	       (unsigned long long)c->b_n_input, c->b_recv, (unsigned long long)c->b_n_recv,
	       clock_ns, c->rx_tick_ns, c->wall_s);
	printf("## TCP goodput over a simulated path (virtual time)\n\n"
	       "Path: %s; random loss both ways. Mean over %u seed%s.\n\n",
	       PATH_TEXT, seeds, seeds == 1 ? "" : "s");
	printf("| buffers | loss | stream | goodput Mbit/s | range | retransmits | timeouts | "
	       "fast retransmits | data RTOs/MiB | tail probes | verified |\n"
	       "|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (unsigned i = 0; i < nt; i++) {
		const struct tput *x = &t[i];
		double mean = x->verified ? x->goodput_sum / x->verified : 0;
		printf("| %s | %g%% | %.1f MiB | %.1f | %.1f-%.1f | %llu | %llu | %llu | %.2f | %llu | "
		       "%s |\n",
		       x->buf_text, x->loss, (double)x->bytes / 1048576.0, mean * 8 / 1e6,
		       x->verified ? x->lo * 8 / 1e6 : 0, x->hi * 8 / 1e6,
		       (unsigned long long)x->retransmits, (unsigned long long)x->timeouts,
		       (unsigned long long)x->fast, rtos_per_mib(x), (unsigned long long)x->probes,
		       x->verified == x->seeds ? "yes" : "NO");
	}
	printf("\nTransfers verified: %s.\n", all ? "all" : "NOT ALL");
}

int bh_bench_tcp_main(int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.sim)
		return sim_main(o.seed, o.spec, o.trace);

	double clock_ns = clock_cost_ns();
	struct cost c;
	run_cost(o.quick ? 32ull << 20 : 256ull << 20, clock_ns, &c);
	if (!c.ok)
		fprintf(stderr, "bench tcp: the processing-cost run failed: %s\n", c.reason);

	static struct tput t[] = {
		{.buf_text = "256 KiB", .buf = 0, .loss = 0},
		{.buf_text = "256 KiB", .buf = 0, .loss = 1},
		{.buf_text = "256 KiB", .buf = 0, .loss = 5},
		{.buf_text = "4 MiB", .buf = 4u << 20, .loss = 0},
		{.buf_text = "4 MiB", .buf = 4u << 20, .loss = 1},
		{.buf_text = "4 MiB", .buf = 4u << 20, .loss = 5},
	};
	enum { NT = sizeof t / sizeof t[0] };
	unsigned seeds = o.quick ? 1 : 3;
	bool all = c.ok;
	for (unsigned i = 0; i < NT; i++) {
		uint64_t bytes = t[i].loss == 0 ? 64ull << 20 : t[i].loss < 2 ? 16ull << 20 : 4ull << 20;
		if (o.quick)
			bytes /= 8;
		run_tput(&t[i], bytes, seeds);
		all &= t[i].verified == t[i].seeds;
	}
	if (o.json)
		print_json(o.quick, clock_ns, &c, t, NT);
	else
		print_markdown(seeds, clock_ns, &c, t, NT, all);
	return all ? 0 : 1;
}
