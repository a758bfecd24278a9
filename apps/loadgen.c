/*
 * apps/loadgen.c - `bulkhead loadgen`: one load generator over either
 * Bulkhead sockets (the client library) or the Linux kernel's, so the
 * same code measures both.
 *
 *   bulkhead loadgen server (--instance NAME | --kernel) --port P
 *   bulkhead loadgen bulk (--instance NAME | --kernel) --host A --port P --bytes N
 *                         [--dir up|down]
 *   bulkhead loadgen rr   ... --size S --count K     one connection, K exchanges
 *   bulkhead loadgen crr  ... --size S --count K     K connections, one exchange each
 *   bulkhead loadgen conc ... --conns N --size S --count K
 *                                                    N connections open at once
 *   bulkhead loadgen udp  ... --size S --count K     datagram exchanges
 *
 * The server listens on TCP port P (a thread per connection: bulk, rr,
 * crr), on TCP port P+1 (one thread polling every connection and echoing
 * what arrives: conc) and on UDP port P (echo).
 *
 * On TCP port P the client sends a header (struct hdr): bulk up sends N
 * bytes, which the server checks and answers with one status byte; bulk
 * down has the server send N bytes, which the client checks; rr does K
 * exchanges of S bytes each way, one at a time, and the client checks
 * every echo. Every byte sent is from one pattern (pattern_at), so both
 * ends verify what arrived without a second copy of it. The client
 * prints one line of key=value figures ending in verified=1, or fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/bhsock.h"
#include "ipc/clock.h"
#include "apps/apps.h"

static int kernel_nonblock(int s, int on)
{
	int f = fcntl(s, F_GETFL);
	if (f < 0)
		return -1;
	return fcntl(s, F_SETFL, on ? f | O_NONBLOCK : f & ~O_NONBLOCK);
}

/* The socket calls, Bulkhead's or the kernel's. */
struct api {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*close)(int);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*nonblock)(int, int);
};

static const struct api bh_api = {
    .socket = bh_socket,
    .bind = bh_bind,
    .listen = bh_listen,
    .accept = bh_accept,
    .connect = bh_connect,
    .send = bh_send,
    .recv = bh_recv,
    .sendto = bh_sendto,
    .recvfrom = bh_recvfrom,
    .setsockopt = bh_setsockopt,
    .close = bh_close,
    .poll = bh_poll,
    .nonblock = bh_set_nonblock,
};
static const struct api kernel_api = {
    .socket = socket,
    .bind = bind,
    .listen = listen,
    .accept = accept,
    .connect = connect,
    .send = send,
    .recv = recv,
    .sendto = sendto,
    .recvfrom = recvfrom,
    .setsockopt = setsockopt,
    .close = close,
    .poll = poll,
    .nonblock = kernel_nonblock,
};
static const struct api *api;

#define OP_BULK_UP 1u
#define OP_RR 2u
#define OP_BULK_DOWN 3u
#define MAX_SIZE 65536u
#define MAX_CONC_SIZE 16384u
#define MAX_CONNS 65536u
#define UDP_MAX 8192u
#define CHUNK (256u * 1024)

struct hdr {
	uint32_t op;
	uint32_t size; /* rr: bytes each way */
	uint64_t n;    /* bulk: bytes; rr: exchanges */
};

/* --- the pattern every byte comes from --- */

/* Byte o of a stream is pat[o % PERIOD]; pat holds PERIOD + CHUNK bytes
 * so that any CHUNK bytes from any offset are one contiguous slice. The
 * period is prime, so it never lines up with the sizes of sends. */
#define PERIOD 65521u
static uint8_t pat[PERIOD + CHUNK];

static void pattern_init(void)
{
	for (uint32_t i = 0; i < sizeof(pat); i++) {
		uint32_t j = i % PERIOD;
		pat[i] = (uint8_t)((j * 2654435761u) >> 24);
	}
}

static const uint8_t *pattern_at(uint64_t off)
{
	return pat + off % PERIOD;
}

/* --- blocking helpers --- */

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

static int listen_on(int type, int port)
{
	int l = api->socket(AF_INET, type, 0);
	int one = 1;
	if (l >= 0)
		api->setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (l < 0 || api->bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (type == SOCK_STREAM && api->listen(l, 1024) != 0)) {
		fprintf(stderr, "bulkhead loadgen: %s port %d: %s\n",
			type == SOCK_STREAM ? "listen on TCP" : "bind UDP", port, strerror(errno));
		return -1;
	}
	return l;
}

