/*
 * tests/ipc/test_region.c - memfd regions: creation, the checks made at
 * attach, read-only descriptors, page protections that really fault.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/region.h"
#include "tests/ipc/child.h"

Test(region, create_then_attach_reads_the_same_memory)
{
	struct bh_region a, b;
	cr_assert_eq(bh_region_create(&a, "t", BH_REGION_TEST, 10000), 0);
	cr_assert_eq(a.size % bh_page_size(), 0);
	cr_assert_geq(a.size, 10000);
	int fd = dup(a.fd);
	cr_assert_eq(bh_region_attach(&b, fd, BH_REGION_TEST, BH_ACCESS_RW), 0);
	cr_assert_eq(b.size, a.size);
	cr_assert_str_eq(b.name, "t");
	char *pa = bh_region_at(&a, 8192, 4), *pb = bh_region_at(&b, 8192, 4);
	memcpy(pa, "abc", 4);
	cr_assert_str_eq(pb, "abc");
	bh_region_close(&b);
	bh_region_close(&a);
}

Test(region, attach_rejects_wrong_kind_magic_and_version)
{
	struct bh_region a, b;
	cr_assert_eq(bh_region_create(&a, "k", BH_REGION_RINGS, 4096), 0);
	cr_assert_eq(bh_region_attach(&b, a.fd, BH_REGION_POOL, BH_ACCESS_RO), -BH_EREGION_KIND);

	struct bh_region_hdr *h = a.base;
	h->version = BH_REGION_VERSION + 1;
	cr_assert_eq(bh_region_attach(&b, a.fd, BH_REGION_RINGS, BH_ACCESS_RO),
		     -BH_EREGION_VERSION);
	h->version = BH_REGION_VERSION;
	h->magic ^= 1;
	cr_assert_eq(bh_region_attach(&b, a.fd, BH_REGION_RINGS, BH_ACCESS_RO), -BH_EREGION_MAGIC);
	h->magic ^= 1;
	h->size += 4096;
	cr_assert_eq(bh_region_attach(&b, a.fd, BH_REGION_RINGS, BH_ACCESS_RO), -BH_EREGION_SIZE);
	h->size -= 4096;
	cr_assert_eq(bh_region_attach(&b, a.fd, BH_REGION_RINGS, BH_ACCESS_RO), 0);
	/* attach does not take the descriptor on failure; on success it does */
	b.fd = -1;
	bh_region_close(&b);
	bh_region_close(&a);
	cr_assert_str_eq(bh_ipc_strerror(-BH_EREGION_KIND), "region is of another kind");
}

