/*
 * apps/nc.c - `bulkhead nc NAME [-l] [-u] HOST PORT`: standard input to
 * the peer, the peer to standard output. TCP: at the end of standard
 * input the sending side is shut down (half-close) and nc keeps reading
 * until the peer closes; it exits when both directions are done. With
 * -l it listens on HOST:PORT and serves one connection. -u: UDP, one
 * datagram per read of standard input; a UDP listener answers whoever
 * sent it the first datagram. -w SECS: once standard input has ended
 * (for a UDP listener: once the first datagram arrived), exit when
 * nothing has arrived for SECS seconds; UDP has no end of its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/bhsock.h"
#include "apps/apps.h"

struct nc {
	int s;
	bool udp;
	struct sockaddr_in peer;
	bool have_peer;
	int send_rc;
	volatile int stdin_done;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *stdin_to_sock(void *p)
{
	struct nc *n = p;
	static char buf[64 * 1024];
	for (;;) {
		/* UDP: each read is one datagram, as large as the read. */
		ssize_t r = read(STDIN_FILENO, buf, n->udp ? 65507 : sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t off = 0;
		while (off < (size_t)r) {
			ssize_t w = n->udp ? bh_sendto(n->s, buf + off, (size_t)r - off, 0,
						       (struct sockaddr *)&n->peer, sizeof(n->peer))
					   : bh_send(n->s, buf + off, (size_t)r - off, 0);
			if (w < 0) {
				fprintf(stderr, "bulkhead nc: send: %s\n", strerror(errno));
				n->send_rc = 1;
				__atomic_store_n(&n->stdin_done, 1, __ATOMIC_RELEASE);
				return NULL;
			}
			off += (size_t)w;
		}
	}
	if (!n->udp)
		bh_shutdown(n->s, SHUT_WR);
	__atomic_store_n(&n->stdin_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The command line. */
struct nc_opts {
	bool listen_mode, udp;
	const char *name, *host;
	long port, wait_s;
	struct sockaddr_in sa; /* HOST:PORT */
};

/* Reads the command line into *o; false on a usage error. */
static bool nc_parse(int argc, char **argv, struct nc_opts *o)
{
	const char *pos[3];
	int np = 0;
	*o = (struct nc_opts){.sa = {.sin_family = AF_INET}};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-l") == 0) {
			o->listen_mode = true;
		} else if (strcmp(argv[i], "-u") == 0) {
			o->udp = true;
		} else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
			char *end;
			o->wait_s = strtol(argv[++i], &end, 10);
			if (*end || o->wait_s <= 0 || o->wait_s > 86400)
				np = 99;
		} else if (np < 3)
			pos[np++] = argv[i];
		else
			np = 99;
	}
	o->port = np == 3 ? strtol(pos[2], NULL, 10) : 0;
	if (np != 3 || o->port <= 0 || o->port > 65535 ||
	    inet_pton(AF_INET, pos[1], &o->sa.sin_addr) != 1)
		return false;
	o->name = pos[0];
	o->host = pos[1];
	o->sa.sin_port = htons((uint16_t)o->port);
	return true;
}

/* The socket to talk on, in n->s: connected, accepted, or (UDP) bound;
 * 0, or 1 with the reason on standard error. */
