/*
 * domains/plan.h - one instance's configuration and regions, and how a
 * domain finds what it was handed.
 *
 * The supervisor fills a struct bh_plan (addresses, driver, limits, pool
 * geometries), creates every region of the instance (bh_regions_create)
 * and starts each domain with only its own descriptors, at the fixed
 * numbers below (bh_dom_fds lists them with the access each gets). The
 * plan itself travels as a sealed, read-only memfd at BH_FD_PLAN. A
 * domain process attaches what it finds (bh_env_attach); the monolithic
 * process holds every descriptor and attaches all four domains with the
 * in-process transport (bh_env_attach_mono).
 *
 * Who maps what, with which permission: the one table is in
 * docs/ARCHITECTURE.md ("Who maps what (per domain)"), and
 * tests/stack/maps_test.sh checks the running domains against it. In
 * short: a domain maps the plan read-only, its own pool read-write (ip
 * writes headers into SEG too) and the pools it reads read-only, each of
 * its links "part" (read-only, with write access to exactly the ring
 * pages its side writes, ipc/channel.h), its own and its neighbours'
 * bells and its own stats region read-write. The supervisor creates
 * every region, unmaps the pools at once (keeping their descriptors) and
 * keeps the rest mapped: it writes link epochs (bh_regions_reset_links),
 * signals bells and reads the stats regions.
 */
#ifndef BH_DOMAINS_PLAN_H
#define BH_DOMAINS_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "domains/proto.h"
#include "ip/ip_wire.h"
#include "ipc/channel.h"
#include "ipc/ntfn.h"
#include "ipc/pool.h"
#include "ipc/region.h"

#define BH_PLAN_MAGIC 0x4e414c50u /* "PLAN" */
#define BH_PLAN_VERSION 1u

enum bh_mode { BH_MODE_FACTORED = 0, BH_MODE_MONO = 1 };

struct bh_plan {
	uint32_t magic, version;
	char name[64];
	char dir[200]; /* the instance's directory (log, sockets) */
	uint32_t mode;
	/* network */
	bh_ip4 addr, gw;
	uint8_t prefix;
	uint8_t pad0;
	uint16_t mtu;
	struct bh_mac mac;
	uint16_t pad1;
	/* driver */
	char driver[200];
	char capture[200];
	char impair[200];
	uint64_t seed;
	uint64_t secret[4];
	/* geometry and limits */
	struct bh_pools_geom pools;
	uint32_t link_cap;
	uint32_t max_socks;     /* sockets in the whole instance */
	uint32_t app_max_socks; /* per application */
	uint32_t app_ring;      /* bytes per socket per direction */
	uint64_t app_max_mem;   /* region bytes per application */
	uint32_t max_apps;
	uint32_t tcp_buf;       /* TCP send and receive buffer per connection */
	uint32_t low_port_uid;  /* besides root, who may bind below 1024 (or ~0) */
	uint32_t flags;         /* BH_PLAN_* */
};
/* tcp copies every segment's payload even where it could send chains
 * ($BULKHEAD_SEND_CHAIN=0 at `up`). */
#define BH_PLAN_NO_CHAIN 0x1u

/* Fixed descriptor numbers in a domain process. */
enum {
	BH_FD_PLAN = 3,
	BH_FD_READY = 4,  /* write end of the start-up report pipe */
	BH_FD_BELL0 = 10, /* + domain */
	BH_FD_LINK0 = 20, /* + link */
	BH_FD_POOL0 = 30, /* + pool */
	BH_FD_STATS0 = 40, /* + domain */
	BH_FD_TAP = 50,   /* driver: the TAP device */
	BH_FD_APPS = 51,  /* sock: the listening socket applications attach to */
	BH_FD_MAX = 60,
};

/* Every region of one instance (the supervisor's handles). */
struct bh_regions {
	struct bh_region plan;
	struct bh_region bell[BH_NDOMS];
	struct bh_region link[BH_NLINKS];
	struct bh_region pool[BH_NPOOLS];
	struct bh_region stats[BH_NDOMS];
};

