/*
 * domains/sock_app.c - the socket server's application side.
 *
 *   attach    an application connects to app.sock (BH_FD_APPS); its
 *             credentials are taken from the kernel (SO_PEERCRED)
 *   hello     its region is made (domains/app_abi.h: meta, waiter words,
 *             dirty bits, slots, rings) and handed over with the
 *             server's notification word
 *   requests  one at a time on its control socket, one handler each
 *             (rq_*): answered at once, or when tcp or ip answers
 *   dirty     the slots it touched since the last pass
 *   fork      a member to be, holding what the forking process holds;
 *             the child joins it on its own connection (app_abi.h)
 *   detach    a member's sockets close as if it closed each (those no
 *             other member holds); the region goes with the last member
 *
 * At about 930 lines, over the project's 900: the seam is the members (hold,
 * let_go, fork, join, pending expiry, region_gone: about 200 lines),
 * which would go to sock_member.c with its calls declared in
 * sock_priv.h; left for the next change to this file.
 */
#include <sys/random.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "domains/logger.h"
#include "domains/sock_priv.h"
#include "ipc/clock.h"
#include "ipc/order.h"

/* A slot of the application's region that is neither in use nor still
 * draining, or NO_SLOT. */
static uint32_t free_slot(const struct app *a)
{
	for (uint32_t i = 0; i < a->nslots; i++)
		if (a->slot_sid[i] == 0 && !a->slot_busy[i])
			return i;
	return NO_SLOT;
}

void sk_app_unbind_slot(struct sockd *d, struct app *a, uint32_t slot)
{
	a->slot_sid[slot] = 0;
	a->slot_busy[slot] = false;
	a->nused--;
}

/* The root whose region member m uses, or NULL (no hello yet). */
static struct app *root_of(struct sockd *d, const struct app *m)
{
	if (m->root >= d->napps)
		return NULL;
	struct app *a = &d->apps[m->root];
	return a->used && a->region.base ? a : NULL;
}

static bool holds(const struct app *m, uint32_t slot)
{
	return m->holds && ((m->holds[slot / 8] >> (slot % 8)) & 1);
}

/* Member m of root a takes (on) or drops a reference to slot. */
static void hold(struct app *a, struct app *m, uint32_t slot, bool on)
{
	uint8_t bit = (uint8_t)(1u << (slot % 8));
	if (on && !(m->holds[slot / 8] & bit)) {
		m->holds[slot / 8] |= bit;
		a->slot_refs[slot]++;
	} else if (!on && (m->holds[slot / 8] & bit)) {
		m->holds[slot / 8] &= (uint8_t)~bit;
		a->slot_refs[slot]--;
	}
}

/* Nobody holds slot any more: its socket closes as by close(). */
static void let_go(struct sockd *d, struct app *a, uint32_t slot)
{
	uint32_t sid = a->slot_sid[slot];
	if (sid == 0 || a->slot_busy[slot] || a->slot_refs[slot])
		return;
	a->slot_busy[slot] = true;
	sk_sock_close(d, sid);
}

/* The root's last member went: every socket closes, the region goes. */
static void region_gone(struct sockd *d, struct app *a)
{
	uint32_t ai = (uint32_t)(a - d->apps);
	for (uint32_t i = 0; i < a->nslots; i++) {
		uint32_t sid = a->slot_sid[i];
		if (sid == 0)
			continue;
		struct ssock *s = sk_sock_of(d, sid);
		if (s && !s->app_closed)
			sk_sock_close(d, sid);
		if (s && s->app == ai) {
			/* Its ring memory goes with the region: nothing more
			 * is read from it. */
			s->app = NO_APP;
			if (s->tcp_has && !s->reset)
				sk_to_tcp(d, s->close_abort ? BH_CTL_ABORT : BH_CTL_CLOSE, sid, NULL);
			sk_maybe_free(d, sid);
		}
	}
	for (uint32_t i = 0; i < BH_APP_WAITERS; i++)
		if (a->wake_fd[i] >= 0) {
			close(a->wake_fd[i]);
			d->wake_fds--;
		}
	bh_region_close(&a->region);
	free(a->slot_sid);
	free(a->slot_busy);
	free(a->slot_refs);
	free(a->holds);
	memset(a, 0, sizeof(*a));
	d->st.apps_detached++;
}

