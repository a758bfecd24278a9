/*
 * tests/ip/noalloc.c - the library allocates nothing per packet.
 *
 * malloc, calloc, realloc and free are wrapped at link time (-Wl,--wrap)
 * and counted while a mixed workload runs between bh_ip_create() and
 * bh_ip_destroy(): ARP resolution and replies, echo requests (plain and
 * fragmented), UDP in and out (in place, copied, fragmented), reassembly,
 * port unreachable, timers with ARP retries and reassembly timeouts. Any
 * call fails the test. A plain program (exit status), so it also runs
 * under the sanitizers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ip/env.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static volatile int counting;
static volatile unsigned long calls;

void *__wrap_malloc(size_t n)
{
	calls += counting;
	return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
	calls += counting;
	return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
	calls += counting;
	return __real_realloc(p, n);
}
void __wrap_free(void *p)
{
	calls += counting;
	__real_free(p);
}

static uint8_t F[ENV_BUF_SIZE];

int main(void)
{
	static struct env e;
	env_init(&e, NULL, 0);
	e.keep_log = false; /* the log copies deliveries with malloc */
	static const struct bh_mac bc = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
	static const struct bh_mac zero = {{0}};
	uint8_t t[5000];
	memset(t, 0x5a, sizeof t);

	counting = 1;
	bh_udp_bind(e.ip, 53, 1);
	bh_ip_start(e.ip, 0);
	for (int round = 0; round < 50; round++) {
		e.now += 100;
		/* ARP request for us from PEER, then traffic both ways. */
		env_input(&e, F, build_arp(F, &bc, &PEER_MAC, BH_ARP_REQUEST, &PEER_MAC, PEER_ADDR,
					   &zero, ENV_ADDR));
		uint8_t icmp[1600];
		size_t il = build_icmp(icmp, BH_ICMP_ECHO_REQUEST, 0, (uint32_t)round, t, 1000);
		struct ipspec s = {.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_ICMP,
				   .id = (uint16_t)round};
		env_input(&e, F, build_ip(F, NULL, &s, icmp, il));
		/* A fragmented echo request (4008 bytes of ICMP). */
		static uint8_t big[4008];
		size_t bl = build_icmp(big, BH_ICMP_ECHO_REQUEST, 0, 7, t, 4000);
		s.id = (uint16_t)(1000 + round);
		env_send_fragments(&e, &s, big, bl, 1480, NULL);
		/* UDP to a bound port, to an unbound one. */
		uint8_t u[600];
		size_t ul = build_udp(u, PEER_ADDR, ENV_ADDR, 9, 53, t, 500);
		s.proto = BH_IPPROTO_UDP;
		s.id = (uint16_t)(2000 + round);
		env_input(&e, F, build_ip(F, NULL, &s, u, ul));
		ul = build_udp(u, PEER_ADDR, ENV_ADDR, 9, 54, t, 20);
		env_input(&e, F, build_ip(F, NULL, &s, u, ul));
		/* UDP out: in place, copied, and to a host nobody answers. */
		struct bh_pkt p = env_buffer(&e, t, 100);
		bh_udp_output(e.ip, e.now, &p, 4000, PEER_ADDR, 7);
		p = env_buffer(&e, t, 1900);
		p.writable = false;
		bh_udp_output(e.ip, e.now, &p, 4000, PEER_ADDR, 7);
		p = env_buffer(&e, t, 10);
		bh_udp_output(e.ip, e.now, &p, 4000, BH_IP4(10, 0, 0, (uint8_t)(50 + round)), 7);
		/* A fragment that never completes. */
		s.id = (uint16_t)(3000 + round);
		s.mf = true;
		env_input(&e, F, build_ip(F, NULL, &s, t, 64));
		s.mf = false;
		env_tick(&e, e.now);
	}
	for (int k = 0; k < 10; k++)
		env_tick(&e, e.now + 40000);
	counting = 0;

	uint64_t echo = env_ctr(&e, "icmp_echo_tx"), reasm = env_ctr(&e, "reasm_ok");
	uint64_t timeouts = env_ctr(&e, "frag_timeouts") + env_ctr(&e, "arp_timeouts");
	unsigned long n = calls;
	uint32_t leaked = env_fini(&e);
	printf("noalloc: %lu allocator calls; %lu echo replies, %lu reassembled, %lu timeouts, "
	       "%u frames out, %u leaked\n",
	       n, (unsigned long)echo, (unsigned long)reasm, (unsigned long)timeouts, e.ntx, leaked);
	/* The workload must really have run for the zero to mean anything. */
	if (n != 0 || leaked != 0 || echo < 100 || reasm < 50 || timeouts < 50)
		return 1;
	return 0;
}
