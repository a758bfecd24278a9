/*
 * fuzz/ip_frag_fuzz.c - reassembly under attack. Every record becomes a
 * well-formed IPv4 fragment (right checksum, plausible addresses), so the
 * fuzzer spends its time on what reassembly must survive: overlaps,
 * duplicates, holes, lies about the end, tiny and oversized fragments,
 * budgets and timeouts.
 *
 * Record (8 bytes + data): [id][flags][off hi][off lo][len hi][len lo]
 * [proto][dt], then `len` bytes of payload (taken from the input as far
 * as it goes). id picks one of 8 datagrams; flags bit 0 = MF, bit 1 = from
 * a second peer, bit 2 = to the broadcast address; off is in bytes and
 * rounded down to 8; proto picks UDP, TCP, ICMP or 99; dt advances time
 * by dt * 256 ms first. Delivered datagrams must be whole: the pieces add
 * up to the length reported (the environment marks a mismatch).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ip/env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct env e;
	static uint8_t frame[ENV_BUF_SIZE];
	static const uint8_t protos[4] = {BH_IPPROTO_UDP, BH_IPPROTO_TCP, BH_IPPROTO_ICMP, 99};
	struct bh_ip_config c;
	env_default_config(&c);
	c.reasm_datagrams = 6;
	c.reasm_bytes = 24 * ENV_BUF_SIZE;
	c.max_pieces = 20;
	env_init(&e, &c, 96);
	e.keep_log = true;
	bh_udp_bind(e.ip, 53, 1);

	size_t i = 0;
	while (i + 8 <= size) {
		const uint8_t *r = data + i;
		i += 8;
		size_t len = (size_t)(r[4] << 8 | r[5]) % 1481;
		if (len > size - i)
			len = size - i;
		const uint8_t *payload = data + i;
		i += len;
		if (r[7])
			env_tick(&e, e.now + 256u * r[7]);
		struct ipspec s = {
			.src = (r[1] & 2) ? PEER2_ADDR : PEER_ADDR,
			.dst = (r[1] & 4) ? BH_IP4(10, 0, 0, 255) : ENV_ADDR,
			.proto = protos[r[6] & 3],
			.id = (uint16_t)(0x100 + (r[0] & 7)),
			.frag_off = (uint16_t)((r[2] << 8 | r[3]) & ~7),
			.mf = r[1] & 1,
		};
		static const struct bh_mac bc = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
		size_t n = build_ip(frame, (r[1] & 4) ? &bc : NULL, &s, payload, len);
		env_input(&e, frame, n);
		if (e.double_release || e.bad_handle)
			abort();
		for (uint32_t k = 0; k < e.ndeliv && k < ENV_MAX_LOG; k++)
			if (e.deliv[k].len == UINT32_MAX)
				abort(); /* pieces disagree with the length */
		env_clear_log(&e);
	}
	/* Every timer runs out (ARP retries take one tick each). */
	for (int k = 0; k < 8; k++)
		env_tick(&e, e.now + 60000);
	if (bh_ip_held(e.ip) != 0)
		abort(); /* every datagram timed out by now */
	if (env_fini(&e) != 0)
		abort();
	return 0;
}
