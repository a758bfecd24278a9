/*
 * drivers/backend.h - packet I/O backends for the driver domain.
 *
 *   tap:IFNAME      a TAP device the supervisor created and handed over
 *   pcap:IFNAME     libpcap live capture and injection on an existing
 *                   interface (one end of a veth pair, say)
 *   wire:LINK:0|1   one end of a shared-memory link between two instances
 *                   (shmlink.c)
 *   file:PATH.pcap  replays a capture as received frames; sent frames are
 *                   counted and dropped (see them with --capture)
 *
 * The driver's main thread calls rx and tx. It learns that frames arrived
 * either from its poller thread, which calls wait, or, for a backend
 * that offers arm (wire:), by sleeping on the backend's notification
 * word beside its own (ipc/ntfn.h, bh_ntfn_wait2): no thread between.
 * A backend copies frames into and out of the caller's buffers: the
 * driver domain owns packet memory, the backend only moves bytes.
 */
#ifndef BH_DRIVERS_BACKEND_H
#define BH_DRIVERS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ip/ip_wire.h"
#include "ipc/ntfn.h"

/* BH_BK_SHMLINK is the spec `wire:` (drivers/shmlink.c); the header
 * formats of ip/ip_wire.h and tcp/tcp_wire.h are the only other "wire". */
enum bh_backend_kind { BH_BK_TAP, BH_BK_PCAP, BH_BK_SHMLINK, BH_BK_FILE };
#define BH_BK_COUNT 4

struct bh_driver_spec {
	enum bh_backend_kind kind;
	char arg[200]; /* interface name, wire link name or file path */
	int end;       /* wire: 0 or 1 */
};

/* Parses a --driver SPEC; NULL if fine, else what is wrong. */
const char *bh_driver_spec_parse(const char *spec, struct bh_driver_spec *out);

/* A backend's counters; the driver domain publishes each as dev.NAME. */
#define BH_BACKEND_COUNTERS(X)                                                             \
	X(rx_frames)                                                                       \
	X(rx_bytes)                                                                        \
	X(tx_frames)                                                                       \
	X(tx_bytes)                                                                        \
	X(rx_errors)     /* read errors, truncated or oversized frames */                  \
	X(tx_errors)     /* write errors */                                                \
	X(tx_no_carrier) /* shmlink: the other end is not attached */                      \
	X(tx_busy)       /* frames that waited: the device was full */                     \
	X(bad_index)     /* shmlink: the other end published bad indices */                \
	X(peer_wakes)    /* shmlink: wake-up calls made to the other end */                \
	X(tx_csum_done)  /* shmlink: partial checksums completed (the other end verifies) */ \
	X(tx_csum_bytes) /* shmlink: ... and the bytes they summed */                     \
	X(rx_csum_valid) /* shmlink: frames the other end vouched for (not verified) */  \
	X(csum_offload_rx) /* 1: this end takes frames with checksums left to the link */ \
	X(csum_offload_tx) /* 1: the other end does (ours go to it partial) */          \
	X(large_rx)      /* 1: this end takes large frames (up to 64 KiB) */              \
	X(large_tx)      /* 1: the other end does (ours go to it whole) */                \
	X(rx_large)      /* large frames received (each in a chain of buffers) */         \
	X(tx_large)      /* large frames sent whole */

struct bh_backend_stats {
#define BH_BACKEND_COUNTER_FIELD(name) uint64_t name;
	BH_BACKEND_COUNTERS(BH_BACKEND_COUNTER_FIELD)
#undef BH_BACKEND_COUNTER_FIELD
};

struct bh_backend;

/* In lens[i] beside the length. tx: the frame's transport checksum was
 * left partial (ip/ip.h, BH_CSUM_PARTIAL); the backend passes it on to a
 * link that takes it, or completes it in its own copy of the frame. rx:
 * the link vouches for the frame's checksum (set only by a backend that
 * declared the offload, bh_backend_args.csum_offload). Only shmlink.c
 * takes or sets it; the driver gives it to no other backend. */
#define BH_BK_CSUM_VALID 0x80000000u
/* In lens[i] from rx: the frame goes on in the next buffer (a large
 * frame, longer than one buffer; only from a backend that declared
 * bh_backend_args.large). */
#define BH_BK_MORE 0x40000000u
#define BH_BK_LEN_MASK 0x0000ffffu

/* A frame in pieces (a send chain, ip/ip.h): the backend gathers them
 * in its own copy of the frame. len as in tx's lens (flags included):
 * the sum of the pieces' lengths. */