/* --- the server --- */

/* Bulk up: reads n bytes, checks each against the pattern, and answers
 * 1 if all were right, 2 if any was not. */
static int serve_bulk_up(int s, uint8_t *buf, uint64_t n)
{
	uint64_t off = 0;
	bool ok = true;
	while (off < n) {
		uint64_t left = n - off;
		ssize_t r = api->recv(s, buf, left < CHUNK ? left : CHUNK, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ok &= memcmp(buf, pattern_at(off), (size_t)r) == 0;
		off += (uint64_t)r;
	}
	uint8_t status = ok ? 1 : 2;
	return send_all(s, &status, 1);
}

static int serve_bulk_down(int s, uint64_t n)
{
	for (uint64_t off = 0; off < n;) {
		uint64_t k = n - off < CHUNK ? n - off : CHUNK;
		if (send_all(s, pattern_at(off), (size_t)k) != 0)
			return -1;
		off += k;
	}
	return 0;
}

static void *serve_conn(void *arg)
{
	int s = (int)(intptr_t)arg;
	/* On the heap: thread-local storage this size would be taken from
	 * every thread's stack in the whole binary. */
	uint8_t *buf = malloc(CHUNK);
	struct hdr h;
	if (buf == NULL) {
		api->close(s);
		return NULL;
	}
	nodelay(s);
	while (recv_all(s, &h, sizeof(h)) == 0) {
		int e;
		if (h.op == OP_BULK_UP)
			e = serve_bulk_up(s, buf, h.n);
		else if (h.op == OP_BULK_DOWN)
			e = serve_bulk_down(s, h.n);
		else if (h.op == OP_RR && h.size >= 1 && h.size <= MAX_SIZE) {
			e = 0;
			for (uint64_t i = 0; i < h.n && e == 0; i++)
				e = recv_all(s, buf, h.size) != 0 || send_all(s, buf, h.size) != 0;
		} else {
			break; /* not our protocol */
		}
		if (e)
			break;
	}
	api->close(s);
	free(buf);
	return NULL;
}

static void *tcp_server(void *arg)
{
	int l = (int)(intptr_t)arg;
	for (;;) {
		int s = api->accept(l, NULL, NULL);
		if (s < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			fprintf(stderr, "bulkhead loadgen: accept: %s\n", strerror(errno));
			return NULL;
		}
		pthread_t t;
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)s) != 0) {
			api->close(s);
			continue;
		}
		pthread_detach(t);
	}
}

/* Port P+1: one thread, every connection in one poll set, echoing what
 * arrives (many connections at once without a thread each). */
static void *echo_server(void *arg)
{
	int l = (int)(intptr_t)arg;
	struct pollfd *fds = calloc(MAX_CONNS + 1, sizeof(*fds));
	uint8_t *buf = malloc(MAX_CONC_SIZE);
	if (fds == NULL || buf == NULL || api->nonblock(l, 1) != 0) {
		fprintf(stderr, "bulkhead loadgen: echo server: %s\n", strerror(errno ? errno : ENOMEM));
		return NULL;
	}
	nfds_t n = 1;
	fds[0] = (struct pollfd){.fd = l, .events = POLLIN};
	for (;;) {
		int k = api->poll(fds, n, 1000);
		if (k < 0 && errno != EINTR) {
			fprintf(stderr, "bulkhead loadgen: poll: %s\n", strerror(errno));
			return NULL;
		}
		if (k <= 0)
			continue;
		for (nfds_t i = n; i-- > 1;) {
			if (!fds[i].revents)
				continue;
			ssize_t r = api->recv(fds[i].fd, buf, MAX_CONC_SIZE, 0);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0 || send_all(fds[i].fd, buf, (size_t)r) != 0) {
				api->close(fds[i].fd);
				fds[i] = fds[--n];
			}
		}
		if (fds[0].revents) {
			int s;
			while (n <= MAX_CONNS && (s = api->accept(l, NULL, NULL)) >= 0) {
				api->nonblock(s, 0);
				nodelay(s);
				fds[n++] = (struct pollfd){.fd = s, .events = POLLIN};
			}
		}
	}
}

