/*
 * tests/drivers/test_shmlink.c - the shared-memory wire (drivers/shmlink.c)
 * between two ends in one process: frames of every size, large frames in
 * chains of buffers, the wrap at the end of the slots, and an end that
 * takes no large frames.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/backend.h"

#define CAP 1984u
#define NB 64u

static char dir[64];
static struct bh_backend *end[2];
static uint8_t *bufs[NB];
static uint32_t lens[NB];

static struct bh_backend *open_end(const char *link, int e, bool large)
{
	char spec_text[64], err[256];
	snprintf(spec_text, sizeof spec_text, "wire:%s:%d", link, e);
	struct bh_driver_spec spec;
	cr_assert_null(bh_driver_spec_parse(spec_text, &spec));
	struct bh_backend_args a = {.spec = &spec, .shmlink_dir = dir, .mtu = 1500, .large = large};
	struct bh_backend *b = NULL;
	int rc = bh_backend_open(&b, &a, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	return b;
}

static void setup_ends(bool large0, bool large1)
{
	snprintf(dir, sizeof dir, "/tmp/bh-shmlink-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	end[0] = open_end("t", 0, large0);
	end[1] = open_end("t", 1, large1);
	for (unsigned i = 0; i < NB; i++)
		bufs[i] = malloc(CAP);
}

static void setup(void) { setup_ends(true, true); }

static void teardown(void)
{
	for (int e = 0; e < 2; e++)
		if (end[e])
			end[e]->ops->close(end[e]);
	bh_shmlink_forget(dir, "t");
	rmdir(dir);
	for (unsigned i = 0; i < NB; i++)
		free(bufs[i]);
}

TestSuite(shmlink, .init = setup, .fini = teardown);

/* A frame of len bytes, its bytes a function of seed. */
static void fill(uint8_t *f, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		f[i] = (uint8_t)(i * 13 + seed);
}

static int send1(struct bh_backend *b, const uint8_t *f, uint32_t len)
{
	uint32_t l = len;
	return b->ops->tx(b, &f, &l, 1);
}

/* An end learns what the other takes at attach (the second end to
 * attach) and after every batch it sends: one small frame, received. */
static void learn(struct bh_backend *b)
{
	uint8_t f[60] = {0};
	cr_assert_eq(send1(b, f, sizeof f), 1);
	struct bh_backend *o = b == end[0] ? end[1] : end[0];
	cr_assert_eq(o->ops->rx(o, bufs, CAP, lens, NB), 1);
}

/* Receives one whole frame into `out`; returns its length (0: none). */
static uint32_t recv1(struct bh_backend *b, uint8_t *out, unsigned *pieces)
{
	unsigned want = b->ops->ready(b, CAP, NB);
	int k = b->ops->rx(b, bufs, CAP, lens, want ? want : 1);
	cr_assert_geq(k, 0);
	uint32_t at = 0;
	*pieces = (unsigned)k;
	for (int i = 0; i < k; i++) {
		uint32_t l = lens[i] & BH_BK_LEN_MASK;
		cr_assert_leq(l, CAP);
		cr_assert_eq((lens[i] & BH_BK_MORE) != 0, i + 1 < k, "MORE on all but the last");
		memcpy(out + at, bufs[i], l);
		at += l;
	}
	return at;
}

Test(shmlink, frames_of_every_size_arrive_whole_large_ones_in_chains)
{
	static uint8_t f[65535], g[65535];
	const uint32_t sizes[] = {60, 1514, 65535, 30000, 1985, 100, 64000};
	learn(end[0]);
	cr_expect_eq(end[0]->tx_max, 65535, "the other end takes large frames");
	for (unsigned round = 0; round < 40; round++) { /* several times round the slots */
		for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
			uint32_t len = sizes[s];
			fill(f, len, round * 7 + s);
			cr_assert_eq(send1(end[0], f, len), 1, "round %u size %u", round, len);
			cr_expect_eq(end[1]->ops->ready(end[1], CAP, NB), (len + CAP - 1) / CAP);
			unsigned pieces;
			uint32_t got = recv1(end[1], g, &pieces);
			cr_assert_eq(got, len, "round %u: %u of %u bytes", round, got, len);
			cr_assert_eq(pieces, (len + CAP - 1) / CAP);
			cr_assert_arr_eq(f, g, len);
		}
	}
	cr_expect_eq(end[1]->st.rx_errors, 0);
	cr_expect_eq(end[0]->st.tx_errors, 0);
	cr_expect_gt(end[1]->st.rx_large, 0);
}

Test(shmlink, a_full_wire_takes_no_more_and_frames_wait_whole)
{
	static uint8_t f[65535];
	fill(f, sizeof f, 1);
	learn(end[0]);
	unsigned sent = 0;
	while (send1(end[0], f, sizeof f) == 1)
		sent++;
	cr_assert_gt(sent, 10);
	cr_assert_lt(sent, 100, "a full wire refuses frames");
	/* Too few buffers for the first frame: nothing is taken; ready
	 * asks for all it needs, whatever the limit. */
	int k = end[1]->ops->rx(end[1], bufs, CAP, lens, 5);
	cr_expect_eq(k, 0);
	cr_expect_eq(end[1]->ops->ready(end[1], CAP, 1), (sizeof f + CAP - 1) / CAP);
	static uint8_t g[65535];
	for (unsigned i = 0; i < sent; i++) {
		unsigned pieces;
		cr_assert_eq(recv1(end[1], g, &pieces), sizeof f, "frame %u", i);
		cr_assert_arr_eq(f, g, sizeof f);
	}
	cr_expect_eq(send1(end[0], f, sizeof f), 1, "room again");
}

