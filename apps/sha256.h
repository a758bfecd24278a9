/*
 * apps/sha256.h - SHA-256 (FIPS 180-4), for checking transfers.
 */
#ifndef BH_APPS_SHA256_H
#define BH_APPS_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct bh_sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t used;
};

void bh_sha256_init(struct bh_sha256 *c);
void bh_sha256_update(struct bh_sha256 *c, const void *data, size_t n);
void bh_sha256_final(struct bh_sha256 *c, uint8_t out[32]);
/* 64 hex digits and a NUL. */
void bh_sha256_hex(const uint8_t d[32], char out[65]);

#endif /* BH_APPS_SHA256_H */
