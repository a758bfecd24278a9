/*
 * ip/arp.c - ARP (RFC 826) with a bounded cache, a bounded queue of
 * datagrams waiting for resolution, aging, and RFC 5227 announcements and
 * conflict detection.
 *
 * Cache states: INCOMPLETE (requests going out, datagrams queued),
 * REACHABLE (confirmed within arp_reachable_ms), STALE (still used; the
 * next use sends a unicast refresh request, and an entry that neither
 * answers nor is used goes away).
 *
 * Poisoning: RFC 826's merge rule updates only entries that exist; a new
 * entry is made only when we ask (INCOMPLETE) or when a host asks us
 * (its request proves it wants to talk to us; the entry starts STALE and
 * may only take a free or stale slot). A reply nobody asked for is
 * counted and ignored. A resolved entry's MAC changes at most once per
 * second (Linux's locktime), so the first answer to a request wins.
 */
#include <string.h>

#include "ip/ip_impl.h"

#define ARP_LOCKTIME_MS 1000
#define ARP_DEFEND_INTERVAL_MS 10000 /* RFC 5227 1.1 DEFEND_INTERVAL */
#define ARP_DELAY_MS 5000             /* before refreshing a stale entry */

static struct arp_entry *arp_find(struct bh_ip *ip, bh_ip4 addr)
{
	struct arp_entry *e = &ip->arp[ip->last_arp];
	if (e->state != BH_ARP_FREE && e->addr == addr)
		return e;
	for (uint32_t i = 0; i < ip->cfg.arp_entries; i++) {
		e = &ip->arp[i];
		if (e->state != BH_ARP_FREE && e->addr == addr) {
			ip->last_arp = i;
			return e;
		}
	}
	return NULL;
}

/* A free slot, or a victim: stale entries before reachable ones, and among
 * those the least recently used. Pending entries are never taken. For a
 * host that merely asked us (may_evict_live false), only stale entries
 * idle for arp_reachable_ms and not being checked may go, so a flood of
 * requests cannot push out the hosts we are talking to. */
static struct arp_entry *arp_slot(struct bh_ip *ip, uint64_t now, bool may_evict_live)
{
	struct arp_entry *victim = NULL;
	for (uint32_t i = 0; i < ip->cfg.arp_entries; i++) {
		struct arp_entry *e = &ip->arp[i];
		if (e->state == BH_ARP_FREE)
			return e;
		if (e->state == BH_ARP_INCOMPLETE)
			continue;
		if (!may_evict_live &&
		    (e->state != BH_ARP_STALE || e->probing ||
		     now - e->last_used < ip->cfg.arp_reachable_ms))
			continue;
		bool e_stale = e->state == BH_ARP_STALE;
		bool v_stale = victim && victim->state == BH_ARP_STALE;
		if (!victim || (e_stale && !v_stale) ||
		    (e_stale == v_stale && e->last_used < victim->last_used))
			victim = e;
	}
	if (victim)
		ip->ctr.arp_evicted++;
	return victim;
}

static void send_arp(struct bh_ip *ip, uint16_t op, const struct bh_mac *eth_dst,
		     const struct bh_mac *tha, bh_ip4 tpa, bh_ip4 spa)
{
	struct bh_pkt f;
	if (!bh_ip__alloc(ip, &f))
		return;
	if (f.size - f.off + BH_IP_HEADROOM < BH_ETH_HLEN + BH_ARP_LEN) {
		bh_ip__release(ip, &f);
		return;
	}
	f.off -= BH_IP_HEADROOM;
	uint8_t *p = bh_pkt_data(&f);
	struct bh_eth_repr eth = {.dst = *eth_dst, .src = ip->cfg.mac, .type = BH_ETHERTYPE_ARP};
	bh_eth_emit(p, &eth);
	struct bh_arp_repr a = {.op = op, .sha = ip->cfg.mac, .tha = *tha, .spa = spa, .tpa = tpa};
	bh_arp_emit(p + BH_ETH_HLEN, &a);
	f.len = BH_ETH_HLEN + BH_ARP_LEN;
	if (op == BH_ARP_REQUEST)
		ip->ctr.arp_requests_tx++;
	else
		ip->ctr.arp_replies_tx++;
	bh_ip__transmit(ip, &f);
}

