/*
 * drivers/tap.c - a TAP device the supervisor opened (TUNSETIFF needs
 * CAP_NET_ADMIN; the driver domain does not). Frames without packet
 * information (IFF_NO_PI), one per read or write, each behind a
 * virtio-net header (IFF_VNET_HDR, struct virtio_net_hdr, 10 bytes), as
 * a virtual machine's NIC exchanges them with the kernel:
 *
 *   out: flags NEEDS_CSUM where the frame's TCP checksum holds only the
 *        pseudo-header's part (the kernel completes it, or takes it as
 *        good when it delivers the segment locally); gso_type TCPV4 and
 *        gso_size for a TCP segment tcp marked to be cut (longer than
 *        the MSS, often than the MTU), which the kernel takes whole and
 *        cuts where it must (bh_backend_args.large);
 *   in:  with `large` (the supervisor's TUNSETOFFLOAD: TUN_F_CSUM,
 *        TUN_F_TSO4), TCP segments of up to 64 KiB, read into a chain of
 *        buffers (BH_BK_MORE), and checksums left partial (NEEDS_CSUM):
 *        vouched for where TCP takes the link's word (mono), else
 *        completed here for TCP to verify; without it, MTU frames with
 *        whole checksums. A frame whose header asks for what we did not
 *        offer is dropped and counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "drivers/backend.h"
#include "ip/checksum.h"
#include "ip/ip_wire.h"

struct tap {
	struct bh_backend b;
	int fd;
	uint32_t mtu_frame; /* MTU + 14: longer frames go out only cut by the kernel */
	bool large;         /* offloads asked for: large segments both ways */
	bool vouch;         /* a partial checksum from the kernel is taken as good */
};

/* A frame whose checksum the kernel left partial (NEEDS_CSUM: a local
 * segment, never on a wire), in pieces of cap bytes: completed here,
 * from csum_start to the end, into the field at csum_offset (both in the
 * first piece). false if the header points outside the frame. */
static bool complete_csum(uint8_t *const *bufs, uint32_t cap, uint32_t len,
			  const struct virtio_net_hdr *h)
{
	uint32_t start = h->csum_start, field = start + h->csum_offset;
	if (start >= len || field + 2u > len || field + 2u > cap || field < start)
		return false;
	uint32_t sum = 0, at = 0;
	for (uint32_t off = start; off < len; ) {
		uint32_t i = off / cap, o = off % cap;
		uint32_t n = cap - o < len - off ? cap - o : len - off;
		sum = bh_csum_add_at(sum, bh_csum_partial(bufs[i] + o, n, 0), at & 1);
		at += n;
		off += n;
	}
	uint16_t ck = bh_csum_fold(sum);
	/* UDP (the field 6 bytes in): a sum of 0 is sent as all ones, 0
	 * meaning none (RFC 768). */
	if (ck == 0 && h->csum_offset == 6)
		ck = 0xffff;
	memcpy(bufs[0] + field, &ck, 2);
	return true;
}

/* Whether a partial checksum the kernel left is TCP's over IPv4 (the one
 * TCP may take on the link's word, mono); UDP and anything else is
 * completed here, since only TCP honours the mark. */
static bool tcp_partial(const uint8_t *f, uint32_t flen, const struct virtio_net_hdr *h)
{
	if (flen < 14u + 20u || f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4 ||
	    f[14 + 9] != BH_IPPROTO_TCP)
		return false;
	return h->csum_start == 14u + (uint32_t)(f[14] & 0x0f) * 4u && h->csum_offset == 16;
}

/* How many buffers a receive may fill: unknown (no way to look without
 * reading), so the batch, and at least room for one frame of the
 * largest size the kernel may send, which is taken whole or not at all. */
static unsigned tap_most(const struct tap *t, uint32_t cap)
{
	unsigned most = t->large ? (65549u + cap - 1) / cap : 1;
	return most > BH_TXV_MAX_FRAGS ? BH_TXV_MAX_FRAGS : most;
}

static unsigned tap_ready(struct bh_backend *b, uint32_t cap, unsigned limit)
{
	unsigned most = tap_most((const struct tap *)b, cap);
	return limit > most ? limit : most;
}

static int tap_rx(struct bh_backend *b, uint8_t *const *bufs, uint32_t cap, uint32_t *lens,
		  unsigned n)
{
	struct tap *t = (struct tap *)b;
	/* Room for the longest frame the kernel may send: with offloads, a
	 * 64 KiB segment behind its Ethernet header, in pieces (tap_ready
	 * asks the driver for at least that many). */
	unsigned most = tap_most(t, cap);
	unsigned k = 0;
	while (k + most <= n) {
		struct virtio_net_hdr h = {0};
		struct iovec iov[1 + BH_TXV_MAX_FRAGS] = {{&h, sizeof(h)}};
		for (unsigned i = 0; i < most; i++)
			iov[1 + i] = (struct iovec){bufs[k + i], cap};
		ssize_t r = readv(t->fd, iov, 1 + (int)most);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			b->st.rx_errors++;
			return k ? (int)k : -errno;
		}
		uint32_t len = r > (ssize_t)sizeof(h) ? (uint32_t)r - (uint32_t)sizeof(h) : 0;
		bool gso_ok = h.gso_type == VIRTIO_NET_HDR_GSO_NONE ||
			      (t->large && (h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV4);
		bool csum_ok = !(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || t->large;
		if (len < 14 || !gso_ok || !csum_ok || (len > cap && !t->large) ||
		    len > (uint32_t)most * cap) {
			/* short, cut off, or an offload we never asked for */
			b->st.rx_errors++;
			continue;
		}
		uint32_t mark = 0;
		if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
			/* TCP's vouched for where TCP takes the link's word
			 * (mono); else whole, for TCP or UDP to verify as any
			 * other. */
			if (t->vouch && tcp_partial(bufs[k], len < cap ? len : cap, &h)) {
				mark = BH_BK_CSUM_VALID;
				b->st.rx_csum_valid++;
			} else if (!complete_csum(&bufs[k], cap, len, &h)) {
				b->st.rx_errors++;
				continue;
			}
		}
		unsigned pieces = (len + cap - 1) / cap;
		for (unsigned i = 0; i < pieces; i++) {
			uint32_t l = i + 1 < pieces ? cap : len - (pieces - 1) * cap;
			lens[k + i] = l | (i + 1 < pieces ? BH_BK_MORE : 0) | (i == 0 ? mark : 0);
		}
		k += pieces;
		b->st.rx_frames++;
		b->st.rx_bytes += len;
		b->st.rx_large += pieces > 1;
	}
	return (int)k;
}

