/*
 * tools/instance.c - `bulkhead up` and the supervisor it leaves running,
 * and the commands that talk to it: down, status, stats, conns, logs.
 *
 * up       checks the arguments (clear errors before anything starts),
 *          then forks the supervisor into the background and waits (at
 *          most BH_UP_TIMEOUT_S) until it reports the instance serving, or
 *          why it could not start
 * supervisor  makes the plan and every region, the TAP device (tap:),
 *          the application socket and its control socket; starts the
 *          four domains (factored: four processes, each handed only its
 *          own descriptors; mono: one process); watches them (exit, and a
 *          heartbeat in each stats region) and answers control requests
 *          (one line in, the answer out): status, stats, conns, down,
 *          each with " json" for JSON
 *
 * The instance's directory RUNDIR/NAME (domains/paths.h) holds ctl.sock,
 * app.sock, log and supervisor.exit (why the supervisor last exited). A
 * domain that dies or hangs is replaced (schedule_restart, with backoff
 * and a storm limit).
 *
 * Size: over 900 lines, one file still: the command line (up's parsing,
 * the ctl clients) and the supervisor (regions, spawn, restart policy,
 * control answers) are the seam, and the supervisor is to move to files
 * of its own with its contract at the top.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "domains/fault.h"
#include "domains/paths.h"
#include "domains/plan.h"
#include "domains/rt.h"
#include "domains/stats.h"
#include "drivers/backend.h"
#include "drivers/impair.h"
#include "ipc/clock.h"
#include "tcp/tcp.h"
#include "tools/instance.h"

#define BH_UP_TIMEOUT_S 20
#define BH_HANG_NS (3ull * 1000 * 1000 * 1000)

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

static void fmt_ip(char *out, size_t n, bh_ip4 a)
{
	snprintf(out, n, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

static bool iface_exists(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	return access(path, F_OK) == 0;
}

static int unix_connect(const char *path, int type)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int unix_listen(const char *path, int type, mode_t mode)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, mode) != 0 ||
	    listen(fd, 64) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Sends one request line and returns the whole answer (malloc'd). */
static int ctl_request(const char *name, const char *line, char **answer)
{
	char path[256];
	if (bh_inst_path(path, sizeof(path), name, "ctl.sock") != 0)
		return -ENAMETOOLONG;
	int fd = unix_connect(path, SOCK_STREAM);
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

/* ------------------------------------------------------------------ */
/* growing text for answers                                             */
/* ------------------------------------------------------------------ */

struct text {
	char *s;
	size_t len, cap;
};

static void tprintf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(struct text *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->s && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 4096;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *ns = realloc(t->s, cap);
		if (ns == NULL)
			return;
		t->s = ns;
		t->cap = cap;
	}
}

/* ------------------------------------------------------------------ */
/* the supervisor                                                       */
/* ------------------------------------------------------------------ */

struct dom_rec {
	pid_t pid;
	int pidfd;
	bool alive;
	int status;
	uint64_t started_ns, ended_ns;
	uint64_t last_beat, last_beat_ns;
	bool hung;
	uint32_t restarts;
	/* Restarts (factored only): */
	bool restart_due;     /* dead, a replacement to start at restart_at */
	uint64_t restart_at;
	uint64_t detected_ns; /* when its death was seen */
	int ready_fd;         /* a replacement's ready pipe, until it serves */
	bool serving;         /* said it serves (ready) */
	uint64_t serving_ns;
	bool faulted;         /* a fault was injected into this incarnation */
	uint32_t quick_fails; /* replacements in a row that died at once */
	uint64_t last_restart_ms; /* detection to serving, the last one */
};

/* Restart policy: a replacement that dies before it serves, or within
 * BH_STABLE_NS of serving with no fault injected into it, is a quick
 * failure; each in a row doubles the wait before the next (from
 * BH_BACKOFF0_NS), and after BH_MAX_QUICK_FAILS the instance stops. */
#define BH_STABLE_NS (1000ull * 1000 * 1000)
#define BH_BACKOFF0_NS (50ull * 1000 * 1000)
#define BH_MAX_QUICK_FAILS 5u
#define BH_SERVE_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)

struct sup {
	struct bh_plan plan;
	struct bh_regions regions;
	int tap_fd, apps_fd, ctl_fd;
	struct dom_rec dom[BH_NDOMS]; /* mono: all four share one process */
	uint64_t started_ns;
	bool stopping;
	char why[200]; /* why it stops, for supervisor.exit */
	const char *exe;
};

/* ------------------------------------------------------------------ */
/* the supervisor's last word                                           */
/* ------------------------------------------------------------------ */

/* Why the supervisor exited, in RUNDIR/NAME/supervisor.exit: `status`
 * reads it once nobody answers on ctl.sock. The file is opened (and
 * emptied) at start, so that every exit path, a fatal signal's handler
 * included, only has to write. A supervisor killed by SIGKILL leaves the
 * file empty, and `status` says that too. */
static int exit_fd = -1;

static void exit_note(const char *text)
{
	if (exit_fd < 0)
		return;
	size_t n = strlen(text);
	if (pwrite(exit_fd, text, n, 0) == (ssize_t)n)
		(void)!ftruncate(exit_fd, (off_t)n);
}

/* A fault in the supervisor itself: one line to the log and the exit
 * note (async-signal-safe calls only), then the signal's default action. */
