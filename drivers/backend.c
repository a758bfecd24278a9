/*
 * drivers/backend.c - driver specs and the table of backends.
 */
#include "drivers/backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

const char *bh_driver_spec_parse(const char *spec, struct bh_driver_spec *out)
{
	memset(out, 0, sizeof(*out));
	const char *colon = strchr(spec, ':');
	if (colon == NULL)
		return "driver SPEC is tap:IFNAME, pcap:IFNAME, wire:LINK:0|1 or file:PATH.pcap";
	size_t klen = (size_t)(colon - spec);
	const char *arg = colon + 1;
	if (strlen(arg) >= sizeof(out->arg))
		return "driver argument too long";
	if (klen == 3 && strncmp(spec, "tap", 3) == 0) {
		out->kind = BH_BK_TAP;
		if (!name_ok(arg, 15))
			return "tap:IFNAME needs an interface name of 1-15 letters, digits, '-', '_', '.'";
	} else if (klen == 4 && strncmp(spec, "pcap", 4) == 0) {
		out->kind = BH_BK_PCAP;
		if (!name_ok(arg, 15))
			return "pcap:IFNAME needs an interface name of 1-15 letters, digits, '-', '_', '.'";
	} else if (klen == 4 && strncmp(spec, "wire", 4) == 0) {
		out->kind = BH_BK_SHMLINK;
		const char *c2 = strrchr(arg, ':');
		if (c2 == NULL || (strcmp(c2, ":0") != 0 && strcmp(c2, ":1") != 0))
			return "wire:LINK:0|1 needs the end, 0 or 1, after the link name";
		out->end = c2[1] - '0';
		size_t n = (size_t)(c2 - arg);
		memcpy(out->arg, arg, n);
		out->arg[n] = '\0';
		if (!name_ok(out->arg, 64))
			return "wire:LINK:0|1 needs a link name of 1-64 letters, digits, '-', '_', '.'";
		return NULL;
	} else if (klen == 4 && strncmp(spec, "file", 4) == 0) {
		out->kind = BH_BK_FILE;
		if (arg[0] == '\0')
			return "file:PATH.pcap needs a path";
	} else {
		return "unknown driver (tap, pcap, wire or file)";
	}
	snprintf(out->arg, sizeof(out->arg), "%s", arg);
	return NULL;
}

int bh_backend_open(struct bh_backend **out, const struct bh_backend_args *a, char *err,
		    size_t errlen)
{
	static bh_backend_open_fn *const open_fn[BH_BK_COUNT] = {
	    [BH_BK_TAP] = bh_tap_open,
	    [BH_BK_PCAP] = bh_pcap_open,
	    [BH_BK_SHMLINK] = bh_shmlink_open,
	    [BH_BK_FILE] = bh_file_open,
	};
	if ((unsigned)a->spec->kind >= BH_BK_COUNT) {
		snprintf(err, errlen, "unknown backend");
		return -EINVAL;
	}
	int rc = open_fn[a->spec->kind](out, a, err, errlen);
	if (rc == 0 && (*out)->tx_max == 0)
		(*out)->tx_max = (uint32_t)a->mtu + 14u;
	return rc;
}