struct bh_frag {
	const uint8_t *p;
	uint32_t len;
};
struct bh_txv {
	const struct bh_frag *frag;
	uint32_t nfrag; /* at most BH_TXV_MAX_FRAGS */
	uint32_t len;
	/* A TCP frame longer than the MTU: the payload bytes of each
	 * segment the device is to cut it into (bh_pkt.gso); else 0. */
	uint16_t gso;
};
#define BH_TXV_MAX_FRAGS 16u

/* Copies f's pieces, in order, into dst, at most len bytes (len without
 * flags); returns the bytes copied. */
static inline uint32_t bh_txv_gather(uint8_t *dst, const struct bh_txv *f, uint32_t len)
{
	uint32_t at = 0;
	for (uint32_t i = 0; i < f->nfrag && at < len; i++) {
		uint32_t m = f->frag[i].len < len - at ? f->frag[i].len : len - at;
		memcpy(dst + at, f->frag[i].p, m);
		at += m;
	}
	return at;
}

struct bh_backend_ops {
	/* Up to n received frames, copied into bufs[i] (cap bytes each);
	 * their lengths in lens. Returns the count, or -errno if the device
	 * failed for good. */
	int (*rx)(struct bh_backend *b, uint8_t *const *bufs, uint32_t cap, uint32_t *lens,
		  unsigned n);
	/* Sends frames in order; returns how many were taken (the rest wait:
	 * the device is full), or -errno. */
	int (*tx)(struct bh_backend *b, const uint8_t *const *frames, const uint32_t *lens,
		  unsigned n);
	/* Optional: as tx, each frame in pieces gathered in the backend's
	 * copy (wire: into the wire's slot; tap: the kernel's, by writev). */
	int (*txv)(struct bh_backend *b, const struct bh_txv *frames, unsigned n);
	/* Poller thread: 1 when rx has something, 0 after timeout_ms. */
	int (*wait)(struct bh_backend *b, int timeout_ms);
	void (*close)(struct bh_backend *b);
	/* Optional, the main thread only: asks to be signalled on *bell
	 * when a frame arrives; true if one is there already (then do not
	 * sleep). disarm withdraws the request once the thread is awake. */
	bool (*arm)(struct bh_backend *b, struct bh_ntfn **bell);
	void (*disarm)(struct bh_backend *b);
	/* Optional, the main thread only: how many buffers of cap bytes rx
	 * would fill now, at most limit (the driver allocates no more);
	 * absent: unknown. */
	unsigned (*ready)(struct bh_backend *b, uint32_t cap, unsigned limit);
};

struct bh_backend {
	const struct bh_backend_ops *ops;
	struct bh_mac mac;
	bool has_mac; /* pcap: the interface's own address */
	bool eof;     /* file: replay finished */
	/* The longest frame tx takes now (MTU + 14; a wire: whose other end
	 * takes large frames: 65535); longer ones are the caller's to cut.
	 * Read before each tx call: it may change between batches. */
	uint32_t tx_max;
	struct bh_backend_stats st;
};

struct bh_backend_args {
	const struct bh_driver_spec *spec;
	const char *shmlink_dir; /* where shared-memory link files live */
	uint16_t mtu;
	int tap_fd;
	/* wire: this end takes frames with partial checksums (it neither
	 * captures nor impairs them, which needs them whole); tap: TCP
	 * leaves its checksums partial for the kernel. */
	bool csum_offload;
	/* wire: this end takes large frames, in chains (rx's BH_BK_MORE);
	 * tap: the kernel is handed large TCP frames whole, to cut (txv's
	 * gso, the virtio-net header). */
	bool large;
};

int bh_backend_open(struct bh_backend **out, const struct bh_backend_args *a, char *err,
		    size_t errlen);

/* Individual backends, one file each; backend.c's table names them, and
 * nothing else calls them. Each takes what it needs from a. */
typedef int bh_backend_open_fn(struct bh_backend **out, const struct bh_backend_args *a,
			       char *err, size_t errlen);
bh_backend_open_fn bh_tap_open, bh_pcap_open, bh_file_open, bh_shmlink_open;

/* Shared-memory link files: the path of LINK's file under dir. */
int bh_shmlink_path(char *out, size_t n, const char *dir, const char *link);
/* Removes LINK's file if neither end is in use (the supervisor, after
 * its driver stopped: a sandboxed driver cannot remove files). */
void bh_shmlink_forget(const char *dir, const char *link);

#endif /* BH_DRIVERS_BACKEND_H */
