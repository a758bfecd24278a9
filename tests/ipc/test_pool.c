/*
 * tests/ipc/test_pool.c - buffer pools: allocation, the ownership table
 * (lend, take back, reclaim from a dead peer), and read-only views.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/pool.h"
#include "tests/ipc/child.h"

static const struct bh_pool_geom G = {.nbufs = 64, .buf_size = 2048, .headroom = 128};

Test(pool, geometry_is_checked)
{
	struct bh_pool p;
	struct bh_pool_geom bad[] = {
	    {.nbufs = 0, .buf_size = 2048},
	    {.nbufs = 4, .buf_size = 100},
	    {.nbufs = 4, .buf_size = 32},
	    {.nbufs = 4, .buf_size = 2048, .headroom = 2048},
	    {.nbufs = BH_POOL_MAX_BUFS + 1, .buf_size = 2048},
	    {.nbufs = 4, .buf_size = 128 * 1024},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(bh_pool_create(&p, "bad", &bad[i]), -EINVAL, "geometry %zu", i);
}

Test(pool, alloc_until_empty_then_free)
{
	struct bh_pool p;
	cr_assert_eq(bh_pool_create(&p, "p", &G), 0);
	uint32_t seen[64] = {0}, b;
	for (int i = 0; i < 64; i++) {
		cr_assert_eq(bh_pool_alloc(&p, &b), 0);
		cr_assert_lt(b, 64);
		cr_assert_eq(seen[b]++, 0, "buffer %u handed out twice", b);
	}
	cr_assert_eq(bh_pool_alloc(&p, &b), -ENOBUFS);
	cr_assert_eq(p.stats.alloc_fail, 1);
	cr_assert_eq(bh_pool_held_by(&p, BH_HOLDER_OWNER), 64);
	for (uint32_t i = 0; i < 64; i++)
		cr_assert_eq(bh_pool_free(&p, i), 0);
	cr_assert_eq(bh_pool_free(&p, 3), -EINVAL, "double free refused");
	cr_assert_eq(bh_pool_free(&p, 64), -EINVAL);
	cr_assert_eq(bh_pool_held_by(&p, BH_HOLDER_FREE), 64);
	bh_pool_destroy(&p);
}

Test(pool, ownership_refuses_forged_and_double_returns)
{
	struct bh_pool p;
	cr_assert_eq(bh_pool_create(&p, "own", &G), 0);
	uint32_t a, b;
	cr_assert_eq(bh_pool_alloc(&p, &a), 0);
	cr_assert_eq(bh_pool_alloc(&p, &b), 0);
	cr_assert_eq(bh_pool_lend(&p, a, 2), 0);
	cr_assert_eq(bh_pool_lend(&p, b, 3), 0);
	cr_assert_eq(bh_pool_lend(&p, a, 3), -EINVAL, "already lent");
	cr_assert_eq(bh_pool_lend(&p, a, BH_HOLDER_OWNER), -EINVAL);

	cr_assert_eq(bh_pool_take_back(&p, b, 2), -EINVAL, "peer 2 does not hold b");
	cr_assert_eq(bh_pool_take_back(&p, 9999, 2), -EINVAL, "out of range");
	cr_assert_eq(bh_pool_take_back(&p, 5, 2), -EINVAL, "a free buffer");
	cr_assert_eq(bh_pool_take_back(&p, a, 2), 0);
	cr_assert_eq(bh_pool_take_back(&p, a, 2), -EINVAL, "double return");
	cr_assert_eq(p.stats.bad_return, 4);
	cr_assert_eq(p.stats.returned, 1);
	bh_pool_destroy(&p);
}

Test(pool, reclaim_takes_back_everything_a_dead_peer_held)
{
	struct bh_pool p;
	cr_assert_eq(bh_pool_create(&p, "rec", &G), 0);
	uint32_t b;
	for (int i = 0; i < 40; i++) {
		cr_assert_eq(bh_pool_alloc(&p, &b), 0);
		cr_assert_eq(bh_pool_lend(&p, b, i % 2 ? 2 : 3), 0);
	}
	cr_assert_eq(bh_pool_held_by(&p, 2), 20);
	cr_assert_eq(bh_pool_reclaim(&p, 2), 20);
	cr_assert_eq(bh_pool_held_by(&p, 2), 0);
	cr_assert_eq(bh_pool_held_by(&p, 3), 20, "the other peer's buffers are untouched");
	cr_assert_eq(bh_pool_held_by(&p, BH_HOLDER_FREE), 44);
	cr_assert_eq(bh_pool_reclaim(&p, BH_HOLDER_OWNER), 0, "owner is not a peer");
	/* every free buffer can be allocated again, no duplicates */
	uint32_t n = 0;
	while (bh_pool_alloc(&p, &b) == 0)
		n++;
	cr_assert_eq(n, 44);
	bh_pool_destroy(&p);
}

