/*
 * drivers/impair.c - seeded impairments. See impair.h.
 */
#include "drivers/impair.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "5%", "0.1%", "0.05" (a fraction) -> parts per million. */
static bool parse_ratio(const char *v, uint32_t *out)
{
	char *end;
	double x = strtod(v, &end);
	if (end == v)
		return false;
	if (*end == '%') {
		x /= 100.0;
		end++;
	}
	if (*end != '\0' || !(x >= 0.0 && x <= 1.0))
		return false;
	*out = (uint32_t)(x * 1e6 + 0.5);
	return true;
}

static bool parse_time(const char *v, uint64_t *ns)
{
	char *end;
	double x = strtod(v, &end);
	if (end == v || !(x >= 0.0))
		return false;
	double mul;
	if (strcmp(end, "ms") == 0)
		mul = 1e6;
	else if (strcmp(end, "us") == 0)
		mul = 1e3;
	else if (strcmp(end, "s") == 0)
		mul = 1e9;
	else if (strcmp(end, "ns") == 0)
		mul = 1.0;
	else
		return false;
	if (x * mul > 60e9)
		return false;
	*ns = (uint64_t)(x * mul);
	return true;
}

static bool parse_rate(const char *v, uint64_t *bps)
{
	char *end;
	double x = strtod(v, &end);
	if (end == v || !(x > 0.0))
		return false;
	double mul;
	if (strcmp(end, "kbit") == 0)
		mul = 1e3;
	else if (strcmp(end, "mbit") == 0)
		mul = 1e6;
	else if (strcmp(end, "gbit") == 0)
		mul = 1e9;
	else if (strcmp(end, "bit") == 0 || *end == '\0')
		mul = 1.0;
	else
		return false;
	if (x * mul < 1000.0 || x * mul > 1e12)
		return false;
	*bps = (uint64_t)(x * mul);
	return true;
}

const char *bh_impair_parse(const char *spec, struct bh_impair_cfg *out)
{
	memset(out, 0, sizeof(*out));
	if (spec == NULL || spec[0] == '\0')
		return NULL;
	char buf[256];
	if (strlen(spec) >= sizeof(buf))
		return "impair SPEC too long";
	snprintf(buf, sizeof(buf), "%s", spec);
	char *save = NULL;
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (eq == NULL)
			return "impair SPEC is KEY=VALUE,...: loss, dup, reorder, corrupt "
			       "(percent), delay (ms, us), rate (kbit, mbit, gbit), seed";
		*eq = '\0';
		const char *k = item, *v = eq + 1;
		bool ok;
		if (strcmp(k, "loss") == 0)
			ok = parse_ratio(v, &out->loss);
		else if (strcmp(k, "dup") == 0)
			ok = parse_ratio(v, &out->dup);
		else if (strcmp(k, "reorder") == 0)
			ok = parse_ratio(v, &out->reorder);
		else if (strcmp(k, "corrupt") == 0)
			ok = parse_ratio(v, &out->corrupt);
		else if (strcmp(k, "delay") == 0)
			ok = parse_time(v, &out->delay_ns);
		else if (strcmp(k, "rate") == 0)
			ok = parse_rate(v, &out->rate_bps);
		else if (strcmp(k, "seed") == 0) {
			char *end;
			out->seed = strtoull(v, &end, 0);
			ok = end != v && *end == '\0';
			out->seeded = true;
		} else
			return "impair: unknown key (loss, dup, reorder, corrupt, delay, rate, seed)";
		if (!ok)
			return "impair: bad value (loss=5%, delay=2ms, rate=100mbit, ...)";
	}
	return NULL;
}

bool bh_impair_active(const struct bh_impair_cfg *c)
{
	return c->loss || c->dup || c->reorder || c->corrupt || c->delay_ns || c->rate_bps;
}

