/*
 * ip/ip_wire.h - wire formats of Ethernet II, ARP, IPv4, ICMP and UDP.
 *
 * Only formats live here, no protocol logic (lwIP's prot/, smoltcp's wire/).
 * Every parser is the one checked entry point for its header: it takes
 * untrusted bytes and a length, checks everything the format itself can
 * check, and on success fills a host-order representation. Nothing is
 * read from the bytes after parsing except the payload the representation
 * points at. Emitters write a representation into a caller-sized buffer.
 *
 * Addresses and ports in representations are host order; MAC addresses are
 * six bytes in wire order. All loads and stores go through bh_ld16/bh_st16
 * and friends, which assemble bytes with shifts and so accept any
 * alignment and either host byte order.
 */
#ifndef BH_IP_WIRE_H
#define BH_IP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- byte access ---- */

static inline uint16_t bh_ld16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t bh_ld32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void bh_st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void bh_st32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ---- addresses ---- */

typedef uint32_t bh_ip4; /* IPv4 address, host order */

#define BH_IP4(a, b, c, d) \
	((bh_ip4)((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d)))
#define BH_IP4_BROADCAST ((bh_ip4)0xffffffffu)

static inline bool bh_ip4_is_multicast(bh_ip4 a) { return (a >> 28) == 0xe; }
static inline bool bh_ip4_is_loopback(bh_ip4 a) { return (a >> 24) == 127; }
/* 0.0.0.0/8 "this network" (RFC 1122 3.2.1.3 (a), (b)). */
static inline bool bh_ip4_is_this_net(bh_ip4 a) { return (a >> 24) == 0; }
/* 240.0.0.0/4 reserved (RFC 1112 4), the limited broadcast aside. */
static inline bool bh_ip4_is_reserved(bh_ip4 a)
{
	return (a >> 28) == 0xf && a != BH_IP4_BROADCAST;
}
static inline bh_ip4 bh_ip4_mask(unsigned prefix_len)
{
	return prefix_len == 0 ? 0 : (bh_ip4)(0xffffffffu << (32 - prefix_len));
}

struct bh_mac {
	uint8_t b[6];
};

static inline bool bh_mac_eq(const struct bh_mac *a, const struct bh_mac *b)
{
	return memcmp(a->b, b->b, 6) == 0;
}
static inline bool bh_mac_is_group(const struct bh_mac *m) { return m->b[0] & 1; }
static inline bool bh_mac_is_broadcast(const struct bh_mac *m)
{
	static const struct bh_mac bc = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
	return bh_mac_eq(m, &bc);
}
static inline bool bh_mac_is_zero(const struct bh_mac *m)
{
	static const struct bh_mac z = {{0}};
	return bh_mac_eq(m, &z);
}
/* RFC 1112 6.4: the low 23 bits of the group go into 01:00:5e:00:00:00. */
static inline struct bh_mac bh_mac_of_group(bh_ip4 group)
{
	struct bh_mac m = {{0x01, 0x00, 0x5e, (uint8_t)((group >> 16) & 0x7f), (uint8_t)(group >> 8),
			    (uint8_t)group}};
	return m;
}

/* ---- parse verdicts (one list, so counters and messages share names) ---- */

#define BH_WIRE_ERRORS(X)                                                              \
	X(OK, "ok")                                                                    \
	X(TRUNCATED, "shorter than its header")                                        \
	X(ETH_LENGTH_FIELD, "802.3 length field, not an Ethernet II type")             \
	X(ETH_VLAN, "VLAN-tagged frame")                                               \
	X(ETH_SRC_GROUP, "group source MAC")                                           \
	X(ARP_FORMAT, "ARP hardware/protocol type or address sizes not Ethernet/IPv4") \
	X(ARP_OP, "ARP operation not request or reply")                                \
	X(IP_VERSION, "IP version not 4")                                              \
	X(IP_IHL, "IPv4 header length below 20 bytes or beyond the data")              \
	X(IP_TOTAL_LEN, "IPv4 total length below the header or beyond the frame")      \
	X(IP_CHECKSUM, "IPv4 header checksum wrong")                                   \
	X(IP_OPTIONS, "IPv4 options malformed")                                        \
	X(IP_FRAG_BEYOND, "fragment ends beyond 65535 bytes")                          \
	X(ICMP_CHECKSUM, "ICMP checksum wrong")                                        \
	X(UDP_LENGTH, "UDP length below 8 or beyond the datagram")                     \
	X(UDP_CHECKSUM, "UDP checksum wrong")

