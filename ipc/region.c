/*
 * ipc/region.c - memfd regions: create, seal, attach with checks, protect.
 * See region.h for the contract.
 */
#include "ipc/region.h"

#include "ipc/order.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef BH_ORDER_TSAN
uint32_t bh_order_tsan_word;
#endif

#define BH_REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

size_t bh_page_size(void)
{
	static size_t page;
	if (page == 0) {
		long p = sysconf(_SC_PAGESIZE);
		page = p > 0 ? (size_t)p : 4096;
	}
	return page;
}

size_t bh_page_round(size_t n)
{
	size_t p = bh_page_size();
	return (n + p - 1) & ~(p - 1);
}

static int prot_of(enum bh_access a)
{
	return a == BH_ACCESS_RW ? (PROT_READ | PROT_WRITE) : PROT_READ;
}

/* Maps `size` bytes of `fd` shared. A region of a huge page or more is
 * placed at a huge-page-aligned address, so that huge pages can back it
 * (advise_huge). */
static void *map_shared(int fd, size_t size, int prot)
{
	size_t huge = BH_REGION_HUGE_PAGE;
	if (size < huge)
		return mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	/* Reserve room for an aligned start, map the file over it, give
	 * back the slack on either side. */
	char *res = mmap(NULL, size + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return MAP_FAILED;
	char *at = (char *)(((uintptr_t)res + huge - 1) & ~(uintptr_t)(huge - 1));
	void *base = mmap(at, size, prot, MAP_SHARED | MAP_FIXED, fd, 0);
	if (base == MAP_FAILED) {
		int e = errno;
		munmap(res, size + huge);
		errno = e;
		return MAP_FAILED;
	}
	if (at > res)
		munmap(res, (size_t)(at - res));
	if (res + size + huge > at + size)
		munmap(at + size, (size_t)(res + size + huge - (at + size)));
	return base;
}

/* Buffer pools of a huge page or more are advised MADV_HUGEPAGE, so that
 * where the kernel gives shared memory huge pages (shmem_enabled set to
 * "advise", "within_size" or "always") a pool's first use takes one page
 * fault per 2 MiB rather than 512: a fresh instance's first 1 GiB went
 * 14% (factored) to 43% (mono) faster here, and once the pools were in
 * use the difference was within the noise. Only pools: they are used
 * densely, lowest buffers first (pool.c). Application regions are not:
 * each socket's rings sit in their own part, and 100 new connections
 * each paying for a fresh 2 MiB page took their exchanges from 20,000 to
 * 3,000 a second (docs/PERFORMANCE.md, "Huge pages for the shared
 * regions"). Where huge pages are off, the advice is ignored. */
static void advise_huge(void *base, size_t size, uint16_t kind)
{
	if (kind == BH_REGION_POOL && size >= BH_REGION_HUGE_PAGE)
		(void)madvise(base, size, MADV_HUGEPAGE);
}

int bh_region_create(struct bh_region *r, const char *name, uint16_t kind, size_t size)
{
	return bh_region_create_ex(r, name, kind, size, 0);
}

int bh_region_create_ex(struct bh_region *r, const char *name, uint16_t kind, size_t size,
			uint32_t flags)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (size < sizeof(struct bh_region_hdr) || size > ((size_t)1 << 40))
		return -EINVAL;
	size = bh_page_round(size);

	char memfd_name[BH_REGION_NAME_MAX + 8];
	snprintf(memfd_name, sizeof(memfd_name), "bh-%s", name);
	int fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (fcntl(fd, F_ADD_SEALS, BH_REQUIRED_SEALS) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	void *base = map_shared(fd, size, PROT_READ | PROT_WRITE);
	if (base == MAP_FAILED) {
		int e = errno;
		close(fd);
		return -e;
	}
	advise_huge(base, size, kind);
	/* Last seals: no new writable mappings for anyone (owner-writes
	 * regions), and no further seals, so no party can add one later. */
	int last = F_SEAL_SEAL | ((flags & BH_REGION_OWNER_WRITES) ? F_SEAL_FUTURE_WRITE : 0);
	if (fcntl(fd, F_ADD_SEALS, last) < 0) {
		int e = errno;
		munmap(base, size);
		close(fd);
		return -e;
	}
	struct bh_region_hdr *h = base;
	h->magic = BH_REGION_MAGIC;
	h->version = BH_REGION_VERSION;
	h->kind = kind;
	h->size = size;
	h->page_size = (uint32_t)bh_page_size();
	snprintf(h->name, sizeof(h->name), "%s", name);

	r->fd = fd;
	r->base = base;
	r->size = size;
	r->kind = kind;
	r->access = BH_ACCESS_RW;
	snprintf(r->name, sizeof(r->name), "%s", name);
	return 0;
}

int bh_region_attach(struct bh_region *r, int fd, uint16_t kind, enum bh_access access)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;

	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return errno == EINVAL ? -BH_EREGION_SEALS : -errno;
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return -BH_EREGION_SEALS;

	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	size_t size = (size_t)st.st_size;
	if (size < sizeof(struct bh_region_hdr) || size % bh_page_size() != 0)
		return -BH_EREGION_SIZE;

	void *base = map_shared(fd, size, prot_of(access));
	if (base == MAP_FAILED)
		return -errno;

	/* Read the header once; the copy is what we check and keep. */
	struct bh_region_hdr h;
	memcpy(&h, base, sizeof(h));
	int err = 0;
	if (h.magic != BH_REGION_MAGIC)
		err = -BH_EREGION_MAGIC;
	else if (h.version != BH_REGION_VERSION)
		err = -BH_EREGION_VERSION;
	else if (h.kind != kind)
		err = -BH_EREGION_KIND;
	else if (h.size != size)
		err = -BH_EREGION_SIZE;
	if (err) {
		munmap(base, size);
		return err;
	}

	advise_huge(base, size, kind);
	r->fd = fd;
	r->base = base;
	r->size = size;
	r->kind = kind;
	r->access = access;
	memcpy(r->name, h.name, sizeof(r->name));
	r->name[sizeof(r->name) - 1] = '\0';
	return 0;
}

int bh_region_protect(struct bh_region *r, size_t off, size_t len, enum bh_access access)
{
	size_t page = bh_page_size();
	if (r->base == NULL || off % page != 0 || len % page != 0 || off > r->size ||
	    len > r->size - off)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (mprotect((char *)r->base + off, len, prot_of(access)) < 0)
		return -errno;
	return 0;
}

int bh_region_readonly_fd(int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	return ro < 0 ? -errno : ro;
}

void *bh_region_at(const struct bh_region *r, size_t off, size_t len)
{
	if (r->base == NULL || off > r->size || len > r->size - off)
		return NULL;
	return (char *)r->base + off;
}

void bh_region_unmap(struct bh_region *r)
{
	if (r->base != NULL)
		munmap(r->base, r->size);
	r->base = NULL;
}

void bh_region_close(struct bh_region *r)
{
	bh_region_unmap(r);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

const char *bh_ipc_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case BH_EREGION_MAGIC:
		return "not a Bulkhead region (bad magic)";
	case BH_EREGION_VERSION:
		return "region layout version not supported";
	case BH_EREGION_KIND:
		return "region is of another kind";
	case BH_EREGION_SIZE:
		return "region size does not match its header";
	case BH_EREGION_SEALS:
		return "region is not sealed against resizing";
	case ETIMEDOUT:
		return "timed out";
	case EPIPE:
		return "peer is gone";
	case EPROTO:
		return "peer broke the protocol";
	default:
		return strerror(err);
	}
}
