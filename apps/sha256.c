/*
 * apps/sha256.c - SHA-256 through libcrypto's EVP interface (sha256.h).
 */
#include "apps/sha256.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

int bh_sha256_init(struct bh_sha256 *c)
{
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	if (x == NULL || EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(x);
		c->ctx = NULL;
		return -1;
	}
	c->ctx = x;
	return 0;
}

void bh_sha256_update(struct bh_sha256 *c, const void *data, size_t n)
{
	if (c->ctx && n)
		EVP_DigestUpdate(c->ctx, data, n);
}

void bh_sha256_final(struct bh_sha256 *c, uint8_t out[32])
{
	unsigned len = 0;
	memset(out, 0, 32);
	if (c->ctx == NULL)
		return;
	EVP_DigestFinal_ex(c->ctx, out, &len);
	EVP_MD_CTX_free(c->ctx);
	c->ctx = NULL;
}

void bh_sha256_hex(const uint8_t d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}