void sk_app_detach(struct sockd *d, uint32_t ai, const char *why)
{
	struct app *m = &d->apps[ai];
	if (m->left)
		return; /* a root whose own process went; its members remain */
	struct app *a = root_of(d, m);
	uint32_t held = 0;
	for (uint32_t i = 0; a && i < a->nslots; i++)
		held += holds(m, i);
	bh_logf("application pid %d %s (%s); closing the %u sockets only it held", (int)m->pid,
		m->pending ? "never joined" : "detached", why, held);
	if (m->fd >= 0) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, m->fd, NULL);
		close(m->fd);
		m->fd = -1;
	}
	m->waiting = false;
	if (a == NULL) {
		free(m->holds);
		memset(m, 0, sizeof(*m));
		d->st.apps_detached++;
		return;
	}
	for (uint32_t i = 0; i < a->nslots; i++) {
		if (holds(m, i)) {
			hold(a, m, i, false);
			let_go(d, a, i);
		}
	}
	a->members--;
	if (m != a) {
		free(m->holds);
		memset(m, 0, sizeof(*m));
	} else {
		m->left = true;
	}
	/* The root stays while members use its region. */
	if (a->members == 0)
		region_gone(d, a);
}

static int send_fds(int sock, const void *msg, size_t len, const int *fds, int nfds)
{
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	char ctl[CMSG_SPACE(sizeof(int) * 4)];
	memset(ctl, 0, sizeof(ctl));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		mh.msg_control = ctl;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}

static void app_hello(struct sockd *d, uint32_t ai, const struct bh_rpc_req *rq)
{
	struct app *a = &d->apps[ai];
	if (rq->a != BH_APP_VERSION || a->root != NO_APP) {
		sk_reply_err(d, a, -EPROTONOSUPPORT);
		return;
	}
	uint32_t nslots = d->plan->app_max_socks, ring = d->plan->app_ring;
	/* Shrink to the memory limit rather than refuse. */
	while (nslots > 1 && (uint64_t)nslots * 2 * ring > d->plan->app_max_mem)
		nslots /= 2;
	size_t shared_off = 4096;
	size_t ntfn_off = shared_off + 4096;
	size_t dirty_off = ntfn_off + BH_APP_WAITERS * sizeof(struct bh_ntfn);
	size_t dirty_bytes = ((size_t)nslots / 32 + 2) * 4;
	size_t slots_off = bh_page_round(dirty_off + dirty_bytes);
	size_t data_off = bh_page_round(slots_off + (size_t)nslots * sizeof(struct bh_app_slot));
	size_t total = data_off + (size_t)nslots * 2 * ring;
	char name[BH_REGION_NAME_MAX];
	snprintf(name, sizeof(name), "app-%d", (int)a->pid);
	int e = bh_region_create(&a->region, name, BH_REGION_APP, total);
	if (e) {
		bh_logf("application pid %d: cannot make its region: %s", (int)a->pid,
			bh_ipc_strerror(e));
		sk_reply_err(d, a, e);
		return;
	}
	struct bh_app_meta *m = (struct bh_app_meta *)((char *)a->region.base + 64);
	*m = (struct bh_app_meta){.magic = BH_APP_MAGIC,
				  .version = BH_APP_VERSION,
				  .nslots = nslots,
				  .ring = ring,
				  .ntfn_off = ntfn_off,
				  .dirty_off = dirty_off,
				  .slots_off = slots_off,
				  .data_off = data_off,
				  .shared_off = shared_off,
				  .dgram_max = d->dgram_chunk - (uint32_t)sizeof(struct bh_udp_out),
				  .addr = d->plan->addr,
				  .gw = d->plan->gw,
				  .prefix = d->plan->prefix};
	a->nslots = nslots;
	a->ring = ring;
	a->ntfn = (struct bh_ntfn *)((char *)a->region.base + ntfn_off);
	a->dirty = (uint32_t *)((char *)a->region.base + dirty_off);
	a->slots = (struct bh_app_slot *)((char *)a->region.base + slots_off);
	a->data = (uint8_t *)a->region.base + data_off;
	a->slot_sid = calloc(nslots, sizeof(*a->slot_sid));
	a->slot_busy = calloc(nslots, sizeof(*a->slot_busy));
	a->slot_refs = calloc(nslots, sizeof(*a->slot_refs));
	a->holds = calloc(nslots / 8 + 1, 1);
	if (a->slot_sid == NULL || a->slot_busy == NULL || a->slot_refs == NULL ||
	    a->holds == NULL) {
		free(a->slot_sid);
		free(a->slot_busy);
		free(a->slot_refs);
		free(a->holds);
		a->slot_sid = NULL;
		a->slot_busy = NULL;
		a->slot_refs = NULL;
		a->holds = NULL;
		bh_region_close(&a->region);
		sk_reply_err(d, a, -ENOMEM);
		return;
	}
	a->root = ai;
	a->members = 1;
	struct bh_rpc_rep r = {.ret = 0, .nslots = nslots, .ring = ring};
	int fds[2] = {a->region.fd, BH_FD_BELL0 + BH_DOM_SOCK};
	if (send_fds(a->fd, &r, sizeof(r), fds, 2) != 0)
		bh_logf("application pid %d: cannot hand over its region", (int)a->pid);
	/* The descriptor stays: a member that execs asks for it again
	 * (BH_RPC_REGION). */
}

