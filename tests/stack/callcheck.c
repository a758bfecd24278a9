/*
 * tests/stack/callcheck.c - every call the preload library takes over,
 * as a program would make it. It prints one line per check: what the
 * call returned and the errno, never addresses, ports or descriptor
 * numbers, so that its transcript on the kernel and its transcript
 * under `bulkhead run` can be compared line by line (run_test.sh).
 *
 *   callcheck PEER_ADDR PORT    (tests/stack/run_peer.py ADDR PORT runs there)
 *
 * A check that cannot go on prints "FATAL ..." and the program exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in peer;
static int port;

static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* "name: ret" or "name: -1 ENAME" */
static const char *ename(int e)
{
	switch (e) {
	case EAGAIN: return "EAGAIN";
	case EINPROGRESS: return "EINPROGRESS";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	case ENOTCONN: return "ENOTCONN";
	case EISCONN: return "EISCONN";
	case EBADF: return "EBADF";
	case EINVAL: return "EINVAL";
	case EINTR: return "EINTR";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case EEXIST: return "EEXIST";
	case ENOENT: return "ENOENT";
	case EALREADY: return "EALREADY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOTTY: return "ENOTTY";
	default: return "E?";
	}
}

static long r_(const char *name, long r)
{
	if (r < 0)
		out("%s: -1 %s", name, ename(errno));
	else
		out("%s: %ld", name, r);
	return r;
}
#define R(name, call) r_(name, (long)(call))

static void fatal(const char *what)
{
	out("FATAL %s: %s", what, strerror(errno));
	exit(1);
}

static struct sockaddr_in at(int off)
{
	struct sockaddr_in a = peer;
	a.sin_port = htons((uint16_t)(port + off));
	return a;
}

static int tcp_to(int off)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = at(off);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
		fatal("connect");
	return s;
}

/* Reads exactly n bytes (blocking socket). */
static void read_n(int s, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(s, buf + got, n - got);
		if (k <= 0)
			fatal("read_n");
		got += (size_t)k;
	}
}

static void wait_readable(int s)
{
	struct pollfd p = {.fd = s, .events = POLLIN};
	if (poll(&p, 1, 5000) != 1)
		fatal("wait_readable");
}

