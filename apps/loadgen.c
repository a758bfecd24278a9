/*
 * apps/loadgen.c - `bulkhead loadgen`: one load generator over either
 * Bulkhead sockets (the client library) or the Linux kernel's, so the
 * same code measures both.
 *
 *   bulkhead loadgen server (--instance NAME | --kernel) --port P
 *   bulkhead loadgen bulk   (--instance NAME | --kernel) --host A --port P --bytes N
 *   bulkhead loadgen rr     (--instance NAME | --kernel) --host A --port P
 *                           --size S --count K
 *
 * The client opens one connection and sends a header (struct hdr): bulk
 * sends N bytes, which the server reads and answers with one byte once
 * all arrived; rr does K exchanges of S bytes each way, one at a time.
 * The client prints one line of key=value figures. The server serves
 * each connection on a thread of its own until stopped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/bhsock.h"
#include "ipc/clock.h"
#include "tools/apps.h"

/* The socket calls, Bulkhead's or the kernel's. */
struct api {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*recv)(int, void *, size_t, int);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*close)(int);
};

static const struct api bh_api = {bh_socket, bh_bind,	 bh_listen,	bh_accept, bh_connect,
				  bh_send,   bh_recv,	 bh_setsockopt, bh_close};
static const struct api kernel_api = {socket, bind, listen,	accept, connect,
				      send,   recv, setsockopt, close};
static const struct api *api;

#define OP_BULK 1u
#define OP_RR 2u
#define MAX_RR 65536u

struct hdr {
	uint32_t op;
	uint32_t size; /* rr: bytes each way */
	uint64_t n;    /* bulk: bytes; rr: exchanges */
};