/* BH_RPC_REGION: a member after exec maps its root's region again. */
static void rq_region(struct sockd *d, struct app *a, struct app *m)
{
	struct bh_rpc_rep r = {.ret = 0, .nslots = a->nslots, .ring = a->ring};
	int fds[2] = {a->region.fd, BH_FD_BELL0 + BH_DOM_SOCK};
	if (a->region.fd < 0)
		sk_reply_err(d, m, -EIO);
	else if (send_fds(m->fd, &r, sizeof(r), fds, 2) != 0)
		bh_logf("application pid %d: cannot hand over its region again", (int)m->pid);
}

static void apps_accept(struct sockd *d)
{
	for (;;) {
		int fd = accept4(d->env->apps_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		uint32_t ai = NO_APP;
		for (uint32_t i = 0; i < d->napps; i++)
			if (!d->apps[i].used) {
				ai = i;
				break;
			}
		if (ai == NO_APP || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
			bh_log_limited(&d->rl, "application refused: %s",
				       ai == NO_APP ? "too many applications" : "no credentials");
			d->st.apps_refused++;
			close(fd);
			continue;
		}
		struct app *a = &d->apps[ai];
		memset(a, 0, sizeof(*a));
		a->used = true;
		a->fd = fd;
		a->pid = cred.pid;
		a->uid = cred.uid;
		a->region.fd = -1;
		a->root = NO_APP;
		for (uint32_t i = 0; i < BH_APP_WAITERS; i++)
			a->wake_fd[i] = -1;
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = ai};
		epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
		d->st.apps_attached++;
		bh_logf("application pid %d uid %u attached", (int)a->pid, (unsigned)a->uid);
	}
}

static struct ssock *req_sock(struct sockd *d, struct app *a, struct app *m, uint32_t slot,
			      uint32_t *sid)
{
	if (a->region.base == NULL || slot >= a->nslots || a->slot_sid[slot] == 0 ||
	    a->slot_busy[slot] || !holds(m, slot))
		return NULL;
	*sid = a->slot_sid[slot];
	return sk_sock_of(d, *sid);
}

static int bind_port(struct sockd *d, struct app *m, struct ssock *s, uint32_t addr,
		     uint16_t port)
{
	if (addr != 0 && addr != d->plan->addr)
		return -EADDRNOTAVAIL;
	if (port && port < 1024 && m->uid != 0 && m->uid != d->plan->low_port_uid) {
		d->st.low_port_denied++;
		return -EACCES;
	}
	if (port == 0) {
		/* An ephemeral port for listening or UDP (connect lets tcp
		 * choose). */
		for (uint32_t i = 0; i < 16384 && port == 0; i++) {
			uint16_t p = (uint16_t)(49152 + ((d->next_sid * 7919u + i) % 16384));
			if (!sk_port_used(d, s->udp, p))
				port = p;
		}
		if (port == 0)
			return -EADDRINUSE;
	} else if (sk_port_used(d, s->udp, port)) {
		return -EADDRINUSE;
	}
	s->laddr = d->plan->addr;
	s->lport = port;
	return 0;
}

