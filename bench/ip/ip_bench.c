/*
 * bench/ip/ip_bench.c - `bulkhead bench ip`: the IP library's receive path
 * on one core, in packets per second and nanoseconds per packet.
 *
 * Method. Valid frames are built once (Ethernet II, IPv4 with a correct
 * header checksum, and UDP with a correct checksum to a bound port, or a
 * TCP header that the library hands up without looking further) and fed
 * to bh_ip_input() in a loop, as the IP domain does with frames from the
 * driver. Each frame is parsed, validated (Ethernet filter, IPv4 header
 * and its checksum, martian checks, UDP length and checksum over the whole
 * datagram), demultiplexed to its port and delivered; the environment's
 * deliver and release calls only count. The cost of moving descriptors
 * between domains is `bulkhead bench ipc`'s business, not this one's.
 *
 * Two working sets: "hot" cycles through 256 frames (they stay in the
 * cache, as in a receive batch just written by the driver and touched by
 * nobody else) and "cold" through 32768 frames spaced 2 KiB apart (64 MiB,
 * far beyond the caches: every frame is a cache miss, as when the data
 * arrives by DMA or from a core whose cache we do not share).
 *
 * Sizes: 64-byte frames (60 bytes plus the FCS on the wire: 18 bytes of
 * UDP payload) and 1514-byte frames (1500-byte IP MTU). The target is 10
 * million packets per second for small frames (the project's target;
 * 14.88 Mpps is the 10 Gbit/s line rate MultiStack met on one core).
 */
#include "bench/ip/ip_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ip/checksum.h"
#include "ipc/clock.h"
#include "ip/ip.h"

#define SLOT 2048
#define TARGET_MPPS 10.0

struct counts {
	uint64_t delivered, released, sent, bytes;
};

static bool b_alloc(void *ctx, struct bh_pkt *out)
{
	(void)ctx;
	(void)out;
	return false; /* the receive path must not need buffers */
}
static void b_release(void *ctx, const struct bh_pkt *p)
{
	(void)p;
	((struct counts *)ctx)->released++;
}
static void b_transmit(void *ctx, const struct bh_pkt *f)
{
	(void)f;
	((struct counts *)ctx)->sent++;
}
static void b_deliver(void *ctx, const struct bh_ip_rx *rx)
{
	struct counts *c = ctx;
	c->delivered++;
	c->bytes += rx->len;
	c->released += rx->npieces;
}

static const struct bh_ip_ops ops = {b_alloc, b_release, b_transmit, b_deliver, NULL};

static const struct bh_mac US = {{0x02, 0, 0, 0, 0, 0x02}};
static const struct bh_mac PEER = {{0x02, 0, 0, 0, 0, 0x09}};
#define US_IP BH_IP4(10, 0, 0, 2)
#define PEER_IP BH_IP4(10, 0, 0, 9)

static double now_s(void) { return (double)bh_now_ns() * 1e-9; }

/* Writes a frame of frame_len bytes (no FCS) into p. */
static void build(uint8_t *p, size_t frame_len, uint8_t proto, uint16_t sport, uint16_t id)
{
	struct bh_eth_repr eth = {.dst = US, .src = PEER, .type = BH_ETHERTYPE_IPV4};
	bh_eth_emit(p, &eth);
	uint16_t ip_len = (uint16_t)(frame_len - BH_ETH_HLEN);
	struct bh_ipv4_repr h = {
		.total_len = ip_len, .id = id, .ttl = 64, .proto = proto, .src = PEER_IP, .dst = US_IP,
	};
	bh_ipv4_emit(p + BH_ETH_HLEN, &h);
	uint8_t *t = p + BH_ETH_HLEN + BH_IPV4_HLEN;
	uint16_t tlen = (uint16_t)(ip_len - BH_IPV4_HLEN);
	for (uint16_t i = 0; i < tlen; i++)
		t[i] = (uint8_t)(i * 7 + id);
	if (proto == BH_IPPROTO_UDP) {
		struct bh_udp_repr u = {.sport = sport, .dport = 9, .len = tlen, .checksum = 0};
		bh_udp_emit(t, &u);
		uint32_t s = bh_ipv4_pseudo_sum(PEER_IP, US_IP, BH_IPPROTO_UDP, tlen);
		uint16_t c = bh_csum_fold(bh_csum_partial(t, tlen, s));
		if (c == 0)
			c = 0xffff;
		memcpy(t + 6, &c, 2);
	} else {
		bh_st16(t, sport);
		bh_st16(t + 2, 80);
		t[12] = 0x50; /* data offset 5 */
	}
}

