/*
 * preload/fdtab.c - the descriptor table, libc's functions, the
 * instance and where destinations go, messages and the log.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/bhsock.h"
#include "domains/paths.h"
#include "preload/preload.h"

struct real real;

#define PAGE_FDS 4096
static struct fdent *pages[FDTAB_MAX / PAGE_FDS];
static pthread_mutex_t tab_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static struct {
	pthread_mutex_t lock;
	const char *name; /* BULKHEAD_INSTANCE; NULL: the library stays out of the way */
	bool host_fallback; /* BULKHEAD_FALLBACK=host: off the instance's subnet goes to the kernel */
	int attached;      /* 0 not yet, 1 yes, < 0 -errno of the last try */
	struct bh_info info;
	uint16_t *refs;    /* per library socket: descriptors of this process */
} inst = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct fdent *fd_get(int fd, bool make)
{
	if (fd < 0 || fd >= FDTAB_MAX)
		return NULL;
	struct fdent **pp = &pages[fd / PAGE_FDS];
	struct fdent *p = __atomic_load_n(pp, __ATOMIC_ACQUIRE);
	if (p == NULL) {
		if (!make)
			return NULL;
		struct fdent *n = calloc(PAGE_FDS, sizeof(*n));
		if (n == NULL)
			return NULL;
		if (!__atomic_compare_exchange_n(pp, &p, n, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			free(n); /* another thread made it: p is theirs */
		else
			p = n;
	}
	return &p[fd % PAGE_FDS];
}

void fd_lock(void)
{
	pthread_mutex_lock(&tab_lock);
}

void fd_unlock(void)
{
	pthread_mutex_unlock(&tab_lock);
}

void slot_ref(int slot)
{
	if (inst.refs && slot >= 0 && (uint32_t)slot < inst.info.nslots)
		inst.refs[slot]++;
}

bool slot_unref(int slot)
{
	if (inst.refs == NULL || slot < 0 || (uint32_t)slot >= inst.info.nslots)
		return true;
	if (inst.refs[slot] > 0)
		inst.refs[slot]--;
	return inst.refs[slot] == 0;
}

int held_slots(uint32_t *out, int max)
{
	int n = 0;
	for (uint32_t i = 0; inst.refs && i < inst.info.nslots && n < max; i++)
		if (inst.refs[i])
			out[n++] = i;
	return n;
}

/* After exec, in the constructor: what the program before it kept
 * (BULKHEAD_INHERIT, calls.c before_exec): "CTL;FD:SLOT:KN,...;SLOT,..."
 * (K t or u, N n for non-blocking or b). Each descriptor must still be
 * the eventfd it was; the connection goes back to the instance, which
 * maps the region again. If anything is amiss, the connection is
 * closed: the instance then closes what only it held. */
static void inherit(const char *v)
{
	int own = -1, used = 0;
	if (sscanf(v, "%d;%n", &own, &used) != 1 || own < 0)
		return;
	struct stat st;
	if (fstat(own, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		say_once("exec", "BULKHEAD_INHERIT names no connection: the sockets are lost");
		return;
	}
	struct bh_kept kept[256];
	int fdof[256], nk = 0;
	uint32_t drop[1024];
	int nd = 0;
	const char *p = v + used;
	while (*p && *p != ';' && nk < 256) {
		int fd, slot, n = 0;
		char kind, nb;
		if (sscanf(p, "%d:%d:%c%c%n", &fd, &slot, &kind, &nb, &n) != 4 || slot < 0)
			break;
		char path[40], link[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t l = readlink(path, link, sizeof(link) - 1);
		if (l > 0) {
			link[l] = '\0';
			if (strcmp(link, "anon_inode:[eventfd]") == 0) {
				fdof[nk] = fd;
				kept[nk++] = (struct bh_kept){.slot = (uint32_t)slot, .udp = kind == 'u',
							      .nonblock = nb == 'n'};
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (*p == ';')
		p++;
	while (*p && nd < 1024) {
		char *end;
		unsigned long sl = strtoul(p, &end, 10);
		if (end == p)
			break;
		drop[nd++] = (uint32_t)sl;
		p = *end == ',' ? end + 1 : end;
	}
	int r = inst.name ? bh_inherit(inst.name, own, kept, nk, drop, nd) : -ENETDOWN;
	if (r == 0 && bh_info(&inst.info) == 0 &&
	    (inst.refs = calloc(inst.info.nslots, sizeof(*inst.refs))) != NULL) {
		for (int i = 0; i < nk; i++) {
			struct fdent *e = fd_get(fdof[i], true);
			if (e == NULL || kept[i].slot >= inst.info.nslots)
				continue;
			*e = (struct fdent){.kind = FD_BH, .dgram = kept[i].udp,
					    .slot = (int)kept[i].slot};
			inst.refs[kept[i].slot]++;
		}
		inst.attached = 1;
		run_log("pid %d after exec: %d socket(s) kept, %d closed", (int)getpid(), nk, nd);
		return;
	}
	real.close(own);
	say_once("exec", "the sockets kept across exec could not be taken over: closed");
}

/* The library's own descriptors (its control socket, its eventfds) go
 * high, out of the numbers a program counts on. */
static int hide_fd(int fd)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 256)
		return fd;
	rlim_t lim = rl.rlim_cur < FDTAB_MAX ? rl.rlim_cur : FDTAB_MAX;
	int n = real.fcntl(fd, F_DUPFD_CLOEXEC, (int)(lim - 128));
	if (n < 0)
		return fd;
	real.close(fd);
	return n;
}

/* In a child: a lock another thread of the parent held stays held in
 * the copy; the child's one thread starts them afresh. */
static void locks_anew(void)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&tab_lock, &a);
	pthread_mutexattr_destroy(&a);
	pthread_mutex_init(&inst.lock, NULL);
}

bool inst_is_attached(void)
{
	return __atomic_load_n(&inst.attached, __ATOMIC_ACQUIRE) == 1;
}

void fork_stale(void)
{
	/* The parent's attachment is not this process's: inherited Bulkhead
	 * sockets go stale (calls.c), and new ones attach anew. */
	if (inst.attached != 1)
		return;
	bh_after_fork_child();
	inst.attached = 0;
	free(inst.refs);
	inst.refs = NULL;
	for (int p = 0; p < FDTAB_MAX / PAGE_FDS; p++) {
		struct fdent *pg = pages[p];
		for (int i = 0; pg && i < PAGE_FDS; i++)
			if (pg[i].kind == FD_BH)
				pg[i].kind = FD_STALE;
	}
}

#define FIND(f) real.f = (__typeof__(real.f))dlsym(RTLD_NEXT, #f)

void real_find(void)
{
	FIND(bind);
	FIND(connect);
	FIND(listen);
	FIND(accept4);
	FIND(close);
	FIND(close_range);
	FIND(read);
	FIND(write);
	FIND(readv);
	FIND(writev);
	FIND(recvfrom);
	FIND(sendto);
	FIND(recvmsg);
	FIND(sendmsg);
	FIND(recvmmsg);
	FIND(sendmmsg);
	FIND(shutdown);
	FIND(getsockname);
	FIND(getpeername);
	FIND(setsockopt);
	FIND(getsockopt);
	FIND(fcntl);
	FIND(ioctl);
	FIND(dup);
	FIND(dup2);
	FIND(dup3);
	FIND(sendfile);
	FIND(splice);
	FIND(poll);
	FIND(ppoll);
	FIND(select);
	FIND(pselect);
	FIND(epoll_create1);
	FIND(epoll_ctl);
	FIND(epoll_pwait);
	FIND(sigaction);
	FIND(execve);
	FIND(execv);
	FIND(execvp);
	FIND(execvpe);
	FIND(fexecve);
	FIND(fork);
	/* socket last: the mark that all are found (LOAD) */
	FIND(socket);
}

__attribute__((constructor)) static void preload_load(void)
{
	real_find();
	const char *n = getenv("BULKHEAD_INSTANCE");
	if (n && *n && bh_name_ok(n))
		inst.name = n;
	else if (n && *n)
		say_once("bulkhead run", "BULKHEAD_INSTANCE is not an instance name; "
					 "every socket stays with the kernel");
	const char *fb = getenv("BULKHEAD_FALLBACK");
	inst.host_fallback = fb && strcmp(fb, "host") == 0;
	bh_use_kernel_waits(sig_restart, hide_fd);
	pthread_atfork(NULL, NULL, locks_anew);
	const char *inh = getenv("BULKHEAD_INHERIT");
	if (inh) {
		char copy[4096];
		snprintf(copy, sizeof(copy), "%s", inh);
		unsetenv("BULKHEAD_INHERIT"); /* for this program alone */
		inherit(copy);
	}
}

bool inst_named(void)
{
	return inst.name != NULL;
}

int inst_attach(void)
{
	if (__atomic_load_n(&inst.attached, __ATOMIC_ACQUIRE) == 1)
		return 0;
	if (inst.name == NULL)
		return -ENETDOWN;
	pthread_mutex_lock(&inst.lock);
	int r = 0;
	if (inst.attached != 1) {
		if (bh_attach(inst.name) != 0) {
			r = errno == ENOENT || errno == ECONNRESET || errno == ECONNREFUSED
				    ? -ENETDOWN
				    : -errno;
			if (inst.attached == 0)
				run_log("cannot attach to instance %s: %s", inst.name, strerror(-r));
			inst.attached = r;
		} else if (bh_info(&inst.info) != 0 ||
			   (inst.refs = calloc(inst.info.nslots, sizeof(*inst.refs))) == NULL) {
			bh_detach();
			r = -ENOMEM;
		} else {
			__atomic_store_n(&inst.attached, 1, __ATOMIC_RELEASE);
			run_log("pid %d attached (%s)", (int)getpid(),
				inst.host_fallback ? "off-subnet destinations to the host"
						   : "every non-loopback destination to the instance");
		}
	}
	pthread_mutex_unlock(&inst.lock);
	return r;
}

int route_of(uint32_t a, bool binding)
{
	if ((a >> 24) == 127)
		return 0; /* loopback: the host's */
	if (a == 0)
		return binding ? 1 : 0; /* bind to any: ours; connect to 0.0.0.0: loopback */
	int r = inst_attach();
	if (r < 0)
		return r;
	uint32_t mask = inst.info.prefix ? ~0u << (32 - inst.info.prefix) : 0;
	if (a == inst.info.addr || (a & mask) == (inst.info.addr & mask) || a == 0xffffffffu)
		return 1;
	if (binding)
		return 0; /* an address of the host's */
	if (inst.host_fallback)
		return 0;
	return inst.info.gw ? 1 : -ENETUNREACH;
}

int fd_place(int at, bool cloexec)
{
	int e = eventfd(0, cloexec ? EFD_CLOEXEC : 0);
	if (e < 0)
		return -errno;
	if (at < 0) {
		if (e >= FDTAB_MAX) {
			real.close(e);
			return -EMFILE;
		}
		return e;
	}
	int r = real.dup3(e, at, cloexec ? O_CLOEXEC : 0);
	int err = errno;
	real.close(e);
	return r < 0 ? -err : at;
}

void say_once(const char *call, const char *why)
{
	static const char *said[64];
	static unsigned nsaid;
	fd_lock();
	for (unsigned i = 0; i < nsaid; i++)
		if (said[i] == call || strcmp(said[i], call) == 0) {
			fd_unlock();
			return;
		}
	if (nsaid < 64)
		said[nsaid++] = call;
	fd_unlock();
	char line[512];
	int n = snprintf(line, sizeof(line), "bulkhead: %s: %s\n", call, why);
	if (n > 0) {
		ssize_t w = real.write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
		(void)w;
	}
	run_log("%s: %s", call, why);
}

void run_log(const char *fmt, ...)
{
	static unsigned lines;
	if (inst.name == NULL || __atomic_add_fetch(&lines, 1, __ATOMIC_RELAXED) > 200)
		return; /* enough to say what goes where */
	char path[256];
	if (bh_inst_path(path, sizeof(path), inst.name, "log") != 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char line[600];
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ run[%d]: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = strlen(line);
	line[len++] = '\n';
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t w = real.write(fd, line, len);
	(void)w;
	real.close(fd);
}
