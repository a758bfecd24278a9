/*
 * ip/reasm.c - IPv4 reassembly (RFC 791 3.2, RFC 1122 3.3.2) without
 * copies: each fragment's frame buffer is held and the finished datagram
 * goes up as a list of pieces.
 *
 * Defences, each counted:
 *   - bounded: at most reasm_datagrams in progress, reasm_bytes of buffer
 *     memory held in all (the oldest datagrams give way), max_pieces per
 *     datagram;
 *   - RFC 5722 (written for IPv6, applied here as Linux does for IPv4 since
 *     2018): a fragment that overlaps another abandons the datagram, and
 *     its later fragments are dropped until its timer runs out; an exact
 *     duplicate is dropped alone;
 *   - RFC 1858: a first fragment too short to hold the transport header
 *     abandons the datagram;
 *   - fragments that are empty, not a multiple of 8 (all but the last), or
 *     disagree on where the datagram ends abandon it; nothing may end past
 *     65535 bytes (checked by the parser).
 *   - a datagram not complete in reasm_timeout_ms is dropped; if its first
 *     fragment came, the sender gets time exceeded (RFC 792, RFC 1122
 *     3.3.2).
 */
#include <string.h>

#include "ip/ip_impl.h"

static void drop_frags(struct bh_ip *ip, struct reasm *r)
{
	for (uint16_t i = 0; i < r->nfrags; i++)
		bh_ip__release(ip, &r->frag[i].pkt);
	ip->reasm_bytes -= r->bytes;
	r->bytes = 0;
	r->nfrags = 0;
}

/* Fragment zero has come (the fragments are kept sorted). */
static bool has_first(const struct reasm *r) { return r->nfrags && r->frag[0].start == 0; }

/* Abandons a datagram: buffers go back, the key stays as a tombstone. */
static void kill(struct bh_ip *ip, struct reasm *r)
{
	drop_frags(ip, r);
	r->dead = true;
}

static void release_slot(struct bh_ip *ip, struct reasm *r)
{
	drop_frags(ip, r);
	r->used = false;
	r->dead = false;
}

static struct reasm *find(struct bh_ip *ip, const struct bh_ipv4_repr *h)
{
	for (uint32_t i = 0; i < ip->cfg.reasm_datagrams; i++) {
		struct reasm *r = &ip->reasm[i];
		if (r->used && r->id == h->id && r->src == h->src && r->dst == h->dst &&
		    r->proto == h->proto)
			return r;
	}
	return NULL;
}

/* The oldest datagram other than `keep`, tombstones first; or, with
 * holding, the oldest that holds buffers. */
static struct reasm *oldest(struct bh_ip *ip, const struct reasm *keep, bool holding)
{
	struct reasm *o = NULL;
	for (uint32_t i = 0; i < ip->cfg.reasm_datagrams; i++) {
		struct reasm *r = &ip->reasm[i];
		if (!r->used || r == keep || (holding && r->bytes == 0))
			continue;
		/* Every datagram has the same timeout: the earliest
		 * deadline is the oldest. */
		if (!o || (r->dead && !o->dead) || (r->dead == o->dead && r->deadline < o->deadline))
			o = r;
	}
	return o;
}

static struct reasm *new_slot(struct bh_ip *ip, uint64_t now, const struct bh_ipv4_repr *h,
			      enum bh_ip_cast cast)
{
	struct reasm *r = NULL;
	for (uint32_t i = 0; i < ip->cfg.reasm_datagrams && !r; i++)
		if (!ip->reasm[i].used)
			r = &ip->reasm[i];
	if (!r) {
		r = oldest(ip, NULL, false);
		if (!r->dead)
			ip->ctr.frag_budget++;
		release_slot(ip, r);
	}
	struct reasm_frag *frag = r->frag;
	memset(r, 0, sizeof *r);
	r->frag = frag;
	r->used = true;
	r->src = h->src;
	r->dst = h->dst;
	r->proto = h->proto;
	r->id = h->id;
	r->deadline = now + ip->cfg.reasm_timeout_ms;
	r->cast = cast;
	return r;
}

static bool complete(const struct reasm *r)
{
	if (!r->total)
		return false;
	uint32_t at = 0;
	for (uint16_t i = 0; i < r->nfrags; i++) {
		if (r->frag[i].start != at)
			return false;
		at = r->frag[i].end;
	}
	return at == r->total;
}

static void finish(struct bh_ip *ip, uint64_t now, struct reasm *r)
{
	/* Each fragment ended within 65535 bytes by its own header length; the
	 * datagram must too, with the first fragment's (RFC 791; Linux's
	 * ip_frag_reasm checks the same). */
	uint8_t hlen = r->first_hdr.hlen;
	if (hlen + r->total > BH_IPV4_MAX_LEN) {
		ip->ctr.frag_bad++;
		kill(ip, r);
		return;
	}
	struct reasm_frag *f0 = &r->frag[0];
	struct ip_dgram d = {.hdr = r->first_hdr, .iph = f0->pkt.base + f0->pkt.off - hlen,
			     .cast = r->cast};
	d.hdr.mf = false;
	d.hdr.frag_off = 0;
	d.hdr.total_len = (uint16_t)(hlen + r->total);
	d.hdr.payload_len = (uint16_t)r->total;
	ip->rx.npieces = r->nfrags;
	ip->rx.len = r->total;
	ip->rx.csum_valid = false;
	for (uint16_t i = 0; i < r->nfrags; i++)
		ip->rx.piece[i] = r->frag[i].pkt;
	/* The pieces now belong to the transport path. */
	ip->reasm_bytes -= r->bytes;
	r->bytes = 0;
	r->nfrags = 0;
	r->used = false;
	ip->ctr.reasm_ok++;
	bh_ip__transport_input(ip, now, &d);
}

