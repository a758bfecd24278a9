/*
 * domains/paths.c - run directory and instance paths. See paths.h.
 */
#include "domains/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *bh_run_dir(void)
{
	static char dir[200];
	if (dir[0])
		return dir;
	const char *env = getenv("BULKHEAD_RUN");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (env && env[0])
		snprintf(dir, sizeof(dir), "%s", env);
	else if (geteuid() == 0)
		snprintf(dir, sizeof(dir), "/run/bulkhead");
	else if (xdg && xdg[0])
		snprintf(dir, sizeof(dir), "%s/bulkhead", xdg);
	else
		snprintf(dir, sizeof(dir), "/tmp/bulkhead-%u", (unsigned)geteuid());
	return dir;
}

int bh_inst_path(char *out, size_t n, const char *name, const char *file)
{
	int k = snprintf(out, n, "%s/%s%s%s", bh_run_dir(), name, file[0] ? "/" : "", file);
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

bool bh_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 32 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}