static void *udp_server(void *arg)
{
	int u = (int)(intptr_t)arg;
	static uint8_t buf[UDP_MAX];
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t r = api->recvfrom(u, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "bulkhead loadgen: UDP receive: %s\n", strerror(errno));
			return NULL;
		}
		api->sendto(u, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
	}
}

static int server(int port)
{
	int l = listen_on(SOCK_STREAM, port), e = listen_on(SOCK_STREAM, port + 1),
	    u = listen_on(SOCK_DGRAM, port);
	if (l < 0 || e < 0 || u < 0)
		return 1;
	pthread_t t;
	if (pthread_create(&t, NULL, echo_server, (void *)(intptr_t)e) != 0 ||
	    pthread_create(&t, NULL, udp_server, (void *)(intptr_t)u) != 0) {
		fprintf(stderr, "bulkhead loadgen: cannot start the server threads\n");
		return 1;
	}
	tcp_server((void *)(intptr_t)l);
	return 1;
}

/* --- clients --- */

struct opts {
	const char *samples; /* rr: every latency, sorted, in µs, to this file */
	struct sockaddr_in sa;
	uint64_t bytes, count;
	uint32_t size, conns;
	bool down;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Prints the rate and the latency percentiles of n samples (ns). */
static void print_lat(uint64_t *lat, uint64_t n, double secs)
{
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("per_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f", (double)n / secs,
	       (double)lat[n / 2] / 1e3, (double)lat[n * 99 / 100] / 1e3,
	       (double)lat[n * 999 / 1000] / 1e3, (double)lat[n - 1] / 1e3);
}

static int write_samples(const char *path, const uint64_t *lat, uint64_t n)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	for (uint64_t i = 0; i < n; i++)
		fprintf(f, "%.2f\n", (double)lat[i] / 1e3);
	return fclose(f);
}

