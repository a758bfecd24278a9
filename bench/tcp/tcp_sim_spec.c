/*
 * bench/tcp/tcp_sim_spec.c - the simulation's spec: its defaults, its
 * help text and the "key=value,..." parser (see tcp_sim.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench/tcp/tcp_sim.h"

const char bh_sim_spec_help[] =
	"spec: comma-separated key=value; link keys apply to both directions,\n"
	"or to one with a prefix ab. (A to B) or ba. (B to A):\n"
	"  loss=P dup=P reorder=P corrupt=P split=P   percentages, e.g. 1% or 0.5\n"
	"  forge=P       corrupt data and fix the checksum (the stream check must\n"
	"                catch it: a test of the test)\n"
	"  delay=T       one-way delay (T: 250us, 5ms, 1s; a bare number is ms)\n"
	"  rdelay=T      a reordered segment is late by up to T (default 2ms)\n"
	"  rate=R        bits per second (100m, 1g; 0 no limit)\n"
	"  queue=S       drop-tail bound on bytes queued at the rate limit\n"
	"  burst=T       losses come in spells of T on average, everything sent\n"
	"                in one lost (Gilbert-Elliott; loss= is the time in them)\n"
	"global keys:\n"
	"  bytes=S back=S   A to B stream; B to A stream (S: 1, 64K, 1M, 2G)\n"
	"  wmin=N wmax=N    application write sizes (1..1920)\n"
	"  buf=S mss=N tw=T send and receive buffers, MSS, TIME-WAIT\n"
	"  rbuf=S rbufmax=S the receive buffer alone: where it starts, and how far\n"
	"                   auto-tuning may grow it (default: fixed)\n"
	"  early=1 nots=1 nows=1 nosack=1  write before the handshake ends; no\n"
	"                   timestamps, no window scale, no SACK\n"
	"  earlyshut=1      with early=1, shut down before the handshake ends too\n"
	"  poll=1           the applications try to write and read every time\n"
	"                   round instead of waiting for WRITABLE and READABLE\n"
	"  rrate=R          the applications read no faster than R bits/s (the\n"
	"                   receive window fills: zero windows and probes)\n"
	"  pool=N limit=T iters=N  buffers, virtual time and iteration bounds\n";

static bool parse_num(const char *v, double *out, const char **rest)
{
	char *e;
	errno = 0;
	double d = strtod(v, &e);
	if (e == v || errno || d < 0)
		return false;
	*out = d;
	*rest = e;
	return true;
}

static bool parse_ppm(const char *v, uint32_t *out)
{
	double d;
	const char *r;
	if (!parse_num(v, &d, &r) || d > 100 || (*r && strcmp(r, "%") != 0))
		return false;
	*out = (uint32_t)(d * 10000 + 0.5);
	return true;
}

static bool parse_time(const char *v, uint64_t *us)
{
	double d, m;
	const char *r;
	if (!parse_num(v, &d, &r))
		return false;
	if (strcmp(r, "us") == 0)
		m = 1;
	else if (strcmp(r, "ms") == 0 || *r == 0)
		m = 1e3;
	else if (strcmp(r, "s") == 0)
		m = 1e6;
	else
		return false;
	*us = (uint64_t)(d * m + 0.5);
	return true;
}

static bool parse_size(const char *v, uint64_t *out)
{
	double d, m = 1;
	const char *r;
	if (!parse_num(v, &d, &r))
		return false;
	if (*r == 'k' || *r == 'K')
		m = 1024;
	else if (*r == 'm' || *r == 'M')
		m = 1024.0 * 1024;
	else if (*r == 'g' || *r == 'G')
		m = 1024.0 * 1024 * 1024;
	if (m != 1)
		r++;
	if (*r && strcmp(r, "iB") != 0 && strcmp(r, "B") != 0)
		return false;
	*out = (uint64_t)(d * m + 0.5);
	return true;
}

static bool parse_rate(const char *v, uint64_t *out)
{
	double d, m = 1;
	const char *r;
	if (!parse_num(v, &d, &r))
		return false;
	if (*r == 'k' || *r == 'K')
		m = 1e3;
	else if (*r == 'm' || *r == 'M')
		m = 1e6;
	else if (*r == 'g' || *r == 'G')
		m = 1e9;
	if (m != 1)
		r++;
	if (*r && strcmp(r, "bit") != 0 && strcmp(r, "bps") != 0)
		return false;
	*out = (uint64_t)(d * m + 0.5);
	return true;
}

static int link_key(struct bh_sim_link *l, const char *k, const char *v)
{
	if (strcmp(k, "loss") == 0)
		return parse_ppm(v, &l->loss_ppm) ? 0 : -1;
	if (strcmp(k, "dup") == 0)
		return parse_ppm(v, &l->dup_ppm) ? 0 : -1;
	if (strcmp(k, "reorder") == 0)
		return parse_ppm(v, &l->reorder_ppm) ? 0 : -1;
	if (strcmp(k, "corrupt") == 0)
		return parse_ppm(v, &l->corrupt_ppm) ? 0 : -1;
	if (strcmp(k, "split") == 0)
		return parse_ppm(v, &l->split_ppm) ? 0 : -1;
	if (strcmp(k, "forge") == 0)
		return parse_ppm(v, &l->forge_ppm) ? 0 : -1;
	if (strcmp(k, "delay") == 0)
		return parse_time(v, &l->delay_us) ? 0 : -1;
	if (strcmp(k, "rdelay") == 0)
		return parse_time(v, &l->rdelay_us) ? 0 : -1;
	if (strcmp(k, "rate") == 0)
		return parse_rate(v, &l->rate_bps) ? 0 : -1;
	if (strcmp(k, "queue") == 0)
		return parse_size(v, &l->queue_bytes) ? 0 : -1;
	if (strcmp(k, "burst") == 0)
		return parse_time(v, &l->burst_us) ? 0 : -1;
	return 1; /* not a link key */
}