static void on_fatal(int sig)
{
	char msg[96] = "supervisor: fatal signal ";
	size_t n = strlen(msg);
	char digits[8];
	int k = 0;
	for (int v = sig; v > 0 && k < 7; v /= 10)
		digits[k++] = (char)('0' + v % 10);
	while (k > 0)
		msg[n++] = digits[--k];
	memcpy(msg + n, "; it exits\n", 12);
	n += 11;
	(void)!write(STDERR_FILENO, msg, n);
	if (exit_fd >= 0) {
		(void)!pwrite(exit_fd, msg, n, 0);
		(void)!ftruncate(exit_fd, (off_t)n);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void exit_note_open(const char *name)
{
	char path[256];
	if (bh_inst_path(path, sizeof(path), name, "supervisor.exit") == 0)
		exit_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		signal(fatal[i], on_fatal);
}

static int tap_create(const char *ifname, uint16_t mtu, const char *host_cidr, char *err,
		      size_t errlen)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "tap: /dev/net/tun: %s", strerror(errno));
		return -errno;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%.15s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		snprintf(err, errlen, "tap:%s: cannot create the interface: %s", ifname, strerror(e));
		close(fd);
		return -e;
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = 0;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%.15s", ifname);
	ifr.ifr_mtu = mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
		rc = -errno;
	if (rc == 0 && host_cidr && host_cidr[0]) {
		bh_ip4 a;
		uint8_t p;
		parse_cidr(host_cidr, &a, &p);
		struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
		memset(&ifr.ifr_addr, 0, sizeof(ifr.ifr_addr));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(a);
		if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
			rc = -errno;
		sin->sin_addr.s_addr = htonl(p ? ~0u << (32 - p) : 0);
		if (rc == 0 && ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
			rc = -errno;
	}
	if (rc == 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			rc = -errno;
	}
	close(s);
	if (rc) {
		snprintf(err, errlen, "tap:%s: cannot configure the interface: %s", ifname,
			 strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

/* Starts one process running `dom` (or mono when dom < 0) with its
 * descriptors; returns its ready pipe's read end, or -errno. */
static int spawn(struct sup *s, int dom, const char *exe, bool restart, pid_t *pid_out)
{
	struct bh_fd_map map[64];
	int n = 0;
	if (dom >= 0) {
		n = bh_dom_fds(&s->regions, dom, map, 60);
	} else {
		for (int d = 0; d < BH_NDOMS; d++) {
			struct bh_fd_map m[32];
			int k = bh_dom_fds(&s->regions, d, m, 32);
			for (int i = 0; i < k; i++) {
				/* One descriptor per number; the writable one wins
				 * (each domain owns a pool the others only read). */
				int at = -1;
				for (int j = 0; j < n; j++)
					if (map[j].dst == m[i].dst)
						at = j;
				if (at >= 0 && map[at].owned && !m[i].owned) {
					close(map[at].src);
					map[at] = m[i];
					continue;
				}
				if (at >= 0 || n >= 60) {
					if (m[i].owned)
						close(m[i].src);
					continue;
				}
				map[n++] = m[i];
			}
		}
	}
	if (s->tap_fd >= 0 && (dom == BH_DOM_DRIVER || dom < 0))
		map[n++] = (struct bh_fd_map){s->tap_fd, BH_FD_TAP, false};
	if (dom == BH_DOM_SOCK || dom < 0)
		map[n++] = (struct bh_fd_map){s->apps_fd, BH_FD_APPS, false};
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) != 0)
		return -errno;
	map[n++] = (struct bh_fd_map){ready[1], BH_FD_READY, false};
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(ready[0]);
		close(ready[1]);
		return -e;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Out of the way first, then into place. */
		int tmp[64];
		for (int i = 0; i < n; i++)
			tmp[i] = fcntl(map[i].src, F_DUPFD_CLOEXEC, 100);
		for (int i = 0; i < n; i++)
			if (tmp[i] < 0 || dup2(tmp[i], map[i].dst) < 0)
				_exit(126);
		for (int fd = 3; fd < 1024; fd++) {
			bool keep = false;
			for (int i = 0; i < n; i++)
				keep |= map[i].dst == fd;
			if (!keep)
				close(fd);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		char *argv[] = {"bulkhead", dom >= 0 ? "__domain" : "__mono",
				(char *)(dom >= 0 ? bh_dom_name(dom) : "all"), s->plan.name,
				restart ? "restart" : NULL, NULL};
		execv(exe, argv);
		_exit(127);
	}
	close(ready[1]);
	for (int i = 0; i < n; i++)
		if (map[i].owned)
			close(map[i].src);
	*pid_out = pid;
	return ready[0];
}

/* Waits for a ready line; 0 when "ok", else the message in err. */
static int wait_ready(int fd, int timeout_ms, char *err, size_t errlen)
{
	char buf[512];
	size_t got = 0;
	uint64_t deadline = bh_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (got < sizeof(buf) - 1) {
		uint64_t now = bh_now_ns();
		if (now >= deadline) {
			snprintf(err, errlen, "timed out waiting for it to start");
			return -ETIMEDOUT;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(buf, '\n', got))
			break;
	}
	buf[got] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	if (strcmp(buf, "ok") == 0)
		return 0;
	snprintf(err, errlen, "%.200s", got ? buf : "it exited before it was ready (see the log)");
	return -EIO;
}

static void stop_all(struct sup *s)
{
	for (int d = 0; d < BH_NDOMS; d++)
		if (s->dom[d].alive && s->dom[d].pid > 0)
			kill(s->dom[d].pid, SIGTERM);
	uint64_t deadline = bh_now_ns() + 3000000000ull;
	for (;;) {
		bool any = false;
		for (int d = 0; d < BH_NDOMS; d++) {
			if (!s->dom[d].alive)
				continue;
			int st;
			pid_t r = waitpid(s->dom[d].pid, &st, WNOHANG);
			if (r == s->dom[d].pid || (r < 0 && errno == ECHILD)) {
				for (int e = 0; e < BH_NDOMS; e++)
					if (s->dom[e].pid == s->dom[d].pid)
						s->dom[e].alive = false;
			} else {
				any = true;
			}
		}
		if (!any)
			break;
		if (bh_now_ns() > deadline) {
			for (int d = 0; d < BH_NDOMS; d++)
				if (s->dom[d].alive) {
					bh_logf("%s (pid %d) did not stop in 3 s: killing it",
						bh_dom_name(d), (int)s->dom[d].pid);
					kill(s->dom[d].pid, SIGKILL);
				}
			deadline = UINT64_MAX;
		}
		usleep(10000);
	}
}

static const char *dom_state(const struct dom_rec *r)
{
	if (r->alive && !r->serving)
		return "restarting";
	if (r->alive)
		return r->hung ? "unresponsive" : "running";
	if (r->pid == 0)
		return "not started";
	if (r->restart_due)
		return "restarting";
	if (WIFSIGNALED(r->status))
		return "killed";
	return "exited";
}

/* A sanitizer build's domain writes its reports to a file of its own
 * (domains/rt.c): name it in the line that reports the death, if the
 * domain wrote one. */
static void sanitizer_report_note(char *out, size_t n, const struct sup *s, int d, pid_t pid)
{
	char file[64], path[256];
	struct stat st;
	snprintf(file, sizeof(file), "sanitizer.%s.%d",
		 s->plan.mode == BH_MODE_MONO ? "mono" : bh_dom_name(d), (int)pid);
	if (bh_inst_path(path, sizeof(path), s->plan.name, file) == 0 && stat(path, &st) == 0 &&
	    st.st_size > 0)
		snprintf(out, n, "; sanitizer report in %s", path);
}

static void exit_text(char *out, size_t n, const struct dom_rec *r)
{
	if (r->pid == 0 || (r->alive && r->restarts == 0))
		out[0] = '\0';
	else if (r->alive)
		snprintf(out, n, "last: %s %d, back in %llu ms",
			 WIFSIGNALED(r->status) ? "signal" : "status",
			 WIFSIGNALED(r->status) ? WTERMSIG(r->status) : WEXITSTATUS(r->status),
			 (unsigned long long)r->last_restart_ms);
	else if (WIFSIGNALED(r->status))
		snprintf(out, n, "signal %d (%s)", WTERMSIG(r->status), strsignal(WTERMSIG(r->status)));
	else
		snprintf(out, n, "status %d", WEXITSTATUS(r->status));
}

static void answer_status(struct sup *s, struct text *t, bool json)
{
	uint64_t now = bh_now_ns();
	const char *mode = s->plan.mode == BH_MODE_MONO ? "mono" : "factored";
	char addr[32];
	fmt_ip(addr, sizeof(addr), s->plan.addr);
	if (json) {
		tprintf(t, "{\"name\": \"%s\", \"mode\": \"%s\", \"supervisor_pid\": %d, "
			   "\"addr\": \"%s/%u\", \"driver\": \"%s\", \"uptime_s\": %.3f, \"domains\": [",
			s->plan.name, mode, (int)getpid(), addr, s->plan.prefix, s->plan.driver,
			(double)(now - s->started_ns) / 1e9);
	} else {
		tprintf(t, "instance %s (%s), %s/%u on %s, supervisor pid %d, up %.1f s\n",
			s->plan.name, mode, addr, s->plan.prefix, s->plan.driver, (int)getpid(),
			(double)(now - s->started_ns) / 1e9);
		tprintf(t, "%-7s %-8s %-13s %-9s %-10s %s\n", "DOMAIN", "PID", "STATE", "RESTARTS",
			"UPTIME", "EXIT");
	}
	for (int d = 0; d < BH_NDOMS; d++) {
		const struct dom_rec *r = &s->dom[d];
		double up = r->pid ? (double)((r->alive ? now : r->ended_ns) - r->started_ns) / 1e9 : 0;
		char ex[64];
		exit_text(ex, sizeof(ex), r);
		if (json)
			tprintf(t, "%s{\"name\": \"%s\", \"pid\": %d, \"state\": \"%s\", \"restarts\": %u, "
				   "\"uptime_s\": %.3f, \"exit\": \"%s\", \"last_restart_ms\": %llu}",
				d ? ", " : "", bh_dom_name(d), (int)r->pid, dom_state(r), r->restarts,
				r->alive ? up : 0.0, ex, (unsigned long long)r->last_restart_ms);
		else
			tprintf(t, "%-7s %-8d %-13s %-9u %-10.1f %s\n", bh_dom_name(d), (int)r->pid,
				dom_state(r), r->restarts, r->alive ? up : 0.0, ex);
	}
	if (json)
		tprintf(t, "]}\n");
}

static void answer_stats(struct sup *s, struct text *t, bool json)
{
	if (json)
		tprintf(t, "{\"name\": \"%s\", \"domains\": {", s->plan.name);
	for (int d = 0; d < BH_NDOMS; d++) {
		struct bh_stats_snap snap;
		int e = bh_stats_read(&s->regions.stats[d], d == BH_DOM_TCP ? s->plan.max_socks : 0,
				      &snap);
		if (json)
			tprintf(t, "%s\"%s\": {", d ? ", " : "", bh_dom_name(d));
		if (e == 0) {
			for (uint32_t i = 0; i < snap.h.ncounters; i++) {
				/* Names are the domain's: keep them to safe bytes. */
				char name[64];
				size_t k = 0;
				for (const char *c = snap.ctr[i].name; *c && k < sizeof(name) - 1; c++)
					name[k++] = (*c == '"' || *c == '\\' || *c < 32) ? '_' : *c;
				name[k] = '\0';
				if (json)
					tprintf(t, "%s\"%s\": %llu", i ? ", " : "", name,
						(unsigned long long)snap.ctr[i].value);
				else
					tprintf(t, "%s.%s %llu\n", bh_dom_name(d), name,
						(unsigned long long)snap.ctr[i].value);
			}
			bh_stats_snap_free(&snap);
		} else if (!json) {
			tprintf(t, "%s: no counters (%s)\n", bh_dom_name(d), strerror(-e));
		}
		if (json)
			tprintf(t, "}");
	}
	if (json)
		tprintf(t, "}}\n");
}

static void answer_conns(struct sup *s, struct text *t, bool json)
{
	struct bh_stats_snap snap;
	int e = bh_stats_read(&s->regions.stats[BH_DOM_TCP], s->plan.max_socks, &snap);
	if (e) {
		if (json)
			tprintf(t, "{\"name\": \"%s\", \"error\": \"%s\", \"conns\": []}\n", s->plan.name,
				strerror(-e));
		else
			tprintf(t, "no connection table: %s\n", strerror(-e));
		return;
	}
	if (json)
		tprintf(t, "{\"name\": \"%s\", \"conns\": [", s->plan.name);
	else
		tprintf(t, "%-21s %-21s %-11s %8s %8s %8s %7s %6s\n", "LOCAL", "REMOTE", "STATE",
			"CWND", "SRTT_US", "RTO_US", "RETRANS", "MSS");
	for (uint32_t i = 0; i < snap.h.nconns; i++) {
		const struct bh_stat_conn *c = &snap.conn[i];
		char la[32], ra[32], l[40], r[40];
		fmt_ip(la, sizeof(la), c->laddr);
		fmt_ip(ra, sizeof(ra), c->raddr);
		snprintf(l, sizeof(l), "%s:%u", la, c->lport);
		snprintf(r, sizeof(r), "%s:%u", ra, c->rport);
		const char *st = c->state <= BH_TCP_TIME_WAIT ? bh_tcp_state_name(c->state) : "?";
		if (json)
			tprintf(t,
				"%s{\"local\": \"%s\", \"remote\": \"%s\", \"state\": \"%s\", \"cwnd\": %u, "
				"\"ssthresh\": %u, \"srtt_us\": %u, \"rto_us\": %u, \"retransmits\": %u, "
				"\"mss\": %u, \"snd_queued\": %u, \"rcv_queued\": %u, \"snd_wnd\": %u, "
				"\"rcv_wnd\": %u}",
				i ? ", " : "", l, r, st, c->cwnd, c->ssthresh, c->srtt_us, c->rto_us,
				c->retransmits, c->mss, c->snd_queued, c->rcv_queued, c->snd_wnd,
				c->rcv_wnd);
		else
			tprintf(t, "%-21s %-21s %-11s %8u %8u %8u %7u %6u\n", l, r, st, c->cwnd,
				c->srtt_us, c->rto_us, c->retransmits, c->mss);
	}
	if (json)
		tprintf(t, "]}\n");
	bh_stats_snap_free(&snap);
}

/* "inject DOMAIN FAULT SEED": the domain performs the fault itself
 * (domains/fault.h); asked with a queued real-time signal. */
static void answer_inject(struct sup *s, struct text *t, const char *args)
{
	char dname[16], fname[16];
	unsigned seed = 1;
	if (sscanf(args, "%15s %15s %u", dname, fname, &seed) < 2) {
		tprintf(t, "error: inject DOMAIN FAULT [SEED]\n");
		return;
	}
	int dom = -1;
	for (int d = 0; d < BH_NDOMS; d++)
		if (strcmp(dname, bh_dom_name(d)) == 0)
			dom = d;
	enum bh_fault f = bh_fault_parse(fname);
	if (dom < 0 || f == BH_FAULT_NONE) {
		tprintf(t, "error: %s %s: DOMAIN is driver, ip, tcp or sock; FAULT is kill, crash, "
			   "hang, scribble, bad-desc or syscall\n",
			dname, fname);
		return;
	}
	struct dom_rec *r = &s->dom[dom];
	if (!r->alive) {
		tprintf(t, "error: domain %s is not running\n", dname);
		return;
	}
	union sigval v = {.sival_int = bh_fault_value(f, dom, seed)};
	if (sigqueue(r->pid, BH_FAULT_SIGNAL, v) != 0) {
		tprintf(t, "error: cannot signal %s (pid %d): %s\n", dname, (int)r->pid,
			strerror(errno));
		return;
	}
	for (int d = 0; d < BH_NDOMS; d++)
		if (s->dom[d].pid == r->pid)
			s->dom[d].faulted = true;
	bh_logf("fault %s injected into %s (pid %d, seed %u)", fname, dname, (int)r->pid, seed);
	tprintf(t, "ok: %s into %s (pid %d, seed %u)%s\n", fname, dname, (int)r->pid, seed,
		s->plan.mode == BH_MODE_MONO ? "; mono: one process holds all four domains" : "");
}

static void handle_ctl(struct sup *s, int fd)
{
	char line[256];
	size_t got = 0;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	while (got < sizeof(line) - 1 && poll(&pfd, 1, 1000) > 0) {
		ssize_t r = read(fd, line + got, sizeof(line) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(line, '\n', got))
			break;
	}
	line[got] = '\0';
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
	bool json = strstr(line, " json") != NULL;
	struct text t = {0};
	if (strncmp(line, "status", 6) == 0)
		answer_status(s, &t, json);
	else if (strncmp(line, "stats", 5) == 0)
		answer_stats(s, &t, json);
	else if (strncmp(line, "conns", 5) == 0)
		answer_conns(s, &t, json);
	else if (strncmp(line, "inject ", 7) == 0)
		answer_inject(s, &t, line + 7);
	else if (strcmp(line, "down") == 0) {
		tprintf(&t, "ok\n");
		snprintf(s->why, sizeof(s->why), "stopped by bulkhead down");
		s->stopping = true;
	} else
		tprintf(&t, "error: unknown request '%s'\n", line);
	size_t off = 0;
	while (t.s && off < t.len) {
		ssize_t w = write(fd, t.s + off, t.len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(t.s);
}

/* A factored domain died: its links start a new epoch now (the
 * survivors let go of it at once), and a replacement is due after the
 * backoff. */
static void schedule_restart(struct sup *s, int d)
{
	struct dom_rec *r = &s->dom[d];
	uint64_t now = bh_now_ns();
	r->detected_ns = now;
	if (r->ready_fd >= 0) {
		close(r->ready_fd);
		r->ready_fd = -1;
	}
	bool quick = !r->serving || (now - r->serving_ns < BH_STABLE_NS && !r->faulted);
	r->quick_fails = quick ? r->quick_fails + 1 : 0;
	if (r->quick_fails > BH_MAX_QUICK_FAILS) {
		bh_logf("domain %s failed %u times in a row right after starting: the instance "
			"cannot recover; stopping it",
			bh_dom_name(d), r->quick_fails);
		snprintf(s->why, sizeof(s->why),
			 "gave up: domain %s failed %u times in a row right after starting",
			 bh_dom_name(d), r->quick_fails);
		s->stopping = true;
		return;
	}
	bh_regions_reset_links(&s->regions, d);
	uint64_t wait = r->quick_fails ? BH_BACKOFF0_NS << (r->quick_fails - 1) : 0;
	r->restart_due = true;
	r->restart_at = now + wait;
	if (wait)
		bh_logf("domain %s: quick failure %u in a row; restarting it in %llu ms",
			bh_dom_name(d), r->quick_fails, (unsigned long long)(wait / 1000000u));
}

static void start_replacements(struct sup *s)
{
	uint64_t now = bh_now_ns();
	for (int d = 0; d < BH_NDOMS; d++) {
		struct dom_rec *r = &s->dom[d];
		if (!r->restart_due || now < r->restart_at || s->stopping)
			continue;
		r->restart_due = false;
		pid_t pid = 0;
		int rfd = spawn(s, d, s->exe, true, &pid);
		if (rfd < 0) {
			bh_logf("cannot start a replacement for %s: %s", bh_dom_name(d), strerror(-rfd));
			r->serving = false;
			schedule_restart(s, d);
			continue;
		}
		int fl = fcntl(rfd, F_GETFL);
		fcntl(rfd, F_SETFL, fl | O_NONBLOCK);
		r->pid = pid;
		r->alive = true;
		r->hung = false;
		r->serving = false;
		r->faulted = false;
		r->started_ns = r->last_beat_ns = bh_now_ns();
		r->ready_fd = rfd;
		r->restarts++;
		bh_logf("domain %s: replacement %u started (pid %d)", bh_dom_name(d), r->restarts,
			(int)pid);
	}
}

/* A replacement says it serves (every link up) or gives up. */
static void check_replacements(struct sup *s)
{
	uint64_t now = bh_now_ns();
	for (int d = 0; d < BH_NDOMS; d++) {
		struct dom_rec *r = &s->dom[d];
		if (r->ready_fd < 0)
			continue;
		char buf[256];
		ssize_t n = read(r->ready_fd, buf, sizeof(buf) - 1);
		if (n < 0 && errno == EAGAIN) {
			if (r->alive && now - r->started_ns > BH_SERVE_TIMEOUT_NS) {
				bh_logf("domain %s (pid %d) is not serving %llu s after it started: "
					"killing it",
					bh_dom_name(d), (int)r->pid,
					(unsigned long long)(BH_SERVE_TIMEOUT_NS / 1000000000u));
				kill(r->pid, SIGKILL);
				r->started_ns = now; /* once */
			}
			continue;
		}
		close(r->ready_fd);
		r->ready_fd = -1;
		if (n > 0 && strncmp(buf, "ok", 2) == 0) {
			r->serving = true;
			r->serving_ns = now;
			r->last_restart_ms = (now - r->detected_ns) / 1000000u;
			bh_logf("domain %s serving again (pid %d, restart %u): %.1f ms from detection "
				"to serving",
				bh_dom_name(d), (int)r->pid, r->restarts,
				(double)(now - r->detected_ns) / 1e6);
		} else {
			buf[n > 0 ? n : 0] = '\0';
			char *nl = strchr(buf, '\n');
			if (nl)
				*nl = '\0';
			bh_logf("domain %s replacement (pid %d) failed to start: %s", bh_dom_name(d),
				(int)r->pid, n > 0 ? buf : "it exited first");
		}
	}
}

static void check_children(struct sup *s)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			return;
		for (int d = 0; d < BH_NDOMS; d++) {
			struct dom_rec *r = &s->dom[d];
			if (r->pid != pid || !r->alive)
				continue;
			r->alive = false;
			r->status = st;
			r->ended_ns = bh_now_ns();
			char ex[64];
			exit_text(ex, sizeof(ex), r);
			char san[320] = "";
			sanitizer_report_note(san, sizeof(san), s, d, pid);
			bh_logf("domain %s (pid %d) died: %s%s", bh_dom_name(d), (int)pid, ex, san);
			if (s->plan.mode == BH_MODE_FACTORED && !s->stopping)
				schedule_restart(s, d);
		}
	}
}

static void check_heartbeats(struct sup *s)
{
	uint64_t now = bh_now_ns();
	for (int d = 0; d < BH_NDOMS; d++) {
		struct dom_rec *r = &s->dom[d];
		if (!r->alive)
			continue;
		const struct bh_stats_hdr *h =
		    bh_region_at(&s->regions.stats[d], 64, sizeof(struct bh_stats_hdr));
		uint64_t beat = h ? __atomic_load_n(&h->heartbeat, __ATOMIC_RELAXED) : 0;
		if (beat != r->last_beat) {
			if (r->hung)
				bh_logf("domain %s (pid %d) is making progress again", bh_dom_name(d),
					(int)r->pid);
			r->last_beat = beat;
			r->last_beat_ns = now;
			r->hung = false;
		} else if (!r->hung && now - r->last_beat_ns > BH_HANG_NS) {
			r->hung = true;
			bool kill_it = s->plan.mode == BH_MODE_FACTORED;
			bh_logf("domain %s (pid %d): no heartbeat for %.1f s%s", bh_dom_name(d),
				(int)r->pid, (double)(now - r->last_beat_ns) / 1e9,
				kill_it ? ": killing it, to replace it" : "");
			if (kill_it)
				kill(r->pid, SIGKILL);
		}
	}
}

static void sup_cleanup(struct sup *s)
{
	char path[256];
	struct bh_driver_spec spec;
	if (bh_driver_spec_parse(s->plan.driver, &spec) == NULL && spec.kind == BH_BK_SHMLINK) {
		snprintf(path, sizeof(path), "%s/..", s->plan.dir);
		bh_shmlink_forget(path, spec.arg);
	}
	bh_inst_path(path, sizeof(path), s->plan.name, "ctl.sock");
	unlink(path);
	bh_inst_path(path, sizeof(path), s->plan.name, "app.sock");
	unlink(path);
	if (s->tap_fd >= 0)
		close(s->tap_fd);
	bh_regions_close(&s->regions);
}

/* The supervisor process. `report` is the pipe to `up`. */
static int supervise(struct sup *s, const char *exe, int report, const char *host_cidr)
{
	char err[300] = "";
	int e = 0;
	bh_log_init("supervisor");
	exit_note_open(s->plan.name);
	s->started_ns = bh_now_ns();
	s->tap_fd = -1;
	char path[256];
	struct bh_driver_spec spec;
	bh_driver_spec_parse(s->plan.driver, &spec);
	if (spec.kind == BH_BK_TAP) {
		s->tap_fd = tap_create(spec.arg, s->plan.mtu, host_cidr, err, sizeof(err));
		if (s->tap_fd < 0) {
			e = s->tap_fd;
			goto fail;
		}
	}
	if ((e = bh_regions_create(&s->regions, &s->plan))) {
		snprintf(err, sizeof(err), "cannot make the shared regions: %s", bh_ipc_strerror(e));
		goto fail;
	}
	bh_inst_path(path, sizeof(path), s->plan.name, "app.sock");
	s->apps_fd = unix_listen(path, SOCK_SEQPACKET, 0666);
	if (s->apps_fd < 0) {
		e = s->apps_fd;
		snprintf(err, sizeof(err), "%s: %s", path, strerror(-e));
		goto fail;
	}
	bh_inst_path(path, sizeof(path), s->plan.name, "ctl.sock");
	s->ctl_fd = unix_listen(path, SOCK_STREAM, 0600);
	if (s->ctl_fd < 0) {
		e = s->ctl_fd;
		snprintf(err, sizeof(err), "%s: %s", path, strerror(-e));
		goto fail;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	/* Start the domains: bottom up, each ready before the next. */
	int nproc = s->plan.mode == BH_MODE_MONO ? 1 : BH_NDOMS;
	for (int i = 0; i < nproc; i++) {
		int dom = s->plan.mode == BH_MODE_MONO ? -1 : i;
		pid_t pid = 0;
		int rfd = spawn(s, dom, exe, false, &pid);
		if (rfd < 0) {
			e = rfd;
			snprintf(err, sizeof(err), "cannot start a domain: %s", strerror(-e));
			goto fail_stop;
		}
		for (int d = 0; d < BH_NDOMS; d++) {
			if (dom >= 0 && d != dom)
				continue;
			s->dom[d] = (struct dom_rec){.pid = pid, .alive = true, .started_ns = bh_now_ns(),
						     .last_beat_ns = bh_now_ns(), .ready_fd = -1,
						     .serving = true, .serving_ns = bh_now_ns()};
		}
		char why[256];
		e = wait_ready(rfd, 10000, why, sizeof(why));
		close(rfd);
		if (e) {
			snprintf(err, sizeof(err), "%s: %s", dom >= 0 ? bh_dom_name(dom) : "mono", why);
			goto fail_stop;
		}
	}
	bh_logf("instance %s up (%s), driver %s", s->plan.name,
		s->plan.mode == BH_MODE_MONO ? "mono" : "factored", s->plan.driver);
	if (report >= 0) {
		dprintf(report, "ok %d\n", (int)getpid());
		close(report);
		report = -1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->ctl_fd};
	epoll_ctl(ep, EPOLL_CTL_ADD, s->ctl_fd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	s->exe = exe;
	while (!s->stopping) {
		struct epoll_event evs[8];
		bool busy = false;
		for (int d = 0; d < BH_NDOMS; d++)
			busy |= s->dom[d].restart_due || s->dom[d].ready_fd >= 0;
		int n = epoll_wait(ep, evs, 8, busy ? 2 : 250);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == s->ctl_fd) {
				int c = accept4(s->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
				if (c >= 0) {
					handle_ctl(s, c);
					close(c);
				}
			} else if (evs[i].data.fd == sfd) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo != SIGCHLD) {
						bh_logf("signal %u: stopping", si.ssi_signo);
						snprintf(s->why, sizeof(s->why),
							 "stopped by signal %u (%s)", si.ssi_signo,
							 strsignal((int)si.ssi_signo));
						s->stopping = true;
					}
				}
			}
		}
		check_children(s);
		check_heartbeats(s);
		start_replacements(s);
		check_replacements(s);
	}
	bh_logf("stopping instance %s", s->plan.name);
	stop_all(s);
	check_children(s);
	sup_cleanup(s);
	bh_logf("instance %s down (%s)", s->plan.name, s->why[0] ? s->why : "stopped");
	char note[300];
	snprintf(note, sizeof(note), "%s\n", s->why[0] ? s->why : "stopped");
	exit_note(note);
	return 0;
fail_stop:
	stop_all(s);
fail:
	bh_logf("start failed: %s", err);
	if (report >= 0)
		dprintf(report, "error: %s\n", err);
	sup_cleanup(s);
	snprintf(s->why, sizeof(s->why), "start failed: %.180s\n", err);
	exit_note(s->why);
	return 1;
}