static int nc_open(const struct nc_opts *o, struct nc *n)
{
	int s = bh_socket(AF_INET, o->udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (s < 0) {
		fprintf(stderr, "bulkhead nc: socket: %s\n", strerror(errno));
		return 1;
	}
	if (!o->listen_mode) {
		n->peer = o->sa;
		n->have_peer = true;
		if (!o->udp && bh_connect(s, (const struct sockaddr *)&o->sa, sizeof(o->sa)) != 0) {
			fprintf(stderr, "bulkhead nc: connect %s:%ld: %s\n", o->host, o->port,
				strerror(errno));
			return 1;
		}
		n->s = s;
		return 0;
	}
	if (bh_bind(s, (const struct sockaddr *)&o->sa, sizeof(o->sa)) != 0 ||
	    (!o->udp && bh_listen(s, 1) != 0)) {
		fprintf(stderr, "bulkhead nc: listen on port %ld: %s\n", o->port, strerror(errno));
		return 1;
	}
	if (o->udp) {
		n->s = s;
		return 0;
	}
	socklen_t pl = sizeof(n->peer);
	n->s = bh_accept(s, (struct sockaddr *)&n->peer, &pl);
	if (n->s < 0) {
		fprintf(stderr, "bulkhead nc: accept: %s\n", strerror(errno));
		return 1;
	}
	bh_close(s);
	return 0;
}

enum nc_wait_result { NC_READY, NC_AGAIN, NC_IDLE };

/* With -w: looks for something to read in slices of 100 ms, so that the
 * end of standard input (seen by the other thread) starts the idle clock;
 * NC_IDLE once nothing has come for SECS after that. */
static enum nc_wait_result nc_wait(const struct nc_opts *o, struct nc *n, uint64_t *idle_since)
{
	struct pollfd pf = {.fd = n->s, .events = POLLIN};
	int pr = bh_poll(&pf, 1, 100);
	if (pr == 0) {
		bool armed = o->udp && o->listen_mode
				 ? n->have_peer
				 : __atomic_load_n(&n->stdin_done, __ATOMIC_ACQUIRE);
		uint64_t now = now_ms();
		if (!armed)
			*idle_since = 0;
		else if (*idle_since == 0)
			*idle_since = now;
		else if (now - *idle_since >= (uint64_t)o->wait_s * 1000)
			return NC_IDLE; /* idle for SECS: done */
		return NC_AGAIN;
	}
	if (pr < 0 && errno == EINTR)
		return NC_AGAIN;
	*idle_since = 0;
	return NC_READY;
}

/* The thread copying standard input to the peer (stdin_to_sock). */
struct nc_sender {
	pthread_t t;
	bool running;
};

/* The peer to standard output until it closes (TCP), a write fails, or
 * -w finds it idle (*idle_exit). A UDP listener starts the sender once
 * the first datagram names the peer. Returns 0, or 1 on a receive error. */
static int nc_receive(const struct nc_opts *o, struct nc *n, struct nc_sender *snd,
		      bool *idle_exit)
{
	static char buf[64 * 1024];
	uint64_t idle_since = 0;
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		if (o->wait_s > 0) {
			enum nc_wait_result w = nc_wait(o, n, &idle_since);
			if (w == NC_IDLE) {
				*idle_exit = true;
				return 0;
			}
			if (w == NC_AGAIN)
				continue;
		}
		ssize_t r = bh_recvfrom(n->s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "bulkhead nc: receive: %s\n", strerror(errno));
			return 1;
		}
		if (r == 0 && !o->udp)
			return 0;
		if (o->udp && o->listen_mode && !n->have_peer) {
			n->peer = from;
			n->have_peer = true;
			snd->running = pthread_create(&snd->t, NULL, stdin_to_sock, n) == 0;
		}
		if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r)
			return 0;
		fflush(stdout);
	}
}

int bh_cmd_nc(int argc, char **argv)
{
	struct nc_opts o;
	if (!nc_parse(argc, argv, &o)) {
		fputs("usage: bulkhead nc NAME [-l] [-u] [-w SECS] HOST PORT   (HOST: an IPv4\n"
		      "       address; with -l, the address to listen on, 0.0.0.0 for any)\n",
		      stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (bh_attach(o.name) != 0) {
		fprintf(stderr, "bulkhead nc: cannot attach to instance %s: %s\n", o.name,
			errno == ENOENT ? "it is not up" : strerror(errno));
		return 1;
	}
	struct nc n = {.udp = o.udp};
	if (nc_open(&o, &n) != 0)
		return 1;
	struct nc_sender snd = {.running = false};
	/* A UDP listener learns its peer from the first datagram. */
	if (!(o.udp && o.listen_mode)) {
		snd.running = true;
		pthread_create(&snd.t, NULL, stdin_to_sock, &n);
	}
	bool idle_exit = false;
	int rc = nc_receive(&o, &n, &snd, &idle_exit);
	/* After an idle exit the sender may still wait on standard input
	 * (a terminal, say): the process ends without it. One that has
	 * finished (it says so last) is joined, so that its use of the
	 * socket happens before the close. */
	if (snd.running && (!idle_exit || __atomic_load_n(&n.stdin_done, __ATOMIC_ACQUIRE)))
		pthread_join(snd.t, NULL);
	bh_close(n.s);
	return rc ? rc : n.send_rc;
}
