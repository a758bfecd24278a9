/*
 * drivers/pcap.c - libpcap on an existing interface: live capture of
 * what arrives (PCAP_D_IN, so our own injected frames are not read back)
 * and pcap_inject for what we send. The instance uses the interface's
 * own MAC address, so no promiscuous mode is needed.
 *
 * A veth peer whose kernel leaves checksums to the hardware hands over
 * frames with unfinished checksums; turn the offloads off on the peer
 * (ethtool -K IF tx off), as docs/ARCHITECTURE.md says.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/backend.h"

struct pcapb {
	struct bh_backend b;
	pcap_t *p;
	int fd;
	/* rx callback state */
	uint8_t *const *bufs;
	uint32_t cap, *lens;
	unsigned got;
};

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct pcapb *pb = (struct pcapb *)user;
	if (h->caplen != h->len || h->caplen > pb->cap || h->caplen < 14) {
		pb->b.st.rx_errors++;
		return;
	}
	memcpy(pb->bufs[pb->got], bytes, h->caplen);
	pb->lens[pb->got++] = h->caplen;
	pb->b.st.rx_frames++;
	pb->b.st.rx_bytes += h->caplen;
}

static int pcap_rx(struct bh_backend *b, uint8_t *const *bufs, uint32_t cap, uint32_t *lens,
		   unsigned n)
{
	struct pcapb *pb = (struct pcapb *)b;
	pb->bufs = bufs;
	pb->cap = cap;
	pb->lens = lens;
	pb->got = 0;
	while (pb->got < n) {
		unsigned before = pb->got;
		int r = pcap_dispatch(pb->p, (int)(n - pb->got), on_frame, (u_char *)pb);
		if (r == PCAP_ERROR) {
			b->st.rx_errors++;
			return pb->got ? (int)pb->got : -EIO;
		}
		if (r <= 0 && pb->got == before)
			break;
	}
	return (int)pb->got;
}

static int pcap_tx(struct bh_backend *b, const uint8_t *const *frames, const uint32_t *lens,
		   unsigned n)
{
	struct pcapb *pb = (struct pcapb *)b;
	for (unsigned k = 0; k < n; k++) {
		if (pcap_inject(pb->p, frames[k], lens[k]) < 0) {
			b->st.tx_errors++;
			continue;
		}
		b->st.tx_frames++;
		b->st.tx_bytes += lens[k];
	}
	return (int)n;
}

static int pcap_wait(struct bh_backend *b, int timeout_ms)
{
	struct pcapb *pb = (struct pcapb *)b;
	struct pollfd pfd = {.fd = pb->fd, .events = POLLIN};
	return poll(&pfd, 1, timeout_ms) > 0 ? 1 : 0;
}

static void pcap_close_b(struct bh_backend *b)
{
	struct pcapb *pb = (struct pcapb *)b;
	pcap_close(pb->p);
	free(pb);
}

static const struct bh_backend_ops pcap_ops = {
    .rx = pcap_rx, .tx = pcap_tx, .wait = pcap_wait, .close = pcap_close_b};

static int read_mac(const char *ifname, struct bh_mac *mac)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%.15s/address", ifname);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	unsigned v[6];
	int n = fscanf(f, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
	fclose(f);
	if (n != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac->b[i] = (uint8_t)v[i];
	return 0;
}

int bh_pcap_open(struct bh_backend **out, const struct bh_backend_args *a, char *err,
		 size_t errlen)
{
	const char *ifname = a->spec->arg;
	uint16_t mtu = a->mtu;
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	struct pcapb *pb = calloc(1, sizeof(*pb));
	if (pb == NULL)
		return -ENOMEM;
	pb->p = pcap_create(ifname, ebuf);
	if (pb->p == NULL) {
		snprintf(err, errlen, "pcap:%s: %s", ifname, ebuf);
		free(pb);
		return -ENODEV;
	}
	pcap_set_snaplen(pb->p, (int)mtu + 14 + 4);
	pcap_set_immediate_mode(pb->p, 1);
	pcap_set_buffer_size(pb->p, 8 << 20);
	int r = pcap_activate(pb->p);
	if (r < 0) {
		snprintf(err, errlen, "pcap:%s: %s", ifname, pcap_geterr(pb->p));
		pcap_close(pb->p);
		free(pb);
		return -ENODEV;
	}
	if (pcap_setdirection(pb->p, PCAP_D_IN) < 0 || pcap_setnonblock(pb->p, 1, ebuf) < 0 ||
	    (pb->fd = pcap_get_selectable_fd(pb->p)) < 0) {
		snprintf(err, errlen, "pcap:%s: %s", ifname, pcap_geterr(pb->p));
		pcap_close(pb->p);
		free(pb);
		return -EIO;
	}
	if (pcap_datalink(pb->p) != DLT_EN10MB) {
		snprintf(err, errlen, "pcap:%s: not an Ethernet interface", ifname);
		pcap_close(pb->p);
		free(pb);
		return -EINVAL;
	}
	pb->b.ops = &pcap_ops;
	pb->b.has_mac = read_mac(ifname, &pb->b.mac) == 0;
	*out = &pb->b;
	return 0;
}
