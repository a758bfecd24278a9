/*
 * tools/instance.c - the command line of the instance commands: up, down,
 * status, stats, conns, inject, logs. The process `up` leaves running is
 * the supervisor (supervisor/supervisor.h); every other command talks to
 * it over RUNDIR/NAME/ctl.sock (domains/paths.h): one request line, the
 * answer back.
 *
 * up       parse   the options, each checked with a clear error
 *          plan    a struct bh_plan from them (domains/plan.h), checked
 *                  by bh_plan_check, before anything starts
 *          start   forks the supervisor into the background (its own
 *                  session, stderr to RUNDIR/NAME/log) and waits, at most
 *                  BH_UP_TIMEOUT_S, until it reports the instance serving
 *                  or why it could not start
 * down     asks the supervisor to stop; done when ctl.sock is gone
 * status, stats, conns, inject
 *          one request each; "error..." answers exit 1
 * logs     reads RUNDIR/NAME/log, optionally one domain's lines
 *
 * When nobody answers on ctl.sock, the commands say why the supervisor
 * last exited (RUNDIR/NAME/supervisor.exit).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "domains/fault.h"
#include "domains/paths.h"
#include "domains/plan.h"
#include "drivers/backend.h"
#include "drivers/impair.h"
#include "ipc/clock.h"
#include "supervisor/cpulist.h"
#include "supervisor/ctlsock.h"
#include "supervisor/supervisor.h"
#include "tools/instance.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                        */
/* ------------------------------------------------------------------ */

static int parse_ip(const char *s, bh_ip4 *out)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

/* Parses A.B.C.D/LEN; returns NULL, or why it is not one. */
static const char *parse_cidr(const char *s, bh_ip4 *addr, uint8_t *prefix)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	if (slash == NULL)
		return "no prefix length: want A.B.C.D/LEN, such as 10.0.0.1/24";
	if ((size_t)(slash - s) >= sizeof(buf) || slash == s)
		return "not an IPv4 address before the '/'";
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (parse_ip(buf, addr) != 0)
		return "not an IPv4 address before the '/' (A.B.C.D, each 0-255)";
	char *end;
	long p = strtol(slash + 1, &end, 10);
	if (end == slash + 1 || *end || p < 0 || p > 32)
		return "the prefix length must be 0 to 32";
	*prefix = (uint8_t)p;
	return NULL;
}

static bh_ip4 prefix_mask(uint8_t prefix)
{
	return prefix == 0 ? 0 : ~(bh_ip4)0 << (32 - prefix);
}

static bool iface_exists(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%.15s", name);
	return access(path, F_OK) == 0;
}

/* Sends one request line and returns the whole answer (malloc'd). */
static int ctl_request(const char *name, const char *line, char **answer)
{
	char path[256];
	if (bh_inst_path(path, sizeof(path), name, "ctl.sock") != 0)
		return -ENAMETOOLONG;
	int fd = bh_unix_connect(path, SOCK_STREAM);
	if (fd < 0)
		return fd;
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	size_t len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
		close(fd);
		return -EIO;
	}
	size_t cap = 4096, got = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (got + 1024 > cap) {
			cap *= 2;
			char *nb = realloc(buf, cap);
			if (nb == NULL)
				break;
			buf = nb;
		}
		ssize_t r = read(fd, buf + got, cap - got - 1);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*answer = buf;
	return 0;
}


