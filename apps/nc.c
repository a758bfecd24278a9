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

int bh_cmd_nc(int argc, char **argv)
{
	bool listen_mode = false, udp = false;
	const char *pos[3];
	int np = 0;
	long wait_s = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-l") == 0) {
			listen_mode = true;
		} else if (strcmp(argv[i], "-u") == 0) {
			udp = true;
		} else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
			char *end;
			wait_s = strtol(argv[++i], &end, 10);
			if (*end || wait_s <= 0 || wait_s > 86400)
				np = 99;
		} else if (np < 3)
			pos[np++] = argv[i];
		else
			np = 99;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET};
	long port = np == 3 ? strtol(pos[2], NULL, 10) : 0;
	if (np != 3 || port <= 0 || port > 65535 || inet_pton(AF_INET, pos[1], &sa.sin_addr) != 1) {
		fputs("usage: bulkhead nc NAME [-l] [-u] [-w SECS] HOST PORT   (HOST: an IPv4\n"
		      "       address; with -l, the address to listen on, 0.0.0.0 for any)\n",
		      stderr);
		return 2;
	}
	sa.sin_port = htons((uint16_t)port);
	signal(SIGPIPE, SIG_IGN);
	if (bh_attach(pos[0]) != 0) {
		fprintf(stderr, "bulkhead nc: cannot attach to instance %s: %s\n", pos[0],
			errno == ENOENT ? "it is not up" : strerror(errno));
		return 1;
	}
	struct nc n = {.udp = udp};
	int s = bh_socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (s < 0) {
		fprintf(stderr, "bulkhead nc: socket: %s\n", strerror(errno));
		return 1;
	}
	if (listen_mode) {
		if (bh_bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    (!udp && bh_listen(s, 1) != 0)) {
			fprintf(stderr, "bulkhead nc: listen on port %ld: %s\n", port, strerror(errno));
			return 1;
		}
		if (udp) {
			n.s = s;
		} else {
			socklen_t pl = sizeof(n.peer);
			n.s = bh_accept(s, (struct sockaddr *)&n.peer, &pl);
			if (n.s < 0) {
				fprintf(stderr, "bulkhead nc: accept: %s\n", strerror(errno));
				return 1;
			}
			bh_close(s);
		}
	} else {
		n.peer = sa;
		n.have_peer = true;
		if (!udp && bh_connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			fprintf(stderr, "bulkhead nc: connect %s:%ld: %s\n", pos[1], port,
				strerror(errno));
			return 1;
		}
		n.s = s;
	}
	pthread_t t;
	/* A UDP listener learns its peer from the first datagram. */
	bool sender = !(udp && listen_mode);
	if (sender)
		pthread_create(&t, NULL, stdin_to_sock, &n);
	static char buf[64 * 1024];
	int rc = 0;
	uint64_t idle_since = 0;
	bool idle_exit = false;
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		if (wait_s > 0) {
			/* Look in slices, so that the end of standard input
			 * (seen by the other thread) starts the idle clock. */
			struct pollfd pf = {.fd = n.s, .events = POLLIN};
			int pr = bh_poll(&pf, 1, 100);
			if (pr == 0) {
				bool armed = udp && listen_mode
						 ? n.have_peer
						 : __atomic_load_n(&n.stdin_done, __ATOMIC_ACQUIRE);
				uint64_t now = now_ms();
				if (!armed) {
					idle_since = 0;
				} else if (idle_since == 0) {
					idle_since = now;
				} else if (now - idle_since >= (uint64_t)wait_s * 1000) {
					idle_exit = true; /* idle for SECS: done */
					break;
				}
				continue;
			}
			if (pr < 0 && errno == EINTR)
				continue;
			idle_since = 0;
		}
		ssize_t r = bh_recvfrom(n.s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "bulkhead nc: receive: %s\n", strerror(errno));
			rc = 1;
			break;
		}
		if (r == 0 && !udp)
			break;
		if (udp && listen_mode && !n.have_peer) {
			n.peer = from;
			n.have_peer = true;
			sender = pthread_create(&t, NULL, stdin_to_sock, &n) == 0;
		}
		if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r)
			break;
		fflush(stdout);
	}
	/* After an idle exit the sender may still wait on standard input
	 * (a terminal, say): the process ends without it. One that has
	 * finished (it says so last) is joined, so that its use of the
	 * socket happens before the close. */
	if (sender && (!idle_exit || __atomic_load_n(&n.stdin_done, __ATOMIC_ACQUIRE)))
		pthread_join(t, NULL);
	bh_close(n.s);
	return rc ? rc : n.send_rc;
}
