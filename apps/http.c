/*
 * apps/http.c - `bulkhead serve` (an HTTP/1.1 file server) and
 * `bulkhead get` (an HTTP client), over the client library.
 *
 * serve: GET and HEAD of regular files under --root, keep-alive
 *   (HTTP/1.1 by default, "Connection: close" honoured), one thread per
 *   connection (at most SERVE_MAX at once), paths with ".." refused.
 * get: http://A.B.C.D[:PORT]/PATH, Content-Length or read-to-close
 *   bodies, chunked transfer coding; a progress line on a terminal; a
 *   summary (bytes, seconds, rate, SHA-256) on standard error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/sha256.h"
#include "client/bhsock.h"
#include "ipc/clock.h"
#include "apps/apps.h"

#define SERVE_MAX 512
#define IO_CHUNK (64 * 1024)

static int send_all(int s, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = bh_send(s, p, n, 0);
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* serve                                                                */
/* ------------------------------------------------------------------ */

struct conn_arg {
	int s;
	char root[4096];
};

static atomic_int active;

static void respond(int s, int code, const char *reason, const char *body, bool keep)
{
	char hdr[512];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			 "Server: bulkhead\r\nConnection: %s\r\n\r\n%s",
			 code, reason, strlen(body), keep ? "keep-alive" : "close", body);
	send_all(s, hdr, (size_t)n);
}

/* Serves one request; false when the connection should close. */
static bool serve_one(int s, const char *root, char *req, bool keep)
{
	char method[16], target[2048], version[16];
	if (sscanf(req, "%15s %2047s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0) {
		respond(s, 400, "Bad Request", "bad request\n", false);
		return false;
	}
	bool head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		respond(s, 405, "Method Not Allowed", "only GET and HEAD\n", keep);
		return keep;
	}
	char *q = strchr(target, '?');
	if (q)
		*q = '\0';
	if (target[0] != '/' || strstr(target, "..") != NULL) {
		respond(s, 400, "Bad Request", "bad path\n", keep);
		return keep;
	}
	char path[8192];
	snprintf(path, sizeof(path), "%s%s", root, target);
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		strncat(path, "/index.html", sizeof(path) - strlen(path) - 1);
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		respond(s, 404, "Not Found", "not found\n", keep);
		return keep;
	}
	char hdr[512];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
			 "Content-Length: %lld\r\nServer: bulkhead\r\nConnection: %s\r\n\r\n",
			 (long long)st.st_size, keep ? "keep-alive" : "close");
	if (send_all(s, hdr, (size_t)n) != 0) {
		close(fd);
		return false;
	}
	if (!head) {
		static __thread char buf[IO_CHUNK];
		for (;;) {
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r <= 0)
				break;
			if (send_all(s, buf, (size_t)r) != 0) {
				close(fd);
				return false;
			}
		}
	}
	close(fd);
	return keep;
}

