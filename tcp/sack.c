/*
 * tcp/sack.c - selective acknowledgements (RFC 2018) both ways.
 *
 * Send side: the RFC 6675 scoreboard, a short sorted array of the ranges
 * the peer has SACKed above SND.UNA (struct tsb), and D-SACK blocks
 * recognised (RFC 2883 4). What is lost, the pipe and what recovery
 * resends are RACK's (rack.c, over its send records, which take their
 * SACKed marks from this scoreboard); when recovery starts is ack.c's.
 *
 * Receive side: the blocks we put in an ACK, built from the out-of-order
 * queue (sorted, disjoint) with the block of the latest arrival first.
 *
 * SACK blocks arrive from the wire: each is checked against what we have
 * sent (RFC 2018 leaves bogus blocks to the sender's judgement; we drop
 * them) and the array is bounded, so a peer cannot make it grow.
 */
#include "tcp/tcp_impl.h"

/* ---- send side ---- */

static void sb_add(struct tconn *c, bh_seq l, bh_seq r)
{
	/* Merge with every range it touches, then insert in order. */
	unsigned i = 0, n = c->nsb;
	struct tsb out[BH_TCP_SB + 1];
	unsigned k = 0;
	bool placed = false;
	for (i = 0; i < n; i++) {
		struct tsb b = c->sb[i];
		if (bh_seq_lt(b.r, l)) {
			out[k++] = b;
		} else if (bh_seq_gt(b.l, r)) {
			if (!placed) {
				out[k++] = (struct tsb){l, r};
				placed = true;
			}
			out[k++] = b;
		} else {
			l = bh_seq_min(l, b.l);
			r = bh_seq_max(r, b.r);
		}
	}
	if (!placed)
		out[k++] = (struct tsb){l, r};
	/* Full: forget the highest range (a needless resend at worst). */
	if (k > BH_TCP_SB)
		k = BH_TCP_SB;
	for (i = 0; i < k; i++)
		c->sb[i] = out[i];
	c->nsb = (uint8_t)k;
}

uint32_t bh_tcp__sb_sacked(const struct tconn *c)
{
	uint32_t n = 0;
	for (unsigned i = 0; i < c->nsb; i++)
		n += bh_seq_span(c->sb[i].l, c->sb[i].r);
	return n;
}

uint32_t bh_tcp__sb_update(struct tconn *c, const struct bh_tcp_opts *o, bh_seq ack,
			   unsigned *bad)
{
	if (!c->sack_ok || !o->nsack)
		return 0;
	uint32_t before = bh_tcp__sb_sacked(c);
	bh_seq una = bh_seq_max(ack, c->snd_una);
	for (unsigned i = 0; i < o->nsack && i < BH_TCP_MAX_SACK; i++) {
		bh_seq l = o->sack[i].left, r = o->sack[i].right;
		/* Only data we sent and that is not yet cumulatively
		 * acknowledged; a D-SACK (RFC 2883) below the ACK is not
		 * used. */
		if (!bh_seq_lt(l, r) || bh_seq_gt(r, c->snd_max)) {
			(*bad)++;
			continue;
		}
		if (bh_seq_leq(r, una))
			continue;
		if (bh_seq_lt(l, una))
			l = una;
		sb_add(c, l, r);
	}
	uint32_t after = bh_tcp__sb_sacked(c);
	return after > before ? after - before : 0;
}

void bh_tcp__sb_trim(struct tconn *c)
{
	unsigned k = 0;
	for (unsigned i = 0; i < c->nsb; i++) {
		struct tsb b = c->sb[i];
		if (bh_seq_leq(b.r, c->snd_una))
			continue;
		if (bh_seq_lt(b.l, c->snd_una))
			b.l = c->snd_una;
		c->sb[k++] = b;
	}
	c->nsb = (uint8_t)k;
}

const struct tsb *bh_tcp__sb_find(const struct tconn *c, bh_seq seq)
{
	for (unsigned i = 0; i < c->nsb; i++)
		if (bh_seq_in(seq, c->sb[i].l, c->sb[i].r))
			return &c->sb[i];
	return NULL;
}

bh_seq bh_tcp__sb_next(const struct tconn *c, bh_seq seq)
{
	for (unsigned i = 0; i < c->nsb; i++)
		if (bh_seq_gt(c->sb[i].l, seq))
			return c->sb[i].l;
	return c->snd_max;
}

uint32_t bh_tcp__sb_holes(const struct tconn *c)
{
	uint32_t n = 0;
	bh_seq at = c->snd_una;
	for (unsigned i = 0; i < c->nsb; i++) {
		if (bh_seq_lt(at, c->sb[i].l))
			n++;
		at = c->sb[i].r;
	}
	return n;
}

bool bh_tcp__is_dsack(const struct bh_tcp_opts *o, bh_seq ack)
{
	if (!o->nsack || !bh_seq_lt(o->sack[0].left, o->sack[0].right))
		return false;
	if (bh_seq_leq(o->sack[0].right, ack))
		return true;
	return o->nsack > 1 && bh_seq_geq(o->sack[0].left, o->sack[1].left) &&
	       bh_seq_leq(o->sack[0].right, o->sack[1].right);
}

/* ---- receive side ---- */

void bh_tcp__sack_note(struct tconn *c, bh_seq seq)
{
	unsigned n = c->nrecent < BH_TCP_MAX_SACK ? c->nrecent : BH_TCP_MAX_SACK - 1;
	for (unsigned i = n; i > 0; i--)
		c->sack_recent[i] = c->sack_recent[i - 1];
	c->sack_recent[0] = seq;
	if (c->nrecent < BH_TCP_MAX_SACK)
		c->nrecent++;
}

/* The contiguous run of the out-of-order queue holding seq (any run if
 * `seq_any`), skipping runs already in out[0..n). */
static bool run_of(const struct bh_tcp *tcp, const struct tconn *c, bh_seq seq, bool seq_any,
		   const struct bh_sack_block *out, unsigned n, struct bh_sack_block *run)
{
	uint32_t i = c->oooq.head;
	while (i != NONE) {
		const struct tseg *s = &tcp->seg[i];
		struct bh_sack_block b = {s->seq, bh_seq_add(s->seq, s->len)};
		i = s->next;
		while (i != NONE && tcp->seg[i].seq == b.right) {
			b.right = bh_seq_add(b.right, tcp->seg[i].len);
			i = tcp->seg[i].next;
		}
		bool dup = false;
		for (unsigned k = 0; k < n; k++)
			dup |= out[k].left == b.left;
		if (dup)
			continue;
		if (seq_any || bh_seq_in(seq, b.left, b.right)) {
			*run = b;
			return true;
		}
	}
	return false;
}

unsigned bh_tcp__sack_blocks(const struct bh_tcp *tcp, const struct tconn *c,
			     struct bh_sack_block *out, unsigned max)
{
	unsigned n = 0;
	if (!c->sack_ok || !c->oooq.count)
		return 0;
	/* RFC 2018 4: the block holding the newest arrival first, then the
	 * most recently reported ones, then the rest in order. */
	for (unsigned r = 0; r < c->nrecent && n < max; r++)
		if (run_of(tcp, c, c->sack_recent[r], false, out, n, &out[n]))
			n++;
	while (n < max && run_of(tcp, c, 0, true, out, n, &out[n]))
		n++;
	return n;
}