/* The request is answered when tcp or ip answers (sk_answer): until
 * then the application may send no other. */
static void answer_later(struct app *a, uint32_t sid, uint32_t op)
{
	a->waiting = true;
	a->wait_sid = sid;
	a->wait_op = op;
}

/* tcp's bounds (tcp/api.c bh_tcp_setopt), checked here for an option
 * kept until tcp holds the socket. */
static bool opt_ok(uint32_t opt, uint32_t v)
{
	switch (opt) {
	case BH_OPT_NODELAY:
	case BH_OPT_KEEPALIVE:
		return true;
	case BH_OPT_KEEPIDLE:
	case BH_OPT_KEEPINTVL:
		return v >= 1 && v <= 32767;
	case BH_OPT_KEEPCNT:
		return v >= 1 && v <= 127;
	default:
		return false;
	}
}

/* The options kept for socket `from` go to tcp for sid (after its
 * CONNECT or ACCEPT, in the same queue); their answers are counted off
 * (kept_answers, sock_stack.c), not taken for a request's. */
static void send_kept_opts(struct sockd *d, const struct ssock *from, uint32_t sid)
{
	for (uint32_t i = 0; i < 5; i++) {
		if (!(from->opt_set & (1u << i)))
			continue;
		struct bh_ctl c = {.arg = i, .arg2 = from->opt_val[i]};
		sk_to_tcp(d, BH_CTL_SETOPT, sid, &c);
		d->s[sid].kept_answers++;
	}
}

/* A slot of the application's region, zeroed, for socket sid, held by
 * member m. */
static void bind_slot(struct app *a, struct app *m, uint32_t slot, uint32_t sid)
{
	a->slot_sid[slot] = sid;
	a->nused++;
	memset(&a->slots[slot], 0, sizeof(a->slots[slot]));
	hold(a, m, slot, true);
}

/* A stream socket's rings start with small windows (app_abi.h); a
 * datagram socket's are used whole. */
static void first_windows(struct app *a, struct ssock *s)
{
	uint32_t w = s->udp ? 0 : bh_win_first(a->ring);
	s->rx_win = w ? w : a->ring;
	memset(&s->rx_use, 0, sizeof(s->rx_use));
	a->slots[s->slot].rx_win = w;
	a->slots[s->slot].tx_win = w;
}

static void rq_socket(struct sockd *d, struct app *a, struct app *m, const struct bh_rpc_req *rq)
{
	if (rq->a != BH_SOCK_STREAM && rq->a != BH_SOCK_DGRAM) {
		sk_reply_err(d, m, -EPROTONOSUPPORT);
		return;
	}
	uint32_t slot = free_slot(a);
	if (slot == NO_SLOT) {
		sk_reply_err(d, m, -EMFILE);
		return;
	}
	uint32_t sid = sk_sid_alloc(d);
	if (sid == 0) {
		sk_reply_err(d, m, -ENFILE);
		return;
	}
	struct ssock *s = &d->s[sid];
	s->udp = rq->a == BH_SOCK_DGRAM;
	s->app = (uint32_t)(a - d->apps);
	s->slot = slot;
	s->published = false;
	bind_slot(a, m, slot, sid);
	first_windows(a, s);
	sk_publish(d, s);
	sk_reply_sock(d, m, 0, s);
}

static void rq_bind(struct sockd *d, struct app *m, uint32_t sid, struct ssock *s,
		    const struct bh_rpc_req *rq)
{
	if (s->lport) {
		sk_reply_err(d, m, -EINVAL);
		return;
	}
	int e = bind_port(d, m, s, rq->addr, rq->port);
	if (e) {
		sk_reply_err(d, m, e);
		return;
	}
	sk_port_set(d, s->udp, s->lport, true);
	if (s->udp) {
		/* ip keeps the UDP demultiplexing: answered when it has it. */
		struct bh_ctl c = {.op = BH_CTL_UDP_BIND, .sid = sid, .lport = s->lport};
		bh_ctl_send(d->env, &d->cq_ip, BH_LINK_IS, &c);
		answer_later(m, sid, BH_CTL_UDP_BIND);
		return;
	}
	sk_publish(d, s);
	sk_reply_sock(d, m, 0, s);
}