static void *serve_conn(void *p)
{
	struct conn_arg *a = p;
	char req[16384];
	size_t got = 0;
	for (;;) {
		char *end = NULL;
		while ((end = memmem(req, got, "\r\n\r\n", 4)) == NULL) {
			if (got == sizeof(req)) {
				respond(a->s, 431, "Request Header Fields Too Large", "too large\n", false);
				goto done;
			}
			ssize_t r = bh_recv(a->s, req + got, sizeof(req) - got, 0);
			if (r <= 0)
				goto done;
			got += (size_t)r;
		}
		*end = '\0';
		size_t used = (size_t)(end - req) + 4;
		bool http11 = strstr(req, "HTTP/1.1") != NULL;
		bool keep = http11;
		for (char *line = strstr(req, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
			if (strncasecmp(line + 2, "Connection:", 11) == 0) {
				const char *v = line + 13;
				while (*v == ' ')
					v++;
				keep = strncasecmp(v, "close", 5) != 0 &&
				       (http11 || strncasecmp(v, "keep-alive", 10) == 0);
			}
		}
		if (!serve_one(a->s, a->root, req, keep))
			break;
		memmove(req, req + used, got - used);
		got -= used;
	}
done:
	bh_close(a->s);
	free(a);
	atomic_fetch_sub(&active, 1);
	return NULL;
}

int bh_cmd_serve(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : NULL, *root = NULL;
	long port = -1;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port") == 0)
			port = strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--root") == 0)
			root = argv[i + 1];
		else
			name = NULL;
	}
	if (name == NULL || root == NULL || port <= 0 || port > 65535 || argc % 2 != 0) {
		fputs("usage: bulkhead serve NAME --port P --root DIR\n", stderr);
		return 2;
	}
	char rootabs[4096];
	if (realpath(root, rootabs) == NULL) {
		fprintf(stderr, "bulkhead serve: --root %s: %s\n", root, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (bh_attach(name) != 0) {
		fprintf(stderr, "bulkhead serve: cannot attach to instance %s: %s\n", name,
			errno == ENOENT ? "it is not up" : strerror(errno));
		return 1;
	}
	int l = bh_socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (l < 0 || bh_bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || bh_listen(l, 256) != 0) {
		fprintf(stderr, "bulkhead serve: port %ld: %s\n", port, strerror(errno));
		return 1;
	}
	fprintf(stderr, "bulkhead serve: %s on instance %s port %ld\n", rootabs, name, port);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t pl = sizeof(peer);
		int c = bh_accept(l, (struct sockaddr *)&peer, &pl);
		if (c < 0) {
			if (errno == EMFILE || errno == EAGAIN || errno == EINTR) {
				usleep(10000);
				continue;
			}
			fprintf(stderr, "bulkhead serve: accept: %s\n", strerror(errno));
			return 1;
		}
		if (atomic_load(&active) >= SERVE_MAX) {
			bh_close(c);
			continue;
		}
		struct conn_arg *a = malloc(sizeof(*a));
		if (a == NULL) {
			bh_close(c);
			continue;
		}
		a->s = c;
		snprintf(a->root, sizeof(a->root), "%s", rootabs);
		atomic_fetch_add(&active, 1);
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		int e = pthread_create(&t, &at, serve_conn, a);
		if (e != 0) {
			fprintf(stderr, "bulkhead serve: no thread for a connection: %s\n", strerror(e));
			atomic_fetch_sub(&active, 1);
			bh_close(c);
			free(a);
		}
		pthread_attr_destroy(&at);
	}
}

/* ------------------------------------------------------------------ */
/* get                                                                  */
/* ------------------------------------------------------------------ */

struct body {
	FILE *out;
	struct bh_sha256 sha;
	uint64_t bytes, total; /* total: 0 if unknown */
	uint64_t t0, last_progress;
	bool tty;
	bool hash; /* false with --no-hash */
};

static void progress(struct body *b, bool final)
{
	if (!b->tty)
		return;
	uint64_t now = bh_now_ns();
	if (!final && now - b->last_progress < 200000000u)
		return;
	b->last_progress = now;
	double secs = (double)(now - b->t0) / 1e9;
	double rate = secs > 0 ? (double)b->bytes * 8 / secs / 1e6 : 0;
	if (b->total)
		fprintf(stderr, "\r%llu / %llu bytes (%.0f%%), %.1f Mbit/s   ",
			(unsigned long long)b->bytes, (unsigned long long)b->total,
			100.0 * (double)b->bytes / (double)b->total, rate);
	else
		fprintf(stderr, "\r%llu bytes, %.1f Mbit/s   ", (unsigned long long)b->bytes, rate);
	if (final)
		fputc('\n', stderr);
}

static int body_put(struct body *b, const char *p, size_t n)
{
	if (b->hash)
		bh_sha256_update(&b->sha, p, n);
	b->bytes += n;
	if (fwrite(p, 1, n, b->out) != n)
		return -1;
	progress(b, false);
	return 0;
}

/* Reads until n bytes are in buf (keeping what is there). */
struct rbuf {
	int s;
	char data[IO_CHUNK];
	size_t off, len;
};

static ssize_t rb_fill(struct rbuf *r)
{
	if (r->off == r->len)
		r->off = r->len = 0;
	if (r->off > 0 && r->len == sizeof(r->data)) {
		memmove(r->data, r->data + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	ssize_t k = bh_recv(r->s, r->data + r->len, sizeof(r->data) - r->len, 0);
	if (k > 0)
		r->len += (size_t)k;
	return k;
}

/* One line (without CRLF) into out; -1 at EOF or error. */
static int rb_line(struct rbuf *r, char *out, size_t max)
{
	for (;;) {
		char *nl = memchr(r->data + r->off, '\n', r->len - r->off);
		if (nl) {
			size_t n = (size_t)(nl - (r->data + r->off));
			size_t k = n < max - 1 ? n : max - 1;
			memcpy(out, r->data + r->off, k);
			out[k] = '\0';
			if (k && out[k - 1] == '\r')
				out[k - 1] = '\0';
			r->off += n + 1;
			return 0;
		}
		if (r->len - r->off >= sizeof(r->data) - 1)
			return -1;
		if (rb_fill(r) <= 0)
			return -1;
	}
}

static int rb_body(struct rbuf *r, struct body *b, uint64_t n, bool to_close)
{
	while (to_close || n > 0) {
		if (r->off == r->len && rb_fill(r) <= 0)
			return to_close ? 0 : -1;
		size_t k = r->len - r->off;
		if (!to_close && k > n)
			k = (size_t)n;
		if (body_put(b, r->data + r->off, k) != 0)
			return -1;
		r->off += k;
		n -= to_close ? 0 : k;
	}
	return 0;
}

/* A parsed http://A.B.C.D[:PORT]/PATH. */
struct url {
	char host[256], path[2048];
	long port;
	struct sockaddr_in sa;
};

/* Parses url into *u; says why not on standard error and returns false. */
static bool parse_url(const char *url, struct url *u)
{
	if (strncmp(url, "http://", 7) != 0) {
		fprintf(stderr, "bulkhead get: only http:// URLs (%s)\n", url);
		return false;
	}
	const char *h = url + 7, *slash = strchr(h, '/');
	size_t hl = slash ? (size_t)(slash - h) : strlen(h);
	if (hl == 0 || hl >= sizeof(u->host)) {
		fprintf(stderr, "bulkhead get: bad URL %s\n", url);
		return false;
	}
	memcpy(u->host, h, hl);
	u->host[hl] = '\0';
	snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "/");
	u->port = 80;
	char *colon = strchr(u->host, ':');
	if (colon) {
		*colon = '\0';
		u->port = strtol(colon + 1, NULL, 10);
	}
	u->sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)u->port)};
	if (u->port <= 0 || u->port > 65535 || inet_pton(AF_INET, u->host, &u->sa.sin_addr) != 1) {
		fprintf(stderr, "bulkhead get: the host must be an IPv4 address and a port 1-65535 (%s)\n",
			url);
		return false;
	}
	return true;
}

