/*
 * ip/siphash.h - SipHash-2-4 (Aumasson and Bernstein), the keyed hash
 * behind IP IDs (RFC 7739) and, in tcp/, initial sequence numbers
 * (RFC 6528). Keys come from the environment, never from the library.
 */
#ifndef BH_IP_SIPHASH_H
#define BH_IP_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t bh_siphash(const uint64_t key[2], const void *data, size_t len);

#endif /* BH_IP_SIPHASH_H */