static void check_stream(void)
{
	out("== stream");
	int s = tcp_to(0);
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	R("getsockname", getsockname(s, (struct sockaddr *)&a, &l));
	out("getsockname family %d len %u", a.sin_family, (unsigned)l);
	l = sizeof(a);
	R("getpeername", getpeername(s, (struct sockaddr *)&a, &l));
	out("getpeername port ok %d", ntohs(a.sin_port) == port);
	R("send", send(s, "hello", 5, 0));
	wait_readable(s);
	char b[64] = {0};
	R("recv peek", recv(s, b, 5, MSG_PEEK | MSG_WAITALL));
	int n = -1;
	R("ioctl FIONREAD", ioctl(s, FIONREAD, &n));
	out("FIONREAD %d", n);
	R("recv", recv(s, b, 5, 0));
	out("data %.5s", b);
	struct iovec v[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
	R("writev", writev(s, v, 3));
	char x[3], y[3];
	struct iovec w[2] = {{x, 3}, {y, 3}};
	wait_readable(s);
	usleep(50000);
	R("readv", readv(s, w, 2));
	out("readv %.3s%.3s", x, y);
	struct msghdr m = {.msg_iov = v, .msg_iovlen = 3};
	R("sendmsg", sendmsg(s, &m, 0));
	wait_readable(s);
	usleep(50000);
	memset(b, 0, sizeof(b));
	struct iovec r1 = {b, sizeof(b)};
	struct msghdr rm = {.msg_iov = &r1, .msg_iovlen = 1};
	R("recvmsg", recvmsg(s, &rm, 0));
	out("recvmsg %s flags %d", b, rm.msg_flags);
	R("recv dontwait empty", recv(s, b, 1, MSG_DONTWAIT));
	R("recv waitall", (send(s, "0123456789", 10, 0), recv(s, b, 10, MSG_WAITALL)));
	R("shutdown wr", shutdown(s, SHUT_WR));
	struct pollfd p = {.fd = s, .events = POLLIN | POLLRDHUP | POLLOUT};
	R("poll after end", poll(&p, 1, 5000));
	usleep(100000);
	R("poll after end again", poll(&p, 1, 5000));
	out("revents in %d rdhup %d out %d", !!(p.revents & POLLIN), !!(p.revents & POLLRDHUP),
	    !!(p.revents & POLLOUT));
	R("recv end", recv(s, b, sizeof(b), 0));
	R("send after shutdown nosignal", send(s, "x", 1, MSG_NOSIGNAL));
	signal(SIGPIPE, SIG_IGN);
	R("write after shutdown", write(s, "x", 1));
	R("close", close(s));
	R("close again", close(s));
	R("send closed", send(s, "x", 1, 0));
}

static void check_nonblocking(void)
{
	out("== nonblocking connect");
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = at(0);
	int r = connect(s, (struct sockaddr *)&a, sizeof(a));
	out("connect: %s", r == 0 ? "0" : errno == EINPROGRESS ? "EINPROGRESS" : ename(errno));
	struct pollfd p = {.fd = s, .events = POLLOUT};
	R("poll out", poll(&p, 1, 5000));
	out("revents out %d err %d", !!(p.revents & POLLOUT), !!(p.revents & POLLERR));
	int e = -1;
	socklen_t l = sizeof(e);
	R("SO_ERROR", getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l));
	out("so_error %d", e);
	R("connect again", connect(s, (struct sockaddr *)&a, sizeof(a)));
	char b[8];
	R("recv nonblocking empty", recv(s, b, 8, 0));
	R("F_GETFL nonblock", (fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
	close(s);

	out("== refused");
	s = socket(AF_INET, SOCK_STREAM, 0);
	a = at(3);
	R("connect refused", connect(s, (struct sockaddr *)&a, sizeof(a)));
	close(s);
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	r = connect(s, (struct sockaddr *)&a, sizeof(a));
	out("connect nb: %s", r == 0 ? "0" : ename(errno));
	p = (struct pollfd){.fd = s, .events = POLLOUT | POLLIN};
	R("poll refused", poll(&p, 1, 5000));
	out("revents err %d hup %d", !!(p.revents & POLLERR), !!(p.revents & POLLHUP));
	l = sizeof(e);
	getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
	out("so_error %s", e ? ename(e) : "0");
	l = sizeof(e);
	getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
	out("so_error again %d", e);
	close(s);
}

static void check_descriptors(void)
{
	out("== descriptors");
	int s = tcp_to(0);
	R("F_GETFL", fcntl(s, F_GETFL) & (O_NONBLOCK | O_ACCMODE));
	R("F_SETFL nonblock", fcntl(s, F_SETFL, O_NONBLOCK));
	R("F_GETFL after", fcntl(s, F_GETFL) & (O_NONBLOCK | O_ACCMODE));
	int on = 0;
	R("FIONBIO off", ioctl(s, FIONBIO, &on));
	R("F_GETFL blocking", fcntl(s, F_GETFL) & O_NONBLOCK);
	R("F_GETFD", fcntl(s, F_GETFD));
	R("F_SETFD", fcntl(s, F_SETFD, FD_CLOEXEC));
	R("F_GETFD after", fcntl(s, F_GETFD));
	int d = fcntl(s, F_DUPFD_CLOEXEC, 50);
	out("F_DUPFD_CLOEXEC >= 50: %d", d >= 50);
	R("F_GETFD dup", fcntl(d, F_GETFD));
	R("close original", close(s));
	R("send on dup", send(d, "dup", 3, 0));
	char b[8] = {0};
	read_n(d, b, 3);
	out("echo %s", b);
	R("dup2 to 100", dup2(d, 100));
	R("dup3 to 101 cloexec", dup3(d, 101, O_CLOEXEC));
	R("F_GETFD 101", fcntl(101, F_GETFD));
	R("dup3 same", dup3(101, 101, 0));
	R("close dup", close(d));
	R("send on 100", send(100, "hun", 3, 0));
	read_n(101, b, 3);
	out("echo %s", b);
	int e = dup(100);
	out("dup >= 0: %d", e >= 0);
	R("close 100", close(100));
	R("close 101", close(101));
	R("send on last", send(e, "end", 3, 0));
	read_n(e, b, 3);
	out("echo %s", b);
	R("close last", close(e));
	/* dup2 over a socket closes it. */
	int s1 = tcp_to(0), s2 = tcp_to(0);
	R("dup2 over", dup2(s1, s2) == s2);
	R("send on s2", send(s2, "ovr", 3, 0));
	read_n(s1, b, 3);
	out("echo %s", b);
	close(s1);
	close(s2);
	/* The number is the lowest free one, as for the kernel's sockets. */
	int lo = socket(AF_INET, SOCK_STREAM, 0);
	close(lo);
	int t = tcp_to(0);
	int u = open("/dev/null", O_RDONLY);
	out("lowest free: %d", u == lo + 1 || t == lo);
	close(u);
	close(t);
}

/* getsockopt of an int, its result in the transcript; the value. */
static int get_int(int s, int level, int opt, const char *name)
{
	int v = -1;
	socklen_t l = sizeof(v);
	R(name, getsockopt(s, level, opt, &v, &l));
	return v;
}

static void check_options(void)
{
	out("== options");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1, v = -1;
	socklen_t l = sizeof(v);
	R("set NODELAY before connect", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)));
	R("set REUSEADDR", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
	struct sockaddr_in a = at(0);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
		fatal("connect");
	v = get_int(s, IPPROTO_TCP, TCP_NODELAY, "get NODELAY");
	out("nodelay %d", v != 0);
	R("set KEEPALIVE", setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)));
	v = get_int(s, SOL_SOCKET, SO_KEEPALIVE, "get KEEPALIVE");
	out("keepalive %d", v != 0);
	int idle = 30;
	R("set KEEPIDLE", setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)));
	v = get_int(s, IPPROTO_TCP, TCP_KEEPIDLE, "get KEEPIDLE");
	out("keepidle %d", v);
	int bad = 0;
	R("set KEEPIDLE 0", setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &bad, sizeof(bad)));
	v = get_int(s, SOL_SOCKET, SO_REUSEADDR, "get REUSEADDR");
	out("reuseaddr %d", v != 0);
	v = get_int(s, SOL_SOCKET, SO_TYPE, "get TYPE");
	out("type %d", v);
	v = get_int(s, SOL_SOCKET, SO_DOMAIN, "get DOMAIN");
	out("domain %d", v);
	v = get_int(s, SOL_SOCKET, SO_PROTOCOL, "get PROTOCOL");
	out("protocol %d", v);
	v = get_int(s, SOL_SOCKET, SO_ACCEPTCONN, "get ACCEPTCONN");
	out("acceptconn %d", v);
	v = get_int(s, SOL_SOCKET, SO_RCVBUF, "get RCVBUF");
	out("rcvbuf > 0: %d", v > 0);
	R("get unknown", getsockopt(s, SOL_SOCKET, 9999, &v, &l));
	R("set unknown", setsockopt(s, IPPROTO_TCP, 9999, &one, sizeof(one)));
	struct timeval tv = {0, 200000};
	R("set RCVTIMEO", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	struct timeval tv2;
	l = sizeof(tv2);
	R("get RCVTIMEO", getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv2, &l));
	out("rcvtimeo %ld.%06ld", (long)tv2.tv_sec, (long)tv2.tv_usec);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char b[4];
	R("recv timed out", recv(s, b, 4, 0));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	out("waited about 200 ms: %d", ms > 150 && ms < 2000);
	close(s);
}