/* Connects to the URL's host and sends the request; the socket, or -1
 * (said on standard error). */
static int get_request(const struct url *u)
{
	int s = bh_socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || bh_connect(s, (const struct sockaddr *)&u->sa, sizeof(u->sa)) != 0) {
		fprintf(stderr, "bulkhead get: connect %s:%ld: %s\n", u->host, u->port,
			strerror(errno));
		return -1;
	}
	char req[4096];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s:%ld\r\nUser-Agent: bulkhead-get\r\n"
			 "Accept: */*\r\nConnection: close\r\n\r\n",
			 u->path, u->host, u->port);
	if (send_all(s, req, (size_t)n) != 0) {
		fprintf(stderr, "bulkhead get: send: %s\n", strerror(errno));
		return -1;
	}
	return s;
}

/* The response's head: the status line and code, and how the body comes. */
struct head {
	char status[8192];
	int code;
	long long clen; /* Content-Length, -1: none */
	bool chunked;
};

/* Reads the status line and the header fields; false when there is no
 * HTTP response (said on standard error). */
static bool read_head(struct rbuf *r, const struct url *u, struct head *hd)
{
	char line[sizeof(hd->status)];
	hd->code = 0;
	if (rb_line(r, line, sizeof(line)) != 0 || sscanf(line, "HTTP/%*d.%*d %d", &hd->code) != 1) {
		fprintf(stderr, "bulkhead get: no HTTP response from %s:%ld\n", u->host, u->port);
		return false;
	}
	snprintf(hd->status, sizeof(hd->status), "%s", line);
	hd->clen = -1;
	hd->chunked = false;
	while (rb_line(r, line, sizeof(line)) == 0 && line[0]) {
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			hd->clen = atoll(line + 15);
		else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked"))
			hd->chunked = true;
	}
	return true;
}

