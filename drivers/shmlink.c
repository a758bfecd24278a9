/*
 * drivers/shmlink.c - a shared-memory link between two instances on one
 * host (driver spec `wire:LINK:0|1`): a file (under the run directory) holding two frame rings, one per
 * direction. No privileges needed.
 *
 * Layout (page-aligned parts):
 *
 *   page 0        struct wire_hdr: geometry, written once by the end that
 *                 creates the file; each end's pid and what it takes
 *                 (WIRE_F_*) while attached
 *   direction d   frames sent by end d, received by end 1-d:
 *     page        producer: head (written by end d only)
 *     page        consumer: tail, want (written by end 1-d only), and
 *                 the consumer's notification word (end d signals it)
 *     slots       nslots x slot_size: a frame takes as many slots as its
 *                 length and a 32-bit word need, contiguous: the word
 *                 (the length in the low 16 bits, BH_BK_CSUM_VALID),
 *                 then the frame. A frame that would cross the end of
 *                 the slots is put at slot 0, and the slots left before
 *                 the end are filled by one word, WIRE_SKIP. head and
 *                 tail count slots.
 *
 * Large frames, as veth does it: an end that declares WIRE_F_LARGE takes
 * frames up to 64 KiB (a TCP segment of several MSS, meant to be cut
 * at the receiver's pace by nobody: the receiving stack takes it whole,
 * in a chain of buffers). A sender sends them only to an end that
 * declared it; the driver cuts them into MTU-sized frames for any other
 * (bh_tcp_gso_segment).
 *
 * Checksum offload, as veth does it: an end that declares WIRE_F_CSUM
 * takes frames whose TCP checksum is only the pseudo-header's part
 * (BH_CSUM_PARTIAL), marked BH_BK_CSUM_VALID, and does not verify them:
 * a frame between two processes on one host is not corrupted on the way.
 * A sender sends such frames only to an end that declared it; the other
 * end's flag is read at attach and after every batch, for the next (an
 * end replaced in between by one that does not take them drops that
 * batch's frames as bad checksums, and TCP sends them again).
 *
 * Ordering is that of ipc/ring.h: the producer writes slots, then
 * release-stores head; the consumer acquire-loads head, copies frames
 * out, release-stores tail. The consumer asks for a signal by storing
 * want = 1, a full barrier, and re-reading head; the producer stores
 * head, a full barrier, and reads want.
 *
 * The other end is another instance, so nothing it writes is trusted:
 * indices must move forward and never past what was published, lengths
 * must fit the slot and the caller's buffer. Violations are counted and
 * treated as no progress. When the other end is not attached, frames
 * sent are dropped as on a link without carrier.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/backend.h"
#include "ipc/ntfn.h"
#include "ipc/order.h"

#define WIRE_MAGIC 0x45524957u /* "WIRE" */
#define WIRE_VERSION 3u
#define WIRE_F_CSUM 0x1u  /* takes frames with partial checksums */
#define WIRE_F_LARGE 0x2u /* takes frames up to WIRE_LARGE bytes */
#define WIRE_SLOTS 2048u
#define WIRE_LARGE 65535u
/* The word of a slot that fills the slots up to the end. */
#define WIRE_SKIP 0x40000000u

struct wire_hdr {
	uint32_t magic, version;
	uint32_t slot_size, nslots;
	uint32_t pid[2];
	uint32_t features[2]; /* WIRE_F_*, each end's own while attached */
};

struct wire_prod {
	uint32_t head;
};

struct wire_cons {
	uint32_t tail;
	uint32_t pad[BH_CACHE_LINE / 4 - 1];
	uint32_t want;
	uint32_t pad2[BH_CACHE_LINE / 4 - 1];
	struct bh_ntfn ntfn;
};

struct wire {
	struct bh_backend b;
	char path[256];
	int fd;
	int end;
	uint8_t *base;
	size_t size;
	struct wire_hdr *hdr;
	uint32_t slot_size, nslots; /* our copies */
	/* direction `end` (we produce) */
	struct wire_prod *tx_prod;
	struct wire_cons *tx_cons;
	uint8_t *tx_slots;
	uint32_t tx_head;
	/* direction 1-end (we consume) */
	struct wire_prod *rx_prod;
	struct wire_cons *rx_cons;
	uint8_t *rx_slots;
	uint32_t rx_tail;
	bool csum_offload; /* we declared WIRE_F_CSUM */
	bool peer_csum;    /* the other end did (read at attach, after each batch) */
	bool large;        /* we declared WIRE_F_LARGE */
	bool large_fits;   /* the slots hold a few large frames (the geometry) */
};