static int send_all(int s, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t w = api->send(s, p, n, 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_all(int s, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = api->recv(s, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void nodelay(int s)
{
	int one = 1;
	api->setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void *serve_conn(void *arg)
{
	int s = (int)(intptr_t)arg;
	/* On the heap: thread-local storage this size would be taken from
	 * every thread's stack in the whole binary. */
	enum { BUF = 256 * 1024 };
	uint8_t *buf = malloc(BUF);
	struct hdr h;
	if (buf == NULL) {
		api->close(s);
		return NULL;
	}
	nodelay(s);
	while (recv_all(s, &h, sizeof(h)) == 0) {
		if (h.op == OP_BULK) {
			uint64_t left = h.n;
			while (left) {
				ssize_t r = api->recv(s, buf, left < BUF ? left : BUF, 0);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					goto out;
				left -= (uint64_t)r;
			}
			uint8_t ack = 1;
			if (send_all(s, &ack, 1) != 0)
				break;
		} else if (h.op == OP_RR && h.size >= 1 && h.size <= MAX_RR) {
			for (uint64_t i = 0; i < h.n; i++)
				if (recv_all(s, buf, h.size) != 0 || send_all(s, buf, h.size) != 0)
					goto out;
		} else {
			break; /* not our protocol */
		}
	}
out:
	api->close(s);
	free(buf);
	return NULL;
}

static int server(int port)
{
	int l = api->socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	api->setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (l < 0 || api->bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || api->listen(l, 128) != 0) {
		fprintf(stderr, "bulkhead loadgen: listen on port %d: %s\n", port, strerror(errno));
		return 1;
	}
	for (;;) {
		int s = api->accept(l, NULL, NULL);
		if (s < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "bulkhead loadgen: accept: %s\n", strerror(errno));
			return 1;
		}
		pthread_t t;
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)s) != 0) {
			api->close(s);
			continue;
		}
		pthread_detach(t);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int client(const char *mode, const struct sockaddr_in *sa, uint64_t bytes, uint32_t size,
		  uint64_t count)
{
	errno = 0; /* "broken" below: a plain end of stream leaves it 0 */
	int s = api->socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || api->connect(s, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		fprintf(stderr, "bulkhead loadgen: connect: %s\n", strerror(errno));
		return 1;
	}
	nodelay(s);
	static uint8_t buf[256 * 1024];
	memset(buf, 0x5a, sizeof(buf));
	if (strcmp(mode, "bulk") == 0) {
		struct hdr h = {.op = OP_BULK, .n = bytes};
		uint64_t t0 = bh_now_ns();
		if (send_all(s, &h, sizeof(h)) != 0)
			goto broken;
		for (uint64_t left = bytes; left;) {
			size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);
			if (send_all(s, buf, k) != 0)
				goto broken;
			left -= k;
		}
		uint8_t ack;
		if (recv_all(s, &ack, 1) != 0)
			goto broken;
		double secs = (double)(bh_now_ns() - t0) / 1e9;
		printf("bulk bytes=%" PRIu64 " secs=%.4f mbps=%.1f\n", bytes, secs,
		       (double)bytes * 8 / secs / 1e6);
	} else {
		uint64_t *lat = malloc(count * sizeof(*lat));
		if (lat == NULL)
			return 1;
		struct hdr h = {.op = OP_RR, .size = size, .n = count};
		if (send_all(s, &h, sizeof(h)) != 0) {
			free(lat);
			goto broken;
		}
		uint64_t t0 = bh_now_ns();
		for (uint64_t i = 0; i < count; i++) {
			uint64_t a = bh_now_ns();
			if (send_all(s, buf, size) != 0 || recv_all(s, buf, size) != 0) {
				free(lat);
				goto broken;
			}
			lat[i] = bh_now_ns() - a;
		}
		double secs = (double)(bh_now_ns() - t0) / 1e9;
		qsort(lat, count, sizeof(*lat), cmp_u64);
		printf("rr size=%u count=%" PRIu64 " per_s=%.0f p50_us=%.1f p99_us=%.1f "
		       "p999_us=%.1f\n",
		       size, count, (double)count / secs, (double)lat[count / 2] / 1e3,
		       (double)lat[count * 99 / 100] / 1e3, (double)lat[count * 999 / 1000] / 1e3);
		free(lat);
	}
	api->close(s);
	return 0;
broken:
	fprintf(stderr, "bulkhead loadgen: the connection broke: %s\n",
		errno ? strerror(errno) : "closed by the server");
	return 1;
}

static int usage(void)
{
	fputs("usage: bulkhead loadgen server (--instance NAME | --kernel) --port P\n"
	      "       bulkhead loadgen bulk (--instance NAME | --kernel) --host A --port P --bytes N\n"
	      "       bulkhead loadgen rr (--instance NAME | --kernel) --host A --port P\n"
	      "                            --size S --count K   (S: 1 to 65536)\n",
	      stderr);
	return 2;
}

int bh_cmd_loadgen(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *mode = argv[1], *inst = NULL, *host = NULL;
	bool kernel = false;
	long long port = 0, bytes = 0, size = 1, count = 1000;
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(o, "--kernel") == 0) {
			kernel = true;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(o, "--instance") == 0)
			inst = v;
		else if (strcmp(o, "--host") == 0)
			host = v;
		else if (strcmp(o, "--port") == 0)
			port = atoll(v);
		else if (strcmp(o, "--bytes") == 0)
			bytes = atoll(v);
		else if (strcmp(o, "--size") == 0)
			size = atoll(v);
		else if (strcmp(o, "--count") == 0)
			count = atoll(v);
		else
			return usage();
	}
	bool is_server = strcmp(mode, "server") == 0;
	if ((inst == NULL) == !kernel || port <= 0 || port > 65535 ||
	    (!is_server && strcmp(mode, "bulk") != 0 && strcmp(mode, "rr") != 0) ||
	    (!is_server && host == NULL) || (strcmp(mode, "bulk") == 0 && bytes <= 0) ||
	    size < 1 || size > MAX_RR || count < 1 || count > 100000000)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	api = kernel ? &kernel_api : &bh_api;
	if (!kernel && bh_attach(inst) != 0) {
		fprintf(stderr, "bulkhead loadgen: cannot attach to instance %s: %s\n", inst,
			errno == ENOENT ? "it is not up" : strerror(errno));
		return 1;
	}
	if (is_server)
		return server((int)port);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "bulkhead loadgen: bad --host %s\n", host);
		return 2;
	}
	return client(mode, &sa, (uint64_t)bytes, (uint32_t)size, (uint64_t)count);
}