Test(region, attach_rejects_unsealed_and_non_memfd)
{
	struct bh_region b;
	int fd = memfd_create("plain", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	cr_assert_eq(bh_region_attach(&b, fd, BH_REGION_TEST, BH_ACCESS_RO), -BH_EREGION_SEALS);
	close(fd);
	int devnull = open("/dev/null", O_RDONLY);
	cr_assert_eq(bh_region_attach(&b, devnull, BH_REGION_TEST, BH_ACCESS_RO),
		     -BH_EREGION_SEALS);
	close(devnull);
}

Test(region, sealed_region_cannot_be_resized)
{
	struct bh_region a;
	cr_assert_eq(bh_region_create(&a, "s", BH_REGION_TEST, 4096), 0);
	cr_assert_eq(ftruncate(a.fd, 0), -1);
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(ftruncate(a.fd, 8192), -1);
	bh_region_close(&a);
}

Test(region, bounds_checked_addresses)
{
	struct bh_region a;
	cr_assert_eq(bh_region_create(&a, "b", BH_REGION_TEST, 4096), 0);
	cr_assert_not_null(bh_region_at(&a, 0, a.size));
	cr_assert_null(bh_region_at(&a, 1, a.size));
	cr_assert_null(bh_region_at(&a, a.size + 1, 0));
	cr_assert_null(bh_region_at(&a, (size_t)-1, 2));
	cr_assert_eq(bh_region_protect(&a, 1, 4096, BH_ACCESS_RO), -EINVAL);
	cr_assert_eq(bh_region_protect(&a, 0, 2 * a.size, BH_ACCESS_RO), -EINVAL);
	bh_region_close(&a);
}

Test(region, readonly_fd_refuses_writable_mappings)
{
	struct bh_region a, b;
	cr_assert_eq(bh_region_create(&a, "ro", BH_REGION_TEST, 8192), 0);
	int ro = bh_region_readonly_fd(a.fd);
	cr_assert_geq(ro, 0);
	cr_assert_eq(bh_region_attach(&b, ro, BH_REGION_TEST, BH_ACCESS_RW), -EACCES);
	cr_assert_eq(bh_region_attach(&b, ro, BH_REGION_TEST, BH_ACCESS_RO), 0);
	/* and cannot upgrade the mapping afterwards either */
	cr_assert_eq(bh_region_protect(&b, 4096, 4096, BH_ACCESS_RW), -EACCES);
	bh_region_close(&b);
	bh_region_close(&a);
}

static void write_first_byte(void *p)
{
	*(volatile char *)p = 1;
}

Test(region, stray_write_to_read_only_page_faults_in_the_writer)
{
	struct bh_region a, b;
	cr_assert_eq(bh_region_create(&a, "f", BH_REGION_TEST, 3 * 4096), 0);
	cr_assert_eq(bh_region_attach(&b, dup(a.fd), BH_REGION_TEST, BH_ACCESS_RO), 0);
	size_t page = bh_page_size();
	cr_assert_eq(bh_region_protect(&b, page, page, BH_ACCESS_RW), 0);
	/* the granted page is writable, its neighbours are not */
	cr_assert_eq(bh_test_child_signal(write_first_byte, (char *)b.base + page), 0);
	cr_assert_eq(bh_test_child_signal(write_first_byte, (char *)b.base + 2 * page), SIGSEGV);
	cr_assert_eq(bh_test_child_signal(write_first_byte, b.base), SIGSEGV);
	cr_assert_eq(((char *)a.base)[page], 1, "the child's write reached shared memory");
	bh_region_close(&b);
	bh_region_close(&a);
}

/* kB of the mapping [base, base+size) that the kernel maps with huge
 * pages (ShmemPmdMapped in /proc/self/smaps), or -1 if no mapping has
 * exactly those bounds. */
static long pmd_mapped_kb(const void *base, size_t size)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	cr_assert_not_null(f);
	char line[512];
	long kb = -1;
	bool in = false;
	uintptr_t lo = (uintptr_t)base, hi = lo + size;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s == lo && e == hi;
			continue;
		}
		if (in && sscanf(line, "ShmemPmdMapped: %ld", &kb) == 1)
			in = false;
	}
	fclose(f);
	return kb;
}

/* The process's mapped virtual memory in kB (VmSize), read without
 * allocating, so that only the calls measured change it. */
static long vm_size_kb(void)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	char *p = strstr(buf, "VmSize:");
	cr_assert_not_null(p);
	return strtol(p + 7, NULL, 10);
}

/* The kernel's shared-memory huge-page mode ("never", "advise", ...). */
static void shmem_mode(char *out, size_t n)
{
	out[0] = '\0';
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	char buf[128];
	if (f == NULL)
		return;
	if (fgets(buf, sizeof(buf), f) != NULL) {
		char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;
		if (a && b) {
			*b = '\0';
			snprintf(out, n, "%s", a + 1);
		}
	}
	fclose(f);
}

static bool set_shmem_mode(const char *mode)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "we");
	if (f == NULL)
		return false;
	fputs(mode, f);
	return fclose(f) == 0;
}