static size_t page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t dir_bytes(uint32_t slot_size, uint32_t nslots)
{
	size_t s = (size_t)slot_size * nslots;
	return 2 * page() + ((s + page() - 1) & ~(page() - 1));
}

static size_t wire_bytes(uint32_t slot_size, uint32_t nslots)
{
	return page() + 2 * dir_bytes(slot_size, nslots);
}

static void locate(struct wire *w)
{
	for (int d = 0; d < 2; d++) {
		uint8_t *base = w->base + page() + (size_t)d * dir_bytes(w->slot_size, w->nslots);
		struct wire_prod *p = (struct wire_prod *)base;
		struct wire_cons *c = (struct wire_cons *)(base + page());
		uint8_t *slots = base + 2 * page();
		if (d == w->end) {
			w->tx_prod = p;
			w->tx_cons = c;
			w->tx_slots = slots;
		} else {
			w->rx_prod = p;
			w->rx_cons = c;
			w->rx_slots = slots;
		}
	}
}

/* Slots a frame of len bytes takes (its word included). */
static uint32_t slots_for(const struct wire *w, uint32_t len)
{
	return (len + 4u + w->slot_size - 1u) / w->slot_size;
}

/* The frame at slot index t, of at most avail published slots: its word
 * and the slots it takes, or 0 when what is there cannot be read (a
 * length that does not fit before the end of the slots or past what was
 * published; the caller then takes one slot and counts an error). A
 * WIRE_SKIP word takes the slots up to the end. */
static uint32_t frame_at(const struct wire *w, uint32_t t, uint32_t avail, uint32_t *word)
{
	uint32_t pos = t & (w->nslots - 1), to_end = w->nslots - pos;
	memcpy(word, w->rx_slots + (size_t)pos * w->slot_size, sizeof(*word));
	if (*word == WIRE_SKIP)
		return to_end <= avail ? to_end : 0;
	uint32_t len = *word & BH_BK_LEN_MASK;
	if ((*word & ~(BH_BK_LEN_MASK | BH_BK_CSUM_VALID)) || len < 14)
		return 0;
	uint32_t k = slots_for(w, len);
	return k <= to_end && k <= avail ? k : 0;
}

/* A frame longer than cap (large frames only) goes into as many buffers
 * as it needs, each but the last marked BH_BK_MORE; a frame is taken
 * only when all of them are there (else it waits for the next call). */
static int wire_rx(struct bh_backend *b, uint8_t *const *bufs, uint32_t cap, uint32_t *lens,
		   unsigned n)
{
	struct wire *w = (struct wire *)b;
	uint32_t head = bh_load_acquire32(&w->rx_prod->head);
	uint32_t avail = head - w->rx_tail;
	if (avail > w->nslots) {
		b->st.bad_index++;
		return 0;
	}
	unsigned k = 0;
	uint32_t t = w->rx_tail;
	while (avail > 0 && k < n) {
		uint32_t word, used = frame_at(w, t, avail, &word);
		if (used == 0) {
			b->st.rx_errors++;
			used = 1;
		} else if (word != WIRE_SKIP) {
			uint32_t len = word & BH_BK_LEN_MASK;
			uint32_t pieces = len <= cap ? 1 : w->large ? (len + cap - 1) / cap : 0;
			if (pieces == 0) {
				b->st.rx_errors++;
			} else if (pieces > n - k) {
				break; /* whole frames only */
			} else {
				const uint8_t *src = w->rx_slots +
						     (size_t)(t & (w->nslots - 1)) * w->slot_size + 4;
				/* Vouched for only if we said we take such frames. */
				uint32_t mark = w->csum_offload ? word & BH_BK_CSUM_VALID : 0;
				b->st.rx_csum_valid += mark != 0;
				b->st.rx_large += pieces > 1;
				b->st.rx_frames++;
				b->st.rx_bytes += len;
				for (uint32_t at = 0; at < len; at += cap) {
					uint32_t m = len - at < cap ? len - at : cap;
					memcpy(bufs[k], src + at, m);
					lens[k++] = m | mark | (at + m < len ? BH_BK_MORE : 0);
				}
			}
		}
		avail -= used;
		t += used;
	}
	w->rx_tail = t;
	/* Pairs with the producer's acquire of tail: it may reuse the slots. */
	bh_store_release32(&w->rx_cons->tail, t);
	return (int)k;
}

