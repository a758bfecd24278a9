/*
 * ipc/peer.c - peer liveness through pidfds.
 */
#include "ipc/peer.h"

#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

int bh_peer_open(struct bh_peer *p, pid_t pid)
{
	p->pid = pid;
	p->pidfd = -1;
	if (pid <= 0)
		return -EINVAL;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return -errno;
	p->pidfd = fd;
	return 0;
}

void bh_peer_close(struct bh_peer *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
}

bool bh_peer_alive(const struct bh_peer *p)
{
	if (p->pidfd < 0)
		return true;
	struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
	int r = poll(&pfd, 1, 0);
	return !(r > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)));
}