bool bh_reasm__input(struct bh_ip *ip, uint64_t now, const struct bh_pkt *frame,
		     const struct bh_ipv4_repr *h, enum bh_ip_cast cast)
{
	ip->ctr.frag_rx++;
	struct reasm *r = find(ip, h);
	if (r && r->dead) {
		ip->ctr.frag_dead++;
		return false;
	}
	uint32_t start = h->frag_off, end = start + h->payload_len;
	/* RFC 791 3.2: all fragments but the last carry multiples of 8. */
	bool malformed = h->payload_len == 0 || (h->mf && (h->payload_len & 7));
	bool tiny = start == 0 && h->payload_len < bh_ip__transport_min(h->proto);
	if (malformed || tiny) {
		if (malformed)
			ip->ctr.frag_bad++;
		else
			ip->ctr.frag_tiny++;
		if (!r)
			r = new_slot(ip, now, h, cast);
		kill(ip, r);
		return false;
	}
	if (!r)
		r = new_slot(ip, now, h, cast);

	/* Where the datagram ends must be consistent. */
	bool bad_end = false;
	if (!h->mf) {
		bad_end = (r->total && r->total != end) ||
			  (r->nfrags && r->frag[r->nfrags - 1].end > end);
	} else {
		bad_end = r->total && end > r->total;
	}
	if (bad_end) {
		ip->ctr.frag_bad++;
		kill(ip, r);
		return false;
	}

	/* The last fragment fixes the end even if its bytes came before
	 * under MF (then it is a duplicate below, and may complete). */
	if (!h->mf)
		r->total = end;

	/* Position by start; check the neighbours for overlap. */
	uint16_t pos = 0;
	while (pos < r->nfrags && r->frag[pos].start < start)
		pos++;
	if (pos < r->nfrags && r->frag[pos].start == start && r->frag[pos].end == end) {
		ip->ctr.frag_dup++;
		if (complete(r))
			finish(ip, now, r);
		return false;
	}
	if ((pos > 0 && r->frag[pos - 1].end > start) || (pos < r->nfrags && r->frag[pos].start < end)) {
		ip->ctr.frag_overlap++;
		kill(ip, r);
		return false;
	}
	if (r->nfrags == ip->cfg.max_pieces) {
		ip->ctr.frag_too_many++;
		kill(ip, r);
		return false;
	}
	/* The memory budget: older datagrams give way; if this one alone
	 * is too big, it goes. */
	while (ip->reasm_bytes + frame->size > ip->cfg.reasm_bytes) {
		struct reasm *o = oldest(ip, r, true);
		if (!o)
			break;
		ip->ctr.frag_budget++;
		release_slot(ip, o);
	}
	if (ip->reasm_bytes + frame->size > ip->cfg.reasm_bytes) {
		ip->ctr.frag_budget++;
		kill(ip, r);
		return false;
	}

	memmove(&r->frag[pos + 1], &r->frag[pos], (size_t)(r->nfrags - pos) * sizeof r->frag[0]);
	struct reasm_frag *f = &r->frag[pos];
	f->start = (uint16_t)start;
	f->end = (uint16_t)end;
	f->pkt = *frame;
	f->pkt.off = (uint32_t)(h->payload - frame->base);
	f->pkt.len = h->payload_len;
	r->nfrags++;
	r->bytes += frame->size;
	ip->reasm_bytes += frame->size;
	if (start == 0)
		r->first_hdr = *h;
	if (complete(r))
		finish(ip, now, r);
	return true;
}

void bh_reasm__tick(struct bh_ip *ip, uint64_t now, uint64_t *next)
{
	for (uint32_t i = 0; i < ip->cfg.reasm_datagrams; i++) {
		struct reasm *r = &ip->reasm[i];
		if (!r->used)
			continue;
		if (now < r->deadline) {
			if (r->deadline < *next)
				*next = r->deadline;
			continue;
		}
		if (!r->dead) {
			ip->ctr.frag_timeouts++;
			/* RFC 1122 3.3.2: time exceeded only if fragment zero
			 * arrived (it holds what the error must quote). */
			if (has_first(r)) {
				struct reasm_frag *f0 = &r->frag[0];
				struct ip_dgram d = {
					.hdr = r->first_hdr,
					.iph = f0->pkt.base + f0->pkt.off - r->first_hdr.hlen,
					.cast = r->cast,
				};
				bh_icmp__error(ip, now, BH_ICMP_TIME_EXCEEDED, BH_ICMP_EXC_FRAGTIME,
					       &d, bh_pkt_data(&f0->pkt), f0->pkt.len);
			}
		}
		release_slot(ip, r);
	}
}

void bh_reasm__flush(struct bh_ip *ip)
{
	for (uint32_t i = 0; i < ip->cfg.reasm_datagrams; i++)
		if (ip->reasm[i].used)
			release_slot(ip, &ip->reasm[i]);
}