static int wire_txv(struct bh_backend *b, const struct bh_txv *frames, unsigned n)
{
	struct wire *w = (struct wire *)b;
	if (bh_load_relaxed32(&w->hdr->pid[1 - w->end]) == 0) {
		b->st.tx_no_carrier += n;
		return (int)n;
	}
	uint32_t tail = bh_load_acquire32(&w->tx_cons->tail);
	uint32_t used = w->tx_head - tail;
	if (used > w->nslots) {
		/* The other end lies about what it consumed: drop, as a
		 * wire that cannot carry frames. */
		b->st.bad_index++;
		b->st.tx_errors += n;
		return (int)n;
	}
	uint32_t space = w->nslots - used;
	uint32_t max = b->tx_max;
	unsigned k = 0;
	for (; k < n; k++) {
		const struct bh_txv *f = &frames[k];
		uint32_t len = f->len & BH_BK_LEN_MASK;
		uint32_t word = len | (w->peer_csum ? f->len & BH_BK_CSUM_VALID : 0);
		if (len > max) {
			b->st.tx_errors++;
			word = len = 0; /* consumed as an invalid frame */
		}
		uint32_t need = slots_for(w, len);
		uint32_t pos = w->tx_head & (w->nslots - 1), skip = 0;
		if (need > w->nslots - pos)
			skip = w->nslots - pos;
		if (skip + need > space)
			break;
		if (skip) {
			uint32_t sw = WIRE_SKIP;
			memcpy(w->tx_slots + (size_t)pos * w->slot_size, &sw, sizeof(sw));
			w->tx_head += skip;
			space -= skip;
			pos = 0;
		}
		uint8_t *slot = w->tx_slots + (size_t)pos * w->slot_size;
		memcpy(slot, &word, sizeof(word));
		/* The copy to the device: the pieces gathered (the caller's
		 * lengths add up to len). */
		bh_txv_gather(slot + 4, f, len);
		/* Partial, to an end that verifies: completed in our copy. */
		if (len && (f->len & BH_BK_CSUM_VALID) && !w->peer_csum) {
			bh_frame_csum_complete(slot + 4, len);
			b->st.tx_csum_done++;
			b->st.tx_csum_bytes += len - 34; /* Ethernet and IPv4 headers */
		}
		w->tx_head += need;
		space -= need;
		b->st.tx_frames++;
		b->st.tx_large += len > w->slot_size - 4;
		b->st.tx_bytes += len;
	}
	if (k < n)
		b->st.tx_busy++;
	/* For the next batch: the other end may have been replaced. */
	uint32_t f = bh_load_relaxed32(&w->hdr->features[1 - w->end]);
	w->peer_csum = (f & WIRE_F_CSUM) != 0;
	b->st.csum_offload_tx = w->peer_csum;
	b->st.large_tx = (f & WIRE_F_LARGE) != 0 && w->large_fits;
	b->tx_max = b->st.large_tx ? WIRE_LARGE : w->slot_size - 4;
	if (k) {
		bh_store_release32(&w->tx_prod->head, w->tx_head);
		bh_full_barrier(); /* head before want (see the top) */
		if (bh_load_relaxed32(&w->tx_cons->want))
			b->st.peer_wakes += (uint64_t)bh_ntfn_signal(&w->tx_cons->ntfn, 1, NULL);
	}
	return (int)k;
}

/* Whole frames: one piece each, TX_CHUNK (a domain's batch) at a time. */
#define TX_CHUNK 256u
static int wire_tx(struct bh_backend *b, const uint8_t *const *frames, const uint32_t *lens,
		   unsigned n)
{
	struct bh_frag fr[TX_CHUNK];
	struct bh_txv v[TX_CHUNK];
	unsigned done = 0;
	while (done < n) {
		unsigned m = n - done < TX_CHUNK ? n - done : TX_CHUNK;
		for (unsigned i = 0; i < m; i++) {
			fr[i] = (struct bh_frag){frames[done + i], lens[done + i] & BH_BK_LEN_MASK};
			v[i] = (struct bh_txv){&fr[i], 1, lens[done + i], 0};
		}
		int r = wire_txv(b, v, m);
		if (r < 0)
			return done ? (int)done : r;
		done += (unsigned)r;
		if ((unsigned)r < m)
			break;
	}
	return (int)done;
}