static void rq_listen(struct sockd *d, struct app *m, uint32_t sid, struct ssock *s,
		      const struct bh_rpc_req *rq)
{
	if (s->listener) {
		/* listen() again, as Linux allows (nginx does, after it
		 * forked): the backlog tcp has stays. */
		s->backlog = rq->a;
		sk_reply_err(d, m, 0);
		return;
	}
	if (s->udp || s->connected || s->connecting || s->tcp_has) {
		sk_reply_err(d, m, s->udp ? -EOPNOTSUPP : -EINVAL);
		return;
	}
	if (s->lport == 0) {
		int e = bind_port(d, m, s, 0, 0);
		if (e) {
			sk_reply_err(d, m, e);
			return;
		}
		sk_port_set(d, false, s->lport, true);
	}
	struct bh_ctl c = {.lport = s->lport, .arg = rq->a};
	s->backlog = rq->a;
	sk_to_tcp(d, BH_CTL_LISTEN, sid, &c);
	answer_later(m, sid, BH_CTL_LISTEN);
}

static void rq_connect(struct sockd *d, struct app *m, uint32_t sid, struct ssock *s,
		       const struct bh_rpc_req *rq)
{
	if (s->udp) {
		/* A UDP socket's default destination; address 0 undoes it. */
		s->raddr = rq->addr;
		s->rport = rq->port;
		s->connected = rq->addr != 0;
		sk_publish(d, s);
		sk_reply_sock(d, m, 0, s);
		return;
	}
	if (s->connected || s->tcp_has) {
		sk_reply_err(d, m, s->connecting ? -EALREADY : -EISCONN);
		return;
	}
	if (rq->addr == 0 || rq->port == 0) {
		sk_reply_err(d, m, -EADDRNOTAVAIL);
		return;
	}
	struct bh_ctl c = {.raddr = rq->addr, .rport = rq->port, .lport = s->lport};
	sk_to_tcp(d, BH_CTL_CONNECT, sid, &c);
	send_kept_opts(d, s, sid);
	s->connecting = true;
	s->tcp_has = true;
	s->raddr = rq->addr;
	s->rport = rq->port;
	sk_publish(d, s);
	if (rq->flags & BH_RPC_NONBLOCK) {
		sk_reply_sock(d, m, -EINPROGRESS, s);
		return;
	}
	answer_later(m, sid, BH_CTL_CONNECTED);
}

/* The first connection of the listener's accept queue goes to a slot of
 * the application's, held by the member that took it. */
static void rq_accept(struct sockd *d, struct app *a, struct app *m, struct ssock *s)
{
	if (!s->listener) {
		sk_reply_err(d, m, -EINVAL);
		return;
	}
	if (s->acc_head == 0) {
		sk_reply_err(d, m, -EAGAIN);
		return;
	}
	uint32_t slot = free_slot(a);
	if (slot == NO_SLOT) {
		sk_reply_err(d, m, -EMFILE);
		return;
	}
	uint32_t nsid = s->acc_head;
	struct ssock *n = &d->s[nsid];
	s->acc_head = n->acc_next;
	if (s->acc_head == 0)
		s->acc_tail = 0;
	s->accq--;
	n->acc_next = 0;
	n->app = (uint32_t)(a - d->apps);
	n->slot = slot;
	n->published = false;
	bind_slot(a, m, slot, nsid);
	first_windows(a, n);
	if (s->opt_set && n->tcp_has && !n->reset)
		send_kept_opts(d, s, nsid);
	sk_publish(d, s);
	sk_publish(d, n);
	sk_mark(d, nsid);
	sk_reply_sock(d, m, 0, n);
}

static void rq_shutdown(struct sockd *d, struct app *a, struct app *m, uint32_t sid,
			struct ssock *s, const struct bh_rpc_req *rq)
{
	if ((rq->a == SHUT_WR || rq->a == SHUT_RDWR) && !s->udp && !s->shut_wr_pending &&
	    !s->shut_wr_sent) {
		if (!s->connected) {
			sk_reply_err(d, m, -ENOTCONN);
			return;
		}
		/* The FIN goes once everything sent before it went
		 * (sk_service). */
		s->shut_wr_pending = true;
		s->shut_at = bh_load_acquire32(&a->slots[s->slot].tx_head);
		sk_mark(d, sid);
	}
	sk_publish(d, s);
	sk_reply_err(d, m, 0);
}

