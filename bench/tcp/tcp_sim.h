/*
 * bench/tcp/tcp_sim.h - two TCP instances in one process, joined by a
 * simulated path, on a virtual clock: the seeded simulation behind
 * tests/tcp/test_sim.c and `bulkhead bench tcp`.
 *
 *   A 10.0.0.1 (connects, sends)  <-- link ab / link ba -->  B 10.0.0.2 (listens)
 *
 * Each direction is a link with seeded impairments: loss, duplication,
 * reordering (extra delay for a fraction of the segments), corruption (one
 * byte flipped, so the receiver's checksum fails), splitting into two
 * pieces (as IP reassembly hands them up), a base delay, a rate limit
 * (a segment leaves no earlier than the previous one's finish plus its
 * IP length in bits over the rate) and an optional drop-tail queue.
 * Segments in flight wait in an event queue (a binary heap ordered by
 * arrival time); the clock jumps to the next arrival or the next
 * bh_tcp_tick() deadline.
 *
 * Every buffer comes from one pool that records its owner (A, B or the
 * wire): a release by anyone but the owner, a segment output that the
 * side does not own, and any buffer not back at the end are counted.
 *
 * The application: A connects to B, each side writes its stream (bytes
 * generated from the seed, writes of random sizes as the send buffer
 * allows; after -EAGAIN it waits for WRITABLE), shuts down, reads the
 * other's stream to its end (after -EAGAIN it waits for READABLE),
 * checking every byte and an FNV-1a hash, then closes. A run is bounded in virtual
 * time and in loop iterations; a run that stops making progress fails
 * with both connections' state in the reason.
 *
 * Same seed and spec, same run: nothing depends on the wall clock,
 * rand() or addresses.
 */
#ifndef BH_BENCH_TCP_SIM_H
#define BH_BENCH_TCP_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Pool buffers: size and the headroom in front of the TCP header. */
#define BH_SIM_BUF 2048
#define BH_SIM_HEADROOM 128
#define BH_SIM_MAX_WRITE (BH_SIM_BUF - BH_SIM_HEADROOM)

/* One direction of the path. Fractions are in parts per million. */
struct bh_sim_link {
	uint32_t loss_ppm, dup_ppm, reorder_ppm, corrupt_ppm, split_ppm;
	uint32_t forge_ppm; /* data changed, checksum fixed: the stream check's test */
	uint64_t delay_us;    /* one way */
	uint64_t rdelay_us;   /* a reordered segment is late by 1..rdelay_us */
	uint64_t rate_bps;    /* 0: no limit */
	uint64_t queue_bytes; /* drop-tail bound on bytes waiting; 0: none */
	/* Losses in bursts of time (a Gilbert-Elliott channel): the mean
	 * length of a spell in which everything is lost; loss_ppm stays the
	 * share of the time spent in one. 0: each segment on its own. */
	uint64_t burst_us;
};

struct bh_sim_spec {
	struct bh_sim_link ab, ba;
	uint64_t bytes_ab, bytes_ba; /* each stream; ba > 0 is bidirectional */
	uint32_t wmin, wmax;         /* application write sizes, uniform */
	uint32_t buf;                /* snd_buf and rcv_buf; 0: the library's */
	uint32_t rbuf;               /* rcv_buf alone (the start); 0: buf */
	uint32_t rbuf_max;           /* rcv_buf_max (auto-tuning); 0: rbuf, fixed */
	uint16_t mss;                /* 0: the library's (1460) */
	uint32_t tw_ms;              /* TIME-WAIT; 0: the library's (60 s) */
	bool early;                  /* A writes before the handshake ends */
	bool early_shut;             /* ... and shuts down before it too */
	uint64_t rrate_bps;          /* readers read no faster; 0: at once */
	bool poll;                   /* retry writes and reads every time round,
				      * not only after WRITABLE / READABLE */
	bool no_ts, no_ws, no_sack;  /* options not offered */
	uint32_t pool;               /* buffers; 0: sized from buf */
	uint64_t limit_us;           /* virtual time bound */
	uint64_t max_iters;          /* loop iterations bound */
};

/* The defaults: 1 ms each way, no impairment, 64 KiB one way, writes of
 * 1..1920 bytes, the library's buffers, a limit of 1 hour virtual. */
void bh_sim_defaults(struct bh_sim_spec *s);

/* Applies "key=value,..." on top of *s (see bh_sim_spec_help). Returns 0,
 * or -1 with a message in err. */
int bh_sim_parse(const char *spec, struct bh_sim_spec *s, char *err, size_t errlen);
extern const char bh_sim_spec_help[];

struct bh_sim_opts {
	FILE *trace; /* every segment sent and its fate, or NULL */
	bool timing; /* wall-clock time inside the library calls */
};

/* Per side: its library counters, its outgoing link, its calls. */
struct bh_sim_side {
	uint64_t segs_out, segs_in, retransmits, timeouts, syn_timeouts, fast_retransmits;
	uint64_t rack_lost, lost_retransmits, tlp_probes, tlp_recoveries, dsacks_in, undos;
	uint64_t bad_checksum, bad_header, dup_acks, ooo_segs, no_buffers, rcv_drops;
	uint64_t link_sent, link_lost, link_dup, link_reordered, link_corrupted, link_split,
		link_qdrops;
	uint64_t link_bursts; /* loss bursts that met a segment (burst=) */
	uint64_t bytes_sent, bytes_rcvd;
	uint64_t pool_waits; /* writes put off: the pool was three quarters used */
	uint64_t rcvbuf_grown; /* receive buffer growths (auto-tuning) */
	uint32_t rcv_buf_peak; /* the largest receive buffer its reads saw */
	uint64_t eof_us; /* virtual time from the start to the peer's FIN, 0 never */
	/* wall-clock nanoseconds inside library calls, and the calls */
	uint64_t ns_send, ns_recv, ns_input, ns_tick, ns_other;
	uint64_t n_send, n_recv, n_input, n_tick, n_other;
};

struct bh_sim_result {
	bool ok;
	char reason[4096]; /* why not, with both connections' state */
	struct bh_sim_side a, b;
	uint64_t bytes;       /* verified, both streams */
	uint64_t transfer_us; /* start to the last stream's FIN received */
	uint64_t total_us;    /* start to both handles closed (TIME-WAIT too) */
	double goodput;       /* bytes / transfer time, bytes per second */
	uint64_t leaks;       /* buffers not back after destroy */
	uint64_t bad_releases; /* released twice, by a non-owner, or unknown */
	uint64_t pool_empty;  /* allocations refused: the pool ran dry */
	uint64_t iters;
	uint64_t max_in_flight;
};

/* One run. Returns r->ok. */
bool bh_sim_run(uint64_t seed, const struct bh_sim_spec *spec, const struct bh_sim_opts *opts,
		struct bh_sim_result *r);

/* Writes the command that replays a run with a trace. */
void bh_sim_replay_cmd(char *out, size_t n, uint64_t seed, const char *spec);

#endif /* BH_BENCH_TCP_SIM_H */
