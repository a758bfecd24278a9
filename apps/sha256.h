/*
 * apps/sha256.h - SHA-256 (FIPS 180-4), for checking transfers: libcrypto's
 * (OpenSSL, from Debian), which uses the processor's SHA extensions where
 * it has them, so that hashing a transfer costs less than carrying it.
 */
#ifndef BH_APPS_SHA256_H
#define BH_APPS_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct bh_sha256 {
	void *ctx; /* libcrypto's digest context; NULL once final */
};

/* 0, or -1 when libcrypto cannot make a context (out of memory). */
int bh_sha256_init(struct bh_sha256 *c);
void bh_sha256_update(struct bh_sha256 *c, const void *data, size_t n);
/* The digest; frees the context (init again to reuse). */
void bh_sha256_final(struct bh_sha256 *c, uint8_t out[32]);
/* 64 hex digits and a NUL. */
void bh_sha256_hex(const uint8_t d[32], char out[65]);

#endif /* BH_APPS_SHA256_H */