static void rq_setopt(struct sockd *d, struct app *m, uint32_t sid, struct ssock *s,
		      const struct bh_rpc_req *rq)
{
	if (s->udp) {
		sk_reply_err(d, m, -ENOPROTOOPT);
		return;
	}
	if (!s->tcp_has || s->listener) {
		/* Kept until connect, or for each accepted connection. */
		if (!opt_ok(rq->a, rq->b)) {
			sk_reply_err(d, m, rq->a < 5 ? -EINVAL : -ENOPROTOOPT);
			return;
		}
		s->opt_set |= (uint8_t)(1u << rq->a);
		s->opt_val[rq->a] = rq->b;
		sk_reply_err(d, m, 0);
		return;
	}
	struct bh_ctl c = {.arg = rq->a, .arg2 = rq->b};
	sk_to_tcp(d, BH_CTL_SETOPT, sid, &c);
	answer_later(m, sid, BH_CTL_SETOPT);
}

/* A wake-up descriptor for waiter word rq->a (app_abi.h): the server
 * makes a datagram socket pair, keeps one end (replacing any before for
 * that word) and hands over the other. It writes its own end with
 * MSG_DONTWAIT: nothing the application does to its end can make that
 * block. At most WAKE_FDS_MAX ends are kept in all. */
#define WAKE_FDS_MAX 1024u
static void rq_wakefd(struct sockd *d, struct app *a, struct app *m, const struct bh_rpc_req *rq)
{
	if (rq->a >= BH_APP_WAITERS) {
		d->st.requests_bad++;
		sk_reply_err(d, m, -EINVAL);
		return;
	}
	int sv[2];
	if (a->wake_fd[rq->a] < 0 && d->wake_fds >= WAKE_FDS_MAX) {
		sk_reply_err(d, m, -EMFILE);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
		sk_reply_err(d, m, -errno);
		return;
	}
	if (a->wake_fd[rq->a] >= 0)
		close(a->wake_fd[rq->a]);
	else
		d->wake_fds++;
	a->wake_fd[rq->a] = sv[0];
	struct bh_rpc_rep r = {.ret = 0};
	if (send_fds(m->fd, &r, sizeof(r), &sv[1], 1) != 0)
		bh_logf("application pid %d: cannot hand over a wake-up descriptor", (int)m->pid);
	close(sv[1]);
}

/* A free entry of the application table, or NO_APP. */
static uint32_t free_app(struct sockd *d)
{
	for (uint32_t i = 0; i < d->napps; i++)
		if (!d->apps[i].used)
			return i;
	return NO_APP;
}

/* BH_RPC_FORK: a pending member holding what m holds, and its token. */
static void rq_fork(struct sockd *d, struct app *a, struct app *m)
{
	uint32_t pi = free_app(d);
	uint64_t token = 0;
	if (pi == NO_APP || getrandom(&token, sizeof(token), 0) != sizeof(token) || token == 0) {
		sk_reply_err(d, m, pi == NO_APP ? -EAGAIN : -EIO);
		return;
	}
	struct app *p = &d->apps[pi];
	memset(p, 0, sizeof(*p));
	p->holds = calloc(a->nslots / 8 + 1, 1);
	if (p->holds == NULL) {
		sk_reply_err(d, m, -ENOMEM);
		return;
	}
	p->used = true;
	p->pending = true;
	p->fd = -1;
	p->pid = m->pid;
	p->uid = m->uid;
	p->root = (uint32_t)(a - d->apps);
	p->token = token;
	p->pending_until = bh_now_ns() + 10ull * 1000000000u;
	for (uint32_t i = 0; i < a->nslots; i++)
		if (holds(m, i))
			hold(a, p, i, true);
	a->members++;
	struct bh_rpc_rep r = {.ret = 0, .token = token};
	sk_reply(d, m, &r);
}