/* ------------------------------------------------------------------ */
/* commands                                                             */
/* ------------------------------------------------------------------ */

static int usage_up(void)
{
	fputs("usage: bulkhead up NAME --driver SPEC --addr A.B.C.D/LEN [--gw IP]\n"
	      "                  [--mode factored|mono] [--mtu N] [--capture FILE]\n"
	      "                  [--impair SPEC] [--host-addr A.B.C.D/LEN] [--seed N]\n"
	      "                  [--max-conns N]\n"
	      "  SPEC: tap:IFNAME | pcap:IFNAME | wire:LINK:0|1 | file:PATH.pcap\n"
	      "  impair SPEC: loss=5%,dup=1%,reorder=1%,corrupt=0.1%,delay=2ms,rate=100mbit\n",
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
	int fd = unix_connect(path, SOCK_STREAM);
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
	uint32_t bufs = 4096;
	while (bufs < 2 * n)
		bufs *= 2;
	for (int i = 0; i < BH_NPOOLS; i++)
		p->pools.g[i].nbufs = bufs;
	/* Rings that hold a segment of every connection at once: a burst
	 * that overflowed them would be lost together, retransmitted
	 * together, and lost again. */
	p->link_cap = bufs;
}

int bh_cmd_up(int argc, char **argv, const char *exe)
{
	if (argc < 2 || argv[1][0] == '-')
		return usage_up();
	static struct sup s;
	memset(&s, 0, sizeof(s));
	struct bh_plan *p = &s.plan;
	const char *name = argv[1], *driver = NULL, *addr = NULL, *gw = NULL, *mode = "factored";
	const char *capture = "", *impair = "", *host = NULL, *mtu = NULL, *seed = NULL;
	const char *conns = NULL;
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc)
			return fail("%s needs a value (bulkhead up --help)", o), usage_up();
		const char *v = argv[++i];
		if (strcmp(o, "--driver") == 0)
			driver = v;
		else if (strcmp(o, "--addr") == 0)
			addr = v;
		else if (strcmp(o, "--gw") == 0)
			gw = v;
		else if (strcmp(o, "--mode") == 0)
			mode = v;
		else if (strcmp(o, "--mtu") == 0)
			mtu = v;
		else if (strcmp(o, "--capture") == 0)
			capture = v;
		else if (strcmp(o, "--impair") == 0)
			impair = v;
		else if (strcmp(o, "--host-addr") == 0)
			host = v;
		else if (strcmp(o, "--seed") == 0)
			seed = v;
		else if (strcmp(o, "--max-conns") == 0)
			conns = v;
		else
			return fail("unknown option %s", o), usage_up();
	}
	if (!bh_name_ok(name))
		return fail("bad instance name '%s': 1-32 letters, digits, '-', '_', '.'", name);
	if (driver == NULL || addr == NULL)
		return fail("up needs %s%s%s", driver ? "" : "--driver SPEC",
			    driver || addr ? "" : " and ", addr ? "" : "--addr A.B.C.D/LEN"),
		       usage_up();
	snprintf(p->name, sizeof(p->name), "%s", name);
	struct bh_driver_spec spec;
	const char *why = bh_driver_spec_parse(driver, &spec);
	if (why)
		return fail("bad --driver '%s': %s", driver, why);
	snprintf(p->driver, sizeof(p->driver), "%s", driver);
	if ((why = parse_cidr(addr, &p->addr, &p->prefix)) != NULL)
		return fail("bad --addr '%s': %s", addr, why);
	if (p->addr == 0 || (p->addr >> 24) == 127 || (p->addr >> 28) >= 14)
		return fail("bad --addr '%s': not a usable unicast address", addr);
	if (gw && parse_ip(gw, &p->gw) != 0)
		return fail("bad --gw '%s': want A.B.C.D", gw);
	if (gw && (p->gw & prefix_mask(p->prefix)) != (p->addr & prefix_mask(p->prefix)))
		return fail("bad --gw '%s': the gateway is not on the subnet of --addr %s", gw, addr);
	if (strcmp(mode, "factored") == 0)
		p->mode = BH_MODE_FACTORED;
	else if (strcmp(mode, "mono") == 0)
		p->mode = BH_MODE_MONO;
	else
		return fail("bad --mode '%s': factored or mono", mode);
	if (mtu) {
		char *end;
		long m = strtol(mtu, &end, 10);
		if (*end || m < 576 || m > 9000)
			return fail("bad --mtu '%s': 576 to 9000", mtu);
		p->mtu = (uint16_t)m;
	}
	struct bh_impair_cfg ic;
	why = bh_impair_parse(impair, &ic);
	if (why)
		return fail("bad --impair '%s': %s", impair, why);
	snprintf(p->impair, sizeof(p->impair), "%s", impair);
	if (capture[0]) {
		char abs[600];
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
	}
	if (host) {
		bh_ip4 ha;
		uint8_t hp;
		if (spec.kind != BH_BK_TAP)
			return fail("--host-addr is for tap: drivers only");
		if ((why = parse_cidr(host, &ha, &hp)) != NULL)
			return fail("bad --host-addr '%s': %s", host, why);
		if (ha == p->addr)
			return fail("--host-addr and --addr are the same address");
	}
	p->seed = seed ? strtoull(seed, NULL, 0) : 1;
	if (getrandom(p->secret, sizeof(p->secret), 0) != (ssize_t)sizeof(p->secret))
		return fail("no random bytes: %s", strerror(errno));
	/* Our MAC: locally administered, from the name and address; pcap
	 * uses the interface's own. */
	uint32_t h = 2166136261u;
	for (const char *c = name; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	h ^= p->addr;
	p->mac = (struct bh_mac){{0x02, 0xb4, (uint8_t)(h >> 24), (uint8_t)(h >> 16),
				   (uint8_t)(h >> 8), (uint8_t)h}};
	switch (spec.kind) {
	case BH_BK_TAP:
		if (geteuid() != 0)
			return fail("tap:%s needs root (CAP_NET_ADMIN) to create a TAP interface",
				    spec.arg);
		if (iface_exists(spec.arg))
			return fail("tap:%s: interface %s exists; choose another name", spec.arg,
				    spec.arg);
		break;
	case BH_BK_PCAP: {
		if (geteuid() != 0)
			return fail("pcap:%s needs root (CAP_NET_RAW) to capture", spec.arg);
		if (!iface_exists(spec.arg))
			return fail("pcap:%s: no such interface", spec.arg);
		char mpath[128];
		snprintf(mpath, sizeof(mpath), "/sys/class/net/%.15s/address", spec.arg);
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
		if (access(spec.arg, R_OK) != 0)
			return fail("file:%s: %s", spec.arg, strerror(errno));
		break;
	case BH_BK_SHMLINK:
		break;
	}
	if (conns) {
		char *end;
		long n = strtol(conns, &end, 10);
		if (*end || n < 1 || n > 65536)
			return fail("bad --max-conns '%s': 1 to 65536", conns);
		bh_plan_defaults(p);
		size_conns(p, (uint32_t)n);
	}
	bh_plan_defaults(p);
	why = bh_plan_check(p);
	if (why)
		return fail("bad configuration: %s", why);
	char dir[256];
	if (bh_inst_path(dir, sizeof(dir), name, "") != 0)
		return fail("run directory path too long");
	if (strlen(dir) >= sizeof(p->dir))
		return fail("run directory path too long: %s", dir);
	memcpy(p->dir, dir, strlen(dir) + 1);
	if (instance_up(name))
		return fail("instance %s is already up (bulkhead down %s first)", name, name);
	int e = mkdirs(dir);
	if (e)
		return fail("cannot make %s: %s", dir, strerror(-e));
	char logpath[256];
	bh_inst_path(logpath, sizeof(logpath), name, "log");
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
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, STDIN_FILENO);
		dup2(nul, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		close(nul);
		close(logfd);
		signal(SIGPIPE, SIG_IGN);
		_exit(supervise(&s, exe, rep[1], host));
	}
	close(rep[1]);
	close(logfd);
	waitpid(pid, NULL, 0);
	char buf[512];
	size_t got = 0;
	uint64_t deadline = bh_now_ns() + (uint64_t)BH_UP_TIMEOUT_S * 1000000000u;
	while (got < sizeof(buf) - 1 && bh_now_ns() < deadline) {
		struct pollfd pfd = {.fd = rep[0], .events = POLLIN};
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		ssize_t r = read(rep[0], buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(buf, '\n', got))
			break;
	}
	close(rep[0]);
	buf[got] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	if (strncmp(buf, "ok ", 3) == 0) {
		char a[32];
		fmt_ip(a, sizeof(a), p->addr);
		printf("%s: up (%s), %s/%u on %s, supervisor pid %s\n", name,
		       p->mode == BH_MODE_MONO ? "mono" : "factored", a, p->prefix, driver, buf + 3);
		return 0;
	}
	if (got == 0)
		return fail("instance %s did not start within %d s (see bulkhead logs %s)", name,
			    BH_UP_TIMEOUT_S, name);
	return fail("instance %s did not start: %s", name,
		    strncmp(buf, "error: ", 7) == 0 ? buf + 7 : buf);
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
		fputs("usage: bulkhead logs NAME [driver|ip|tcp|sock|mono|supervisor]\n", stderr);
		return 2;
	}
	const char *dom = argc == 3 ? argv[2] : NULL;
	if (dom && strcmp(dom, "driver") && strcmp(dom, "ip") && strcmp(dom, "tcp") &&
	    strcmp(dom, "sock") && strcmp(dom, "mono") && strcmp(dom, "supervisor"))
		return fail("unknown domain '%s' (driver, ip, tcp, sock, mono, supervisor)", dom);
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
