/*
 * supervisor/supervisor.h - the process `bulkhead up` leaves running: it
 * owns an instance's regions, starts its domains, watches them, replaces
 * one that fails, and answers the control socket.
 *
 * Start.     bh_supervise makes the TAP device (tap: drivers, tap_setup.c),
 *            every region of the plan (domains/plan.h), the application
 *            socket app.sock and the control socket ctl.sock, then starts
 *            the domains bottom up: driver, ip, tcp, sock, each a process
 *            of its own (factored) handed only its own descriptors
 *            (bh_dom_fds), or all four in one process (mono). Each says
 *            "ok" (or why not) on its ready pipe before the next starts;
 *            then `up` hears "ok PID" on its report pipe, or the error.
 * Detect.    A death is seen through SIGCHLD (a signalfd in the loop); a
 *            hang through the heartbeat counter in the domain's stats
 *            region (restart.h: BH_HANG_NS).
 * Epochs.    At once, before any replacement: every link of the dead
 *            domain starts a new epoch (bh_regions_reset_links), and its
 *            neighbours are signalled, so they stop waiting on it and
 *            take back what it held (domains/recover.h).
 * Backoff.   The replacement is due after the wait restart.h decides
 *            (quick failures back off; a storm stops the instance).
 * Spawn.     The replacement is the same program with "restart": it
 *            attaches the same regions and reports ready only once every
 *            link carries again.
 * Ready.     Detection to serving is measured, logged and shown by status
 *            (last_restart_ms); a replacement that never serves is killed
 *            after BH_SERVE_TIMEOUT_NS.
 * Stop.      `bulkhead down`, SIGTERM, SIGINT or SIGHUP: SIGTERM to every
 *            domain, SIGKILL after 3 s, then the sockets and regions go.
 *            Why it stopped is written to RUNDIR/NAME/supervisor.exit
 *            (also on a fatal signal in the supervisor itself).
 *
 * Files: supervisor.c (start, loop, replace, stop), control.c (ctl.sock
 * requests), restart.c (the policy), tap_setup.c (the TAP device).
 */
#ifndef BH_SUPERVISOR_SUPERVISOR_H
#define BH_SUPERVISOR_SUPERVISOR_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "domains/plan.h"
#include "supervisor/restart.h"

/* How long `up` waits for the supervisor's report. */
#define BH_UP_TIMEOUT_S 20

/* One domain, as the supervisor keeps it. In mono all four records name
 * the one process. */
struct bh_dom_rec {
	pid_t pid;
	bool alive;
	int status;                /* waitpid's, once dead */
	uint64_t started_ns, ended_ns;
	uint32_t restarts;
	struct bh_restart rs;      /* the policy's view (restart.h) */
	struct bh_beat beat;
	/* Replacement (factored only): */
	bool restart_due;          /* dead, a replacement to start at restart_at */
	uint64_t restart_at;
	uint64_t detected_ns;      /* when its death was seen */
	int ready_fd;              /* a replacement's ready pipe, until it serves */
	uint64_t last_restart_ms;  /* detection to serving, the last one */
};

struct bh_sup {
	struct bh_plan plan;
	/* --host-addr, for tap: */
	bool host_set;
	bh_ip4 host_addr;
	uint8_t host_prefix;
	struct bh_regions regions;
	bool regions_made;
	int tap_fd, apps_fd, ctl_fd;
	struct bh_dom_rec dom[BH_NDOMS];
	uint64_t started_ns;
	bool stopping;
	char why[200]; /* why it stops, for supervisor.exit */
	const char *exe; /* this program, run again for each domain */
	/* up --cpus: the CPUs the supervisor and every domain (and each
	 * replacement) may run on; else they inherit `up`'s. */
	bool cpus_set;
	cpu_set_t cpus;
};

/* The supervisor process, from its plan (filled and checked by `up`).
 * `report` is the write end of the pipe `up` reads ("ok PID" or
 * "error: ..."). Returns the process exit status. */
int bh_supervise(struct bh_sup *s, int report);

/* control.c: answers one request on an accepted ctl.sock connection. */
void bh_sup_control(struct bh_sup *s, int fd);
/* control.c: a domain's state as status shows it. */
const char *bh_sup_dom_state(const struct bh_dom_rec *r);
/* control.c: how the domain last exited, for status and the log. */
void bh_sup_exit_text(char *out, size_t n, const struct bh_dom_rec *r);

/* tap_setup.c: creates TAP interface ifname with the given MTU, up, with
 * host_addr/host_prefix on the Linux side if host_set; with `large`, the
 * kernel may hand the driver TCP segments of up to 64 KiB with partial
 * checksums (TUNSETOFFLOAD). Returns the descriptor or -errno with a
 * message in err. */
int bh_sup_tap_create(const char *ifname, uint16_t mtu, bool host_set, bh_ip4 host_addr,
		      uint8_t host_prefix, bool large, char *err, size_t errlen);

#endif /* BH_SUPERVISOR_SUPERVISOR_H */
