/*
 * domains/tcp_pins.h - the tcp domain's ledger of send chains: which SOCK
 * buffers each SEG buffer out names (ip/ip.h, struct bh_chain), so that
 * none goes back to sock while a chain that names it may still be read
 * downstream (by the driver, in its copy to the device).
 *
 *   bh_pins_record   a SEG buffer goes out as a chain: pin what it names
 *   bh_pins_park     the library lets a SOCK buffer go: if pinned, it
 *                    waits here (true), else the caller gives it back
 *   bh_pins_home     a SEG buffer came home (bh_pool.on_free, whatever
 *                    path brought it): unpin; each SOCK buffer that was
 *                    parked and is now unpinned is handed to `back`
 *
 * The record is this domain's own, never the chain in the SEG buffer,
 * which ip maps writable: bh_pins_record reads that chain once, into a
 * copy, and checks and uses only the copy. One thread, like the domain.
 */
#ifndef BH_DOMAINS_TCP_PINS_H
#define BH_DOMAINS_TCP_PINS_H

#include <stdbool.h>
#include <stdint.h>

struct bh_pins {
	uint32_t nseg, nsock;
	uint32_t *seg_pin;   /* SEG buffer b names seg_pin[b * BH_CHAIN_MAX + i] */
	uint8_t *seg_npin;   /* ... for i < seg_npin[b] */
	uint32_t *sock_pins; /* per SOCK buffer: segments out that name it */
	uint8_t *sock_parked; /* let go by the library while pinned */
	uint64_t parked;     /* count, for stats */
};

/* -ENOMEM on failure (bh_pins_fini then frees what was made). */
int bh_pins_init(struct bh_pins *p, uint32_t nseg, uint32_t nsock);
void bh_pins_fini(struct bh_pins *p);
/* SEG buffer `seg` goes out; its chain is at `chain` (in the buffer).
 * false, nothing pinned, if the chain is not one the library makes. The
 * handles name SOCK buffers by pool `sock_pool`. */
bool bh_pins_record(struct bh_pins *p, uint32_t seg, const void *chain, uint8_t sock_pool);
bool bh_pins_park(struct bh_pins *p, uint32_t sock);
void bh_pins_home(struct bh_pins *p, uint32_t seg, void (*back)(void *ctx, uint32_t sock),
		  void *ctx);

#endif /* BH_DOMAINS_TCP_PINS_H */