static int dial(const struct opts *o, int port)
{
	struct sockaddr_in sa = o->sa;
	sa.sin_port = htons((uint16_t)port);
	int s = api->socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	if (api->connect(s, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		api->close(s);
		errno = e;
		return -1;
	}
	nodelay(s);
	return s;
}

static int fail(const char *what)
{
	fprintf(stderr, "bulkhead loadgen: %s: %s\n", what,
		errno ? strerror(errno) : "closed by the server");
	return 1;
}

static int client_bulk(const struct opts *o, int port)
{
	errno = 0;
	int s = dial(o, port);
	if (s < 0)
		return fail("connect");
	struct hdr h = {.op = o->down ? OP_BULK_DOWN : OP_BULK_UP, .n = o->bytes};
	uint64_t t0 = bh_now_ns();
	bool ok = true;
	if (send_all(s, &h, sizeof(h)) != 0)
		return fail("the connection broke");
	if (o->down) {
		uint8_t *buf = malloc(CHUNK);
		if (buf == NULL)
			return fail("out of memory");
		for (uint64_t off = 0; off < o->bytes;) {
			uint64_t left = o->bytes - off;
			ssize_t r = api->recv(s, buf, left < CHUNK ? left : CHUNK, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				free(buf);
				return fail("the connection broke");
			}
			ok &= memcmp(buf, pattern_at(off), (size_t)r) == 0;
			off += (uint64_t)r;
		}
		free(buf);
	} else {
		for (uint64_t off = 0; off < o->bytes;) {
			uint64_t k = o->bytes - off < CHUNK ? o->bytes - off : CHUNK;
			if (send_all(s, pattern_at(off), (size_t)k) != 0)
				return fail("the connection broke");
			off += k;
		}
		uint8_t status;
		if (recv_all(s, &status, 1) != 0)
			return fail("the connection broke");
		ok = status == 1;
	}
	double secs = (double)(bh_now_ns() - t0) / 1e9;
	api->close(s);
	if (!ok) {
		fprintf(stderr, "bulkhead loadgen: bulk %s: the bytes that arrived differ from "
				"those sent\n",
			o->down ? "down" : "up");
		return 1;
	}
	printf("bulk dir=%s bytes=%" PRIu64 " secs=%.4f mbps=%.1f verified=1\n",
	       o->down ? "down" : "up", o->bytes, secs, (double)o->bytes * 8 / secs / 1e6);
	return 0;
}

/* One exchange on s: sends size bytes of the pattern from off, checks
 * the echo. 0, -1 (broken) or 1 (the echo differs). */
static int exchange(int s, uint8_t *buf, uint64_t off, uint32_t size)
{
	if (send_all(s, pattern_at(off), size) != 0 || recv_all(s, buf, size) != 0)
		return -1;
	return memcmp(buf, pattern_at(off), size) != 0;
}

static int mismatch(const char *mode)
{
	fprintf(stderr, "bulkhead loadgen: %s: an echo differs from what was sent\n", mode);
	return 1;
}

static int client_rr(const struct opts *o, int port)
{
	errno = 0;
	int s = dial(o, port);
	if (s < 0)
		return fail("connect");
	uint64_t *lat = malloc(o->count * sizeof(*lat));
	uint8_t *buf = malloc(MAX_SIZE);
	struct hdr h = {.op = OP_RR, .size = o->size, .n = o->count};
	if (lat == NULL || buf == NULL)
		return fail("out of memory");
	if (send_all(s, &h, sizeof(h)) != 0)
		return fail("the connection broke");
	uint64_t t0 = bh_now_ns();
	for (uint64_t i = 0; i < o->count; i++) {
		uint64_t a = bh_now_ns();
		int e = exchange(s, buf, i * 7919u, o->size);
		if (e < 0)
			return fail("the connection broke");
		if (e > 0)
			return mismatch("rr");
		lat[i] = bh_now_ns() - a;
	}
	double secs = (double)(bh_now_ns() - t0) / 1e9;
	api->close(s);
	printf("rr size=%u count=%" PRIu64 " ", o->size, o->count);
	print_lat(lat, o->count, secs);
	printf(" verified=1\n");
	if (o->samples && write_samples(o->samples, lat, o->count) != 0)
		return fail(o->samples);
	free(lat);
	free(buf);
	return 0;
}

/* Connection rate: connect, one exchange, close; count times. */
static int client_crr(const struct opts *o, int port)
{
	uint64_t *lat = malloc(o->count * sizeof(*lat));
	uint8_t *buf = malloc(MAX_SIZE), *req = malloc(sizeof(struct hdr) + MAX_SIZE);
	if (lat == NULL || buf == NULL || req == NULL)
		return fail("out of memory");
	uint64_t t0 = bh_now_ns();
	for (uint64_t i = 0; i < o->count; i++) {
		uint64_t a = bh_now_ns();
		errno = 0;
		int s = dial(o, port);
		if (s < 0)
			return fail("connect");
		/* The header and the request in one send: one segment. */
		struct hdr h = {.op = OP_RR, .size = o->size, .n = 1};
		memcpy(req, &h, sizeof(h));
		memcpy(req + sizeof(h), pattern_at(i * 7919u), o->size);
		if (send_all(s, req, sizeof(h) + o->size) != 0 || recv_all(s, buf, o->size) != 0)
			return fail("the connection broke");
		if (memcmp(buf, pattern_at(i * 7919u), o->size) != 0)
			return mismatch("crr");
		api->close(s);
		lat[i] = bh_now_ns() - a;
	}
	double secs = (double)(bh_now_ns() - t0) / 1e9;
	printf("crr size=%u count=%" PRIu64 " ", o->size, o->count);
	print_lat(lat, o->count, secs);
	printf(" verified=1\n");
	free(lat);
	free(buf);
	free(req);
	return 0;
}

/* N connections to the echo port, open at once; rounds in which every
 * connection sends one request and the client then collects every echo,
 * until count exchanges (at least one round). */
static int client_conc(const struct opts *o, int port)
{
	uint32_t n = o->conns;
	uint64_t rounds = o->count / n ? o->count / n : 1, total = rounds * n;
	int *fd = malloc(n * sizeof(*fd));
	uint32_t *got = calloc(n, sizeof(*got)), *idx = malloc(n * sizeof(*idx));
	uint64_t *sent_at = malloc(n * sizeof(*sent_at)), *lat = malloc(total * sizeof(*lat));
	uint8_t *rx = malloc((size_t)n * o->size);
	struct pollfd *pf = malloc(n * sizeof(*pf));
	if (!fd || !got || !idx || !sent_at || !lat || !rx || !pf)
		return fail("out of memory");
	uint64_t t0 = bh_now_ns();
	for (uint32_t i = 0; i < n; i++) {
		errno = 0;
		if ((fd[i] = dial(o, port)) < 0) {
			fprintf(stderr, "bulkhead loadgen: connection %u of %u: %s\n", i + 1, n,
				strerror(errno));
			return 1;
		}
	}
	double setup = (double)(bh_now_ns() - t0) / 1e9;
	uint64_t nl = 0;
	t0 = bh_now_ns();
	for (uint64_t r = 0; r < rounds; r++) {
		for (uint32_t i = 0; i < n; i++) {
			sent_at[i] = bh_now_ns();
			got[i] = 0;
			if (send_all(fd[i], pattern_at((r * n + i) * 7919u), o->size) != 0)
				return fail("the connection broke");
		}
		uint32_t pending = n;
		for (uint32_t i = 0; i < n; i++)
			idx[i] = i;
		while (pending) {
			for (uint32_t k = 0; k < pending; k++)
				pf[k] = (struct pollfd){.fd = fd[idx[k]], .events = POLLIN};
			int k = api->poll(pf, pending, 10000);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				fprintf(stderr, "bulkhead loadgen: conc: %u of %u echoes missing after 10 s\n",
					pending, n);
				return 1;
			}
			for (uint32_t q = pending; q-- > 0;) {
				if (!pf[q].revents)
					continue;
				uint32_t i = idx[q];
				ssize_t m = api->recv(fd[i], rx + (size_t)i * o->size + got[i],
						      o->size - got[i], 0);
				if (m <= 0)
					return fail("the connection broke");
				got[i] += (uint32_t)m;
				if (got[i] < o->size)
					continue;
				lat[nl++] = bh_now_ns() - sent_at[i];
				if (memcmp(rx + (size_t)i * o->size, pattern_at((r * n + i) * 7919u),
					   o->size) != 0)
					return mismatch("conc");
				idx[q] = idx[--pending];
			}
		}
	}
	double secs = (double)(bh_now_ns() - t0) / 1e9;
	for (uint32_t i = 0; i < n; i++)
		api->close(fd[i]);
	printf("conc conns=%u size=%u count=%" PRIu64 " setup_per_s=%.0f ", n, o->size, total,
	       (double)n / setup);
	print_lat(lat, total, secs);
	printf(" verified=1\n");
	free(fd), free(got), free(idx), free(sent_at), free(lat), free(rx), free(pf);
	return 0;
}