static const struct bh_mac mac_zero = {{0}};
static const struct bh_mac mac_bcast = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

static void request(struct bh_ip *ip, bh_ip4 target, const struct bh_mac *unicast)
{
	send_arp(ip, BH_ARP_REQUEST, unicast ? unicast : &mac_bcast, &mac_zero, target,
		 ip->cfg.addr);
}

/* RFC 5227 2.3: an announcement is a request with our address as both
 * sender and target. */
void bh_arp__announce(struct bh_ip *ip)
{
	send_arp(ip, BH_ARP_REQUEST, &mac_bcast, &mac_zero, ip->cfg.addr, ip->cfg.addr);
}

static void send_frame(struct bh_ip *ip, struct bh_pkt *frame, const struct bh_mac *dst)
{
	uint8_t *p = bh_pkt_data(frame);
	struct bh_eth_repr eth = {.dst = *dst, .src = ip->cfg.mac, .type = BH_ETHERTYPE_IPV4};
	bh_eth_emit(p, &eth);
	bh_ip__transmit(ip, frame);
}

/* Sends every datagram queued for entry e, oldest first. */
static void drain(struct bh_ip *ip, struct arp_entry *e)
{
	uint32_t idx = (uint32_t)(e - ip->arp);
	while (e->queued) {
		struct arp_wait *w = NULL;
		for (uint32_t i = 0; i < ip->cfg.arp_queue; i++) {
			struct arp_wait *c = &ip->waitq[i];
			if (c->used && c->entry == idx && (!w || c->seq < w->seq))
				w = c;
		}
		if (!w)
			break; /* cannot happen: queued counts the slots */
		w->used = false;
		e->queued--;
		ip->nwaiting--;
		send_frame(ip, &w->frame, &e->mac);
	}
}

/* Drops the entry's queue, reporting each datagram as host unreachable.
 * Two passes: the entry is freed and its datagrams detached before any
 * event goes up, so a transport that sends again from the event handler
 * starts a fresh resolution instead of joining a queue being dropped. */
#define WAIT_DETACHED UINT32_MAX

static void fail(struct bh_ip *ip, struct arp_entry *e)
{
	uint32_t idx = (uint32_t)(e - ip->arp);
	for (uint32_t i = 0; i < ip->cfg.arp_queue && e->queued; i++) {
		struct arp_wait *w = &ip->waitq[i];
		if (w->used && w->entry == idx) {
			w->entry = WAIT_DETACHED;
			e->queued--;
		}
	}
	e->state = BH_ARP_FREE;
	e->queued = 0;
	for (uint32_t i = 0; i < ip->cfg.arp_queue; i++) {
		struct arp_wait *w = &ip->waitq[i];
		if (!w->used || w->entry != WAIT_DETACHED)
			continue;
		w->used = false;
		ip->nwaiting--;
		ip->ctr.arp_queue_drops++;
		struct bh_ip_event ev = {
			.type = BH_IP_EV_HOST_UNREACH,
			.proto = w->proto,
			.icmp_type = BH_ICMP_DEST_UNREACH,
			.icmp_code = BH_ICMP_UNREACH_HOST,
			.src = w->src,
			.dst = w->dst,
			.sport = w->sport,
			.dport = w->dport,
			.cookie = w->cookie,
		};
		bh_ip__release(ip, &w->frame);
		bh_ip__event(ip, &ev);
	}
}

/* A stale entry being checked (probing, after the delay): the next
 * unicast request when it is due; after arp_tries unanswered, resolved
 * afresh by broadcast (INCOMPLETE). Called on use and from the tick, so
 * the check goes on whether or not datagrams do. Returns true when the
 * entry became INCOMPLETE (datagrams now wait in the queue). */