static bool parse_u32(const char *v, uint64_t max, uint32_t *out)
{
	uint64_t x;
	if (!parse_size(v, &x) || x > max)
		return false;
	*out = (uint32_t)x;
	return true;
}

static bool parse_flag(const char *v, bool *out)
{
	if (*v == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0) {
		*out = true;
		return true;
	}
	if (strcmp(v, "0") == 0 || strcmp(v, "no") == 0) {
		*out = false;
		return true;
	}
	return false;
}

static int global_key(struct bh_sim_spec *s, const char *k, const char *v)
{
	uint32_t u = 0;
	bool ok;
	if (strcmp(k, "bytes") == 0)
		ok = parse_size(v, &s->bytes_ab);
	else if (strcmp(k, "back") == 0)
		ok = parse_size(v, &s->bytes_ba);
	else if (strcmp(k, "wmin") == 0)
		ok = parse_u32(v, BH_SIM_MAX_WRITE, &s->wmin);
	else if (strcmp(k, "wmax") == 0)
		ok = parse_u32(v, BH_SIM_MAX_WRITE, &s->wmax);
	else if (strcmp(k, "buf") == 0)
		ok = parse_u32(v, 1u << 30, &s->buf);
	else if (strcmp(k, "rbuf") == 0)
		ok = parse_u32(v, 1u << 30, &s->rbuf);
	else if (strcmp(k, "rbufmax") == 0)
		ok = parse_u32(v, 1u << 30, &s->rbuf_max);
	else if (strcmp(k, "mss") == 0) {
		ok = parse_u32(v, 1460, &u);
		s->mss = (uint16_t)u;
	} else if (strcmp(k, "tw") == 0) {
		uint64_t us;
		ok = parse_time(v, &us) && us / 1000 <= UINT32_MAX;
		s->tw_ms = (uint32_t)(us / 1000);
	} else if (strcmp(k, "early") == 0)
		ok = parse_flag(v, &s->early);
	else if (strcmp(k, "poll") == 0)
		ok = parse_flag(v, &s->poll);
	else if (strcmp(k, "rrate") == 0)
		ok = parse_rate(v, &s->rrate_bps) && (s->rrate_bps == 0 || s->rrate_bps >= 8);
	else if (strcmp(k, "earlyshut") == 0)
		ok = parse_flag(v, &s->early_shut);
	else if (strcmp(k, "nots") == 0)
		ok = parse_flag(v, &s->no_ts);
	else if (strcmp(k, "nows") == 0)
		ok = parse_flag(v, &s->no_ws);
	else if (strcmp(k, "nosack") == 0)
		ok = parse_flag(v, &s->no_sack);
	else if (strcmp(k, "pool") == 0)
		ok = parse_u32(v, 2000000, &s->pool);
	else if (strcmp(k, "limit") == 0)
		ok = parse_time(v, &s->limit_us);
	else if (strcmp(k, "iters") == 0)
		ok = parse_size(v, &s->max_iters);
	else
		return 1;
	return ok ? 0 : -1;
}

void bh_sim_defaults(struct bh_sim_spec *s)
{
	memset(s, 0, sizeof *s);
	s->ab.delay_us = s->ba.delay_us = 1000;
	s->ab.rdelay_us = s->ba.rdelay_us = 2000;
	s->bytes_ab = 65536;
	s->wmin = 1;
	s->wmax = BH_SIM_MAX_WRITE;
	s->limit_us = 3600ull * 1000000;
	s->max_iters = 50000000;
}

int bh_sim_parse(const char *spec, struct bh_sim_spec *s, char *err, size_t errlen)
{
	char buf[1024];
	if (strlen(spec) >= sizeof buf) {
		snprintf(err, errlen, "spec too long");
		return -1;
	}
	strcpy(buf, spec);
	for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
	     tok = strtok_r(NULL, ", ", &save)) {
		char *eq = strchr(tok, '=');
		const char *v = eq ? eq + 1 : "";
		if (eq)
			*eq = 0;
		const char *k = tok;
		int rc;
		if (strncmp(k, "ab.", 3) == 0)
			rc = link_key(&s->ab, k + 3, v);
		else if (strncmp(k, "ba.", 3) == 0)
			rc = link_key(&s->ba, k + 3, v);
		else {
			rc = link_key(&s->ab, k, v);
			if (rc == 0)
				rc = link_key(&s->ba, k, v);
			else if (rc == 1)
				rc = global_key(s, k, v);
		}
		if (rc == 1) {
			snprintf(err, errlen, "unknown key '%s'", k);
			return -1;
		}
		if (rc < 0) {
			snprintf(err, errlen, "bad value '%s' for %s", v, k);
			return -1;
		}
	}
	return 0;
}