/* The virtio-net header for a frame whose first piece holds its
 * headers: a checksum left partial (BH_BK_CSUM_VALID), a TCP segment to
 * cut (gso). false if the frame is not what the header must describe. */
static bool vnet_hdr(struct virtio_net_hdr *h, const uint8_t *f, uint32_t flen, uint32_t len,
		     uint16_t gso)
{
	memset(h, 0, sizeof(*h));
	bool partial = (len & BH_BK_CSUM_VALID) != 0;
	len &= BH_BK_LEN_MASK;
	if (!partial && gso == 0)
		return true;
	uint32_t plen, hdrs = bh_tcp_frame_hdrs(f, len, &plen);
	if (hdrs == 0 || flen < hdrs)
		return false; /* only TCP frames are left partial or cut */
	uint32_t l4 = 14u + (uint32_t)(f[14] & 0x0f) * 4u;
	if (partial) {
		h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h->csum_start = (uint16_t)l4;
		h->csum_offset = 16; /* the TCP checksum field */
	}
	if (gso) {
		if (!partial)
			return false; /* the kernel's cut needs the partial sum */
		h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
		h->gso_size = gso;
		h->hdr_len = (uint16_t)hdrs;
	}
	return true;
}

static int tap_txv(struct bh_backend *b, const struct bh_txv *f, unsigned n)
{
	struct tap *t = (struct tap *)b;
	unsigned k = 0;
	for (; k < n; k++) {
		struct virtio_net_hdr h;
		struct iovec iov[1 + BH_TXV_MAX_FRAGS];
		uint32_t len = f[k].len & BH_BK_LEN_MASK, at = 0;
		/* Cut at the MSS whatever the length: a segment may carry
		 * more than the peer's MSS and still fit the MTU. */
		uint16_t gso = f[k].gso;
		if (f[k].nfrag == 0 || (len > t->mtu_frame && gso == 0) ||
		    !vnet_hdr(&h, f[k].frag[0].p, f[k].frag[0].len, f[k].len, gso)) {
			b->st.tx_errors++; /* not a frame the kernel would take */
			continue;
		}
		iov[0] = (struct iovec){&h, sizeof(h)};
		int m = 1;
		for (uint32_t i = 0; i < f[k].nfrag && m <= (int)BH_TXV_MAX_FRAGS && at < len; i++) {
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
			/* EIO while the interface is down, EINVAL for a
			 * frame it refuses: the frame is lost, not the device. */
			b->st.tx_errors++;
			continue;
		}
		b->st.tx_frames++;
		b->st.tx_bytes += at;
		b->st.tx_large += gso != 0;
	}
	return (int)k;
}

/* Whole frames: one piece each. */
static int tap_tx(struct bh_backend *b, const uint8_t *const *frames, const uint32_t *lens,
		  unsigned n)
{
	unsigned done = 0;
	while (done < n) {
		struct bh_frag fr[64];
		struct bh_txv v[64];
		unsigned m = n - done < 64 ? n - done : 64;
		for (unsigned i = 0; i < m; i++) {
			fr[i] = (struct bh_frag){frames[done + i], lens[done + i] & BH_BK_LEN_MASK};
			v[i] = (struct bh_txv){&fr[i], 1, lens[done + i], 0};
		}
		int r = tap_txv(b, v, m);
		done += (unsigned)r;
		if ((unsigned)r < m)
			break;
	}
	return (int)done;
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
    .rx = tap_rx,
    .tx = tap_tx,
    .txv = tap_txv,
    .wait = tap_wait,
    .close = tap_close,
    .ready = tap_ready,
};

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
	t->mtu_frame = (uint32_t)a->mtu + 14u;
	/* Large TCP frames go to the kernel whole, behind a header that
	 * says how to cut them. */
	t->b.tx_max = a->large ? 65535u : t->mtu_frame;
	t->large = a->large;
	t->vouch = a->csum_offload;
	t->b.st.large_tx = a->large;
	t->b.st.large_rx = a->large;
	t->b.st.csum_offload_rx = a->csum_offload;
	t->b.st.csum_offload_tx = a->csum_offload; /* TCP leaves them partial */
	*out = &t->b;
	return 0;
}