static bool stale_check(struct bh_ip *ip, uint64_t now, struct arp_entry *e)
{
	if (e->state != BH_ARP_STALE || !e->probing || now < e->next_try)
		return false;
	if (e->tries >= ip->cfg.arp_tries) {
		/* Silent after every refresh: resolve afresh. */
		e->state = BH_ARP_INCOMPLETE;
		e->probing = false;
		e->tries = 1;
		e->next_try = now + ip->cfg.arp_retry_ms;
		request(ip, e->addr, NULL);
		return true;
	}
	e->tries++;
	e->next_try = now + ip->cfg.arp_retry_ms;
	request(ip, e->addr, &e->mac);
	return false;
}

static void learn(struct bh_ip *ip, uint64_t now, struct arp_entry *e, const struct bh_mac *mac)
{
	e->mac = *mac;
	e->state = BH_ARP_REACHABLE;
	e->updated = now;
	e->tries = 0;
	e->probing = false;
	ip->ctr.arp_learned++;
	drain(ip, e);
}

void bh_arp__input(struct bh_ip *ip, uint64_t now, const uint8_t *p, size_t len)
{
	struct bh_arp_repr a;
	ip->ctr.arp_rx++;
	if (bh_arp_parse(p, len, &a) != BH_WIRE_OK) {
		ip->ctr.arp_bad++;
		return;
	}
	/* RFC 1122 3.2.1.3: 0/8 is never a host's address (0.0.0.0 itself
	 * marks an RFC 5227 probe, handled below). */
	if (bh_mac_is_group(&a.sha) || bh_mac_is_zero(&a.sha) ||
	    (bh_ip4_is_this_net(a.spa) && a.spa != 0) || bh_ip4_is_multicast(a.spa) || bh_ip4_is_loopback(a.spa) || bh_ip4_is_reserved(a.spa) ||
	    bh_ip__is_broadcast(ip, a.spa) || bh_ip4_is_multicast(a.tpa)) {
		ip->ctr.arp_bad_sender++;
		return;
	}
	if (bh_mac_eq(&a.sha, &ip->cfg.mac))
		return; /* our own, looped back */

	/* RFC 5227 2.4: someone else uses our address. Defend it with one
	 * announcement at most every DEFEND_INTERVAL, and tell the owner. */
	if (a.spa == ip->cfg.addr) {
		ip->ctr.arp_conflicts++;
		struct bh_ip_event ev = {.type = BH_IP_EV_ADDR_CONFLICT, .src = a.spa, .mac = a.sha};
		bh_ip__event(ip, &ev);
		if (!ip->defended || now - ip->last_defend >= ARP_DEFEND_INTERVAL_MS) {
			ip->defended = true;
			ip->last_defend = now;
			bh_arp__announce(ip);
		}
		return;
	}

	bool for_us = a.tpa == ip->cfg.addr;
	/* RFC 5227 2.1.1: a probe (sender address 0) is answered if it asks
	 * for our address, and teaches us nothing. */
	bool probe = a.spa == 0;
	bool merged = false;
	struct arp_entry *e = probe ? NULL : arp_find(ip, a.spa);
	if (e) {
		/* RFC 826 merge: the pair is known; update it. */
		merged = true;
		if (e->state == BH_ARP_INCOMPLETE) {
			learn(ip, now, e, &a.sha);
		} else if (bh_mac_eq(&e->mac, &a.sha)) {
			/* Proof of life only when the packet was meant for us:
			 * a reply to us, or a request for our address. */
			if (for_us) {
				e->state = BH_ARP_REACHABLE;
				e->updated = now;
				e->tries = 0;
				e->probing = false;
			}
		} else if (now - e->updated >= ARP_LOCKTIME_MS && for_us && a.op == BH_ARP_REPLY) {
			learn(ip, now, e, &a.sha);
		} else if (now - e->updated >= ARP_LOCKTIME_MS) {
			/* A new address heard in passing (a request, or a
			 * packet for someone else: ARP has no checksum, and
			 * anyone may send one) is taken, but not trusted: stale,
			 * so its next use checks it by unicast and, unanswered,
			 * by broadcast (Linux sets NUD_STALE the same way). A
			 * wrong address taken as reachable would be used for
			 * arp_reachable_ms, and every frame to it lost. */
			e->mac = a.sha;
			e->state = BH_ARP_STALE;
			e->updated = now;
			e->tries = 0;
			e->probing = false;
			ip->ctr.arp_learned++;
		}
	}
	if (!for_us) {
		if (!merged && a.op == BH_ARP_REPLY)
			ip->ctr.arp_unsolicited++;
		return;
	}
	if (a.op == BH_ARP_REPLY) {
		if (!merged)
			ip->ctr.arp_unsolicited++;
		return;
	}
	/* A request for our address. RFC 826: "If Merge_flag is false, add
	 * the triplet" - as a stale entry, and only in a free or stale slot,
	 * so a flood of requests cannot push out the hosts we talk to. */
	if (!merged && !probe) {
		struct arp_entry *n = arp_slot(ip, now, false);
		if (n) {
			memset(n, 0, sizeof *n);
			n->state = BH_ARP_STALE;
			n->addr = a.spa;
			n->mac = a.sha;
			n->updated = now;
			n->last_used = now;
		}
	}
	if (!bh_bucket_take(&ip->arp_reply, now)) {
		ip->ctr.arp_replies_limited++;
		return;
	}
	send_arp(ip, BH_ARP_REPLY, &a.sha, &a.sha, a.spa, ip->cfg.addr);
}

