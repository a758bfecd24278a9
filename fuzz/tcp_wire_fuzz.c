/*
 * fuzz/tcp_wire_fuzz.c - the TCP header and option parser on arbitrary
 * bytes. Whatever parses must emit and parse back to the same fields, and
 * an emitted header must never exceed 60 bytes or the length it reports.
 * (Segments against live connections: tcp_input_fuzz.c.)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tcp/tcp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	/* The first two bytes give the segment length beyond what is here. */
	uint32_t extra = (uint32_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	struct bh_tcp_repr t;
	if (bh_tcp_parse(data, size, (uint32_t)size + extra, &t) != BH_TCP_WIRE_OK)
		return 0;
	if (t.hlen < 20 || t.hlen > 60 || t.hlen > size || t.opt.nsack > BH_TCP_MAX_SACK ||
	    t.opt.wscale > BH_TCP_MAX_WSCALE || t.payload_len != size + extra - t.hlen)
		abort();
	uint8_t out[64];
	unsigned hl = bh_tcp_emit(out, &t);
	if (hl > 60 || hl != 20 + bh_tcp_opts_len(&t.opt) || hl % 4)
		abort();
	struct bh_tcp_repr r;
	if (bh_tcp_parse(out, hl, hl, &r) != BH_TCP_WIRE_OK)
		abort();
	if (r.sport != t.sport || r.dport != t.dport || r.seq != t.seq || r.ack != t.ack ||
	    r.flags != t.flags || r.window != t.window || r.opt.has_mss != t.opt.has_mss ||
	    r.opt.has_ts != t.opt.has_ts || r.opt.sack_ok != t.opt.sack_ok ||
	    r.opt.has_wscale != t.opt.has_wscale || r.opt.nsack > t.opt.nsack)
		abort();
	if ((r.opt.has_mss && r.opt.mss != t.opt.mss) ||
	    (r.opt.has_ts && (r.opt.ts_val != t.opt.ts_val || r.opt.ts_ecr != t.opt.ts_ecr)) ||
	    (r.opt.has_wscale && r.opt.wscale != t.opt.wscale))
		abort();
	for (unsigned b = 0; b < r.opt.nsack; b++)
		if (r.opt.sack[b].left != t.opt.sack[b].left || r.opt.sack[b].right != t.opt.sack[b].right)
			abort();
	return 0;
}
