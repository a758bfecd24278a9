/*
 * ipc/peer.h - is the other party still alive?
 *
 * A pidfd (pidfd_open) refers to one process, not a reusable number, and
 * becomes readable when that process exits, so a waiter can tell "slow"
 * from "dead" without races on pid reuse. Waits in ipc/ sleep in bounded
 * slices and consult the peer between slices.
 */
#ifndef BH_IPC_PEER_H
#define BH_IPC_PEER_H

#include <stdbool.h>
#include <sys/types.h>

struct bh_peer {
	int pidfd; /* -1: liveness unknown (treated as alive) */
	pid_t pid;
};

/* Opens a pidfd for pid; returns 0 or -errno (ESRCH: already gone). */
int bh_peer_open(struct bh_peer *p, pid_t pid);
void bh_peer_close(struct bh_peer *p);
/* False once the process has exited (even if not yet reaped). */
bool bh_peer_alive(const struct bh_peer *p);

#endif /* BH_IPC_PEER_H */