Test(pool, suspect_buffers_wait_for_every_suspect_and_disclaims_touch_only_them)
{
	struct bh_pool p;
	cr_assert_eq(bh_pool_create(&p, "sus", &G), 0);
	uint32_t b[4];
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(bh_pool_alloc(&p, &b[i]), 0);
		cr_assert_eq(bh_pool_lend(&p, b[i], i < 3 ? 2 : 3), 0);
	}
	/* peer 2 is replaced: what it held becomes suspected by it */
	cr_assert_eq(bh_pool_suspect_peer(&p, 2), 3);
	cr_assert(bh_pool_suspected_by(&p, b[0], 2));
	cr_assert_not(bh_pool_suspected_by(&p, b[3], 2), "peer 3's buffer is untouched");
	cr_assert_eq(bh_pool_disclaim(&p, b[0], 2), 0, "its disclaim settles it");
	cr_assert_eq(bh_pool_free(&p, b[0]), 0);
	cr_assert_eq(bh_pool_take_back(&p, b[1], 2), 0, "a late return settles it too");
	cr_assert_eq(bh_pool_free(&p, b[1]), 0);
	cr_assert_eq(bh_pool_disclaim(&p, b[3], 3), -ENOENT,
		     "a disclaim of a buffer held for real changes nothing");
	cr_assert_eq(bh_pool_take_back(&p, b[3], 3), 0, "its real return still works");
	cr_assert_eq(bh_pool_disclaim(&p, b[2], 3), -ENOENT, "not a suspect of b[2]");
	cr_assert_eq(bh_pool_take_back(&p, b[2], 3), -EINVAL);
	cr_assert_eq(p.stats.disclaim_noop, 2);

	/* a new owner: every buffer suspected by peers 2 and 4, none free,
	 * but for what it allocated itself already */
	uint32_t mine;
	cr_assert_eq(bh_pool_alloc(&p, &mine), 0);
	bh_pool_suspect_all(&p, bh_holder_bit(2) | bh_holder_bit(4));
	uint32_t x;
	cr_assert_eq(bh_pool_alloc(&p, &x), -ENOBUFS);
	cr_assert_eq(bh_pool_free(&p, mine), 0, "its own allocation stayed its own");
	cr_assert_eq(bh_pool_alloc(&p, &x), 0);
	cr_assert_eq(x, mine);
	cr_assert_eq(bh_pool_free(&p, x), 0);
	cr_assert_eq(bh_pool_alloc(&p, &x), 0);
	cr_assert_eq(bh_pool_disclaim(&p, 7, 2), 1, "peer 4 may still hold it");
	cr_assert_eq(bh_pool_alloc(&p, &x), -ENOBUFS);
	cr_assert_eq(bh_pool_disclaim(&p, 7, 2), -ENOENT, "a second disclaim is nothing");
	cr_assert_eq(bh_pool_take_back(&p, 7, 4), 0, "peer 4 returns it: settled");
	cr_assert_eq(bh_pool_free(&p, 7), 0);
	uint32_t y;
	cr_assert_eq(bh_pool_alloc(&p, &y), 0);
	cr_assert_eq(y, 7, "only the settled buffer is free");
	cr_assert_eq(bh_pool_lend(&p, 8, 2), -EINVAL, "a suspect buffer is never lent");
	bh_pool_destroy(&p);
}

static void write_byte(void *p)
{
	*(volatile uint8_t *)p = 1;
}

Test(pool, view_checks_geometry_and_bounds)
{
	struct bh_pool p;
	cr_assert_eq(bh_pool_create(&p, "view", &G), 0);
	uint32_t b;
	cr_assert_eq(bh_pool_alloc(&p, &b), 0);
	memcpy(bh_pool_buf(&p, b) + 128, "hello", 6);

	struct bh_pool_view v;
	struct bh_pool_geom other = G;
	other.nbufs = 128;
	int ro = bh_region_readonly_fd(p.region.fd);
	cr_assert_eq(bh_pool_view_attach(&v, ro, &other, BH_ACCESS_RO), -EPROTO);
	cr_assert_eq(bh_pool_view_attach(&v, ro, &G, BH_ACCESS_RW), -EACCES);
	cr_assert_eq(bh_pool_view_attach(&v, ro, &G, BH_ACCESS_RO), 0);

	struct bh_desc d = {.buf = b, .off = 128, .len = 6};
	cr_assert_str_eq((const char *)bh_pool_view_data(&v, &d), "hello");
	d.buf = 64;
	cr_assert_null(bh_pool_view_data(&v, &d));
	d.buf = b;
	d.off = 2048 - 5;
	cr_assert_null(bh_pool_view_data(&v, &d));
	d.off = 2042;
	cr_assert_not_null(bh_pool_view_data(&v, &d));

	/* the view is read-only for real */
	cr_assert_eq(bh_test_child_signal(write_byte, v.data), SIGSEGV);
	bh_pool_view_detach(&v);
	bh_pool_destroy(&p);
}

Test(pool, no_reader_can_write_the_pool_even_by_reopening_it)
{
	struct bh_pool p;
	cr_assert_eq(bh_pool_create(&p, "sealed", &G), 0);
	/* the owner's own mapping still writes */
	bh_pool_buf(&p, 0)[0] = 42;

	int ro = bh_region_readonly_fd(p.region.fd);
	cr_assert_geq(ro, 0);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", ro);
	int rw = open(path, O_RDWR | O_CLOEXEC);
	/* Either no writable descriptor can be had at all, or it cannot map
	 * or write: both are the protection; anything else fails. */
	if (rw < 0) {
		cr_assert(errno == EACCES || errno == EPERM, "reopen: %s", strerror(errno));
	} else {
		void *m = mmap(NULL, p.region.size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
		cr_assert_eq(m, MAP_FAILED, "a writable mapping of a sealed pool");
		cr_assert_eq(errno, EPERM);
		cr_assert_eq(pwrite(rw, "x", 1, 4096), -1, "write() to a sealed pool");
		close(rw);
	}
	/* nor through the owner's own descriptor */
	void *m = mmap(NULL, p.region.size, PROT_READ | PROT_WRITE, MAP_SHARED, p.region.fd, 0);
	cr_assert_eq(m, MAP_FAILED);
	cr_assert_eq(bh_pool_buf(&p, 0)[0], 42);
	close(ro);
	bh_pool_destroy(&p);
}