static int wire_wait(struct bh_backend *b, int timeout_ms)
{
	struct wire *w = (struct wire *)b;
	bh_store_relaxed32(&w->rx_cons->want, 1);
	bh_full_barrier(); /* want before head (see the top) */
	uint32_t head = bh_load_acquire32(&w->rx_prod->head);
	uint32_t tail = bh_load_acquire32(&w->rx_cons->tail);
	int ready = head != tail;
	if (!ready)
		ready = bh_ntfn_wait(&w->rx_cons->ntfn, 0, (int64_t)timeout_ms * 1000000, NULL) != 0;
	bh_store_relaxed32(&w->rx_cons->want, 0);
	if (!ready) {
		head = bh_load_acquire32(&w->rx_prod->head);
		ready = head != bh_load_acquire32(&w->rx_cons->tail);
	}
	return ready;
}

/* The driver's main thread sleeps on the consumer's word itself (see
 * backend.h): the same want protocol as wire_wait, without the wait. */
static bool wire_arm(struct bh_backend *b, struct bh_ntfn **bell)
{
	struct wire *w = (struct wire *)b;
	bh_store_relaxed32(&w->rx_cons->want, 1);
	bh_full_barrier(); /* want before head (see the top) */
	*bell = &w->rx_cons->ntfn;
	/* Indices that lie (wire_rx counts them) are not work: sleep. */
	uint32_t avail = bh_load_acquire32(&w->rx_prod->head) - w->rx_tail;
	return avail != 0 && avail <= w->nslots;
}

/* Buffers of cap bytes that the waiting frames need, up to limit, but
 * always all that the first one needs (else a large frame would never
 * be taken by a caller that asks for fewer: BULKHEAD_BATCH=1). */
static unsigned wire_ready(struct bh_backend *b, uint32_t cap, unsigned limit)
{
	struct wire *w = (struct wire *)b;
	uint32_t avail = bh_load_acquire32(&w->rx_prod->head) - w->rx_tail;
	/* Indices that lie: let rx look (and count them). */
	if (avail > w->nslots)
		return 1;
	if (!w->large)
		return avail < limit ? avail : limit;
	unsigned need = 0, first = 0;
	for (uint32_t t = w->rx_tail; avail > 0 && need < limit;) {
		uint32_t word, used = frame_at(w, t, avail, &word);
		if (used == 0)
			used = 1;
		if (word != WIRE_SKIP) {
			need += (used == 1 || (word & BH_BK_LEN_MASK) <= cap)
					? 1u
					: ((word & BH_BK_LEN_MASK) + cap - 1) / cap;
			if (first == 0)
				first = need;
		}
		avail -= used;
		t += used;
	}
	unsigned most = limit > first ? limit : first;
	return need < most ? need : most;
}

static void wire_disarm(struct bh_backend *b)
{
	struct wire *w = (struct wire *)b;
	bh_store_relaxed32(&w->rx_cons->want, 0);
}