struct result {
	const char *name;
	size_t frame;
	uint32_t nframes;
	double mpps, ns;
	bool ok;
};

static int run_case(struct result *r, uint8_t proto, double seconds)
{
	uint8_t *mem = aligned_alloc(4096, (size_t)r->nframes * SLOT);
	if (!mem)
		return -1;
	for (uint32_t i = 0; i < r->nframes; i++)
		build(mem + (size_t)i * SLOT, r->frame, proto, (uint16_t)(1024 + i % 60000),
		      (uint16_t)i);
	struct counts c = {0};
	struct bh_ip_config cfg = {.mac = US, .addr = US_IP, .prefix_len = 24};
	cfg.secret[0] = 1;
	const char *err = NULL;
	struct bh_ip *ip = bh_ip_create(&cfg, &ops, &c, &err);
	if (!ip) {
		fprintf(stderr, "bench ip: %s\n", err);
		free(mem);
		return -1;
	}
	bh_udp_bind(ip, 9, 1);
	struct bh_pkt *pk = malloc(sizeof *pk * r->nframes);
	for (uint32_t i = 0; i < r->nframes; i++)
		pk[i] = (struct bh_pkt){mem + (size_t)i * SLOT, SLOT, 0, (uint32_t)r->frame, i, false, BH_CSUM_NONE, 0, false};

	/* Warm up, then run in rounds until the time is spent. */
	for (uint32_t i = 0; i < r->nframes; i++)
		bh_ip_input(ip, 0, &pk[i]);
	uint64_t n = 0, before = c.delivered;
	const uint32_t round = 1u << 18;
	double t0 = now_s(), t1;
	do {
		for (uint32_t k = 0; k < round; k++)
			bh_ip_input(ip, 1, &pk[(n + k) & (r->nframes - 1)]);
		n += round;
		t1 = now_s();
	} while (t1 - t0 < seconds);
	r->mpps = (double)n / (t1 - t0) / 1e6;
	r->ns = (t1 - t0) * 1e9 / (double)n;
	/* Every frame must have gone up, and every buffer come back. */
	r->ok = c.delivered - before == n && c.released == c.delivered &&
		c.sent == 0 && bh_ip_counters(ip)->ip_delivered == c.delivered;
	bh_ip_destroy(ip);
	free(pk);
	free(mem);
	return 0;
}

/* The checksum alone over 1460-byte payloads (one MSS), hot (the same
 * 64 KiB, in cache) and cold (spread over 64 MiB), by each
 * implementation; ns per payload. vector: false for the portable loop. */
struct csum_result {
	double hot_ns, cold_ns;
};

static int csum_case(bool vector, double seconds, struct csum_result *r)
{
	const size_t cold = 64u << 20, len = 1460;
	uint8_t *mem = aligned_alloc(4096, cold);
	if (!mem)
		return -1;
	for (size_t i = 0; i < cold; i++)
		mem[i] = (uint8_t)(i * 131 + (i >> 9));
	volatile uint32_t sink = 0;
	for (int c = 0; c < 2; c++) {
		size_t span = c ? cold : 64u << 10;
		uint64_t n = 0;
		size_t off = 0;
		double t0 = now_s(), t1;
		do {
			uint32_t s = 0;
			for (int k = 0; k < 4096; k++) {
				s += bh_csum_partial_with(mem + off, len, 0, vector);
				off += 1536;
				if (off + len > span)
					off = 0;
			}
			sink += s;
			n += 4096;
			t1 = now_s();
		} while (t1 - t0 < seconds / 4);
		double ns = (t1 - t0) * 1e9 / (double)n;
		if (c)
			r->cold_ns = ns;
		else
			r->hot_ns = ns;
	}
	(void)sink;
	free(mem);
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: bulkhead bench ip [--quick] [--seconds S] [--json]\n"
	      "  the IP library's receive path on one core: parse, validate,\n"
	      "  checksum, demultiplex and deliver, for 64- and 1514-byte frames\n"
	      "  --quick      0.2 s per case (default 1 s)\n"
	      "  --seconds S  seconds per case\n"
	      "  --json       one JSON object instead of a Markdown table\n",
	      f);
}

