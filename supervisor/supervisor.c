/*
 * supervisor/supervisor.c - start, watch, replace and stop an instance's
 * domains (the contract is supervisor.h; the policy restart.h).
 *
 * The loop (bh_supervise), every pass:
 *   epoll on ctl.sock and a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP),
 *     2 ms while a replacement is due or starting, else 250 ms
 *   check_children      reap the dead; schedule_restart for each
 *   check_heartbeats    kill a domain that stopped beating (factored)
 *   start_replacements  spawn those whose backoff has passed
 *   check_replacements  read their ready pipes; time out the silent
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "domains/logger.h"
#include "domains/paths.h"
#include "domains/stats.h"
#include "drivers/backend.h"
#include "ipc/clock.h"
#include "supervisor/ctlsock.h"
#include "supervisor/supervisor.h"

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

/* Starts one process running `dom` (or mono when dom < 0) with its
 * descriptors; returns its ready pipe's read end, or -errno. */
static int spawn(struct bh_sup *s, int dom, const char *exe, bool restart, pid_t *pid_out)
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
				if (at >= 0 && map[at].read_only && !m[i].read_only) {
					close(map[at].src);
					map[at] = m[i];
					continue;
				}
				if (at >= 0 || n >= 60) {
					if (m[i].read_only)
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
		if (map[i].read_only)
			close(map[i].src);
	*pid_out = pid;
	return ready[0];
}

/* Waits for a ready line; 0 when "ok", else the message in err. */
static int wait_ready(int fd, int timeout_ms, char *err, size_t errlen)
{
	char buf[512];
	ssize_t n = bh_read_line(fd, buf, sizeof(buf), timeout_ms);
	if (n < 0) {
		snprintf(err, errlen, "timed out waiting for it to start");
		return -ETIMEDOUT;
	}
	if (strcmp(buf, "ok") == 0)
		return 0;
	snprintf(err, errlen, "%.200s", n ? buf : "it exited before it was ready (see the log)");
	return -EIO;
}

static void stop_all(struct bh_sup *s)
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

/* A sanitizer build's domain writes its reports to a file of its own
 * (domains/rt.c): name it in the line that reports the death, if the
 * domain wrote one. */
static void sanitizer_report_note(char *out, size_t n, const struct bh_sup *s, int d, pid_t pid)
{
	char file[64], path[256];
	struct stat st;
	snprintf(file, sizeof(file), "sanitizer.%s.%d",
		 s->plan.mode == BH_MODE_MONO ? "mono" : bh_dom_name(d), (int)pid);
	if (bh_inst_path(path, sizeof(path), s->plan.name, file) == 0 && stat(path, &st) == 0 &&
	    st.st_size > 0)
		snprintf(out, n, "; sanitizer report in %s", path);
}

/* A factored domain died: its links start a new epoch now (the
 * survivors let go of it at once), and a replacement is due after the
 * backoff. */
static void schedule_restart(struct bh_sup *s, int d)
{
	struct bh_dom_rec *r = &s->dom[d];
	uint64_t now = bh_now_ns();
	r->detected_ns = now;
	if (r->ready_fd >= 0) {
		close(r->ready_fd);
		r->ready_fd = -1;
	}
	uint64_t wait;
	if (!bh_restart_after_death(&r->rs, now, &wait)) {
		bh_logf("domain %s failed %u times in a row right after starting: the instance "
			"cannot recover; stopping it",
			bh_dom_name(d), r->rs.quick_fails);
		snprintf(s->why, sizeof(s->why),
			 "gave up: domain %s failed %u times in a row right after starting",
			 bh_dom_name(d), r->rs.quick_fails);
		s->stopping = true;
		return;
	}
	bh_regions_reset_links(&s->regions, d);
	r->restart_due = true;
	r->restart_at = now + wait;
	if (wait)
		bh_logf("domain %s: quick failure %u in a row; restarting it in %llu ms",
			bh_dom_name(d), r->rs.quick_fails, (unsigned long long)(wait / 1000000u));
}

static void start_replacements(struct bh_sup *s)
{
	uint64_t now = bh_now_ns();
	for (int d = 0; d < BH_NDOMS; d++) {
		struct bh_dom_rec *r = &s->dom[d];
		if (!r->restart_due || now < r->restart_at || s->stopping)
			continue;
		r->restart_due = false;
		pid_t pid = 0;
		int rfd = spawn(s, d, s->exe, true, &pid);
		if (rfd < 0) {
			bh_logf("cannot start a replacement for %s: %s", bh_dom_name(d), strerror(-rfd));
			schedule_restart(s, d);
			continue;
		}
		int fl = fcntl(rfd, F_GETFL);
		fcntl(rfd, F_SETFL, fl | O_NONBLOCK);
		r->pid = pid;
		r->alive = true;
		r->started_ns = bh_now_ns();
		bh_restart_started(&r->rs, r->started_ns);
		r->beat.hung = false;
		r->beat.seen_ns = r->started_ns;
		r->ready_fd = rfd;
		r->restarts++;
		bh_logf("domain %s: replacement %u started (pid %d)", bh_dom_name(d), r->restarts,
			(int)pid);
	}
}