Test(shmlink, an_end_that_takes_no_large_frames_gets_none)
{
	teardown();
	setup_ends(true, false);
	learn(end[0]);
	cr_expect_eq(end[0]->tx_max, 1500 + 14 + 18, "the slot's frame room");
	static uint8_t f[4000], g[65535];
	fill(f, sizeof f, 3);
	/* The sender drops what the other end cannot take... */
	cr_expect_eq(send1(end[0], f, sizeof f), 1);
	cr_expect_eq(end[0]->st.tx_errors, 1);
	/* ...and the receiver sees an invalid frame, not a chain. */
	int k = end[1]->ops->rx(end[1], bufs, CAP, lens, NB);
	cr_expect_eq(k, 0);
	cr_expect_eq(end[1]->st.rx_errors, 1);
	/* MTU-sized frames still pass, whole. */
	cr_expect_eq(send1(end[0], f, 1514), 1);
	unsigned pieces;
	cr_expect_eq(recv1(end[1], g, &pieces), 1514);
	cr_expect_eq(pieces, 1);
}

/* A wire file whose slots hold too few large frames (made by another
 * program, or an older end): this end declares none and sends none. */
Test(shmlink, slots_too_few_for_large_frames_carry_none)
{
	teardown();
	snprintf(dir, sizeof dir, "/tmp/bh-shmlink-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	for (unsigned i = 0; i < NB; i++)
		bufs[i] = malloc(CAP);
	char path[128];
	cr_assert_eq(bh_shmlink_path(path, sizeof path, dir, "t"), 0);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	/* magic "WIRE", version 3, 1536-byte slots, 16 of them; pids and
	 * features zero; the size the geometry gives (one page, then per
	 * direction two pages and the slots). */
	uint32_t hdr[8] = {0x45524957u, 3, 1536, 16, 0, 0, 0, 0};
	cr_assert_eq(fwrite(hdr, sizeof hdr, 1, f), 1);
	long page = sysconf(_SC_PAGESIZE);
	cr_assert_eq(ftruncate(fileno(f), page + 2 * (2 * page + 16 * 1536)), 0);
	fclose(f);
	end[0] = open_end("t", 0, true);
	end[1] = open_end("t", 1, true);
	cr_expect_eq(end[0]->st.large_rx, 0, "declares no large frames");
	cr_expect_eq(end[1]->st.large_rx, 0);
	learn(end[0]);
	cr_expect_eq(end[0]->tx_max, 1532, "sends none whole");
}

/* A frame in pieces (a send chain's headers and payload) is gathered in
 * the wire's copy: the other end receives it whole, byte for byte, in
 * batches of frames of one and of many pieces, large ones included. */
Test(shmlink, frames_in_pieces_are_gathered_in_the_copy)
{
	static uint8_t f[65535], g[65535];
	learn(end[0]);
	const uint32_t sizes[] = {60, 1514, 65535, 2000, 31111};
	for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		uint32_t len = sizes[s];
		fill(f, len, s * 3 + 1);
		/* Cut into pieces of 54, then 1, 333, ... bytes, as a chain's
		 * headers and SOCK pieces at odd lengths. */
		struct bh_frag fr[9];
		uint32_t cut[] = {54, 1, 333, 4096, 7, 1448, 16384, 0};
		unsigned n = 0;
		uint32_t at = 0;
		for (; at < len && n < 8; n++) {
			uint32_t k = n < 7 ? cut[n] : len - at;
			if (k > len - at)
				k = len - at;
			fr[n] = (struct bh_frag){f + at, k};
			at += k;
		}
		if (at < len)
			fr[n++] = (struct bh_frag){f + at, len - at};
		struct bh_txv v[2] = {{fr, n, len, 0}, {fr, 1, fr[0].len, 0}};
		cr_assert_eq(end[0]->ops->txv(end[0], v, 2), 2, "size %u", len);
		/* Both in one receive: the first frame's buffers (MORE on all
		 * but its last), then the one-piece frame's. */
		int k = end[1]->ops->rx(end[1], bufs, CAP, lens, NB);
		cr_assert_eq(k, (int)((len + CAP - 1) / CAP + 1), "size %u", len);
		uint32_t got = 0;
		for (int i = 0; i + 1 < k; i++) {
			memcpy(g + got, bufs[i], lens[i] & BH_BK_LEN_MASK);
			got += lens[i] & BH_BK_LEN_MASK;
		}
		cr_assert_eq(got, len);
		cr_assert_arr_eq(f, g, len);
		cr_assert_eq(lens[k - 1] & BH_BK_LEN_MASK, 54, "the one-piece frame after it");
		cr_assert_arr_eq(f, bufs[k - 1], 54);
	}
	cr_expect_eq(end[0]->st.tx_errors, 0);
	cr_expect_eq(end[1]->st.rx_errors, 0);
}
