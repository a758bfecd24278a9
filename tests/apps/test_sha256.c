/*
 * tests/apps/test_sha256.c - apps/sha256.c against the example messages
 * of FIPS 180-2 (appendix B) and the empty message, whole and in pieces
 * of every size from 1 to 97 bytes.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "apps/sha256.h"

static void digest_hex(const void *p, size_t n, size_t piece, char hex[65])
{
	struct bh_sha256 c;
	cr_assert_eq(bh_sha256_init(&c), 0);
	const char *b = p;
	for (size_t off = 0; off < n; off += piece)
		bh_sha256_update(&c, b + off, n - off < piece ? n - off : piece);
	uint8_t d[32];
	bh_sha256_final(&c, d);
	cr_assert_null(c.ctx, "final frees the context");
	bh_sha256_hex(d, hex);
}

static const struct {
	const char *msg, *want;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
};

Test(sha256, fips_180_2_examples_whole_and_in_pieces)
{
	for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++)
		for (size_t piece = 1; piece <= 97; piece++) {
			char hex[65];
			digest_hex(vectors[v].msg, strlen(vectors[v].msg), piece, hex);
			cr_assert_str_eq(hex, vectors[v].want, "message %zu in pieces of %zu", v,
					 piece);
		}
}

Test(sha256, a_million_a)
{
	static char a[1000000];
	memset(a, 'a', sizeof(a));
	const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	char hex[65];
	digest_hex(a, sizeof(a), sizeof(a), hex);
	cr_assert_str_eq(hex, want);
	digest_hex(a, sizeof(a), 4093, hex);
	cr_assert_str_eq(hex, want, "in pieces of 4093");
}

Test(sha256, one_changed_byte_changes_the_digest)
{
	char m[] = "abc";
	char h1[65], h2[65];
	digest_hex(m, 3, 3, h1);
	m[1] = 'c';
	digest_hex(m, 3, 3, h2);
	cr_assert_str_neq(h1, h2);
}