/* Datagram exchanges; one that gets no answer in 200 ms is lost, and
 * the next is sent. */
static int client_udp(const struct opts *o, int port)
{
	int u = api->socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = o->sa;
	sa.sin_port = htons((uint16_t)port);
	uint64_t *lat = malloc(o->count * sizeof(*lat)), lost = 0, n = 0;
	static uint8_t buf[UDP_MAX];
	if (u < 0)
		return fail("UDP socket");
	if (lat == NULL)
		return fail("out of memory");
	uint64_t t0 = bh_now_ns();
	for (uint64_t i = 0; i < o->count; i++) {
		uint64_t a = bh_now_ns();
		const uint8_t *req = pattern_at(i * 7919u);
		if (api->sendto(u, req, o->size, 0, (struct sockaddr *)&sa, sizeof(sa)) !=
		    (ssize_t)o->size)
			return fail("UDP send");
		for (;;) {
			struct pollfd p = {.fd = u, .events = POLLIN};
			int k = api->poll(&p, 1, 200);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				lost++;
				break;
			}
			ssize_t r = api->recvfrom(u, buf, sizeof(buf), 0, NULL, NULL);
			if (r < 0)
				return fail("UDP receive");
			/* A late answer to an earlier, lost request: skip it. */
			if (r != (ssize_t)o->size || memcmp(buf, req, o->size) != 0)
				continue;
			lat[n++] = bh_now_ns() - a;
			break;
		}
		if (lost > o->count / 10 + 10) {
			fprintf(stderr, "bulkhead loadgen: udp: %" PRIu64 " of %" PRIu64
					" datagrams unanswered\n",
				lost, i + 1);
			return 1;
		}
	}
	double secs = (double)(bh_now_ns() - t0) / 1e9;
	api->close(u);
	if (n == 0) {
		fprintf(stderr, "bulkhead loadgen: udp: no answer at all\n");
		return 1;
	}
	printf("udp size=%u count=%" PRIu64 " lost=%" PRIu64 " ", o->size, n, lost);
	print_lat(lat, n, secs);
	printf(" verified=1\n");
	free(lat);
	return 0;
}