int bh_arp__output(struct bh_ip *ip, uint64_t now, const struct bh_pkt *frame, bh_ip4 hop,
		   const struct bh_ip_tx *tx)
{
	struct bh_pkt f = *frame;
	if (hop == BH_IP4_BROADCAST || bh_ip__is_broadcast(ip, hop)) {
		send_frame(ip, &f, &mac_bcast);
		return 0;
	}
	if (bh_ip4_is_multicast(hop)) {
		struct bh_mac m = bh_mac_of_group(hop);
		send_frame(ip, &f, &m);
		return 0;
	}
	struct arp_entry *e = arp_find(ip, hop);
	if (e && e->state != BH_ARP_INCOMPLETE) {
		e->last_used = now;
		/* A stale entry stays in use while it is checked (RFC 1122
		 * 2.3.2.1: validate the cache, do not flood): first a delay in
		 * which an answer may come anyway (Linux's DELAY state,
		 * delay_first_probe_time 5 s), then unicast requests. */
		if (e->state == BH_ARP_STALE && !e->probing) {
			e->probing = true;
			e->tries = 0;
			e->next_try = now + ARP_DELAY_MS;
		} else if (stale_check(ip, now, e)) {
			goto enqueue;
		}
		send_frame(ip, &f, &e->mac);
		return 0;
	}
	if (!e) {
		e = arp_slot(ip, now, true);
		if (!e) {
			ip->ctr.arp_table_full++;
			ip->ctr.arp_queue_drops++;
			bh_ip__release(ip, &f);
			return -EHOSTUNREACH;
		}
		memset(e, 0, sizeof *e);
		e->state = BH_ARP_INCOMPLETE;
		e->addr = hop;
		e->last_used = now;
		e->tries = 1;
		e->next_try = now + ip->cfg.arp_retry_ms;
		request(ip, hop, NULL);
	}
enqueue:;
	uint32_t idx = (uint32_t)(e - ip->arp);
	/* Bounded: per host, the oldest datagram gives way (as Linux's
	 * unres_qlen); in all, the new one is dropped. */
	if (e->queued >= ip->cfg.arp_queue_per_host) {
		struct arp_wait *old = NULL;
		for (uint32_t i = 0; i < ip->cfg.arp_queue; i++) {
			struct arp_wait *w = &ip->waitq[i];
			if (w->used && w->entry == idx && (!old || w->seq < old->seq))
				old = w;
		}
		if (old) {
			old->used = false;
			e->queued--;
			ip->nwaiting--;
			ip->ctr.arp_queue_drops++;
			bh_ip__release(ip, &old->frame);
		}
	}
	struct arp_wait *slot = NULL;
	for (uint32_t i = 0; i < ip->cfg.arp_queue; i++) {
		if (!ip->waitq[i].used) {
			slot = &ip->waitq[i];
			break;
		}
	}
	if (!slot) {
		ip->ctr.arp_queue_drops++;
		bh_ip__release(ip, &f);
		return -ENOBUFS;
	}
	*slot = (struct arp_wait){
		.used = true,
		.entry = idx,
		.seq = ip->wait_seq++,
		.frame = f,
		.proto = tx->proto,
		.src = ip->cfg.addr,
		.dst = tx->dst,
		.sport = tx->sport,
		.dport = tx->dport,
		.cookie = tx->cookie,
	};
	e->queued++;
	ip->nwaiting++;
	ip->ctr.arp_queued++;
	return 1;
}

