/*
 * domains/recover.h - getting every buffer home after a domain is
 * replaced, with nobody using a buffer another party may still hold.
 *
 * When the supervisor replaces a dead domain D, each link D is on is
 * reset (ipc/channel.h): what was in flight is dropped, and the new D
 * starts with nothing. Who held which buffer is then partly unknown:
 *
 *   - a survivor's own buffers that the old D held, or had forwarded
 *     further (ip forwards the driver's frames to tcp, tcp forwards them
 *     to sock; ip forwards tcp's segments to the driver);
 *   - the new D's own pool, parts of which survivors still hold;
 *   - buffers the new D forwards, parts of which are still downstream.
 *
 * The rule that settles it: a party that might hold a buffer is a
 * "suspect" (ipc/pool.h for owners; track.h for forwarders), and a
 * suspect buffer is used again only once every suspect has answered for
 * it, either with a return (it did hold it, and is done) or with a
 * disclaim (a give-back flagged BH_DESC_DISCLAIM: it does not hold it).
 *
 *   survivor, on a reset of link L to D (bh_recover_peer_reset):
 *     its own buffers D held            -> suspected by D
 *     buffers it forwarded to D         -> suspected by D; once settled,
 *                                          returned upstream as usual
 *     every buffer of each pool it receives on L that its ledger says it
 *       does not hold                   -> disclaimed to D
 *   new incarnation D (bh_recover_restarted):
 *     its own pool                      -> every buffer suspected by every
 *                                          neighbour it lends that pool to
 *     each pool it forwards             -> every buffer suspected by its
 *                                          downstream neighbours; once
 *                                          settled, disclaimed upstream
 *     every other pool it receives      -> every buffer disclaimed
 *
 * Why it is safe: a suspect buffer is never lent again, so an answer can
 * only be about the old lending; a disclaim of a buffer that is not
 * suspect changes nothing, so a disclaim that crosses a new lending on
 * the wire cannot take a buffer from the party now using it; and each
 * side snapshots its ledger when it resets, before the new epoch carries
 * anything, so its disclaims say what it held at the reset and always
 * precede its later returns on the same ring. An owed disclaim is
 * checked against the ledger again as it goes out: a buffer held by then
 * (lent anew, or owed since an earlier reset while a disclaim was held
 * back, bh_recover_hold) is never disclaimed, and comes home as a
 * return. Two domains replaced at once can leak buffers (a suspect
 * nobody answers for), never share one.
 *
 * One thread per domain, like everything in env.
 */
#ifndef BH_DOMAINS_RECOVER_H
#define BH_DOMAINS_RECOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "domains/plan.h"
#include "domains/stats.h"

struct bh_recover_stats {
	uint64_t peer_resets;     /* links reset because a neighbour was replaced */
	uint64_t suspected;       /* buffers made suspect */
	uint64_t disclaims_sent;
	uint64_t disclaims_recv;
	uint64_t disclaims_noop;  /* about buffers not suspected of the sender */
	uint64_t settled;         /* suspect buffers answered for by everyone */
	uint64_t returned_up;     /* settled forwarded buffers sent upstream */
};

struct bh_recover {
	/* Disclaims owed on each link, one bit per buffer of each pool
	 * (returns that do not fit are the channel's to owe). */
	uint64_t *dis[BH_NLINKS][BH_NPOOLS];
	uint32_t owed; /* bits set in dis */
	/* Pools (bits) whose disclaims wait: bh_recover_hold. */
	uint32_t hold;
	struct bh_recover_stats st;
};

/* Allocates the disclaim bitmaps for env's links; -ENOMEM on failure. */
int bh_recover_init(struct bh_env *env);
void bh_recover_fini(struct bh_env *env);

/* A new incarnation, after its domain's init (which set env->track). */
void bh_recover_restarted(struct bh_env *env);
/* A survivor whose link `link` was just reset (bh_chan_sync said so). */
void bh_recover_peer_reset(struct bh_env *env, int link);

/* Holds back (or lets go) the disclaims of pool `pool`: a new
 * incarnation whose old one may have lent others a view of buffers it
 * held (tcp's send chains name SOCK buffers the driver reads) must not
 * disclaim them until nothing that names them can still be read, which
 * the domain knows and recovery does not. */
void bh_recover_hold(struct bh_env *env, int pool, bool on);

/* Sends owed disclaims while the rings have room; true if it sent any. */
bool bh_recover_flush(struct bh_env *env);

/* What domains call instead of bh_chan_reclaim(): takes the answers to
 * suspicions (disclaims, and returns of suspect buffers) out of the
 * batch and settles them; hands the domain only ordinary returns. */
unsigned bh_env_reclaim(struct bh_env *env, int link, struct bh_desc *x, unsigned max);

void bh_recover_publish(const struct bh_env *env, struct bh_stats_w *w);

#endif /* BH_DOMAINS_RECOVER_H */
