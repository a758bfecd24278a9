/*
 * domains/fault.c - the fault-injection hook (see fault.h).
 */
#include "domains/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "domains/proto.h"
#include "domains/logger.h"
#include "ipc/channel.h"

static const char *const names[] = {
    [BH_FAULT_KILL] = "kill",	    [BH_FAULT_CRASH] = "crash",
    [BH_FAULT_HANG] = "hang",	    [BH_FAULT_SCRIBBLE] = "scribble",
    [BH_FAULT_BAD_DESC] = "bad-desc", [BH_FAULT_SYSCALL] = "syscall",
};

/* /proc/self/maps, opened before the sandbox forbids opening files;
 * read again from the start each time (it is regenerated on read). */
static int maps_fd = -1;

enum bh_fault bh_fault_parse(const char *name)
{
	for (unsigned f = 1; f < sizeof(names) / sizeof(names[0]); f++)
		if (strcmp(name, names[f]) == 0)
			return (enum bh_fault)f;
	return BH_FAULT_NONE;
}

const char *bh_fault_name(enum bh_fault f)
{
	return f > 0 && (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "none";
}

/* The request, written by the handler (on whichever thread the signal
 * lands, the poller's included), taken by the loop: lock-free atomics,
 * safe in a handler. */
static int pending;
static int pending_value;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	__atomic_store_n(&pending_value, si->si_value.sival_int, __ATOMIC_RELAXED);
	__atomic_store_n(&pending, 1, __ATOMIC_RELEASE);
}

void bh_fault_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(BH_FAULT_SIGNAL, &sa, NULL);
	if (maps_fd < 0)
		maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
}

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define MAX_MAPS 128
#define SCRIBBLE_WRITES 256u

/* Seeded 8-byte writes over every writable mapping, spread by size. */
static void scribble(uint64_t *rng)
{
	struct {
		uintptr_t lo, hi;
	} m[MAX_MAPS];
	unsigned n = 0;
	uint64_t total = 0;
	static char text[64 * 1024];
	size_t got = 0;
	ssize_t r;
	while (maps_fd >= 0 && got < sizeof(text) - 1 &&
	       (r = pread(maps_fd, text + got, sizeof(text) - 1 - got, (off_t)got)) > 0)
		got += (size_t)r;
	text[got] = '\0';
	if (got == 0) {
		bh_logf("fault scribble: cannot read /proc/self/maps");
		return;
	}
	for (char *line = text, *nl; n < MAX_MAPS && *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			break;
		*nl = '\0';
		uintptr_t lo, hi;
		char perms[8];
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &lo, &hi, perms) != 3)
			continue;
		/* Writable, and not the kernel's pages (vvar, vsyscall). */
		if (perms[0] != 'r' || perms[1] != 'w' || strstr(line, "[v"))
			continue;
		m[n].lo = lo;
		m[n].hi = hi;
		total += hi - lo;
		n++;
	}
	if (total < 8)
		return;
	bh_logf("fault scribble: %u random 8-byte writes over %" PRIu64
		" writable bytes in %u mappings (shared regions included)",
		SCRIBBLE_WRITES, total, n);
	for (unsigned w = 0; w < SCRIBBLE_WRITES; w++) {
		uint64_t at = next(rng) % total;
		for (unsigned i = 0; i < n; i++) {
			uint64_t len = m[i].hi - m[i].lo;
			if (at >= len) {
				at -= len;
				continue;
			}
			uint64_t v = next(rng);
			memcpy((void *)(m[i].lo + (at & ~(uint64_t)7)), &v, sizeof(v));
			break;
		}
	}
}

/* Descriptors no receiver may accept: indices past any pool, pools that
 * do not exist, spans past the buffer. */
static unsigned bad_desc(struct bh_env *env, uint64_t *rng)
{
	unsigned sent = 0, idx = 0;
	for (int l = 0; l < BH_NLINKS; l++) {
		struct bh_chan *ch = env->chan[l];
		if (ch == NULL)
			continue;
		struct bh_desc x[16];
		for (unsigned i = 0; i < 16; i++) {
			uint64_t r = next(rng);
			x[i] = (struct bh_desc){.buf = (uint32_t)(r >> 32) | 0x10000000u,
						.off = (uint16_t)r,
						.len = (uint16_t)(r >> 16) | 0x8000u,
						.pool = (uint8_t)(r >> 8) | 0x80u,
						.flags = (uint8_t)r,
						.aux = (uint32_t)r};
			if (i % 4 == 1)
				x[i].pool = (uint8_t)(r % BH_NPOOLS); /* a real pool, a wild index */
		}
		sent += bh_chan_send(ch, x, 16);
		sent += bh_chan_give_back(ch, x, 16); /* buffers it never had */
		bh_chan_notify(ch);
		idx += bh_chan_corrupt_indices(ch, (uint32_t)next(rng));
	}
	bh_logf("fault bad-desc: %u invalid descriptors published, %u ring indices overwritten",
		sent, idx);
	return sent;
}

void bh_fault_run(struct bh_env *const *env, int n)
{
	if (!__atomic_load_n(&pending, __ATOMIC_RELAXED) ||
	    !__atomic_exchange_n(&pending, 0, __ATOMIC_ACQUIRE))
		return;
	uint32_t v = (uint32_t)__atomic_load_n(&pending_value, __ATOMIC_RELAXED);
	enum bh_fault f = (enum bh_fault)(v & 0xfu);
	int dom = (int)((v >> 4) & 3u);
	uint64_t rng = ((uint64_t)(v >> 6) << 20) ^ 0x9e3779b97f4a7c15ull;
	struct bh_env *target = NULL;
	for (int i = 0; i < n; i++)
		if (env[i]->dom == dom)
			target = env[i];
	if (target == NULL) {
		bh_logf("fault %s for domain %d: not in this process; ignored", bh_fault_name(f),
			dom);
		return;
	}
	bh_logf("fault %s injected (seed %u)", bh_fault_name(f), v >> 6);
	switch (f) {
	case BH_FAULT_KILL:
		kill(getpid(), SIGKILL);
		break;
	case BH_FAULT_CRASH: {
		/* A store through a pointer that points nowhere. */
		volatile uint64_t *wild = (volatile uint64_t *)(uintptr_t)(0x10u + (v & 0xff0u));
		*wild = v;
		break;
	}
	case BH_FAULT_HANG:
		/* Stuck for good: no progress, no heartbeat, deaf to
		 * SIGTERM (the supervisor has to kill it). */
		for (;;) {
			struct timespec ts = {1, 0};
			nanosleep(&ts, NULL);
		}
	case BH_FAULT_SCRIBBLE:
		scribble(&rng);
		break;
	case BH_FAULT_BAD_DESC:
		bad_desc(target, &rng);
		break;
	case BH_FAULT_SYSCALL: {
		/* What a compromised domain would try first. The sandbox
		 * (sandbox.h) kills the process at the first of them. */
		int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
		int e1 = fd < 0 ? errno : 0;
		int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		int e2 = sk < 0 ? errno : 0;
		bh_logf("fault syscall: open %s, socket %s: the sandbox did not stop them",
			fd >= 0 ? "succeeded" : strerror(e1), sk >= 0 ? "succeeded" : strerror(e2));
		if (fd >= 0)
			close(fd);
		if (sk >= 0)
			close(sk);
		break;
	}
	default:
		bh_logf("fault %u: unknown; ignored", v & 0xfu);
		break;
	}
}