enum bh_wire_err {
#define BH_WIRE_ENUM(name, text) BH_WIRE_##name,
	BH_WIRE_ERRORS(BH_WIRE_ENUM)
#undef BH_WIRE_ENUM
		BH_WIRE_NERRORS
};

const char *bh_wire_strerror(enum bh_wire_err e);

/* Dotted-quad text of a (host order) address: "10.0.0.1"; out holds at
 * least 16 bytes. Returns out. */
char *bh_ip4_text(char *out, size_t n, bh_ip4 a);

/* ---- Ethernet II ---- */

#define BH_ETH_HLEN 14
#define BH_ETH_MIN_FRAME 60 /* without the FCS */
#define BH_ETHERTYPE_IPV4 0x0800
#define BH_ETHERTYPE_ARP 0x0806
#define BH_ETHERTYPE_VLAN 0x8100
#define BH_ETHERTYPE_QINQ 0x88a8

struct bh_eth_repr {
	struct bh_mac dst, src;
	uint16_t type;
};

enum bh_wire_err bh_eth_parse(const uint8_t *p, size_t len, struct bh_eth_repr *out);
void bh_eth_emit(uint8_t *p, const struct bh_eth_repr *e);

/* ---- ARP (RFC 826) for Ethernet and IPv4 ---- */

#define BH_ARP_LEN 28
#define BH_ARP_REQUEST 1
#define BH_ARP_REPLY 2

struct bh_arp_repr {
	uint16_t op;
	struct bh_mac sha, tha; /* sender and target hardware address */
	bh_ip4 spa, tpa;        /* sender and target protocol address */
};

enum bh_wire_err bh_arp_parse(const uint8_t *p, size_t len, struct bh_arp_repr *out);
void bh_arp_emit(uint8_t *p, const struct bh_arp_repr *a);

/* ---- IPv4 (RFC 791) ---- */

#define BH_IPV4_HLEN 20
#define BH_IPV4_MAX_HLEN 60
#define BH_IPV4_MAX_LEN 65535
#define BH_IPPROTO_ICMP 1
#define BH_IPPROTO_TCP 6
#define BH_IPPROTO_UDP 17

#define BH_IPV4_OPT_EOL 0
#define BH_IPV4_OPT_NOP 1
#define BH_IPV4_OPT_LSRR 131
#define BH_IPV4_OPT_SSRR 137

struct bh_ipv4_repr {
	uint8_t hlen;       /* header bytes, options included: 20..60 */
	uint8_t tos;
	uint16_t total_len; /* header + payload, as the header says */
	uint16_t id;
	bool df, mf, evil;  /* evil: the reserved flag bit (RFC 791 3.1) */
	uint16_t frag_off;  /* in bytes (the field times 8) */
	uint8_t ttl;
	uint8_t proto;
	bh_ip4 src, dst;
	bool source_routed; /* an LSRR or SSRR option is present */
	const uint8_t *payload; /* total_len - hlen bytes, inside the input */
	uint16_t payload_len;
};

/* Checks version, IHL, total length against `len` (bytes after total_len
 * are link padding and ignored), the header checksum and the option
 * encoding (RFC 1122 3.2.1.8: unknown options are skipped; a length that
 * runs past the header is malformed), and that the fragment ends within
 * 65535 bytes. Address and TTL policy is the stack's, not the format's. */
enum bh_wire_err bh_ipv4_parse(const uint8_t *p, size_t len, struct bh_ipv4_repr *out);
/* Writes a 20-byte header (no options) with its checksum. */
void bh_ipv4_emit(uint8_t *p, const struct bh_ipv4_repr *ip);

/* The pseudo-header sum for TCP and UDP checksums (RFC 793 3.1, RFC 768),
 * unfolded, to chain with bh_csum_partial(). */
uint32_t bh_ipv4_pseudo_sum(bh_ip4 src, bh_ip4 dst, uint8_t proto, uint16_t len);

/* Checksums left to the device (BH_CSUM_PARTIAL, ip/ip.h): the field
 * holds the folded pseudo-header sum, not complemented (Linux's
 * convention); summing the whole segment over it and complementing
 * gives the checksum. bh_l4_partial stores that starting value for a
 * TCP or UDP segment of len bytes; bh_l4_csum_complete finishes it in
 * software (proto TCP or UDP; others are left alone). */