/* A replacement says it serves (every link up) or gives up. */
static void check_replacements(struct bh_sup *s)
{
	uint64_t now = bh_now_ns();
	for (int d = 0; d < BH_NDOMS; d++) {
		struct bh_dom_rec *r = &s->dom[d];
		if (r->ready_fd < 0)
			continue;
		char buf[256];
		ssize_t n = read(r->ready_fd, buf, sizeof(buf) - 1);
		if (n < 0 && errno == EAGAIN) {
			if (r->alive && bh_restart_overdue(&r->rs, now)) {
				bh_logf("domain %s (pid %d) is not serving %llu s after it started: "
					"killing it",
					bh_dom_name(d), (int)r->pid,
					(unsigned long long)(BH_SERVE_TIMEOUT_NS / 1000000000u));
				kill(r->pid, SIGKILL);
			}
			continue;
		}
		close(r->ready_fd);
		r->ready_fd = -1;
		if (n > 0 && strncmp(buf, "ok", 2) == 0) {
			bh_restart_serving(&r->rs, now);
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

static void check_children(struct bh_sup *s)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			return;
		for (int d = 0; d < BH_NDOMS; d++) {
			struct bh_dom_rec *r = &s->dom[d];
			if (r->pid != pid || !r->alive)
				continue;
			r->alive = false;
			r->status = st;
			r->ended_ns = bh_now_ns();
			char ex[64];
			bh_sup_exit_text(ex, sizeof(ex), r);
			char san[320] = "";
			sanitizer_report_note(san, sizeof(san), s, d, pid);
			bh_logf("domain %s (pid %d) died: %s%s", bh_dom_name(d), (int)pid, ex, san);
			if (s->plan.mode == BH_MODE_FACTORED && !s->stopping)
				schedule_restart(s, d);
		}
	}
}

static void check_heartbeats(struct bh_sup *s)
{
	uint64_t now = bh_now_ns();
	for (int d = 0; d < BH_NDOMS; d++) {
		struct bh_dom_rec *r = &s->dom[d];
		if (!r->alive)
			continue;
		uint64_t beat = bh_stats_heartbeat(&s->regions.stats[d]);
		enum bh_beat_verdict v = bh_beat_check(&r->beat, beat, now);
		if (v == BH_BEAT_RESUMED) {
			bh_logf("domain %s (pid %d) is making progress again", bh_dom_name(d),
				(int)r->pid);
		} else if (v == BH_BEAT_HUNG) {
			bool kill_it = s->plan.mode == BH_MODE_FACTORED;
			bh_logf("domain %s (pid %d): no heartbeat for %.1f s%s", bh_dom_name(d),
				(int)r->pid, (double)(now - r->beat.seen_ns) / 1e9,
				kill_it ? ": killing it, to replace it" : "");
			if (kill_it)
				kill(r->pid, SIGKILL);
		}
	}
}

static void sup_cleanup(struct bh_sup *s)
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
	if (s->regions_made)
		bh_regions_close(&s->regions);
}

/* What the domains are handed: the TAP device, the regions, app.sock;
 * and ctl.sock. 0, or -errno with the reason in err. */
static int open_instance(struct bh_sup *s, char *err, size_t errlen)
{
	int e;
	char path[256];
	struct bh_driver_spec spec;
	bh_driver_spec_parse(s->plan.driver, &spec);
	if (spec.kind == BH_BK_TAP) {
		s->tap_fd = bh_sup_tap_create(spec.arg, s->plan.mtu, s->host_set, s->host_addr,
					      s->host_prefix, bh_plan_large_frames(&s->plan), err,
					      errlen);
		if (s->tap_fd < 0)
			return s->tap_fd;
	}
	if ((e = bh_regions_create(&s->regions, &s->plan))) {
		snprintf(err, errlen, "cannot make the shared regions: %s", bh_ipc_strerror(e));
		return e;
	}
	s->regions_made = true;
	bh_inst_path(path, sizeof(path), s->plan.name, "app.sock");
	s->apps_fd = bh_unix_listen(path, SOCK_SEQPACKET, 0666);
	if (s->apps_fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-s->apps_fd));
		return s->apps_fd;
	}
	bh_inst_path(path, sizeof(path), s->plan.name, "ctl.sock");
	s->ctl_fd = bh_unix_listen(path, SOCK_STREAM, 0600);
	if (s->ctl_fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-s->ctl_fd));
		return s->ctl_fd;
	}
	return 0;
}