static uint64_t rnd(struct bh_impair *im)
{
	/* xorshift64* */
	uint64_t x = im->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	im->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

static bool chance(struct bh_impair *im, uint32_t ppm)
{
	return ppm && (rnd(im) % 1000000u) < ppm;
}

int bh_impair_init(struct bh_impair *im, const struct bh_impair_cfg *cfg, uint64_t seed,
		   uint32_t max_frame)
{
	memset(im, 0, sizeof(*im));
	im->cfg = *cfg;
	im->rng = (cfg->seeded ? cfg->seed : seed) * 0x9e3779b97f4a7c15ull + 1;
	if (im->rng == 0)
		im->rng = 1;
	im->slot = max_frame;
	im->q = calloc(BH_IMPAIR_QUEUE, sizeof(*im->q));
	im->mem = malloc((size_t)BH_IMPAIR_QUEUE * max_frame);
	im->hold_mem = malloc(max_frame);
	if (im->q == NULL || im->mem == NULL || im->hold_mem == NULL) {
		bh_impair_fini(im);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < BH_IMPAIR_QUEUE; i++)
		im->q[i].data = im->mem + (size_t)i * max_frame;
	im->hold.data = im->hold_mem;
	return 0;
}

void bh_impair_fini(struct bh_impair *im)
{
	free(im->q);
	free(im->mem);
	free(im->hold_mem);
	im->q = NULL;
	im->mem = NULL;
	im->hold_mem = NULL;
}

static void enqueue(struct bh_impair *im, uint64_t now, const uint8_t *frame, uint32_t len)
{
	if (im->head - im->tail >= BH_IMPAIR_QUEUE) {
		im->st.queue_drops++;
		return;
	}
	uint64_t due = now + im->cfg.delay_ns;
	if (im->cfg.rate_bps) {
		uint64_t ser = (uint64_t)len * 8u * 1000000000u / im->cfg.rate_bps;
		uint64_t start = im->link_free_ns > now ? im->link_free_ns : now;
		im->link_free_ns = start + ser;
		due = im->link_free_ns + im->cfg.delay_ns;
	}
	struct bh_impair_frame *f = &im->q[im->head % BH_IMPAIR_QUEUE];
	/* Due times stay in order: a frame never leaves before the one ahead. */
	if (im->head != im->tail) {
		uint64_t prev = im->q[(im->head - 1) % BH_IMPAIR_QUEUE].due_ns;
		if (due < prev)
			due = prev;
	}
	f->due_ns = due;
	f->len = len;
	memcpy(f->data, frame, len);
	if (len > 14 && chance(im, im->cfg.corrupt)) {
		uint32_t at = 14 + (uint32_t)(rnd(im) % (len - 14));
		f->data[at] ^= (uint8_t)(1u << (rnd(im) % 8));
		im->st.corrupted++;
	}
	im->head++;
}

void bh_impair_offer(struct bh_impair *im, uint64_t now_ns, const uint8_t *frame, uint32_t len)
{
	im->st.frames++;
	if (len > im->slot) {
		im->st.queue_drops++;
		return;
	}
	if (chance(im, im->cfg.loss)) {
		im->st.lost++;
		return;
	}
	if (!im->hold_valid && chance(im, im->cfg.reorder)) {
		/* Held until the next frame has gone ahead of it. */
		memcpy(im->hold.data, frame, len);
		im->hold.len = len;
		im->hold.due_ns = now_ns + BH_IMPAIR_HOLD_NS;
		im->hold_valid = true;
		im->st.reordered++;
		return;
	}
	int copies = chance(im, im->cfg.dup) ? 2 : 1;
	im->st.duplicated += (uint64_t)(copies - 1);
	for (int i = 0; i < copies; i++)
		enqueue(im, now_ns, frame, len);
	if (im->hold_valid) {
		im->hold_valid = false;
		enqueue(im, now_ns, im->hold.data, im->hold.len);
	}
}

const struct bh_impair_frame *bh_impair_peek(struct bh_impair *im, uint64_t now_ns)
{
	if (im->hold_valid && im->hold.due_ns <= now_ns) {
		im->hold_valid = false;
		enqueue(im, now_ns, im->hold.data, im->hold.len);
	}
	if (im->head == im->tail)
		return NULL;
	const struct bh_impair_frame *f = &im->q[im->tail % BH_IMPAIR_QUEUE];
	return f->due_ns <= now_ns ? f : NULL;
}

void bh_impair_pop(struct bh_impair *im)
{
	if (im->head != im->tail)
		im->tail++;
}

uint64_t bh_impair_deadline(const struct bh_impair *im)
{
	uint64_t d = im->hold_valid ? im->hold.due_ns : UINT64_MAX;
	if (im->head != im->tail && im->q[im->tail % BH_IMPAIR_QUEUE].due_ns < d)
		d = im->q[im->tail % BH_IMPAIR_QUEUE].due_ns;
	return d;
}
