/*
 * supervisor/ctlsock.h - the transport the supervisor and the commands
 * share: UNIX sockets under the instance's directory (ctl.sock, app.sock)
 * and one-line messages (a control request, a ready report, up's report).
 */
#ifndef BH_SUPERVISOR_CTLSOCK_H
#define BH_SUPERVISOR_CTLSOCK_H

#include <stddef.h>
#include <sys/types.h>

/* A connected socket of `type` to path, or -errno. */
int bh_unix_connect(const char *path, int type);
/* A listening, non-blocking socket of `type` at path (replacing what is
 * there) with file mode `mode`, or -errno. */
int bh_unix_listen(const char *path, int type, mode_t mode);

/* Reads one line, up to '\n', end of file or timeout_ms in all, into buf
 * (cap bytes, NUL-terminated, without the newline). Returns its length,
 * or -ETIMEDOUT if the time ran out first with no line and no end of
 * file. */
ssize_t bh_read_line(int fd, char *buf, size_t cap, int timeout_ms);

#endif /* BH_SUPERVISOR_CTLSOCK_H */