void bh_l4_partial(uint8_t *l4, uint32_t len, uint8_t proto, bh_ip4 src, bh_ip4 dst);
void bh_l4_csum_complete(uint8_t *l4, uint32_t len, uint8_t proto);
/* The same for a whole Ethernet frame (a driver without the offload):
 * false, untouched, unless it is IPv4 carrying TCP or UDP whose lengths
 * fit in len. */
bool bh_frame_csum_complete(uint8_t *frame, uint32_t len);

/* Software segmentation of a large TCP frame (Linux's GSO): frame is
 * Ethernet + IPv4 (no fragment) + TCP whose payload is cut into pieces
 * of mss bytes. bh_tcp_gso_count() says how many (0: not such a frame,
 * or its headers leave no room for mss in an out buffer of room bytes);
 * bh_tcp_gso_segment() writes the i-th as a whole frame into out (room
 * bytes): the headers copied, the IPv4 total length, identification
 * (+i) and header checksum, the TCP sequence number (+i x mss) and
 * flags (PSH and FIN on the last piece only, CWR on the first only)
 * rewritten, the TCP checksum computed whole. Returns its length, or 0.
 * The frame is untrusted: every length is checked against len. */
uint32_t bh_tcp_gso_count(const uint8_t *frame, uint32_t len, uint32_t mss, uint32_t room);
/* Whether such a frame's TCP checksum verifies, before it is cut: the
 * pieces get fresh checksums, so a payload written over after the
 * sender's TCP summed it would otherwise go out under valid ones. */
bool bh_tcp_gso_csum_ok(const uint8_t *frame, uint32_t len);
/* The header bytes (Ethernet, IPv4, TCP) of a TCP frame of len bytes
 * whose first bytes are at frame (only the headers are read), and its
 * payload bytes in *plen; 0 if it is not an unfragmented TCP/IPv4 frame
 * whose lengths agree. */
uint32_t bh_tcp_frame_hdrs(const uint8_t *frame, uint32_t len, uint32_t *plen);
uint32_t bh_tcp_gso_segment(const uint8_t *frame, uint32_t len, uint32_t mss, uint32_t i,
			    uint8_t *out, uint32_t room);

/* ---- ICMP (RFC 792) ---- */

#define BH_ICMP_HLEN 8
#define BH_ICMP_ECHO_REPLY 0
#define BH_ICMP_DEST_UNREACH 3
#define BH_ICMP_REDIRECT 5
#define BH_ICMP_ECHO_REQUEST 8
#define BH_ICMP_TIME_EXCEEDED 11
#define BH_ICMP_PARAM_PROBLEM 12

#define BH_ICMP_UNREACH_NET 0
#define BH_ICMP_UNREACH_HOST 1
#define BH_ICMP_UNREACH_PROTOCOL 2
#define BH_ICMP_UNREACH_PORT 3
#define BH_ICMP_UNREACH_NEEDFRAG 4
#define BH_ICMP_EXC_TTL 0
#define BH_ICMP_EXC_FRAGTIME 1

struct bh_icmp_repr {
	uint8_t type, code;
	uint32_t rest; /* the second word: id/seq, next-hop MTU, pointer... */
};

/* Parses the 8-byte ICMP header. The checksum covers the whole message,
 * which may span several pieces after reassembly, so the caller checks it. */
enum bh_wire_err bh_icmp_parse(const uint8_t *p, size_t len, struct bh_icmp_repr *out);
/* Writes the header with a zero checksum. */
void bh_icmp_emit(uint8_t *p, const struct bh_icmp_repr *ic);

/* ---- UDP (RFC 768) ---- */

#define BH_UDP_HLEN 8

struct bh_udp_repr {
	uint16_t sport, dport;
	uint16_t len;      /* header + payload, as the header says */
	uint16_t checksum; /* as on the wire; 0 means none was sent */
};

/* Parses the header; `avail` is the datagram length IP gives (the UDP
 * length may be shorter - the rest is ignored - but not longer). */
enum bh_wire_err bh_udp_parse(const uint8_t *p, size_t avail, struct bh_udp_repr *out);
void bh_udp_emit(uint8_t *p, const struct bh_udp_repr *u);

#endif /* BH_IP_WIRE_H */