/* Fills defaults for everything the command line does not set. */
void bh_plan_defaults(struct bh_plan *p);
/* Checks a plan; NULL if fine, else what is wrong. */
const char *bh_plan_check(const struct bh_plan *p);
/* A wire: driver that neither captures nor impairs: frames cross it as
 * they are, never looked at one by one (what checksum offload and large
 * frames need). */
static inline bool bh_plan_plain_wire(const struct bh_plan *p)
{
	return strncmp(p->driver, "wire:", 5) == 0 && p->capture[0] == 0 && p->impair[0] == 0;
}
/* The same for a tap: driver: the kernel takes whole TCP segments of up
 * to 64 KiB and partial checksums through the virtio-net header
 * (drivers/tap.c), as from a virtual machine's NIC. */
static inline bool bh_plan_plain_tap(const struct bh_plan *p)
{
	return strncmp(p->driver, "tap:", 4) == 0 && p->capture[0] == 0 && p->impair[0] == 0;
}

/* Whether the instance's TCP leaves checksums to the link and its wire:
 * end declares that it takes such frames: a mono instance on a wire:
 * driver that neither captures nor impairs (both need whole checksums).
 * Never factored: there TCP's checksum, computed in the tcp domain and
 * verified in the other instance's, is what catches a payload that a
 * faulty ip or driver in between scribbled over (docs/FAULTS.md). */
static inline bool bh_plan_csum_offload(const struct bh_plan *p)
{
	return p->mode == BH_MODE_MONO && (bh_plan_plain_wire(p) || bh_plan_plain_tap(p));
}

/* Send chains (ip/ip.h, domains/proto.h): tcp names a segment's payload
 * in the SOCK buffers that hold it rather than copying it, and the
 * driver gathers it in its copy to the device; the driver then maps the
 * SOCK pool read-only. On a wire: or tap: driver that neither captures
 * nor impairs, in either mode, whose copy to the device gathers
 * (drivers/shmlink.c into the wire, drivers/tap.c by writev). TCP's
 * checksum stays end to end in the factored build: it reads the payload
 * where it lies. */
static inline bool bh_plan_send_chain(const struct bh_plan *p)
{
	return (bh_plan_plain_wire(p) || bh_plan_plain_tap(p)) && !(p->flags & BH_PLAN_NO_CHAIN);
}

/* Large frames (what veth does with GSO and GRO): tcp sends segments of
 * up to BH_LARGE_SEG bytes as one buffer, ip and the driver pass them on
 * whole, and a wire: end that takes them carries them whole; the other
 * instance receives each in a chain of buffers. A wire: driver that
 * neither captures nor impairs (both work frame by frame at the MTU),
 * in either mode, with SEG buffers that hold such a segment (the
 * defaults give them unless --max-conns asks for many buffers). Where
 * the other end does not take them the driver cuts them into MTU-sized
 * frames (bh_tcp_gso_segment). TCP's checksum stays end to end in the
 * factored build: a large frame is only a longer one. */
#define BH_LARGE_SEG_BUF 65536u
#define BH_LARGE_RX_BUF 16384u
/* SOCK buffers there (with 64 KiB SEG buffers): the socket server lends
 * tcp a stream in pieces of up to this much less headroom
 * (sock_domain.c), an eighth of the descriptors 2 KiB buffers took. */
#define BH_LARGE_SOCK_BUF 16384u
/* The TCP segment (header included) such a buffer holds behind the SEG
 * headroom. */