/* Starts the domains bottom up, each ready before the next (mono: one
 * process for all four). 0, or -errno with the reason in err. */
static int start_domains(struct bh_sup *s, char *err, size_t errlen)
{
	int nproc = s->plan.mode == BH_MODE_MONO ? 1 : BH_NDOMS;
	for (int i = 0; i < nproc; i++) {
		int dom = s->plan.mode == BH_MODE_MONO ? -1 : i;
		pid_t pid = 0;
		int rfd = spawn(s, dom, s->exe, false, &pid);
		if (rfd < 0) {
			snprintf(err, errlen, "cannot start a domain: %s", strerror(-rfd));
			return rfd;
		}
		uint64_t now = bh_now_ns();
		for (int d = 0; d < BH_NDOMS; d++) {
			if (dom >= 0 && d != dom)
				continue;
			s->dom[d] = (struct bh_dom_rec){.pid = pid, .alive = true, .started_ns = now,
							.beat.seen_ns = now, .ready_fd = -1};
			bh_restart_started(&s->dom[d].rs, now);
			bh_restart_serving(&s->dom[d].rs, now);
		}
		char why[256];
		int e = wait_ready(rfd, 10000, why, sizeof(why));
		close(rfd);
		if (e) {
			snprintf(err, errlen, "%s: %s", dom >= 0 ? bh_dom_name(dom) : "mono", why);
			return e;
		}
	}
	return 0;
}

/* Signals the loop takes through sfd: SIGCHLD (a death) and the ones
 * that stop the instance. */
static void read_signals(struct bh_sup *s, int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			continue;
		bh_logf("signal %u: stopping", si.ssi_signo);
		snprintf(s->why, sizeof(s->why), "stopped by signal %u (%s)", si.ssi_signo,
			 strsignal((int)si.ssi_signo));
		s->stopping = true;
	}
}

/* Until stopped: control requests, deaths, hangs, replacements. */
static void watch(struct bh_sup *s, int sfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->ctl_fd};
	epoll_ctl(ep, EPOLL_CTL_ADD, s->ctl_fd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
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
					bh_sup_control(s, c);
					close(c);
				}
			} else if (evs[i].data.fd == sfd) {
				read_signals(s, sfd);
			}
		}
		check_children(s);
		check_heartbeats(s);
		start_replacements(s);
		check_replacements(s);
	}
	close(ep);
}

/* Says whether the kernel gives the instance's buffer pools huge pages:
 * they ask for them (ipc/region.c, advise_huge), and the kernel's setting
 * decides. The first transfers of a fresh instance are faster with them
 * (docs/PERFORMANCE.md, "Huge pages for the shared regions"). */
static void log_huge_pages(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	char *open_ = strchr(buf, '['), *close_ = open_ ? strchr(open_, ']') : NULL;
	if (open_ == NULL || close_ == NULL) {
		bh_logf("buffer pools on small pages (this kernel has no shared-memory huge pages)");
		return;
	}
	*close_ = '\0';
	const char *v = open_ + 1;
	if (strcmp(v, "never") == 0 || strcmp(v, "deny") == 0)
		bh_logf("buffer pools on small pages: %s is \"%s\"; \"advise\" there gives "
			"Bulkhead's buffer pools huge pages (faster first transfers)",
			"/sys/kernel/mm/transparent_hugepage/shmem_enabled", v);
	else
		bh_logf("buffer pools on huge pages (shmem_enabled \"%s\")", v);
}

int bh_supervise(struct bh_sup *s, int report)
{
	char err[300] = "";
	bh_log_init("supervisor");
	exit_note_open(s->plan.name);
	s->started_ns = bh_now_ns();
	s->tap_fd = s->apps_fd = s->ctl_fd = -1;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (open_instance(s, err, sizeof(err)) != 0)
		goto fail;
	if (start_domains(s, err, sizeof(err)) != 0) {
		stop_all(s);
		goto fail;
	}
	bh_logf("instance %s up (%s), driver %s", s->plan.name,
		s->plan.mode == BH_MODE_MONO ? "mono" : "factored", s->plan.driver);
	log_huge_pages();
	dprintf(report, "ok %d\n", (int)getpid());
	close(report);
	watch(s, sfd);
	bh_logf("stopping instance %s", s->plan.name);
	stop_all(s);
	check_children(s);
	sup_cleanup(s);
	bh_logf("instance %s down (%s)", s->plan.name, s->why[0] ? s->why : "stopped");
	char note[300];
	snprintf(note, sizeof(note), "%s\n", s->why[0] ? s->why : "stopped");
	exit_note(note);
	return 0;
fail:
	bh_logf("start failed: %s", err);
	dprintf(report, "error: %s\n", err);
	sup_cleanup(s);
	snprintf(s->why, sizeof(s->why), "start failed: %.180s\n", err);
	exit_note(s->why);
	return 1;
}