/* The body into b: chunked, Content-Length bytes, or up to the close.
 * 0, or -1 when it broke off. */
static int read_body(struct rbuf *r, struct body *b, const struct head *hd)
{
	if (!hd->chunked)
		return rb_body(r, b, hd->clen >= 0 ? (uint64_t)hd->clen : 0, hd->clen < 0);
	char line[8192];
	for (;;) {
		if (rb_line(r, line, sizeof(line)) != 0)
			return -1;
		unsigned long long k = strtoull(line, NULL, 16);
		if (k == 0)
			return 0;
		if (rb_body(r, b, k, false) != 0 || rb_line(r, line, sizeof(line)) != 0)
			return -1;
	}
}

/* The summary line, and why the transfer failed when it did (err: errno
 * when it broke off). */
static void get_report(struct body *b, const struct head *hd, int rc, int err)
{
	double secs = (double)(bh_now_ns() - b->t0) / 1e9;
	uint8_t dig[32];
	char hex[65] = "not computed (--no-hash)";
	if (b->hash) {
		bh_sha256_final(&b->sha, dig);
		bh_sha256_hex(dig, hex);
	}
	fprintf(stderr, "%s: %llu bytes in %.3f s, %.1f Mbit/s, sha256 %s\n", hd->status,
		(unsigned long long)b->bytes, secs, secs > 0 ? (double)b->bytes * 8 / secs / 1e6 : 0.0,
		hex);
	if (rc == 0)
		return;
	if (err)
		fprintf(stderr, "bulkhead get: the transfer broke off after %llu bytes: %s\n",
			(unsigned long long)b->bytes, strerror(err));
	else
		fprintf(stderr, "bulkhead get: the server closed the connection after %llu bytes%s\n",
			(unsigned long long)b->bytes,
			hd->clen >= 0 ? " (fewer than Content-Length)" : "");
}

int bh_cmd_get(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : NULL, *url = argc > 2 ? argv[2] : NULL;
	const char *outpath = NULL;
	bool hash = true;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			outpath = argv[++i];
		else if (strcmp(argv[i], "--no-hash") == 0)
			hash = false;
		else
			url = NULL;
	}
	if (name == NULL || url == NULL) {
		fputs("usage: bulkhead get NAME http://A.B.C.D[:PORT]/PATH [-o FILE] [--no-hash]\n"
		      "  -o FILE     the body to FILE (default: standard output; /dev/null: nowhere)\n"
		      "  --no-hash   do not compute the body's SHA-256 (to measure the stack alone)\n",
		      stderr);
		return 2;
	}
	struct url u;
	if (!parse_url(url, &u))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (bh_attach(name) != 0) {
		fprintf(stderr, "bulkhead get: cannot attach to instance %s: %s\n", name,
			errno == ENOENT ? "it is not up" : strerror(errno));
		return 1;
	}
	struct body b = {.out = stdout, .tty = isatty(STDERR_FILENO) != 0, .hash = hash};
	if (outpath && (b.out = fopen(outpath, "wb")) == NULL) {
		fprintf(stderr, "bulkhead get: %s: %s\n", outpath, strerror(errno));
		return 1;
	}
	b.t0 = bh_now_ns();
	int s = get_request(&u);
	if (s < 0)
		return 1;
	static struct rbuf r;
	r.s = s;
	struct head hd;
	if (!read_head(&r, &u, &hd))
		return 1;
	if (hd.clen > 0)
		b.total = (uint64_t)hd.clen;
	/* Here, so that no early return leaves a digest behind. */
	if (hash && bh_sha256_init(&b.sha) != 0) {
		fprintf(stderr, "bulkhead get: libcrypto cannot start a SHA-256 digest\n");
		bh_close(s);
		return 1;
	}
	errno = 0; /* a plain end of stream leaves it 0 */
	int rc = read_body(&r, &b, &hd);
	int err = rc ? errno : 0; /* before anything else can change it */
	progress(&b, true);
	fflush(b.out);
	if (outpath)
		fclose(b.out);
	bh_close(s);
	get_report(&b, &hd, rc, err);
	if (rc != 0)
		return 1;
	return hd.code >= 200 && hd.code < 300 ? 0 : 1;
}
