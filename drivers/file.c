/*
 * drivers/file.c - replays a capture file as received frames, as fast as
 * the stack takes them; frames sent are counted and dropped (record them
 * with --capture). For tests.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drivers/backend.h"

struct fileb {
	struct bh_backend b;
	pcap_t *p;
};

static int file_rx(struct bh_backend *b, uint8_t *const *bufs, uint32_t cap, uint32_t *lens,
		   unsigned n)
{
	struct fileb *fb = (struct fileb *)b;
	unsigned k = 0;
	while (k < n && !b->eof) {
		struct pcap_pkthdr *h;
		const u_char *data;
		int r = pcap_next_ex(fb->p, &h, &data);
		if (r == PCAP_ERROR_BREAK || r == PCAP_ERROR) {
			b->eof = true;
			break;
		}
		if (r != 1)
			break;
		if (h->caplen != h->len || h->caplen > cap || h->caplen < 14) {
			b->st.rx_errors++;
			continue;
		}
		memcpy(bufs[k], data, h->caplen);
		lens[k++] = h->caplen;
		b->st.rx_frames++;
		b->st.rx_bytes += h->caplen;
	}
	return (int)k;
}

static int file_tx(struct bh_backend *b, const uint8_t *const *frames, const uint32_t *lens,
		   unsigned n)
{
	(void)frames;
	for (unsigned k = 0; k < n; k++) {
		b->st.tx_frames++;
		b->st.tx_bytes += lens[k];
	}
	return (int)n;
}

static int file_wait(struct bh_backend *b, int timeout_ms)
{
	if (!b->eof)
		return 1;
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	return 0;
}

static void file_close(struct bh_backend *b)
{
	struct fileb *fb = (struct fileb *)b;
	pcap_close(fb->p);
	free(fb);
}

static const struct bh_backend_ops file_ops = {
    .rx = file_rx, .tx = file_tx, .wait = file_wait, .close = file_close};

int bh_file_open(struct bh_backend **out, const struct bh_backend_args *a, char *err,
		 size_t errlen)
{
	const char *path = a->spec->arg;
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	struct fileb *fb = calloc(1, sizeof(*fb));
	if (fb == NULL)
		return -ENOMEM;
	fb->p = pcap_open_offline(path, ebuf);
	if (fb->p == NULL) {
		snprintf(err, errlen, "file:%s: %s", path, ebuf);
		free(fb);
		return -ENOENT;
	}
	if (pcap_datalink(fb->p) != DLT_EN10MB) {
		snprintf(err, errlen, "file:%s: not an Ethernet capture", path);
		pcap_close(fb->p);
		free(fb);
		return -EINVAL;
	}
	fb->b.ops = &file_ops;
	*out = &fb->b;
	return 0;
}
