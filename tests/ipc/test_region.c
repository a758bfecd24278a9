/*
 * tests/ipc/test_region.c - memfd regions: creation, the checks made at
 * attach, read-only descriptors, page protections that really fault.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