/* The pending member with this token, of root a (any root: NULL). */
static uint32_t pending_of(struct sockd *d, uint64_t token, const struct app *a)
{
	for (uint32_t i = 0; token && i < d->napps; i++) {
		struct app *p = &d->apps[i];
		if (p->used && p->pending && p->token == token &&
		    (a == NULL || p->root == (uint32_t)(a - d->apps)))
			return i;
	}
	return NO_APP;
}

/* BH_RPC_JOIN on a new connection (entry ci): it becomes the pending
 * member the token names. */
static void rq_join(struct sockd *d, uint32_t ci, const struct bh_rpc_req *rq)
{
	struct app *c = &d->apps[ci];
	uint32_t pi = pending_of(d, rq->token, NULL);
	if (c->root != NO_APP || pi == NO_APP) {
		d->st.requests_bad++;
		sk_reply_err(d, c, c->root != NO_APP ? -EISCONN : -EPERM);
		return;
	}
	struct app *p = &d->apps[pi];
	p->pending = false;
	p->token = 0;
	p->fd = c->fd;
	p->pid = c->pid;
	p->uid = c->uid;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = pi};
	epoll_ctl(d->epfd, EPOLL_CTL_MOD, p->fd, &ev);
	memset(c, 0, sizeof(*c)); /* the entry was only the connection's */
	struct app *a = &d->apps[p->root];
	bh_logf("application pid %d joined pid %d's sockets (forked)", (int)p->pid, (int)a->pid);
	struct bh_rpc_rep r = {.ret = 0, .nslots = a->nslots, .ring = a->ring};
	sk_reply(d, p, &r);
}

/* Pending members whose child never came. */
static void pending_expire(struct sockd *d, uint64_t now)
{
	for (uint32_t i = 0; i < d->napps; i++) {
		struct app *p = &d->apps[i];
		if (p->used && p->pending && now > p->pending_until)
			sk_app_detach(d, i, "its child did not join in time");
	}
}

/* One request from member ai: hello (or join) first, then one at a time;
 * each but socket, wakefd and fork names a slot the member holds. */
static void request(struct sockd *d, uint32_t ai, const struct bh_rpc_req *rq, int fd)
{
	struct app *m = &d->apps[ai];
	d->st.requests++;
	if (fd >= 0) {
		close(fd); /* no request carries a descriptor */
		fd = -1;
	}
	if (rq->op == BH_RPC_HELLO) {
		app_hello(d, ai, rq);
		return;
	}
	if (rq->op == BH_RPC_JOIN) {
		rq_join(d, ai, rq);
		return;
	}
	struct app *a = root_of(d, m);
	if (a == NULL || m->waiting) {
		if (fd >= 0)
			close(fd);
		d->st.requests_bad++;
		sk_reply_err(d, m, m->waiting ? -EBUSY : -EPROTO);
		return;
	}
	switch (rq->op) {
	case BH_RPC_SOCKET:
		rq_socket(d, a, m, rq);
		return;
	case BH_RPC_WAKEFD:
		rq_wakefd(d, a, m, rq);
		return;
	case BH_RPC_FORK:
		rq_fork(d, a, m);
		return;
	case BH_RPC_REGION:
		rq_region(d, a, m);
		return;
	case BH_RPC_CANCEL: {
		uint32_t pi = pending_of(d, rq->token, a);
		if (pi == NO_APP) {
			sk_reply_err(d, m, -ENOENT);
			return;
		}
		sk_app_detach(d, pi, "its fork failed");
		sk_reply_err(d, m, 0);
		return;
	}
	default:
		break;
	}
	uint32_t sid = 0;
	struct ssock *s = req_sock(d, a, m, rq->slot, &sid);
	if (s == NULL) {
		sk_reply_err(d, m, -EBADF);
		return;
	}
	switch (rq->op) {
	case BH_RPC_BIND:
		rq_bind(d, m, sid, s, rq);
		return;
	case BH_RPC_LISTEN:
		rq_listen(d, m, sid, s, rq);
		return;
	case BH_RPC_CONNECT:
		rq_connect(d, m, sid, s, rq);
		return;
	case BH_RPC_ACCEPT:
		rq_accept(d, a, m, s);
		return;
	case BH_RPC_SHUTDOWN:
		rq_shutdown(d, a, m, sid, s, rq);
		return;
	case BH_RPC_CLOSE:
		/* This member's reference; the socket closes with the last. */
		hold(a, m, rq->slot, false);
		let_go(d, a, rq->slot);
		sk_reply_err(d, m, 0);
		return;
	case BH_RPC_SETOPT:
		rq_setopt(d, m, sid, s, rq);
		return;
	case BH_RPC_GETNAME:
		sk_reply_sock(d, m, 0, s);
		return;
	default:
		d->st.requests_bad++;
		sk_reply_err(d, m, -EOPNOTSUPP);
		return;
	}
}