static bool pid_alive(uint32_t pid)
{
	return pid != 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static void wire_close(struct bh_backend *b)
{
	struct wire *w = (struct wire *)b;
	flock(w->fd, LOCK_EX);
	bh_store_release32(&w->hdr->features[w->end], 0);
	bh_store_release32(&w->hdr->pid[w->end], 0);
	flock(w->fd, LOCK_UN);
	munmap(w->base, w->size);
	close(w->fd);
	free(w);
}

/* The driver runs sandboxed and cannot remove files: its supervisor
 * removes the wire file once neither end is in use. */
int bh_shmlink_path(char *out, size_t n, const char *dir, const char *link)
{
	int k = snprintf(out, n, "%s/wire-%s", dir, link);
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

void bh_shmlink_forget(const char *dir, const char *link)
{
	char path[300];
	if (bh_shmlink_path(path, sizeof(path), dir, link) != 0)
		return;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	flock(fd, LOCK_EX);
	struct wire_hdr h;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    (!pid_alive(h.pid[0]) && !pid_alive(h.pid[1])))
		unlink(path);
	flock(fd, LOCK_UN);
	close(fd);
}

static const struct bh_backend_ops wire_ops = {
    .rx = wire_rx,
    .tx = wire_tx,
    .txv = wire_txv,
    .wait = wire_wait,
    .close = wire_close,
    .arm = wire_arm,
    .disarm = wire_disarm,
    .ready = wire_ready,
};

int bh_shmlink_open(struct bh_backend **out, const struct bh_backend_args *a, char *err,
		    size_t errlen)
{
	const char *dir = a->shmlink_dir, *link = a->spec->arg;
	int end = a->spec->end;
	uint16_t mtu = a->mtu;
	bool a_large = a->large;
	struct wire *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->end = end;
	w->fd = -1;
	int rc = -EINVAL;
	if (bh_shmlink_path(w->path, sizeof(w->path), dir, link) != 0) {
		snprintf(err, errlen, "wire:%s: path too long", link);
		goto fail;
	}
	w->fd = open(w->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "wire:%s: %s: %s", link, w->path, strerror(errno));
		goto fail;
	}
	flock(w->fd, LOCK_EX);
	struct stat st;
	if (fstat(w->fd, &st) < 0) {
		rc = -errno;
		goto unlock;
	}
	uint32_t want_slot = ((uint32_t)mtu + 14u + 4u + 63u) & ~63u;
	bool fresh = st.st_size == 0;
	if (fresh) {
		w->slot_size = want_slot;
		w->nslots = WIRE_SLOTS;
		w->size = wire_bytes(w->slot_size, w->nslots);
		if (ftruncate(w->fd, (off_t)w->size) < 0) {
			rc = -errno;
			snprintf(err, errlen, "wire:%s: %s", link, strerror(errno));
			goto unlock;
		}
	} else {
		w->size = (size_t)st.st_size;
	}
	w->base = mmap(NULL, w->size, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
	if (w->base == MAP_FAILED) {
		w->base = NULL;
		rc = -errno;
		snprintf(err, errlen, "wire:%s: %s", link, strerror(errno));
		goto unlock;
	}
	w->hdr = (struct wire_hdr *)w->base;
	if (fresh) {
		w->hdr->magic = WIRE_MAGIC;
		w->hdr->version = WIRE_VERSION;
		w->hdr->slot_size = w->slot_size;
		w->hdr->nslots = w->nslots;
	} else {
		struct wire_hdr h;
		memcpy(&h, w->hdr, sizeof(h));
		if (h.magic != WIRE_MAGIC || h.version != WIRE_VERSION || h.nslots == 0 ||
		    (h.nslots & (h.nslots - 1)) || h.nslots > (1u << 16) || h.slot_size < 64 ||
		    h.slot_size > 65536 || wire_bytes(h.slot_size, h.nslots) != w->size) {
			snprintf(err, errlen, "wire:%s: %s is not a wire file of this version", link,
				 w->path);
			goto unlock;
		}
		w->slot_size = h.slot_size;
		w->nslots = h.nslots;
		if (want_slot > w->slot_size) {
			snprintf(err, errlen,
				 "wire:%s: the other end uses a smaller MTU (%u); use the same --mtu",
				 link, w->slot_size - 18u);
			goto unlock;
		}
	}
	if (pid_alive(w->hdr->pid[end])) {
		rc = -EBUSY;
		snprintf(err, errlen, "wire:%s: end %d is in use by process %u", link, end,
			 w->hdr->pid[end]);
		goto unlock;
	}
	locate(w);
	/* Large frames only where the slots hold several (a file made by
	 * the other end may have fewer or smaller slots than ours). */
	w->large_fits = (uint64_t)w->nslots * w->slot_size >= 8ull * (WIRE_LARGE + 4u);
	if (!w->large_fits)
		a_large = false;
	/* Frames left from an earlier attachment are not ours: skip them. */
	w->rx_tail = bh_load_acquire32(&w->rx_prod->head);
	bh_store_release32(&w->rx_cons->tail, w->rx_tail);
	w->tx_head = bh_load_relaxed32(&w->tx_prod->head);
	w->csum_offload = a->csum_offload;
	w->large = a_large;
	bh_store_release32(&w->hdr->features[end], (a->csum_offload ? WIRE_F_CSUM : 0) |
						       (a_large ? WIRE_F_LARGE : 0));
	uint32_t f = bh_load_acquire32(&w->hdr->features[1 - end]);
	w->peer_csum = (f & WIRE_F_CSUM) != 0;
	w->b.st.csum_offload_rx = w->csum_offload;
	w->b.st.csum_offload_tx = w->peer_csum;
	w->b.st.large_rx = w->large;
	w->b.st.large_tx = (f & WIRE_F_LARGE) != 0 && w->large_fits;
	w->b.tx_max = w->b.st.large_tx ? WIRE_LARGE : w->slot_size - 4;
	bh_store_release32(&w->hdr->pid[end], (uint32_t)getpid());
	flock(w->fd, LOCK_UN);
	w->b.ops = &wire_ops;
	*out = &w->b;
	return 0;
unlock:
	flock(w->fd, LOCK_UN);
fail:
	if (w->base)
		munmap(w->base, w->size);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
	return rc;
}