void bh_arp__tick(struct bh_ip *ip, uint64_t now, uint64_t *next)
{
	const struct bh_ip_config *c = &ip->cfg;
	for (uint32_t i = 0; i < c->arp_entries; i++) {
		struct arp_entry *e = &ip->arp[i];
		uint64_t due = UINT64_MAX;
		switch (e->state) {
		case BH_ARP_FREE:
			break;
		case BH_ARP_INCOMPLETE:
			if (now >= e->next_try) {
				if (e->tries >= c->arp_tries) {
					ip->ctr.arp_timeouts++;
					fail(ip, e);
					break;
				}
				e->tries++;
				e->next_try = now + c->arp_retry_ms;
				request(ip, e->addr, NULL);
			}
			due = e->next_try;
			break;
		case BH_ARP_REACHABLE:
			if (now - e->updated >= c->arp_reachable_ms) {
				e->state = BH_ARP_STALE;
				e->tries = 0;
				e->probing = false;
			} else {
				due = e->updated + c->arp_reachable_ms;
				break;
			}
			/* fall through */
		case BH_ARP_STALE:
			if (now - e->updated >= c->arp_stale_ms && now - e->last_used >= c->arp_stale_ms) {
				e->state = BH_ARP_FREE;
				break;
			}
			if (stale_check(ip, now, e)) {
				due = e->next_try; /* resolving by broadcast now */
				break;
			}
			{
				uint64_t a = e->updated + c->arp_stale_ms;
				uint64_t b = e->last_used + c->arp_stale_ms;
				due = a > b ? a : b;
				if (e->probing && e->next_try < due)
					due = e->next_try;
			}
			break;
		}
		if (due < *next)
			*next = due;
	}
}

void bh_arp__flush(struct bh_ip *ip)
{
	for (uint32_t i = 0; i < ip->cfg.arp_queue; i++) {
		if (ip->waitq[i].used) {
			ip->waitq[i].used = false;
			bh_ip__release(ip, &ip->waitq[i].frame);
		}
	}
	ip->nwaiting = 0;
	for (uint32_t i = 0; i < ip->cfg.arp_entries; i++)
		ip->arp[i].queued = 0;
}

unsigned bh_ip_arp_list(const struct bh_ip *ip, struct bh_arp_info *out, unsigned n)
{
	unsigned used = 0;
	for (uint32_t i = 0; i < ip->cfg.arp_entries; i++) {
		const struct arp_entry *e = &ip->arp[i];
		if (e->state == BH_ARP_FREE)
			continue;
		if (used < n)
			out[used] = (struct bh_arp_info){e->addr, e->mac, e->state, e->queued};
		used++;
	}
	return used;
}