static int usage(void)
{
	fputs("usage: bulkhead loadgen server (--instance NAME | --kernel) --port P\n"
	      "       bulkhead loadgen MODE (--instance NAME | --kernel) --host A --port P [OPTIONS]\n"
	      "MODE and its options:\n"
	      "  bulk --bytes N [--dir up|down]  one connection, N bytes one way\n"
	      "  rr   --size S --count K [--samples FILE]\n"
	      "                                  one connection, K exchanges of S bytes\n"
	      "                                  (FILE: every latency in µs, sorted)\n"
	      "  crr  --size S --count K         K connections, one exchange each\n"
	      "  conc --conns N --size S --count K  N connections at once, K exchanges\n"
	      "  udp  --size S --count K         K datagram exchanges\n"
	      "S: 1 to 65536 (conc: 16384, udp: 8192); N: 1 to 65536\n",
	      stderr);
	return 2;
}

/* Many connections need many descriptors (kernel sockets). */
static void raise_fd_limit(void)
{
	struct rlimit r;
	if (getrlimit(RLIMIT_NOFILE, &r) != 0)
		return;
	rlim_t want = MAX_CONNS + 1024;
	if (r.rlim_cur >= want)
		return;
	struct rlimit n = {.rlim_cur = want, .rlim_max = r.rlim_max > want ? r.rlim_max : want};
	if (setrlimit(RLIMIT_NOFILE, &n) != 0) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

int bh_cmd_loadgen(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *mode = argv[1], *inst = NULL, *host = NULL, *dir = "up", *samples = NULL;
	bool kernel = false;
	long long port = 0, bytes = 0, size = 1, count = 1000, conns = 1;
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
		else if (strcmp(o, "--conns") == 0)
			conns = atoll(v);
		else if (strcmp(o, "--dir") == 0)
			dir = v;
		else if (strcmp(o, "--samples") == 0)
			samples = v;
		else
			return usage();
	}
	static const char *const modes[] = {"server", "bulk", "rr", "crr", "conc", "udp"};
	int m = -1;
	for (int i = 0; i < 6; i++)
		if (strcmp(mode, modes[i]) == 0)
			m = i;
	long long max_size = m == 4 ? MAX_CONC_SIZE : m == 5 ? UDP_MAX : MAX_SIZE;
	if (m < 0 || (inst == NULL) == !kernel || port <= 0 || port > 65534 ||
	    (m > 0 && host == NULL) || (m == 1 && bytes <= 0) ||
	    (strcmp(dir, "up") != 0 && strcmp(dir, "down") != 0) || size < 1 || size > max_size ||
	    count < 1 || count > 100000000 || conns < 1 || conns > MAX_CONNS)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	pattern_init();
	api = kernel ? &kernel_api : &bh_api;
	if (!kernel && bh_attach(inst) != 0) {
		fprintf(stderr, "bulkhead loadgen: cannot attach to instance %s: %s\n", inst,
			errno == ENOENT ? "it is not up" : strerror(errno));
		return 1;
	}
	if (m == 0)
		return server((int)port);
	struct opts o = {.samples = samples,
			 .sa = {.sin_family = AF_INET},
			 .bytes = (uint64_t)bytes,
			 .count = (uint64_t)count,
			 .size = (uint32_t)size,
			 .conns = (uint32_t)conns,
			 .down = strcmp(dir, "down") == 0};
	if (inet_pton(AF_INET, host, &o.sa.sin_addr) != 1) {
		fprintf(stderr, "bulkhead loadgen: bad --host %s\n", host);
		return 2;
	}
	switch (m) {
	case 1:
		return client_bulk(&o, (int)port);
	case 2:
		return client_rr(&o, (int)port);
	case 3:
		return client_crr(&o, (int)port);
	case 4:
		return client_conc(&o, (int)port + 1);
	default:
		return client_udp(&o, (int)port);
	}
}
