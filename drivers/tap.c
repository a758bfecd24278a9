/*
 * drivers/tap.c - a TAP device the supervisor opened (TUNSETIFF needs
 * CAP_NET_ADMIN; the driver domain does not). Frames without packet
 * information (IFF_NO_PI), one per read or write.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "drivers/backend.h"

struct tap {
	struct bh_backend b;
	int fd;
};

static int tap_rx(struct bh_backend *b, uint8_t *const *bufs, uint32_t cap, uint32_t *lens,
		  unsigned n)
{
	struct tap *t = (struct tap *)b;
	unsigned k = 0;
	while (k < n) {
		ssize_t r = read(t->fd, bufs[k], cap);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			b->st.rx_errors++;
			return k ? (int)k : -errno;
		}
		if (r < 14) {
			b->st.rx_errors++;
			continue;
		}
		lens[k++] = (uint32_t)r;
		b->st.rx_frames++;
		b->st.rx_bytes += (uint64_t)r;
	}
	return (int)k;
}

static int tap_tx(struct bh_backend *b, const uint8_t *const *frames, const uint32_t *lens,
		  unsigned n)
{
	struct tap *t = (struct tap *)b;
	unsigned k = 0;
	for (; k < n; k++) {
		ssize_t w = write(t->fd, frames[k], lens[k]);
		if (w < 0) {
			if (errno == EAGAIN) {
				b->st.tx_busy++;
				break;
			}
			/* EIO while the interface is down, EINVAL for a
			 * frame it refuses: the frame is lost, not the device. */
			b->st.tx_errors++;
			continue;
		}
		b->st.tx_frames++;
		b->st.tx_bytes += lens[k];
	}
	return (int)k;
}

/* A frame in pieces: one writev, the kernel's copy gathers them. */
static int tap_txv(struct bh_backend *b, const struct bh_txv *f, unsigned n)
{
	struct tap *t = (struct tap *)b;
	unsigned k = 0;
	for (; k < n; k++) {
		struct iovec iov[BH_TXV_MAX_FRAGS];
		uint32_t len = f[k].len & BH_BK_LEN_MASK, at = 0;
		int m = 0;
		for (uint32_t i = 0; i < f[k].nfrag && m < (int)BH_TXV_MAX_FRAGS && at < len; i++) {
			uint32_t l = f[k].frag[i].len < len - at ? f[k].frag[i].len : len - at;
			iov[m++] = (struct iovec){(void *)f[k].frag[i].p, l};
			at += l;
		}
		ssize_t w = writev(t->fd, iov, m);
		if (w < 0) {
			if (errno == EAGAIN) {
				b->st.tx_busy++;
				break;
			}
			b->st.tx_errors++; /* as tap_tx */
			continue;
		}
		b->st.tx_frames++;
		b->st.tx_bytes += at;
	}
	return (int)k;
}

static int tap_wait(struct bh_backend *b, int timeout_ms)
{
	struct tap *t = (struct tap *)b;
	struct pollfd pfd = {.fd = t->fd, .events = POLLIN};
	int r = poll(&pfd, 1, timeout_ms);
	return r > 0 ? 1 : 0;
}

static void tap_close(struct bh_backend *b)
{
	struct tap *t = (struct tap *)b;
	close(t->fd);
	free(t);
}

static const struct bh_backend_ops tap_ops = {
    .rx = tap_rx, .tx = tap_tx, .txv = tap_txv, .wait = tap_wait, .close = tap_close};

int bh_tap_open(struct bh_backend **out, const struct bh_backend_args *a, char *err,
		size_t errlen)
{
	int fd = a->tap_fd;
	if (fd < 0) {
		snprintf(err, errlen, "tap: no TAP device was handed to the driver");
		return -EBADF;
	}
	struct tap *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "tap: %s", strerror(errno));
		free(t);
		return -errno;
	}
	t->b.ops = &tap_ops;
	t->fd = fd;
	*out = &t->b;
	return 0;
}
