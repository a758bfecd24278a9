/*
 * bench/ipc/ipc_bench_report.c - the report of `bulkhead bench ipc`:
 * Markdown tables (the tests, the notifications, the targets, any
 * errors) or one JSON object. The method is at the top of ipc_bench.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "bench/ipc/ipc_bench_impl.h"

static const char *bh_bench_rate(char *buf, size_t len, double v)
{
	if (v < 0)
		snprintf(buf, len, "—");
	else if (v >= 1e9)
		snprintf(buf, len, "%.2f G", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, len, "%.2f M", v / 1e6);
	else
		snprintf(buf, len, "%.1f k", v / 1e3);
	return buf;
}

static const char *bh_bench_num(char *buf, size_t len, double v)
{
	if (v < 0)
		snprintf(buf, len, "—");
	else
		snprintf(buf, len, "%.*f", v < 100 ? 1 : 0, v);
	return buf;
}

static const char *bh_bench_ratio(char *buf, size_t len, double a, double b)
{
	if (a < 0 || b <= 0)
		snprintf(buf, len, "—");
	else
		snprintf(buf, len, "%.2f", a / b);
	return buf;
}

void bh_bench_print_md(const struct bh_bench_opts *o, const struct bh_bench_row *rows,
			      const struct bh_bench_check k[], double load)
{
	const struct bh_bench_row *line = bh_bench_find(rows, "cacheline");
	const struct bh_bench_row *futex = bh_bench_find(rows, "futex");
	double line_rt = line ? line->rtt_ns : -1, futex_rt = futex ? futex->rtt_ns : -1;
	struct bh_bench_plan rt_plan, ring_plan, sys_plan;
	char a[32], b[32], c[32], d[32], e[32];

	bh_bench_plan_for(&rt_plan, bh_bench_find(rows, "futex")->c, o);
	bh_bench_plan_for(&ring_plan, bh_bench_find(rows, "ring_procs_poll")->c, o);
	bh_bench_plan_for(&sys_plan, bh_bench_find(rows, "pipe")->c, o);
	printf("# Bulkhead IPC benchmark\n\n");
	printf("%ld CPUs online, %s, load average %.2f at start. Every test ran in %u rounds "
	       "(the list below, then backwards; each target's two tests back to back). "
	       "Per round: %" PRIu64 " samples, each the mean of %d round trips, after %" PRIu64
	       " untimed; one-way, %" PRIu64 " descriptors over rings and %" PRIu64
	       " messages (1-byte writes) over kernel channels, after a tenth as much untimed. "
	       "Round trip: median of all samples. Notification spin budget %" PRIu32
	       " polls.\n\n",
	       sysconf(_SC_NPROCESSORS_ONLN),
	       o->pin ? "side 0 pinned to CPU 0, the peer to CPU 1" : "unpinned", load, o->rounds,
	       rt_plan.rt_samples, BH_BENCH_RT_SAMPLE, rt_plan.rt_warm,
	       ring_plan.stream_total - ring_plan.stream_warm,
	       sys_plan.stream_total - sys_plan.stream_warm, o->spin);

	printf("| test | round trip (ns) | / cache line | / futex | one-way throughput | "
	       "futex wakes/desc |\n");
	printf("|---|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		const struct bh_bench_row *r = &rows[i];
		if (r->skipped)
			continue;
		if (r->failed) {
			printf("| %s | ERROR | | | | |\n", r->name);
			continue;
		}
		char wakes[32] = "—";
		if (r->wakes >= 0)
			snprintf(wakes, sizeof(wakes), "%.4f", r->wakes);
		printf("| %s | %s | %s | %s | %s%s%s | %s |\n", r->name,
		       bh_bench_num(a, sizeof(a), r->rtt_ns),
		       bh_bench_ratio(b, sizeof(b), r->rtt_ns, line_rt),
		       bh_bench_ratio(c, sizeof(c), r->rtt_ns, futex_rt),
		       bh_bench_rate(d, sizeof(d), r->tput), r->tput >= 0 ? " " : "",
		       r->tput >= 0 ? r->unit : "", wakes);
	}

	printf("\n## Notifications, per descriptor moved (both sides)\n\n");
	printf("| test | signals | futex wakes | futex waits |\n|---|---:|---:|---:|\n");
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		const struct bh_bench_row *r = &rows[i];
		if (!r->c->notify || r->failed || r->skipped)
			continue;
		printf("| %s | %.4f | %.4f | %.4f |\n", r->name, r->signals, r->wakes, r->sleeps);
	}

	printf("\n## Targets\n\n");
	printf("| target | measured | goal | result |\n|---|---|---:|---|\n");
	for (int i = 0; i < BH_BENCH_NCHECKS; i++) {
		const struct bh_bench_check *x = &k[i];
		if (!x->have && x->at_most) {
			printf("| %s | — | ≤ %.1f | NOT MEASURED |\n", x->what, x->target);
		} else if (!x->have) {
			printf("| %s | — | ≥ %s descs/s | NOT MEASURED |\n", x->what,
			       bh_bench_rate(e, sizeof(e), x->target));
		} else if (x->at_most) {
			printf("| %s | %.2f (median of the rounds:", x->what, x->value);
			for (unsigned r = 0; r < x->nratio; r++)
				printf(" %.2f", x->ratio[r]);
			printf("; all samples: %s ns / %s ns) | ≤ %.1f | %s |\n",
			       bh_bench_num(d, sizeof(d), x->num),
			       bh_bench_num(e, sizeof(e), x->den), x->target,
			       x->pass ? "PASS" : "SHORT");
		} else {
			printf("| %s | %s descs/s | ≥ %s descs/s | %s |\n", x->what,
			       bh_bench_rate(d, sizeof(d), x->value),
			       bh_bench_rate(e, sizeof(e), x->target), x->pass ? "PASS" : "SHORT");
		}
	}

	bool any = false;
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		if (!rows[i].failed)
			continue;
		if (!any)
			printf("\n## Errors\n\n");
		any = true;
		printf("- %s: %s\n", rows[i].name, rows[i].err);
	}
}

static void bh_bench_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void bh_bench_json_num(const char *key, double v)
{
	if (v < 0)
		printf("\"%s\": null, ", key);
	else
		printf("\"%s\": %.6g, ", key, v);
}

void bh_bench_print_json(const struct bh_bench_opts *o, const struct bh_bench_row *rows,
				const struct bh_bench_check k[], double load, bool ok)
{
	printf("{\"bench\": \"ipc\", \"quick\": %s, \"pinned\": %s, \"cpus\": %ld, "
	       "\"load_avg\": %.2f, \"iters\": %" PRIu64 ", \"rounds\": %u, \"rt_sample\": %d, "
	       "\"ring_descs\": %" PRIu64 ", \"sys_msgs\": %" PRIu64 ", \"spin\": %" PRIu32
	       ",\n \"rows\": [\n",
	       o->quick ? "true" : "false", o->pin ? "true" : "false",
	       sysconf(_SC_NPROCESSORS_ONLN), load, o->iters, o->rounds, BH_BENCH_RT_SAMPLE,
	       o->ring_descs, o->sys_msgs, o->spin);
	bool first = true;
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		const struct bh_bench_row *r = &rows[i];
		if (r->skipped)
			continue;
		printf("%s  {\"id\": ", first ? "" : ",\n");
		first = false;
		bh_bench_json_str(r->c->id);
		printf(", \"name\": ");
		bh_bench_json_str(r->name);
		printf(", ");
		bh_bench_json_num("rtt_ns", r->rtt_ns);
		printf("\"round_rtt_ns\": [");
		for (unsigned j = 0; r->rtt_ns >= 0 && j < r->rounds; j++)
			printf("%s%.6g", j ? ", " : "", r->round_rt[j]);
		printf("], ");
		bh_bench_json_num("throughput_per_s", r->tput);
		printf("\"unit\": \"%s\", \"batch\": %u, ", r->unit, r->c->batch);
		if (r->c->notify)
			printf("\"spin\": %" PRIu32 ", ", r->spin);
		bh_bench_json_num("signals_per_desc", r->signals);
		bh_bench_json_num("wakes_per_desc", r->wakes);
		bh_bench_json_num("waits_per_desc", r->sleeps);
		printf("\"error\": ");
		if (r->failed)
			bh_bench_json_str(r->err);
		else
			printf("null");
		printf("}");
	}
	printf("\n ],\n \"checks\": [\n");
	for (int i = 0; i < BH_BENCH_NCHECKS; i++) {
		const struct bh_bench_check *x = &k[i];
		printf("  {\"id\": \"%s\", \"what\": ", x->id);
		bh_bench_json_str(x->what);
		printf(", ");
		bh_bench_json_num("value", x->have ? x->value : -1);
		if (x->at_most) {
			printf("\"round_ratios\": [");
			for (unsigned r = 0; r < x->nratio; r++)
				printf("%s%.4g", r ? ", " : "", x->ratio[r]);
			printf("], ");
		}
		printf("\"op\": \"%s\", \"target\": %g, \"result\": \"%s\"}%s\n",
		       x->at_most ? "<=" : ">=", x->target,
		       !x->have ? "NOT MEASURED" : x->pass ? "PASS" : "SHORT",
		       i + 1 < BH_BENCH_NCHECKS ? "," : "");
	}
	printf(" ],\n \"ok\": %s}\n", ok ? "true" : "false");
}