/* One request, and the one descriptor it may carry (*fd; any more are
 * closed). */
static ssize_t recv_req(int sock, struct bh_rpc_req *rq, int *fd)
{
	struct iovec iov = {.iov_base = rq, .iov_len = sizeof(*rq)};
	char ctl[CMSG_SPACE(sizeof(int) * 4)];
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl)};
	ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*fd < 0)
				*fd = f;
			else
				close(f);
		}
	}
	return n;
}

static void app_io(struct sockd *d, uint32_t ai)
{
	struct app *a = &d->apps[ai];
	for (int i = 0; i < 64 && a->used; i++) {
		struct bh_rpc_req rq;
		int fd = -1;
		ssize_t n = recv_req(a->fd, &rq, &fd);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			sk_app_detach(d, ai, n == 0 ? "closed its connection" : strerror(errno));
			return;
		}
		if (n < 0)
			return;
		if ((size_t)n != sizeof(rq)) {
			if (fd >= 0)
				close(fd);
			d->st.requests_bad++;
			sk_reply_err(d, a, -EPROTO);
			continue;
		}
		request(d, ai, &rq, fd);
	}
}

int sk_outside_io(struct sockd *d, uint64_t now, uint32_t badges)
{
	uint64_t wakes = __atomic_load_n(&d->poller.wakes, __ATOMIC_ACQUIRE);
	if (!(badges & BH_BADGE_IO) && wakes == d->seen_wakes && now - d->last_io_ns < 1000000u)
		return 0;
	d->seen_wakes = wakes;
	d->last_io_ns = now;
	pending_expire(d, now);
	struct epoll_event ev[32];
	int n = epoll_wait(d->epfd, ev, 32, 0);
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u32 == EV_APPS)
			apps_accept(d);
		else if (ev[i].data.u32 < d->napps && d->apps[ev[i].data.u32].used)
			app_io(d, ev[i].data.u32);
	}
	return n > 0;
}

/* Slots the applications touched (their dirty bits). */
void sk_app_dirty(struct sockd *d)
{
	for (uint32_t ai = 0; ai < d->napps; ai++) {
		struct app *a = &d->apps[ai];
		if (!a->used || a->region.base == NULL)
			continue;
		uint32_t words = a->nslots / 32 + 1;
		if (bh_xchg32(&a->dirty[words], 0) == 0)
			continue;
		for (uint32_t w = 0; w < words; w++) {
			uint32_t bits = bh_load_relaxed32(&a->dirty[w]) ? bh_xchg32(&a->dirty[w], 0) : 0;
			while (bits) {
				uint32_t b = (uint32_t)__builtin_ctz(bits);
				bits &= bits - 1;
				uint32_t slot = w * 32 + b;
				if (slot < a->nslots && a->slot_sid[slot])
					sk_mark(d, a->slot_sid[slot]);
			}
		}
	}
}

/* The waiter words the pass's publishes owe a signal (sk_publish). */
void sk_signal_apps(struct sockd *d)
{
	for (uint32_t ai = 0; ai < d->napps; ai++) {
		struct app *a = &d->apps[ai];
		while (a->used && a->owe) {
			int i = __builtin_ctzll(a->owe);
			a->owe &= a->owe - 1;
			d->st.app_signals++;
			if (a->wake_fd[i] < 0) {
				bh_ntfn_signal(&a->ntfn[i], 1, &a->nstats);
			} else if (bh_ntfn_mark(&a->ntfn[i], 1, &a->nstats)) {
				/* It sleeps in the kernel on its end of the pair. */
				ssize_t w = send(a->wake_fd[i], "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
				(void)w; /* full (it never read): it is awake anyway */
				d->st.app_wake_writes++;
			}
		}
	}
}
