/*
 * domains/tcp_pins.c - the ledger of send chains; see tcp_pins.h.
 */
#include "domains/tcp_pins.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domains/proto.h"
#include "ip/ip.h"

int bh_pins_init(struct bh_pins *p, uint32_t nseg, uint32_t nsock)
{
	memset(p, 0, sizeof(*p));
	p->nseg = nseg;
	p->nsock = nsock;
	p->seg_pin = calloc((size_t)nseg * BH_CHAIN_MAX, sizeof(*p->seg_pin));
	p->seg_npin = calloc(nseg, sizeof(*p->seg_npin));
	p->sock_pins = calloc(nsock, sizeof(*p->sock_pins));
	p->sock_parked = calloc(nsock, sizeof(*p->sock_parked));
	if (!p->seg_pin || !p->seg_npin || !p->sock_pins || !p->sock_parked)
		return -ENOMEM;
	return 0;
}

void bh_pins_fini(struct bh_pins *p)
{
	free(p->seg_pin);
	free(p->seg_npin);
	free(p->sock_pins);
	free(p->sock_parked);
	memset(p, 0, sizeof(*p));
}

bool bh_pins_record(struct bh_pins *p, uint32_t seg, const void *chain, uint8_t sock_pool)
{
	struct bh_chain ch;
	memcpy(&ch, chain, sizeof(ch));
	if (seg >= p->nseg || ch.magic != BH_CHAIN_MAGIC || ch.n == 0 || ch.n > BH_CHAIN_MAX)
		return false;
	for (uint32_t i = 0; i < ch.n; i++)
		if (bh_handle_pool(ch.piece[i].handle) != sock_pool ||
		    bh_handle_buf(ch.piece[i].handle) >= p->nsock)
			return false;
	for (uint32_t i = 0; i < ch.n; i++) {
		uint32_t b = bh_handle_buf(ch.piece[i].handle);
		p->seg_pin[(size_t)seg * BH_CHAIN_MAX + i] = b;
		p->sock_pins[b]++;
	}
	p->seg_npin[seg] = (uint8_t)ch.n;
	return true;
}

bool bh_pins_park(struct bh_pins *p, uint32_t sock)
{
	if (sock >= p->nsock || p->sock_pins[sock] == 0)
		return false;
	p->sock_parked[sock] = 1; /* goes home with its last segment */
	p->parked++;
	return true;
}

void bh_pins_home(struct bh_pins *p, uint32_t seg, void (*back)(void *ctx, uint32_t sock),
		  void *ctx)
{
	if (seg >= p->nseg)
		return;
	uint8_t n = p->seg_npin[seg];
	p->seg_npin[seg] = 0;
	for (uint8_t i = 0; i < n; i++) {
		uint32_t b = p->seg_pin[(size_t)seg * BH_CHAIN_MAX + i];
		if (--p->sock_pins[b] == 0 && p->sock_parked[b]) {
			p->sock_parked[b] = 0;
			back(ctx, b);
		}
	}
}
