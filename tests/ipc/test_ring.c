/*
 * tests/ipc/test_ring.c - SPSC rings: full/empty, wrap-around, batch
 * boundaries, the index checks against a hostile peer, the signal
 * handshake, and the page permissions each side holds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/ring.h"
#include "tests/ipc/child.h"

struct fixture {
	struct bh_region owner;   /* creator, RW */
	struct bh_region pmap;    /* producer's own mapping (RO + grants) */
	struct bh_region cmap;    /* consumer's own mapping (RO + grants) */
	struct bh_ring_producer p;
	struct bh_ring_consumer c;
	uint32_t cap;
};

static void setup_ring(struct fixture *f, uint32_t cap)
{
	f->cap = cap;
	cr_assert_eq(bh_region_create(&f->owner, "ring", BH_REGION_RINGS,
				      bh_page_size() + bh_ring_bytes(cap)),
		     0);
	cr_assert_eq(bh_ring_format(&f->owner, bh_page_size(), cap), 0);
	cr_assert_eq(bh_region_attach(&f->pmap, dup(f->owner.fd), BH_REGION_RINGS, BH_ACCESS_RO),
		     0);
	cr_assert_eq(bh_region_attach(&f->cmap, dup(f->owner.fd), BH_REGION_RINGS, BH_ACCESS_RO),
		     0);
	cr_assert_eq(bh_ring_producer_attach(&f->p, &f->pmap, bh_page_size(), cap), 0);
	cr_assert_eq(bh_ring_consumer_attach(&f->c, &f->cmap, bh_page_size(), cap), 0);
}

static void teardown_ring(struct fixture *f)
{
	bh_region_close(&f->cmap);
	bh_region_close(&f->pmap);
	bh_region_close(&f->owner);
}

static struct bh_desc mk(uint32_t seq)
{
	struct bh_desc d = {.buf = seq % 1000, .off = 64, .len = (uint16_t)(seq % 1500),
			    .aux = seq};
	return d;
}

/* The shared words, seen through the creator's mapping. */
static struct bh_ring_prod_page *prod_page(struct fixture *f)
{
	return bh_region_at(&f->owner, bh_page_size(), sizeof(struct bh_ring_prod_page));
}
static struct bh_ring_cons_page *cons_page(struct fixture *f)
{
	return bh_region_at(&f->owner, 2 * bh_page_size(), sizeof(struct bh_ring_cons_page));
}

Test(ring, format_and_attach_check_capacity)
{
	struct fixture f;
	setup_ring(&f, 8);
	struct bh_ring_producer p;
	struct bh_ring_consumer c;
	cr_assert_eq(bh_ring_producer_attach(&p, &f.owner, bh_page_size(), 16), -EPROTO);
	cr_assert_eq(bh_ring_consumer_attach(&c, &f.owner, bh_page_size(), 6), -EINVAL);
	cr_assert_eq(bh_ring_consumer_attach(&c, &f.owner, 0, 8), -EBADMSG);
	cr_assert_eq(bh_ring_consumer_attach(&c, &f.owner, 100, 8), -EINVAL);
	cr_assert_eq(bh_ring_format(&f.owner, bh_page_size(), 12), -EINVAL);
	cr_assert_eq(bh_ring_format(&f.owner, bh_page_size(), 1u << 21), -EINVAL);
	teardown_ring(&f);
}

Test(ring, empty_then_full_then_empty)
{
	struct fixture f;
	setup_ring(&f, 8);
	struct bh_desc in[10], out[10];
	for (uint32_t i = 0; i < 10; i++)
		in[i] = mk(i);
	cr_assert_eq(bh_ring_consume(&f.c, out, 10), 0);
	cr_assert_eq(bh_ring_produce(&f.p, in, 10), 8, "only capacity fits");
	cr_assert_eq(f.p.full, 1);
	cr_assert_eq(bh_ring_produce(&f.p, in, 1), 0, "full ring takes nothing");
	cr_assert_eq(bh_ring_producer_space(&f.p), 0);
	cr_assert_eq(bh_ring_consume(&f.c, out, 10), 8);
	for (uint32_t i = 0; i < 8; i++)
		cr_assert_eq(out[i].aux, i);
	cr_assert_eq(bh_ring_consume(&f.c, out, 10), 0);
	cr_assert_eq(bh_ring_producer_space(&f.p), 8);
	cr_assert_eq(f.p.rejected + f.c.rejected, 0);
	teardown_ring(&f);
}