int bh_bench_ip_main(int argc, char **argv)
{
	double seconds = 1.0;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			seconds = 0.2;
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
			if (!(seconds > 0 && seconds < 3600)) {
				fprintf(stderr, "bench ip: --seconds wants a number of seconds\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "bench ip: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	struct result rs[] = {
		{"UDP, hot", 60, 256, 0, 0, false},   {"UDP, cold", 60, 32768, 0, 0, false},
		{"UDP, hot", 1514, 256, 0, 0, false}, {"UDP, cold", 1514, 32768, 0, 0, false},
		{"TCP, hot", 60, 256, 0, 0, false},   {"TCP, hot", 1514, 256, 0, 0, false},
	};
	const uint8_t protos[] = {BH_IPPROTO_UDP, BH_IPPROTO_UDP, BH_IPPROTO_UDP,
				  BH_IPPROTO_UDP, BH_IPPROTO_TCP, BH_IPPROTO_TCP};
	unsigned n = sizeof rs / sizeof rs[0];
	int status = 0;
	for (unsigned i = 0; i < n; i++) {
		if (run_case(&rs[i], protos[i], seconds) < 0 || !rs[i].ok)
			status = 1;
	}
	struct csum_result cs[2] = {{0, 0}, {0, 0}};
	bool vec = bh_csum_vector_supported();
	if (csum_case(false, seconds, &cs[0]) < 0 || (vec && csum_case(true, seconds, &cs[1]) < 0))
		status = 1;
	if (json) {
		printf("{\"bench\": \"ip\", \"seconds_per_case\": %.2f, \"cases\": [", seconds);
		for (unsigned i = 0; i < n; i++)
			printf("%s{\"case\": \"%s\", \"frame_bytes\": %zu, \"frames\": %u, "
			       "\"mpps\": %.2f, \"ns_per_packet\": %.1f, \"verified\": %s}",
			       i ? ", " : "", rs[i].name, rs[i].frame + 4, rs[i].nframes, rs[i].mpps,
			       rs[i].ns, rs[i].ok ? "true" : "false");
		printf("], \"checksum_1460\": {\"portable_hot_ns\": %.1f, \"portable_cold_ns\": %.1f",
		       cs[0].hot_ns, cs[0].cold_ns);
		if (vec)
			printf(", \"vector_hot_ns\": %.1f, \"vector_cold_ns\": %.1f", cs[1].hot_ns,
			       cs[1].cold_ns);
		printf("}}\n");
		return status;
	}
	printf("## IP receive path, one core (%.1f s per case)\n\n", seconds);
	printf("| case | frame (with FCS) | working set | Mpps | ns/packet | Gbit/s of frames | "
	       "verified |\n|---|---|---|---|---|---|---|\n");
	for (unsigned i = 0; i < n; i++)
		printf("| %s | %zu B | %u frames | %.2f | %.1f | %.1f | %s |\n", rs[i].name,
		       rs[i].frame + 4, rs[i].nframes, rs[i].mpps, rs[i].ns,
		       rs[i].mpps * 1e6 * (double)(rs[i].frame + 4) * 8 / 1e9,
		       rs[i].ok ? "yes" : "NO");
	printf("\nTarget: %.0f Mpps for 64-byte frames on one core: %s (%.2f Mpps, hot).\n",
	       TARGET_MPPS, rs[0].mpps >= TARGET_MPPS ? "met" : "SHORT", rs[0].mpps);
	printf("\n## The checksum alone, 1460 bytes\n\n| implementation | hot (64 KiB) | cold (64 MiB) "
	       "|\n|---|---|---|\n| portable | %.1f ns | %.1f ns |\n",
	       cs[0].hot_ns, cs[0].cold_ns);
	if (vec)
		printf("| AVX2 (used here) | %.1f ns | %.1f ns |\n", cs[1].hot_ns, cs[1].cold_ns);
	else
		printf("| AVX2 | not on this processor | |\n");
	return status;
}
