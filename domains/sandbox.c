/*
 * domains/sandbox.c - capabilities dropped, no_new_privs, and the
 * seccomp filter (see sandbox.h).
 */
#include "domains/sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <malloc.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BH_SANDBOX_FILTER 0
#else
#define BH_SANDBOX_FILTER 1
#endif

bool bh_sandbox_filters(void)
{
	return BH_SANDBOX_FILTER;
}

void bh_sandbox_prepare(void)
{
	mallopt(M_ARENA_MAX, 1);
}

int bh_sandbox_thread(void)
{
	/* Per thread, like capabilities: the filter's TSYNC would set it on
	 * the others, but sanitizer builds load no filter. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM)
			return -errno;
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) != 0)
		return -errno;
	return 0;
}

/* Calls every domain makes while running (traced under load, with the
 * fault hook's own: kill, nanosleep, pread of /proc/self/maps). */
static const int allowed[] = {
    /* memory */
    SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(madvise), SCMP_SYS(mremap),
    /* time and waiting */
    SCMP_SYS(futex), SCMP_SYS(futex_waitv), SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
    SCMP_SYS(gettimeofday), SCMP_SYS(sched_yield), SCMP_SYS(restart_syscall),
    /* I/O on descriptors it holds: the log, TAP, pcap, the wire peer,
     * the application sockets */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(lseek), SCMP_SYS(close), SCMP_SYS(fcntl), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6),
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl), SCMP_SYS(recvfrom),
    SCMP_SYS(sendto), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(accept4),
    SCMP_SYS(getsockopt), SCMP_SYS(shutdown), SCMP_SYS(flock),
    /* the socket server: application regions it makes and hands out */
    SCMP_SYS(memfd_create), SCMP_SYS(ftruncate),
    /* ... and the tokens a forking application's child presents */
    SCMP_SYS(getrandom),
    /* ... and the wake-up socket pairs of applications that wait in the kernel */
    SCMP_SYS(socketpair),
    /* a thread's own start-up, which may run after the filter is on */
    SCMP_SYS(rseq), SCMP_SYS(set_robust_list), SCMP_SYS(sigaltstack),
    /* signals and exit */
    SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(getpid), SCMP_SYS(gettid),
    SCMP_SYS(kill), SCMP_SYS(tgkill), SCMP_SYS(exit), SCMP_SYS(exit_group),
};

static int load_filter(char *err, size_t errlen)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (f == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return -ENOMEM;
	}
	/* Every thread of the process (the poller too) gets the filter. */
	int e = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]) && e == 0; i++)
		e = seccomp_rule_add(f, SCMP_ACT_ALLOW, allowed[i], 0);
	/* Never a new writable or executable view of memory it mapped
	 * read-only, never executable memory. */
	if (e == 0)
		e = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_WRITE | PROT_EXEC, 0));
	if (e == 0)
		e = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (e == 0)
		e = seccomp_load(f);
	seccomp_release(f);
	if (e)
		snprintf(err, errlen, "seccomp filter: %s", strerror(-e));
	return e;
}

int bh_sandbox_enter(char *err, size_t errlen)
{
	int e = bh_sandbox_thread();
	if (e) {
		snprintf(err, errlen, "dropping capabilities: %s", strerror(-e));
		return e;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
		return -errno;
	}
	return BH_SANDBOX_FILTER ? load_filter(err, errlen) : 0;
}