Test(ring, wraps_around_with_every_batch_size)
{
	struct fixture f;
	setup_ring(&f, 16);
	struct bh_desc in[32], out[32];
	uint32_t next_in = 0, next_out = 0;
	/* Odd batch sizes on both sides walk every slot boundary many times,
	 * and the free-running indices wrap the ring hundreds of times. */
	for (int round = 0; round < 5000; round++) {
		unsigned n = (unsigned)(round % 17) + 1;
		for (unsigned i = 0; i < n; i++)
			in[i] = mk(next_in + i);
		unsigned k = bh_ring_produce(&f.p, in, n);
		next_in += k;
		unsigned m = (unsigned)((round * 7) % 13) + 1;
		unsigned got = bh_ring_consume(&f.c, out, m);
		for (unsigned i = 0; i < got; i++, next_out++)
			cr_assert_eq(out[i].aux, next_out, "reordered or lost at %u", next_out);
	}
	unsigned got;
	while ((got = bh_ring_consume(&f.c, out, 32)) > 0)
		for (unsigned i = 0; i < got; i++, next_out++)
			cr_assert_eq(out[i].aux, next_out);
	cr_assert_eq(next_out, next_in);
	cr_assert_gt(next_in, 16 * 100);
	teardown_ring(&f);
}

Test(ring, indices_wrap_past_2_to_the_32)
{
	struct fixture f;
	setup_ring(&f, 8);
	/* Start both counters just below the 32-bit wrap. */
	uint32_t start = UINT32_MAX - 3;
	prod_page(&f)->head = start;
	cons_page(&f)->tail = start;
	cr_assert_eq(bh_ring_producer_attach(&f.p, &f.pmap, bh_page_size(), 8), 0);
	cr_assert_eq(bh_ring_consumer_attach(&f.c, &f.cmap, bh_page_size(), 8), 0);
	struct bh_desc in[8], out[8];
	for (uint32_t i = 0; i < 8; i++)
		in[i] = mk(i);
	cr_assert_eq(bh_ring_produce(&f.p, in, 8), 8);
	cr_assert_eq(bh_ring_consume(&f.c, out, 8), 8);
	for (uint32_t i = 0; i < 8; i++)
		cr_assert_eq(out[i].aux, i);
	cr_assert_eq(f.c.tail, start + 8);
	cr_assert_eq(f.p.rejected + f.c.rejected, 0);
	teardown_ring(&f);
}

Test(ring, garbage_head_is_rejected_counted_and_survived)
{
	struct fixture f;
	setup_ring(&f, 8);
	struct bh_desc in[4] = {mk(0), mk(1), mk(2), mk(3)}, out[8];
	cr_assert_eq(bh_ring_produce(&f.p, in, 2), 2);
	uint32_t good = prod_page(&f)->head;

	/* A head claiming more than capacity: nothing is consumed. */
	prod_page(&f)->head = good + 1000000;
	cr_assert_eq(bh_ring_consume(&f.c, out, 8), 0);
	cr_assert_eq(f.c.rejected, 1);
	cr_assert_not(bh_ring_consumer_request_signal(&f.c), "an invalid head is not work");
	bh_ring_consumer_cancel_signal(&f.c);
	cr_assert_eq(f.c.rejected, 2);

	/* The producer comes back to its senses: traffic resumes. */
	prod_page(&f)->head = good;
	cr_assert_eq(bh_ring_consume(&f.c, out, 1), 1);
	cr_assert_eq(out[0].aux, 0);

	/* A head that moved backwards (retraction) is refused, but what was
	 * validated before it is still delivered. */
	prod_page(&f)->head = good - 1;
	cr_assert_eq(bh_ring_consume(&f.c, out, 8), 1);
	cr_assert_eq(out[0].aux, 1);
	cr_assert_eq(f.c.rejected, 3);

	prod_page(&f)->head = good;
	cr_assert_eq(bh_ring_produce(&f.p, in + 2, 2), 2);
	cr_assert_eq(bh_ring_consume(&f.c, out, 8), 2);
	cr_assert_eq(out[0].aux, 2);
	cr_assert_eq(out[1].aux, 3);
	teardown_ring(&f);
}