#define BH_LARGE_SEG(p) ((p)->pools.g[BH_POOL_SEG].buf_size - (p)->pools.g[BH_POOL_SEG].headroom)
static inline bool bh_plan_large_frames(const struct bh_plan *p)
{
	/* A tap: instance also takes the kernel's large segments, in
	 * chains of at most 16 RX buffers (drivers/tap.c). */
	return (bh_plan_plain_wire(p) ||
		(bh_plan_plain_tap(p) && p->pools.g[BH_POOL_RX].buf_size >= BH_LARGE_RX_BUF)) &&
	       p->pools.g[BH_POOL_SEG].buf_size >= BH_LARGE_SEG_BUF;
}

int bh_regions_create(struct bh_regions *r, const struct bh_plan *p);
/* Supervisor, after domain `dom` died: a new epoch on each of its links
 * (ipc/channel.h), and a signal to the neighbour at the other end. */
void bh_regions_reset_links(struct bh_regions *r, int dom);
void bh_regions_close(struct bh_regions *r);

/* The descriptors domain `dom` is handed: up to max entries of
 * (source fd, target number). A read-only entry's src is a fresh
 * read-only descriptor of the region (bh_region_readonly_fd) that the
 * caller closes after the spawn; the others are the supervisor's own.
 * Returns the count. */
struct bh_fd_map {
	int src, dst;
	bool read_only;
};
int bh_dom_fds(const struct bh_regions *r, int dom, struct bh_fd_map *out, int max);

/* Links each domain is on, and its side; the domain at the other end. */
bool bh_dom_on_link(int dom, int link, int *side);
int bh_link_peer(int link, int dom);

/* Size of each domain's stats region. */
size_t bh_stats_bytes(const struct bh_plan *p, int dom);

struct bh_track;
struct bh_recover;

/* What a domain runs with. */
struct bh_env {
	const struct bh_plan *plan;
	int dom;
	bool restarted;                     /* a new incarnation of a replaced domain */
	struct bh_track *track;             /* set by domains that forward buffers */
	struct bh_recover *rec;             /* domains/recover.h */
	uint32_t rec_hold;                  /* pools whose disclaims a new
					     * incarnation holds from the
					     * start (set in init) */
	struct bh_ntfn *bell;               /* the word this domain sleeps on */
	struct bh_chan *chan[BH_NLINKS];     /* NULL for links it is not on */
	struct bh_pool own;                 /* the pool it owns: pool id == domain id */
	const uint8_t *view[BH_NPOOLS];     /* data of every pool it reads */
	uint8_t *wview[BH_NPOOLS];          /* pools it may write (own, and SEG for ip) */
	struct bh_region stats;             /* its stats region, RW */
	int tap_fd, apps_fd;                /* -1 unless handed */
	struct bh_region bell_regions[BH_NDOMS];
	struct bh_region link_regions[BH_NLINKS];
	struct bh_pool_view views[BH_NPOOLS];
	struct bh_chan chans[BH_NLINKS];
};

/* In a domain process: the plan at BH_FD_PLAN and the regions for dom.
 * On failure returns -errno and writes a message to err. */
int bh_plan_attach(struct bh_region *r, const struct bh_plan **out);
int bh_env_attach(struct bh_env *env, const struct bh_plan *plan, int dom, char *err,
		  size_t errlen);

/* The monolithic process: all four from the same descriptors, joined by
 * in-process links that mark `pending` (one word for the whole process). */
struct bh_mono_links {
	struct bh_local_link link[BH_NLINKS];
	uint32_t pending;
};
int bh_env_attach_mono(struct bh_env env[BH_NDOMS], struct bh_mono_links *ml,
		       const struct bh_plan *plan, char *err, size_t errlen);

void bh_env_detach(struct bh_env *env);

/* The pool data a descriptor names in env (already checked by the
 * channel against the geometry), or NULL if env does not read that pool. */
static inline const uint8_t *bh_env_buf(const struct bh_env *env, uint8_t pool, uint32_t buf)
{
	if (pool >= BH_NPOOLS || env->view[pool] == 0)
		return 0;
	return env->view[pool] + (size_t)buf * env->plan->pools.g[pool].buf_size;
}

#endif /* BH_DOMAINS_PLAN_H */