static int usage_up(void)
{
	fputs("usage: bulkhead up NAME --driver SPEC --addr A.B.C.D/LEN [--gw IP]\n"
	      "                  [--mode factored|mono] [--mtu N] [--capture FILE]\n"
	      "                  [--impair SPEC] [--host-addr A.B.C.D/LEN] [--seed N]\n"
	      "                  [--max-conns N] [--cpus LIST]\n"
	      "  SPEC: tap:IFNAME | pcap:IFNAME | wire:LINK:0|1 | file:PATH.pcap\n"
	      "  impair SPEC: loss=5%,dup=1%,reorder=1%,corrupt=0.1%,delay=2ms,rate=100mbit\n"
	      "  --cpus LIST: the CPUs the instance's processes run on (0, 0-1, 0,2); one\n"
	      "               CPU keeps them together (docs/PERFORMANCE.md)\n",
	      stderr);
	return 2;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bulkhead: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static bool instance_up(const char *name)
{
	char path[256];
	if (bh_inst_path(path, sizeof(path), name, "ctl.sock") != 0)
		return false;
	int fd = bh_unix_connect(path, SOCK_STREAM);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static int mkdirs(const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* --max-conns N, over the defaults: sockets for N connections at once
 * in one application (and as many again in the instance), each
 * application's socket rings made smaller so that its region stays
 * within its memory limit, and buffer pools and link rings large enough
 * for a segment in flight on each. */
static void size_conns(struct bh_plan *p, uint32_t n)
{
	const uint32_t spare = 64; /* listeners, UDP, others */
	p->app_max_socks = n + spare;
	p->max_socks = 2 * n + spare;
	uint32_t ring = 128 * 1024;
	while (ring > 4096 && (uint64_t)p->app_max_socks * 2 * ring > p->app_max_mem)
		ring /= 2;
	p->app_ring = ring;
	uint32_t bufs = 8192; /* the default RX and SOCK pools (domains/plan.c) */
	while (bufs < 2 * n)
		bufs *= 2;
	for (int i = 0; i < BH_NPOOLS; i++) {
		p->pools.g[i].nbufs = bufs;
		p->pools.g[i].buf_size = 0; /* bh_plan_defaults sizes them again */
	}
	p->tcp_buf = 0; /* and the windows, which follow the SEG buffers */
	/* Rings that hold a segment of every connection at once: a burst
	 * that overflowed them would be lost together, retransmitted
	 * together, and lost again. */
	p->link_cap = bufs;
}

/* ------------------------------------------------------------------ */
/* up: parse, plan, start                                               */
/* ------------------------------------------------------------------ */

/* The options of `up`, as given (NULL: not given). */
struct up_args {
	const char *name, *driver, *addr, *gw, *mode, *mtu, *capture, *impair, *host, *seed,
	    *conns, *cpus;
};

/* 0, or the exit status of a usage error (already reported). */
static int up_parse(int argc, char **argv, struct up_args *a)
{
	static const struct {
		const char *opt;
		size_t off;
	} opts[] = {
	    {"--driver", offsetof(struct up_args, driver)},
	    {"--addr", offsetof(struct up_args, addr)},
	    {"--gw", offsetof(struct up_args, gw)},
	    {"--mode", offsetof(struct up_args, mode)},
	    {"--mtu", offsetof(struct up_args, mtu)},
	    {"--capture", offsetof(struct up_args, capture)},
	    {"--impair", offsetof(struct up_args, impair)},
	    {"--host-addr", offsetof(struct up_args, host)},
	    {"--seed", offsetof(struct up_args, seed)},
	    {"--max-conns", offsetof(struct up_args, conns)},
	    {"--cpus", offsetof(struct up_args, cpus)},
	};
	*a = (struct up_args){.name = argv[1], .mode = "factored", .capture = "", .impair = ""};
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc)
			return fail("%s needs a value (bulkhead up --help)", o), usage_up();
		size_t k = 0;
		while (k < sizeof(opts) / sizeof(opts[0]) && strcmp(o, opts[k].opt) != 0)
			k++;
		if (k == sizeof(opts) / sizeof(opts[0]))
			return fail("unknown option %s", o), usage_up();
		*(const char **)((char *)a + opts[k].off) = argv[++i];
	}
	if (!bh_name_ok(a->name))
		return fail("bad instance name '%s': 1-32 letters, digits, '-', '_', '.'", a->name);
	if (a->driver == NULL || a->addr == NULL)
		return fail("up needs %s%s%s", a->driver ? "" : "--driver SPEC",
			    a->driver || a->addr ? "" : " and ", a->addr ? "" : "--addr A.B.C.D/LEN"),
		       usage_up();
	return 0;
}

/* The network part of the plan: address, gateway, mode, MTU. */
static int plan_network(const struct up_args *a, struct bh_plan *p)
{
	const char *why = parse_cidr(a->addr, &p->addr, &p->prefix);
	if (why)
		return fail("bad --addr '%s': %s", a->addr, why);
	if (p->addr == 0 || (p->addr >> 24) == 127 || (p->addr >> 28) >= 14)
		return fail("bad --addr '%s': not a usable unicast address", a->addr);
	if (a->gw && parse_ip(a->gw, &p->gw) != 0)
		return fail("bad --gw '%s': want A.B.C.D", a->gw);
	if (a->gw && (p->gw & prefix_mask(p->prefix)) != (p->addr & prefix_mask(p->prefix)))
		return fail("bad --gw '%s': the gateway is not on the subnet of --addr %s", a->gw,
			    a->addr);
	if (strcmp(a->mode, "factored") == 0)
		p->mode = BH_MODE_FACTORED;
	else if (strcmp(a->mode, "mono") == 0)
		p->mode = BH_MODE_MONO;
	else
		return fail("bad --mode '%s': factored or mono", a->mode);
	if (a->mtu) {
		char *end;
		long m = strtol(a->mtu, &end, 10);
		if (*end || m < 576 || m > 9000)
			return fail("bad --mtu '%s': 576 to 9000", a->mtu);
		p->mtu = (uint16_t)m;
	}
	/* Our MAC: locally administered, from the name and address; pcap
	 * uses the interface's own (plan_driver). */
	uint32_t h = 2166136261u;
	for (const char *c = a->name; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	h ^= p->addr;
	p->mac = (struct bh_mac){{0x02, 0xb4, (uint8_t)(h >> 24), (uint8_t)(h >> 16),
				   (uint8_t)(h >> 8), (uint8_t)h}};
	return 0;
}

/* --capture FILE: made absolute (the supervisor runs elsewhere) and
 * created now, so that a bad path fails before anything starts. */
static int plan_capture(const char *capture, struct bh_plan *p)
{
	char abs[600];
	if (capture[0] == '\0')
		return 0;
	if (capture[0] != '/') {
		char cwd[400];
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return fail("--capture: cannot resolve '%s'", capture);
		snprintf(abs, sizeof(abs), "%s/%s", cwd, capture);
	} else {
		snprintf(abs, sizeof(abs), "%s", capture);
	}
	int fd = open(abs, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail("--capture %s: %s", abs, strerror(errno));
	close(fd);
	if (strlen(abs) >= sizeof(p->capture))
		return fail("--capture: path too long (%zu bytes, at most %zu)", strlen(abs),
			    sizeof(p->capture) - 1);
	memcpy(p->capture, abs, strlen(abs) + 1);
	return 0;
}

/* What the driver SPEC needs from this host, checked now. */
static int plan_device(const struct bh_driver_spec *spec, struct bh_plan *p)
{
	switch (spec->kind) {
	case BH_BK_TAP:
		if (geteuid() != 0)
			return fail("tap:%s needs root (CAP_NET_ADMIN) to create a TAP interface",
				    spec->arg);
		if (iface_exists(spec->arg))
			return fail("tap:%s: interface %s exists; choose another name", spec->arg,
				    spec->arg);
		break;
	case BH_BK_PCAP: {
		if (geteuid() != 0)
			return fail("pcap:%s needs root (CAP_NET_RAW) to capture", spec->arg);
		if (!iface_exists(spec->arg))
			return fail("pcap:%s: no such interface", spec->arg);
		char mpath[128];
		snprintf(mpath, sizeof(mpath), "/sys/class/net/%.15s/address", spec->arg);
		FILE *f = fopen(mpath, "r");
		unsigned v[6];
		if (f && fscanf(f, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) == 6)
			for (int i = 0; i < 6; i++)
				p->mac.b[i] = (uint8_t)v[i];
		if (f)
			fclose(f);
		break;
	}
	case BH_BK_FILE:
		if (access(spec->arg, R_OK) != 0)
			return fail("file:%s: %s", spec->arg, strerror(errno));
		break;
	case BH_BK_SHMLINK:
		break;
	}
	return 0;
}

/* The driver part of the plan: SPEC, capture, impairment, --host-addr. */
static int plan_driver(const struct up_args *a, struct bh_sup *s)
{
	struct bh_plan *p = &s->plan;
	struct bh_driver_spec spec;
	const char *why = bh_driver_spec_parse(a->driver, &spec);
	if (why)
		return fail("bad --driver '%s': %s", a->driver, why);
	snprintf(p->driver, sizeof(p->driver), "%s", a->driver);
	struct bh_impair_cfg ic;
	if ((why = bh_impair_parse(a->impair, &ic)) != NULL)
		return fail("bad --impair '%s': %s", a->impair, why);
	snprintf(p->impair, sizeof(p->impair), "%s", a->impair);
	if (plan_capture(a->capture, p) != 0)
		return 1;
	if (a->host) {
		if (spec.kind != BH_BK_TAP)
			return fail("--host-addr is for tap: drivers only");
		if ((why = parse_cidr(a->host, &s->host_addr, &s->host_prefix)) != NULL)
			return fail("bad --host-addr '%s': %s", a->host, why);
		if (s->host_addr == p->addr)
			return fail("--host-addr and --addr are the same address");
		s->host_set = true;
	}
	return plan_device(&spec, p);
}

/* Limits, secrets and the instance's directory; then the whole plan is
 * checked once more, as a domain will check it. */
static int plan_limits(const struct up_args *a, struct bh_plan *p)
{
	p->seed = a->seed ? strtoull(a->seed, NULL, 0) : 1;
	if (getrandom(p->secret, sizeof(p->secret), 0) != (ssize_t)sizeof(p->secret))
		return fail("no random bytes: %s", strerror(errno));
	if (a->conns) {
		char *end;
		long n = strtol(a->conns, &end, 10);
		if (*end || n < 1 || n > 65536)
			return fail("bad --max-conns '%s': 1 to 65536", a->conns);
		bh_plan_defaults(p);
		size_conns(p, (uint32_t)n);
	}
	/* $BULKHEAD_SOCK_BUFS: the SOCK pool's buffer count, a test knob (a
	 * pool a few sockets can empty). */
	const char *sb = getenv("BULKHEAD_SOCK_BUFS");
	if (sb && *sb) {
		char *end;
		unsigned long n = strtoul(sb, &end, 10);
		if (*end || n < 64 || n > BH_POOL_MAX_BUFS)
			return fail("bad BULKHEAD_SOCK_BUFS '%s': 64 to %u", sb, BH_POOL_MAX_BUFS);
		p->pools.g[BH_POOL_SOCK].nbufs = (uint32_t)n;
	}
	/* $BULKHEAD_APP_RING: each application socket's ring size in bytes
	 * (each direction), a knob for measuring it. */
	const char *ar = getenv("BULKHEAD_APP_RING");
	if (ar && *ar) {
		char *end;
		unsigned long n = strtoul(ar, &end, 10);
		if (*end || n < 4096 || n > (64ul << 20) || (n & (n - 1)))
			return fail("bad BULKHEAD_APP_RING '%s': a power of two, 4096 to 67108864", ar);
		p->app_ring = (uint32_t)n;
	}
	/* $BULKHEAD_SEND_CHAIN=0: tcp copies every segment's payload, as
	 * where there are no send chains (a knob for measuring them). */
	const char *sc = getenv("BULKHEAD_SEND_CHAIN");
	if (sc && *sc) {
		if (strcmp(sc, "0") != 0 && strcmp(sc, "1") != 0)
			return fail("bad BULKHEAD_SEND_CHAIN '%s': 0 or 1", sc);
		if (sc[0] == '0')
			p->flags |= BH_PLAN_NO_CHAIN;
	}
	bh_plan_defaults(p);
	const char *why = bh_plan_check(p);
	if (why)
		return fail("bad configuration: %s", why);
	char dir[256];
	if (bh_inst_path(dir, sizeof(dir), a->name, "") != 0 || strlen(dir) >= sizeof(p->dir))
		return fail("run directory path too long");
	memcpy(p->dir, dir, strlen(dir) + 1);
	return 0;
}

/* --cpus: a list of CPUs this process may run on. */
static int plan_cpus(const struct up_args *a, struct bh_sup *s)
{
	if (a->cpus == NULL)
		return 0;
	cpu_set_t allowed;
	char why[300];
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		return fail("cannot read this process's CPUs: %s", strerror(errno));
	if (bh_cpulist_parse(a->cpus, &allowed, &s->cpus, why, sizeof(why)) != 0)
		return fail("bad --cpus '%s': %s", a->cpus, why);
	s->cpus_set = true;
	return 0;
}

static int up_plan(const struct up_args *a, struct bh_sup *s)
{
	snprintf(s->plan.name, sizeof(s->plan.name), "%s", a->name);
	if (plan_network(a, &s->plan) || plan_driver(a, s) || plan_limits(a, &s->plan) ||
	    plan_cpus(a, s))
		return 1;
	if (instance_up(a->name))
		return fail("instance %s is already up (bulkhead down %s first)", a->name, a->name);
	return 0;
}

static int up_start(struct bh_sup *s)
{
	const struct bh_plan *p = &s->plan;
	int e = mkdirs(p->dir);
	if (e)
		return fail("cannot make %s: %s", p->dir, strerror(-e));
	char logpath[256];
	bh_inst_path(logpath, sizeof(logpath), p->name, "log");
	int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0)
		return fail("cannot open %s: %s", logpath, strerror(errno));
	int rep[2];
	if (pipe2(rep, O_CLOEXEC) != 0)
		return fail("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return fail("fork: %s", strerror(errno));
	if (pid == 0) {
		/* The supervisor: its own session, stdio to the log. */
		close(rep[0]);
		setsid();
		if (fork() != 0)
			_exit(0);
		/* Before any domain starts: they inherit it. */
		if (s->cpus_set && sched_setaffinity(0, sizeof(s->cpus), &s->cpus) != 0) {
			char m[200];
			int k = snprintf(m, sizeof(m), "error: cannot run on --cpus: %s\n",
					 strerror(errno));
			(void)!write(rep[1], m, (size_t)k);
			_exit(1);
		}
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, STDIN_FILENO);
		dup2(nul, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		close(nul);
		close(logfd);
		signal(SIGPIPE, SIG_IGN);
		_exit(bh_supervise(s, rep[1]));
	}
	close(rep[1]);
	close(logfd);
	waitpid(pid, NULL, 0);
	char buf[512];
	ssize_t got = bh_read_line(rep[0], buf, sizeof(buf), BH_UP_TIMEOUT_S * 1000);
	close(rep[0]);
	if (strncmp(buf, "ok ", 3) == 0) {
		char a[16];
		printf("%s: up (%s), %s/%u on %s, supervisor pid %s\n", p->name,
		       p->mode == BH_MODE_MONO ? "mono" : "factored",
		       bh_ip4_text(a, sizeof(a), p->addr), p->prefix, p->driver, buf + 3);
		return 0;
	}
	if (got <= 0)
		return fail("instance %s did not start within %d s (see bulkhead logs %s)", p->name,
			    BH_UP_TIMEOUT_S, p->name);
	return fail("instance %s did not start: %s", p->name,
		    strncmp(buf, "error: ", 7) == 0 ? buf + 7 : buf);
}

int bh_cmd_up(int argc, char **argv, const char *exe)
{
	if (argc < 2 || argv[1][0] == '-')
		return usage_up();
	static struct bh_sup s;
	memset(&s, 0, sizeof(s));
	s.exe = exe;
	struct up_args a;
	int rc = up_parse(argc, argv, &a);
	if (rc == 0)
		rc = up_plan(&a, &s);
	if (rc == 0)
		rc = up_start(&s);
	return rc;
}

static int name_arg(int argc, char **argv, const char *usage, bool *json)
{
	*json = false;
	if (argc < 2) {
		fprintf(stderr, "usage: %s\n", usage);
		return -1;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && json)
			*json = true;
		else {
			fprintf(stderr, "bulkhead: unknown argument '%s'\nusage: %s\n", argv[i], usage);
			return -1;
		}
	}
	if (!bh_name_ok(argv[1])) {
		fprintf(stderr, "bulkhead: bad instance name '%s'\n", argv[1]);
		return -1;
	}
	return 0;
}

/* `NAME is not up`, with what the supervisor said when it exited (or that
 * it said nothing: killed by SIGKILL). e: the error reaching ctl.sock. */
static int not_up(const char *name, int e)
{
	char path[256], note[256] = "";
	if (e != -ENOENT && e != -ECONNREFUSED)
		return fail("instance %s is not up (%s)", name, strerror(-e));
	if (bh_inst_path(path, sizeof(path), name, "supervisor.exit") == 0) {
		FILE *f = fopen(path, "r");
		if (f) {
			if (fgets(note, sizeof(note), f) == NULL)
				note[0] = '\0';
			note[strcspn(note, "\n")] = '\0';
			fclose(f);
			if (note[0] == '\0')
				snprintf(note, sizeof(note),
					 "its supervisor ended without a word: killed by SIGKILL?");
			if (e == -ECONNREFUSED || strncmp(note, "stopped by bulkhead down", 24) != 0)
				return fail("instance %s is not up: %s (bulkhead logs %s)", name, note,
					    name);
		}
	}
	return fail("instance %s is not up (no supervisor)", name);
}

static int ask(const char *name, const char *req)
{
	char *ans = NULL;
	int e = ctl_request(name, req, &ans);
	if (e)
		return not_up(name, e);
	fputs(ans, stdout);
	int rc = strncmp(ans, "error", 5) == 0 ? 1 : 0;
	free(ans);
	return rc;
}

int bh_cmd_query(int argc, char **argv)
{
	bool json;
	const char *cmd = argv[0];
	char usage[64];
	snprintf(usage, sizeof(usage), "bulkhead %s NAME [--json]", cmd);
	if (name_arg(argc, argv, usage, &json) != 0)
		return 2;
	char req[64];
	snprintf(req, sizeof(req), "%s%s", cmd, json ? " json" : "");
	return ask(argv[1], req);
}

int bh_cmd_down(int argc, char **argv)
{
	bool json;
	if (name_arg(argc, argv, "bulkhead down NAME", &json) != 0 || json)
		return 2;
	const char *name = argv[1];
	char *ans = NULL;
	int e = ctl_request(name, "down", &ans);
	if (e)
		return fail("instance %s is not up", name);
	free(ans);
	/* Gone when its control socket is. */
	char path[256];
	bh_inst_path(path, sizeof(path), name, "ctl.sock");
	for (int i = 0; i < 200; i++) {
		if (access(path, F_OK) != 0) {
			printf("%s: down\n", name);
			return 0;
		}
		usleep(50000);
	}
	return fail("instance %s did not stop within 10 s", name);
}

int bh_cmd_inject(int argc, char **argv)
{
	unsigned long seed = 1;
	if (argc == 6 && strcmp(argv[4], "--seed") == 0) {
		char *end;
		seed = strtoul(argv[5], &end, 10);
		if (*end || seed > 0x1ffffff)
			argc = 0;
	} else if (argc != 4) {
		argc = 0;
	}
	if (argc == 0 || !bh_name_ok(argv[1]) || bh_fault_parse(argv[3]) == BH_FAULT_NONE) {
		fputs("usage: bulkhead inject NAME DOMAIN FAULT [--seed N]\n"
		      "  DOMAIN: driver, ip, tcp, sock\n"
		      "  FAULT:  kill, crash, hang, scribble, bad-desc, syscall\n",
		      stderr);
		return 2;
	}
	char req[96], *ans = NULL;
	snprintf(req, sizeof(req), "inject %.15s %.15s %lu", argv[2], argv[3], seed);
	if (ctl_request(argv[1], req, &ans) != 0)
		return fail("instance %s is not up", argv[1]);
	bool ok = ans && strncmp(ans, "ok", 2) == 0;
	fprintf(ok ? stdout : stderr, "%s", ans ? ans : "no answer\n");
	free(ans);
	return ok ? 0 : 1;
}

int bh_cmd_logs(int argc, char **argv)
{
	if (argc < 2 || argc > 3 || !bh_name_ok(argv[1])) {
		fputs("usage: bulkhead logs NAME [driver|ip|tcp|sock|mono|supervisor|run]\n", stderr);
		return 2;
	}
	const char *dom = argc == 3 ? argv[2] : NULL;
	if (dom && strcmp(dom, "driver") && strcmp(dom, "ip") && strcmp(dom, "tcp") &&
	    strcmp(dom, "sock") && strcmp(dom, "mono") && strcmp(dom, "supervisor") &&
	    strcmp(dom, "run"))
		return fail("unknown domain '%s' (driver, ip, tcp, sock, mono, supervisor, run)", dom);
	char path[256];
	bh_inst_path(path, sizeof(path), argv[1], "log");
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return fail("no log for instance %s (%s)", argv[1], strerror(errno));
	char pat[32];
	if (dom)
		snprintf(pat, sizeof(pat), "Z %s[", dom);
	char line[1024];
	while (fgets(line, sizeof(line), f)) {
		if (dom == NULL || strstr(line, pat))
			fputs(line, stdout);
	}
	fclose(f);
	return 0;
}

