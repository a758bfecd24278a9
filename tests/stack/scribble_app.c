/*
 * tests/stack/scribble_app.c - a hostile application for the stack tests:
 * it attaches to an instance, opens TCP connections to ADDR:PORT and a
 * UDP socket, then writes seeded random bytes over the whole region the
 * socket server gave it (slots, indices, rings, dirty bits, notification
 * words), again and again, and keeps calling the API so the server looks.
 * The server must reset what is wrong, log it and carry on; the instance
 * and every other application must not notice.
 *
 *   scribble_app NAME ADDR PORT SEED ROUNDS
 *
 * Exits 0 once it has scribbled (what the calls return does not matter:
 * the region is garbage by design), 2 on bad usage, 3 if it cannot attach
 * or find its region.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/bhsock.h"
#include "domains/app_abi.h"

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The application's region, found the way any process could: its own
 * mapping of the memfd the server named "bh-app-PID". */
static int find_region(uint8_t **base, size_t *len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return -1;
	char line[512], want[64];
	snprintf(want, sizeof(want), "bh-app-%d", (int)getpid());
	int found = -1;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;
		char perms[8];
		if (strstr(line, want) == NULL ||
		    sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &lo, &hi, perms) != 3)
			continue;
		if (perms[1] != 'w')
			continue;
		*base = (uint8_t *)lo;
		*len = hi - lo;
		found = 0;
		break;
	}
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: scribble_app NAME ADDR PORT SEED ROUNDS\n");
		return 2;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
	if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1) {
		fprintf(stderr, "scribble_app: bad address %s\n", argv[2]);
		return 2;
	}
	rng = strtoull(argv[4], NULL, 10) | 1;
	long rounds = atol(argv[5]);
	if (bh_attach(argv[1]) != 0) {
		fprintf(stderr, "scribble_app: attach %s: %s\n", argv[1], strerror(errno));
		return 3;
	}
	int s[4];
	for (int i = 0; i < 3; i++) {
		s[i] = bh_socket(AF_INET, SOCK_STREAM, 0);
		if (s[i] >= 0 && bh_connect(s[i], (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			const char *req = "GET /1m HTTP/1.1\r\nHost: x\r\n\r\n";
			bh_send(s[i], req, strlen(req), 0);
		}
		if (s[i] >= 0)
			bh_set_nonblock(s[i], 1);
	}
	s[3] = bh_socket(AF_INET, SOCK_DGRAM, 0);
	if (s[3] >= 0)
		bh_set_nonblock(s[3], 1);
	uint8_t *base;
	size_t len;
	if (find_region(&base, &len) != 0) {
		fprintf(stderr, "scribble_app: my region is not in /proc/self/maps\n");
		return 3;
	}
	/* The layout, from the region's own header (app_abi.h). */
	struct bh_app_meta m;
	memcpy(&m, base + 64, sizeof(m));
	size_t ctl_end = m.slots_off + (size_t)m.nslots * sizeof(struct bh_app_slot);
	if (m.magic != BH_APP_MAGIC || ctl_end > len || m.dirty_off >= len) {
		fprintf(stderr, "scribble_app: the region's header is not what app_abi.h says\n");
		return 3;
	}
	uint64_t written = 0;
	char buf[4096];
	for (long r = 0; r < rounds; r++) {
		/* Random indices into our sockets' slots, their dirty bits
		 * set so the server reads them; random words over the
		 * control part (header, waiter words, dirty bits, slots);
		 * then a burst over one random page anywhere. */
		for (int i = 0; i < 4; i++) {
			if (s[i] < 0 || (uint32_t)s[i] >= m.nslots)
				continue;
			struct bh_app_slot *sl =
			    (struct bh_app_slot *)(base + m.slots_off) + s[i];
			uint32_t v = (uint32_t)next();
			switch (next() % 5) {
			case 0: sl->tx_head = v; break;
			case 1: sl->rx_tail = v; break;
			case 2: *(v & 1 ? &sl->want_rx : &sl->want_tx) = v; break;
			case 3: sl->tx_win = v & 1 ? v : 1u << (v % 32); break; /* any, or a power of two */
			default: sl->tx_head += v % 4096; break;
			}
			uint32_t *dirty = (uint32_t *)(base + m.dirty_off);
			__atomic_fetch_or(&dirty[s[i] / 32], 1u << (s[i] % 32), __ATOMIC_RELEASE);
			__atomic_store_n(&dirty[m.nslots / 32 + 1], 1u, __ATOMIC_RELEASE);
			written += 12;
		}
		for (int i = 0; i < 64; i++) {
			size_t at = (size_t)(next() % (ctl_end / 4)) * 4;
			uint32_t v = (uint32_t)next();
			memcpy(base + at, &v, 4);
			written += 4;
		}
		size_t page = (size_t)(next() % (len / 4096)) * 4096;
		for (size_t o = 0; o < 4096; o += 8) {
			uint64_t v = next();
			memcpy(base + page + o, &v, 8);
		}
		written += 4096;
		for (int i = 0; i < 4; i++) {
			if (s[i] < 0)
				continue;
			bh_send(s[i], buf, 1 + next() % sizeof(buf), MSG_DONTWAIT);
			bh_recv(s[i], buf, sizeof(buf), MSG_DONTWAIT);
		}
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	printf("scribbled %" PRIu64 " bytes over a %zu-byte region in %ld rounds\n", written, len,
	       rounds);
	for (int i = 0; i < 4; i++)
		if (s[i] >= 0)
			bh_close(s[i]);
	bh_detach();
	return 0;
}
