/*
 * supervisor/ctlsock.c - UNIX sockets and one-line messages (ctlsock.h).
 */
#include "supervisor/ctlsock.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/clock.h"

/* A socket of `type` and its address, or -errno. */
static int unix_socket(const char *path, int type, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

int bh_unix_connect(const char *path, int type)
{
	struct sockaddr_un sa;
	int fd = unix_socket(path, type, &sa);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int bh_unix_listen(const char *path, int type, mode_t mode)
{
	struct sockaddr_un sa;
	int fd = unix_socket(path, type | SOCK_NONBLOCK, &sa);
	if (fd < 0)
		return fd;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, mode) != 0 ||
	    listen(fd, 64) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

ssize_t bh_read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t got = 0;
	bool ended = false;
	uint64_t deadline = bh_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (got < cap - 1) {
		uint64_t now = bh_now_ns();
		if (now >= deadline)
			break;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
			continue;
		ssize_t r = read(fd, buf + got, cap - 1 - got);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {
			ended = true;
			break;
		}
		got += (size_t)r;
		if (memchr(buf, '\n', got)) {
			ended = true;
			break;
		}
	}
	buf[got] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!ended && got < cap - 1)
		return -ETIMEDOUT;
	return (ssize_t)strlen(buf);
}