/* The machine's value, put back however the test ends. */
static char shmem_was[32];
static void restore_shmem(void)
{
	if (shmem_was[0] != '\0')
		set_shmem_mode(shmem_was);
}

/* A region of `kind`, three huge pages large, created and attached
 * read-only with shmem_enabled at least "advise" (restore_shmem puts the
 * machine's value back); both mappings aligned, the alignment's
 * reservation given back, every page touched by both. Returns the kB of
 * each mapping on huge pages in kb[0] (creator) and kb[1] (reader), or
 * false where the kernel denies huge pages (only alignment checked). */
static bool large_region(uint16_t kind, long kb[2])
{
	char was[32];
	shmem_mode(was, sizeof(was));
	if (was[0] == '\0')
		cr_skip_test("this kernel has no shared-memory huge pages (shmem_enabled)");
	if (strcmp(was, "never") == 0) {
		if (!set_shmem_mode("advise"))
			cr_skip_test("cannot set shmem_enabled (not root?)");
		snprintf(shmem_was, sizeof(shmem_was), "%s", was);
	}
	struct bh_region a, b;
	size_t size = 3 * BH_REGION_HUGE_PAGE;
	long vm0 = vm_size_kb();
	cr_assert_eq(bh_region_create(&a, "h", kind, size), 0);
	int fd = dup(a.fd);
	cr_assert_eq(bh_region_attach(&b, fd, kind, BH_ACCESS_RO), 0);
	/* each mapping added exactly its own size */
	cr_assert_eq(vm_size_kb() - vm0, (long)(2 * size) >> 10);
	cr_assert_eq((uintptr_t)a.base % BH_REGION_HUGE_PAGE, 0);
	cr_assert_eq((uintptr_t)b.base % BH_REGION_HUGE_PAGE, 0);
	memset(a.base, 7, size); /* the creator's touch allocates the pages */
	volatile char sum = 0;
	for (size_t off = 0; off < size; off += bh_page_size())
		sum += ((volatile char *)b.base)[off]; /* and the reader maps them */
	kb[0] = pmd_mapped_kb(a.base, size);
	kb[1] = pmd_mapped_kb(b.base, size);
	bh_region_close(&b);
	bh_region_close(&a);
	if (strcmp(was, "deny") == 0) {
		cr_log_warn("shmem_enabled is deny: only the alignment was checked");
		return false;
	}
	return true;
}

Test(region, a_buffer_pool_is_on_huge_pages_where_the_kernel_allows, .fini = restore_shmem)
{
	long kb[2];
	if (!large_region(BH_REGION_POOL, kb))
		return;
	/* All of it, as a rule; a kernel short of free huge pages may give
	 * some of it small ones, never none of it without cause. */
	cr_expect_geq(kb[0], 2048, "creator: %ld kB on huge pages", kb[0]);
	cr_expect_geq(kb[1], 2048, "reader: %ld kB on huge pages", kb[1]);
}

/* Application regions are used sparsely, socket by socket: a huge page
 * each would cost every new connection a fresh 2 MiB. */
Test(region, an_application_region_stays_on_small_pages, .fini = restore_shmem)
{
	long kb[2];
	if (!large_region(BH_REGION_APP, kb))
		return;
	cr_expect_eq(kb[0], 0, "creator: %ld kB on huge pages", kb[0]);
	cr_expect_eq(kb[1], 0, "reader: %ld kB on huge pages", kb[1]);
}

Test(region, a_small_region_is_mapped_as_before)
{
	struct bh_region a;
	long vm0 = vm_size_kb();
	cr_assert_eq(bh_region_create(&a, "s", BH_REGION_TEST, BH_REGION_HUGE_PAGE - 4096), 0);
	cr_assert_eq(vm_size_kb() - vm0, (long)a.size >> 10);
	memset(a.base, 1, a.size);
	cr_assert_eq(pmd_mapped_kb(a.base, a.size), 0);
	bh_region_close(&a);
}