static void check_waits(void)
{
	out("== mixed waits");
	int s = tcp_to(0);
	int pp[2];
	if (pipe(pp) != 0)
		fatal("pipe");
	struct pollfd p[2] = {{.fd = s, .events = POLLIN}, {.fd = pp[0], .events = POLLIN}};
	R("poll nothing", poll(p, 2, 100));
	R("pipe write", write(pp[1], "p", 1));
	R("poll pipe", poll(p, 2, 1000));
	out("revents sock %d pipe %d", p[0].revents, p[1].revents);
	char c;
	R("pipe read", read(pp[0], &c, 1));
	send(s, "s", 1, 0);
	R("poll sock", poll(p, 2, 5000));
	out("revents sock %d pipe %d", p[0].revents, p[1].revents);
	R("ppoll sock", ppoll(p, 2, NULL, NULL));

	fd_set r;
	FD_ZERO(&r);
	FD_SET(s, &r);
	FD_SET(pp[0], &r);
	int nfds = (s > pp[0] ? s : pp[0]) + 1;
	struct timeval tv = {1, 0};
	R("select", select(nfds, &r, NULL, NULL, &tv));
	out("select sock %d pipe %d", FD_ISSET(s, &r) != 0, FD_ISSET(pp[0], &r) != 0);
	R("recv", recv(s, &c, 1, 0));
	FD_ZERO(&r);
	FD_SET(s, &r);
	FD_SET(pp[0], &r);
	fd_set w;
	FD_ZERO(&w);
	FD_SET(s, &w);
	tv = (struct timeval){0, 100000};
	R("select write", select(nfds, &r, &w, NULL, &tv));
	out("select r sock %d w sock %d", FD_ISSET(s, &r) != 0, FD_ISSET(s, &w) != 0);
	struct timespec ts = {0, 100000000};
	FD_ZERO(&r);
	FD_SET(s, &r);
	R("pselect nothing", pselect(nfds, &r, NULL, NULL, &ts, NULL));

	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
	R("epoll add sock", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
	R("epoll add again", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
	ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 2};
	R("epoll add pipe", epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev));
	struct epoll_event got[4];
	R("epoll nothing", epoll_wait(ep, got, 4, 100));
	write(pp[1], "p", 1);
	R("epoll pipe", epoll_wait(ep, got, 4, 1000));
	out("event %llu %u", (unsigned long long)got[0].data.u64, got[0].events);
	read(pp[0], &c, 1);
	send(s, "e", 1, 0);
	R("epoll sock", epoll_wait(ep, got, 4, 5000));
	out("event %llu %u", (unsigned long long)got[0].data.u64, got[0].events);
	R("epoll sock level", epoll_wait(ep, got, 4, 100));
	ev = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.u64 = 3};
	R("epoll mod edge", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
	R("epoll edge first", epoll_wait(ep, got, 4, 1000));
	out("event %llu %u", (unsigned long long)got[0].data.u64, got[0].events);
	R("epoll edge none", epoll_wait(ep, got, 4, 100));
	send(s, "f", 1, 0);
	R("epoll edge again", epoll_wait(ep, got, 4, 5000));
	char b[4];
	usleep(50000);
	R("recv both", recv(s, b, 4, 0));
	ev = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 4};
	R("epoll mod oneshot", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
	send(s, "g", 1, 0);
	R("epoll oneshot", epoll_wait(ep, got, 4, 5000));
	R("epoll oneshot quiet", epoll_wait(ep, got, 4, 100));
	R("epoll mod rearm", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
	R("epoll rearmed", epoll_wait(ep, got, 4, 1000));
	R("epoll del", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
	R("epoll del again", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
	R("epoll after del", epoll_wait(ep, got, 4, 100));
	ev = (struct epoll_event){.events = EPOLLOUT, .data.u64 = 5};
	R("epoll add out", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
	R("epoll out", epoll_wait(ep, got, 4, 1000));
	out("event %llu %u", (unsigned long long)got[0].data.u64, got[0].events);
	R("close sock in set", close(s));
	R("epoll after close", epoll_wait(ep, got, 4, 100));
	close(ep);
	close(pp[0]);
	close(pp[1]);

	/* Idle: a wait on a quiet socket costs no CPU. */
	s = tcp_to(0);
	struct rusage u0, u1;
	getrusage(RUSAGE_SELF, &u0);
	struct pollfd q = {.fd = s, .events = POLLIN};
	R("poll idle 1 s", poll(&q, 1, 1000));
	ep = epoll_create1(0);
	ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 6};
	epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	R("epoll idle 1 s", epoll_wait(ep, got, 4, 1000));
	getrusage(RUSAGE_SELF, &u1);
	double cpu = (double)(u1.ru_utime.tv_sec - u0.ru_utime.tv_sec) +
		     (double)(u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) +
		     (double)(u1.ru_utime.tv_usec - u0.ru_utime.tv_usec) / 1e6 +
		     (double)(u1.ru_stime.tv_usec - u0.ru_stime.tv_usec) / 1e6;
	out("idle cpu under 50 ms: %d", cpu < 0.05);
	close(ep);
	close(s);
}

static void check_listen(void)
{
	out("== listen and accept");
	int c = tcp_to(0); /* our own address, as the peer sees it */
	struct sockaddr_in me;
	socklen_t l = sizeof(me);
	getsockname(c, (struct sockaddr *)&me, &l);
	close(c);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(ls, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in any = {.sin_family = AF_INET};
	R("bind any", bind(ls, (struct sockaddr *)&any, sizeof(any)));
	R("bind again", bind(ls, (struct sockaddr *)&any, sizeof(any)));
	R("listen", listen(ls, 8));
	l = sizeof(any);
	getsockname(ls, (struct sockaddr *)&any, &l);
	int v = 0;
	l = sizeof(v);
	R("get ACCEPTCONN", getsockopt(ls, SOL_SOCKET, SO_ACCEPTCONN, &v, &l));
	out("acceptconn %d", v);
	R("F_SETFL nonblock", fcntl(ls, F_SETFL, O_NONBLOCK));
	R("accept none", accept(ls, NULL, NULL));
	int b = tcp_to(1);
	char line[64];
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &me.sin_addr, ip, sizeof(ip));
	int n = snprintf(line, sizeof(line), "%s %u\n", ip, (unsigned)ntohs(any.sin_port));
	R("ask connect-back", send(b, line, (size_t)n, 0));
	struct pollfd p = {.fd = ls, .events = POLLIN};
	R("poll listener", poll(&p, 1, 5000));
	struct sockaddr_in from;
	l = sizeof(from);
	int a = accept4(ls, (struct sockaddr *)&from, &l, SOCK_NONBLOCK | SOCK_CLOEXEC);
	out("accept4 ok %d family %d", a >= 0, from.sin_family);
	R("accepted nonblock", (fcntl(a, F_GETFL) & O_NONBLOCK) != 0);
	R("accepted cloexec", fcntl(a, F_GETFD));
	l = sizeof(v);
	R("accepted NODELAY", getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &v, &l));
	out("inherited nodelay %d", v != 0);
	wait_readable(a);
	usleep(50000);
	char buf[8] = {0};
	R("recv hi", recv(a, buf, 8, 0));
	out("got %s", buf);
	wait_readable(a);
	R("recv end", recv(a, buf, 8, 0));
	close(a);
	close(b);
	close(ls);
}

static void check_udp(void)
{
	out("== udp");
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = at(0);
	char big[100];
	memset(big, 'u', sizeof(big));
	R("sendto", sendto(u, big, sizeof(big), 0, (struct sockaddr *)&a, sizeof(a)));
	wait_readable(u);
	int n = -1;
	R("ioctl FIONREAD", ioctl(u, FIONREAD, &n));
	out("FIONREAD %d", n);
	char small[10];
	struct sockaddr_in from;
	socklen_t l = sizeof(from);
	R("recvfrom trunc", recvfrom(u, small, sizeof(small), MSG_TRUNC, (struct sockaddr *)&from, &l));
	out("from port ok %d", ntohs(from.sin_port) == port);
	R("sendto again", sendto(u, big, sizeof(big), 0, (struct sockaddr *)&a, sizeof(a)));
	wait_readable(u);
	struct iovec v = {small, sizeof(small)};
	struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1, .msg_name = &from,
			   .msg_namelen = sizeof(from)};
	R("recvmsg", recvmsg(u, &m, 0));
	out("msg_flags trunc %d", (m.msg_flags & MSG_TRUNC) != 0);
	R("recv empty", recv(u, small, sizeof(small), MSG_DONTWAIT));
	R("connect", connect(u, (struct sockaddr *)&a, sizeof(a)));
	R("send", send(u, "dgram", 5, 0));
	wait_readable(u);
	R("recv", recv(u, small, sizeof(small), 0));
	struct mmsghdr mm[2];
	struct iovec mv[2] = {{"one", 3}, {"three", 5}};
	memset(mm, 0, sizeof(mm));
	mm[0].msg_hdr.msg_iov = &mv[0];
	mm[0].msg_hdr.msg_iovlen = 1;
	mm[1].msg_hdr.msg_iov = &mv[1];
	mm[1].msg_hdr.msg_iovlen = 1;
	R("sendmmsg", sendmmsg(u, mm, 2, 0));
	out("lens %u %u", mm[0].msg_len, mm[1].msg_len);
	usleep(200000);
	char r1[8], r2[8];
	struct iovec rv[2] = {{r1, 8}, {r2, 8}};
	memset(mm, 0, sizeof(mm));
	mm[0].msg_hdr.msg_iov = &rv[0];
	mm[0].msg_hdr.msg_iovlen = 1;
	mm[1].msg_hdr.msg_iov = &rv[1];
	mm[1].msg_hdr.msg_iovlen = 1;
	R("recvmmsg", recvmmsg(u, mm, 2, 0, NULL));
	out("lens %u %u", mm[0].msg_len, mm[1].msg_len);
	close(u);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void check_signals(void)
{
	out("== signals");
	int s = tcp_to(2); /* "late" arrives after 300 ms */
	struct sigaction sa = {.sa_handler = on_alarm};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART */
	struct itimerval it = {.it_value = {0, 100000}};
	setitimer(ITIMER_REAL, &it, NULL);
	char b[8] = {0};
	R("recv interrupted", recv(s, b, 4, 0));
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	R("recv restarted", recv(s, b, 4, MSG_WAITALL));
	out("got %s alarms %d", b, (int)alarms);
	struct pollfd p = {.fd = s, .events = POLLIN};
	sa.sa_flags = 0;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	R("poll interrupted", poll(&p, 1, 2000));
	signal(SIGALRM, SIG_DFL);
	close(s);
}

static void check_sendfile(void)
{
	out("== sendfile");
	char path[] = "/tmp/callcheck-XXXXXX";
	int f = mkstemp(path);
	if (f < 0)
		fatal("mkstemp");
	unlink(path);
	static char data[200000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7 + i / 251);
	if (write(f, data, sizeof(data)) != (ssize_t)sizeof(data))
		fatal("write file");
	int s = tcp_to(0);
	off_t off = 1000;
	R("sendfile offset", sendfile(s, f, &off, 100000));
	out("offset now %ld", (long)off);
	static char back[100000];
	read_n(s, back, sizeof(back));
	out("bytes match %d", memcmp(back, data + 1000, sizeof(back)) == 0);
	lseek(f, 5, SEEK_SET);
	R("sendfile position", sendfile(s, f, NULL, 10));
	R("file position", lseek(f, 0, SEEK_CUR));
	read_n(s, back, 10);
	out("bytes match %d", memcmp(back, data + 5, 10) == 0);
	close(s);
	close(f);
}

static int child_exit(pid_t pid)
{
	int st = -1;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void check_fork(void)
{
	out("== fork");
	pid_t pid = fork();
	if (pid == 0) {
		/* The child's own socket works. */
		int s = tcp_to(0);
		char b[4] = {0};
		send(s, "kid", 3, 0);
		read_n(s, b, 3);
		_exit(strcmp(b, "kid") == 0 ? 0 : 3);
	}
	out("child's own socket: exit %d", child_exit(pid));

	/* The child uses a socket it inherited, after the parent closed
	 * its copy. */
	int s = tcp_to(0);
	int go[2];
	if (pipe(go) != 0)
		fatal("pipe");
	pid = fork();
	if (pid == 0) {
		char c, b[4] = {0};
		if (read(go[0], &c, 1) != 1)
			_exit(4);
		send(s, "inh", 3, 0);
		read_n(s, b, 3);
		_exit(strcmp(b, "inh") == 0 ? 0 : 3);
	}
	R("parent closes its copy", close(s));
	R("go", write(go[1], "g", 1));
	out("child's inherited socket after the parent closed it: exit %d", child_exit(pid));
	close(go[0]);
	close(go[1]);

	/* The parent's socket after the child closed its copy. */
	s = tcp_to(0);
	pid = fork();
	if (pid == 0) {
		close(s);
		_exit(0);
	}
	out("child closed its copy: exit %d", child_exit(pid));
	char b[4] = {0};
	R("send after the child closed", send(s, "aft", 3, 0));
	read_n(s, b, 3);
	out("echo %s", b);
	close(s);

	/* A listener the child inherited: the child accepts. */
	int c = tcp_to(0);
	struct sockaddr_in me, any = {.sin_family = AF_INET};
	socklen_t l = sizeof(me);
	getsockname(c, (struct sockaddr *)&me, &l);
	close(c);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(ls, (struct sockaddr *)&any, sizeof(any)) != 0 || listen(ls, 8) != 0)
		fatal("listen");
	l = sizeof(any);
	getsockname(ls, (struct sockaddr *)&any, &l);
	pid = fork();
	if (pid == 0) {
		struct pollfd p = {.fd = ls, .events = POLLIN};
		if (poll(&p, 1, 5000) != 1)
			_exit(5);
		int a = accept(ls, NULL, NULL);
		char h[4] = {0};
		if (a < 0)
			_exit(6);
		read_n(a, h, 2);
		_exit(strcmp(h, "hi") == 0 ? 0 : 3);
	}
	int back = tcp_to(1);
	char line[64], ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &me.sin_addr, ip, sizeof(ip));
	int n = snprintf(line, sizeof(line), "%s %u\n", ip, (unsigned)ntohs(any.sin_port));
	R("ask connect-back", send(back, line, (size_t)n, 0));
	out("child accepted on the inherited listener: exit %d", child_exit(pid));
	close(back);
	close(ls);

	/* exec: a socket not marked close-on-exec goes on in the new
	 * program; one marked goes. */
	s = tcp_to(0);
	int gone = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a0 = at(0);
	if (gone < 0 || connect(gone, (struct sockaddr *)&a0, sizeof(a0)) != 0)
		fatal("connect");
	pid = fork();
	if (pid == 0) {
		char fdarg[16], gonearg[16];
		snprintf(fdarg, sizeof(fdarg), "%d", s);
		snprintf(gonearg, sizeof(gonearg), "%d", gone);
		execl("/proc/self/exe", "callcheck", "--after-exec", fdarg, gonearg, (char *)NULL);
		_exit(7);
	}
	out("exec'd program used the socket it kept: exit %d", child_exit(pid));
	R("parent's copy after the exec", send(s, "par", 3, 0));
	read_n(s, b, 3);
	out("echo %s", b);
	close(s);
	close(gone);
}

/* The program exec'd by check_fork: fd is a socket it kept; gone was
 * marked close-on-exec. */
static int after_exec(int fd, int gone)
{
	char b[4] = {0};
	if (fcntl(gone, F_GETFD) != -1 || errno != EBADF)
		return 4;
	if (send(fd, "exe", 3, 0) != 3)
		return 5;
	read_n(fd, b, 3);
	return strcmp(b, "exe") == 0 ? 0 : 3;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--after-exec") == 0)
		return after_exec(atoi(argv[2]), atoi(argv[3]));
	if (argc != 3) {
		fprintf(stderr, "usage: callcheck PEER_ADDR PORT\n");
		return 2;
	}
	peer.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[1], &peer.sin_addr) != 1)
		return 2;
	port = atoi(argv[2]);
	check_stream();
	check_nonblocking();
	check_descriptors();
	check_options();
	check_waits();
	check_listen();
	check_udp();
	check_signals();
	check_sendfile();
	check_fork();
	out("== done");
	return 0;
}
