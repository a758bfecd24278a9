/*
 * drivers/impair.h - seeded, reproducible impairments applied by the
 * driver domain in both directions (this kernel has no netem):
 *
 *   loss=5%  dup=1%  reorder=1%  corrupt=0.1%  delay=2ms  rate=100mbit
 *   seed=N (default: the instance's seed)
 *
 * A frame is lost, or copied into a per-direction queue with the time it
 * may leave: delay, then the serialisation time at `rate` behind the
 * frame before it (a drop-tail queue of BH_IMPAIR_QUEUE frames). A
 * duplicate is queued twice; a reordered frame leaves after the frame
 * that follows it (or after BH_IMPAIR_HOLD_NS if none comes); a corrupted frame has one bit flipped past the
 * Ethernet header. Frames go through private copies, so impairment costs
 * a copy per frame and nothing when off.
 */
#ifndef BH_DRIVERS_IMPAIR_H
#define BH_DRIVERS_IMPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BH_IMPAIR_QUEUE 2048u
#define BH_IMPAIR_HOLD_NS (1000ull * 1000)

struct bh_impair_cfg {
	uint32_t loss, dup, reorder, corrupt; /* parts per million */
	uint64_t delay_ns;
	uint64_t rate_bps; /* 0: unlimited */
	uint64_t seed;
	bool seeded;
};

/* NULL if fine, else what is wrong. An empty spec means no impairment. */
const char *bh_impair_parse(const char *spec, struct bh_impair_cfg *out);
bool bh_impair_active(const struct bh_impair_cfg *c);

/* Counters of one direction; the driver publishes each as
 * impair.tx.NAME / impair.rx.NAME. */
#define BH_IMPAIR_COUNTERS(X)                                                              \
	X(frames)                                                                          \
	X(lost)                                                                            \
	X(duplicated)                                                                      \
	X(reordered)                                                                       \
	X(corrupted)                                                                       \
	X(queue_drops)

struct bh_impair_stats {
#define BH_IMPAIR_COUNTER_FIELD(name) uint64_t name;
	BH_IMPAIR_COUNTERS(BH_IMPAIR_COUNTER_FIELD)
#undef BH_IMPAIR_COUNTER_FIELD
};

struct bh_impair_frame {
	uint64_t due_ns;
	uint32_t len;
	uint8_t *data;
};

/* One direction. */
struct bh_impair {
	struct bh_impair_cfg cfg;
	uint64_t rng;
	uint64_t link_free_ns; /* when the rate-limited link is next idle */
	struct bh_impair_frame *q;
	uint8_t *mem;
	uint32_t slot, head, tail; /* FIFO by due time (monotone) */
	bool hold_valid;           /* a frame held back for reordering */
	struct bh_impair_frame hold; /* due_ns: when it goes anyway */
	uint8_t *hold_mem;
	struct bh_impair_stats st;
};

int bh_impair_init(struct bh_impair *im, const struct bh_impair_cfg *cfg, uint64_t seed,
		   uint32_t max_frame);
void bh_impair_fini(struct bh_impair *im);
/* Offers one frame at now; it is copied (or dropped). */
void bh_impair_offer(struct bh_impair *im, uint64_t now_ns, const uint8_t *frame, uint32_t len);
/* The oldest frame if its time has come (NULL otherwise); pop it after use. */
const struct bh_impair_frame *bh_impair_peek(struct bh_impair *im, uint64_t now_ns);
void bh_impair_pop(struct bh_impair *im);
/* When the next frame is due (UINT64_MAX: none). */
uint64_t bh_impair_deadline(const struct bh_impair *im);

#endif /* BH_DRIVERS_IMPAIR_H */