Test(ring, garbage_tail_never_lets_the_producer_overwrite)
{
	struct fixture f;
	setup_ring(&f, 8);
	struct bh_desc in[8], out[8];
	for (uint32_t i = 0; i < 8; i++)
		in[i] = mk(i);
	cr_assert_eq(bh_ring_produce(&f.p, in, 8), 8);
	/* The consumer claims to have consumed far more than was published. */
	cons_page(&f)->tail = 1000;
	cr_assert_eq(bh_ring_produce(&f.p, in, 1), 0, "no room was really made");
	cr_assert_eq(f.p.rejected, 1);
	/* ...and a tail that went backwards. */
	cons_page(&f)->tail = (uint32_t)-3;
	cr_assert_eq(bh_ring_producer_space(&f.p), 0);
	cr_assert_eq(f.p.rejected, 2);
	cons_page(&f)->tail = 0;
	cr_assert_eq(bh_ring_consume(&f.c, out, 3), 3);
	cr_assert_eq(bh_ring_producer_space(&f.p), 3);
	teardown_ring(&f);
}

Test(ring, attach_refuses_indices_that_break_the_invariant)
{
	struct fixture f;
	setup_ring(&f, 8);
	prod_page(&f)->head = 100;
	cons_page(&f)->tail = 50;
	struct bh_ring_producer p;
	cr_assert_eq(bh_ring_producer_attach(&p, &f.pmap, bh_page_size(), 8), -EPROTO);
	teardown_ring(&f);
}

Test(ring, signal_request_recheck_cancel)
{
	struct fixture f;
	setup_ring(&f, 8);
	struct bh_desc d = mk(1), out[8];
	cr_assert_not(bh_ring_producer_need_signal(&f.p));
	cr_assert_not(bh_ring_consumer_request_signal(&f.c), "empty: safe to sleep");
	cr_assert(bh_ring_producer_need_signal(&f.p));
	cr_assert_eq(bh_ring_produce(&f.p, &d, 1), 1);
	cr_assert(bh_ring_consumer_request_signal(&f.c), "re-check sees the new work");
	bh_ring_consumer_cancel_signal(&f.c);
	cr_assert_not(bh_ring_producer_need_signal(&f.p));
	cr_assert_eq(bh_ring_consume(&f.c, out, 8), 1);
	teardown_ring(&f);
}

static void producer_writes_tail(void *arg)
{
	struct fixture *f = arg;
	((volatile uint32_t *)f->p.cons)[0] = 5;
}
static void consumer_writes_slot(void *arg)
{
	struct fixture *f = arg;
	((volatile uint32_t *)f->c.slots)[0] = 5;
}
static void consumer_writes_head(void *arg)
{
	struct fixture *f = arg;
	((volatile uint32_t *)f->c.prod)[0] = 5;
}
static void producer_writes_own_pages(void *arg)
{
	struct fixture *f = arg;
	struct bh_desc d = mk(3);
	bh_ring_produce(&f->p, &d, 1);
}
static void consumer_writes_own_page(void *arg)
{
	struct fixture *f = arg;
	struct bh_desc d;
	bh_ring_consume(&f->c, &d, 1);
	bh_ring_consumer_request_signal(&f->c);
}

Test(ring, each_side_can_write_only_its_own_pages)
{
	struct fixture f;
	setup_ring(&f, 8);
	cr_assert_eq(bh_test_child_signal(producer_writes_own_pages, &f), 0);
	cr_assert_eq(bh_test_child_signal(consumer_writes_own_page, &f), 0);
	cr_assert_eq(bh_test_child_signal(producer_writes_tail, &f), SIGSEGV);
	cr_assert_eq(bh_test_child_signal(consumer_writes_slot, &f), SIGSEGV);
	cr_assert_eq(bh_test_child_signal(consumer_writes_head, &f), SIGSEGV);
	teardown_ring(&f);
}
