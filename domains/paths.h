/*
 * domains/paths.h - where instances live: RUNDIR/NAME/ holds the
 * supervisor's control socket (ctl.sock), the socket applications attach
 * to (app.sock) and the log (log); wire files are RUNDIR/wire-LINK.
 *
 * RUNDIR is $BULKHEAD_RUN if set, else /run/bulkhead for root, else
 * $XDG_RUNTIME_DIR/bulkhead, else /tmp/bulkhead-UID.
 */
#ifndef BH_DOMAINS_PATHS_H
#define BH_DOMAINS_PATHS_H

#include <stdbool.h>
#include <stddef.h>

const char *bh_run_dir(void);
/* RUNDIR/NAME/FILE (FILE may be empty); -ENAMETOOLONG if it does not fit. */
int bh_inst_path(char *out, size_t n, const char *name, const char *file);
/* Instance names: 1-32 of letters, digits, '-', '_', '.', not "." or "..". */
bool bh_name_ok(const char *name);

#endif /* BH_DOMAINS_PATHS_H */
