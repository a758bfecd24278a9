/*
 * ipc/region.h - shared memory regions: memfd files made by one party (the
 * supervisor), handed to others as file descriptors, mapped by each with
 * the least permission it needs.
 *
 * Layout: page 0 begins with struct bh_region_hdr, written once by the
 * creator and never again; the rest of the region belongs to whatever the
 * kind says (a ring set, a buffer pool, a doorbell page). Only offsets are
 * stored in a region, never pointers: each party maps it at its own address.
 *
 * Protection:
 *  - the creator seals the memfd against growing and shrinking, and attach
 *    refuses a region without those seals, so no party can truncate a
 *    region under another (which would turn reads into SIGBUS);
 *  - a region only its creator writes (a buffer pool) is made with
 *    BH_REGION_OWNER_WRITES: after the creator's read-write mapping exists
 *    the memfd is sealed with F_SEAL_FUTURE_WRITE, so nobody else can ever
 *    write it, whatever descriptor they hold or re-open through /proc;
 *  - a party that only reads a region gets a read-only descriptor from
 *    bh_region_readonly_fd(), which refuses writable mappings;
 *  - a party that writes only part of a region maps it read-only and then
 *    grants itself write access to the pages it owns with
 *    bh_region_protect() (page granularity). A stray write to any other
 *    page faults in that party alone. This stops stray writes, not a
 *    hostile party, which could mprotect its mapping or re-open the
 *    descriptor read-write through /proc: the domains' seccomp filters
 *    (forbidding those calls once running) close that door.
 *
 * Attach checks, before anything else is read: the descriptor is a sealed
 * memfd whose size matches the header, the magic, the layout version and
 * the kind. The header is read once into the local handle.
 *
 * Functions return 0 or a negative errno; bh_ipc_strerror() names the
 * region-specific ones.
 */
#ifndef BH_IPC_REGION_H
#define BH_IPC_REGION_H

#include <stddef.h>
#include <stdint.h>

#define BH_REGION_MAGIC 0x4b4c4842u /* "BHLK" little-endian */
#define BH_REGION_VERSION 1u
#define BH_REGION_NAME_MAX 40

enum bh_region_kind {
	BH_REGION_RINGS = 1,    /* one or more SPSC rings (ring.h) */
	BH_REGION_POOL = 2,     /* a buffer pool (pool.h) */
	BH_REGION_DOORBELL = 3, /* notification words and endpoints */
	BH_REGION_PLAN = 4,     /* an instance's configuration (domains/plan.h) */
	BH_REGION_STATS = 5,    /* a domain's counters (domains/stats.h) */
	BH_REGION_APP = 6,      /* an application's sockets (domains/app_abi.h) */
	BH_REGION_TEST = 99,
};

enum bh_access {
	BH_ACCESS_RO = 1,
	BH_ACCESS_RW = 3,
};

/* Written by the creator at offset 0; read-only to everyone after. */
struct bh_region_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t kind;
	uint64_t size; /* bytes, equals the memfd's size */
	uint32_t page_size;
	uint32_t reserved;
	char name[BH_REGION_NAME_MAX];
};

/* A party's local handle: its own copy of everything it relies on. */
struct bh_region {
	int fd;
	void *base;
	size_t size;
	uint16_t kind;
	enum bh_access access;
	char name[BH_REGION_NAME_MAX];
};

/* Header errors, returned negated. */
#define BH_EREGION_MAGIC EBADMSG     /* not a Bulkhead region */
#define BH_EREGION_VERSION EPROTONOSUPPORT
#define BH_EREGION_KIND EMEDIUMTYPE  /* a region of another kind */
#define BH_EREGION_SIZE EFBIG        /* header size differs from the file */
#define BH_EREGION_SEALS EPERM       /* not sealed against resizing */

/* Regions this large or larger are mapped at an address aligned to it;
 * buffer pools are advised MADV_HUGEPAGE (region.c, advise_huge). */
#define BH_REGION_HUGE_PAGE ((size_t)2 << 20)

size_t bh_page_size(void);
size_t bh_page_round(size_t n);

/* Creates a sealed memfd of at least `size` bytes (rounded up to pages),
 * writes the header and maps it read-write for the creator. */
int bh_region_create(struct bh_region *r, const char *name, uint16_t kind, size_t size);

/* Flags for bh_region_create_ex. */
#define BH_REGION_OWNER_WRITES 0x1u /* only the creator's mapping may write */

int bh_region_create_ex(struct bh_region *r, const char *name, uint16_t kind, size_t size,
			uint32_t flags);

/* Maps a region received as `fd` with `access`, after checking seals, size,
 * magic, version and kind. Takes ownership of fd only on success. */
int bh_region_attach(struct bh_region *r, int fd, uint16_t kind, enum bh_access access);

/* Changes the protection of [off, off+len), which must be page-aligned. */
int bh_region_protect(struct bh_region *r, size_t off, size_t len, enum bh_access access);

/* A new descriptor for the same memory that can only be mapped read-only. */
int bh_region_readonly_fd(int fd);

/* Bounds-checked address of [off, off+len) in the mapping, or NULL. */
void *bh_region_at(const struct bh_region *r, size_t off, size_t len);

/* Unmaps and closes. Safe on a zeroed or already closed handle. */
void bh_region_close(struct bh_region *r);

/* Unmaps but keeps the descriptor (a creator that only hands it out). */
void bh_region_unmap(struct bh_region *r);

/* Message for a negative return of any ipc/ function. */
const char *bh_ipc_strerror(int err);

#endif /* BH_IPC_REGION_H */
