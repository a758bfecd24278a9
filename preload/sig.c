/*
 * preload/sig.c - whether a blocking call a signal interrupted restarts.
 *
 * The kernel restarts a blocking socket call after a handler installed
 * with SA_RESTART and fails it with EINTR otherwise. The library sleeps
 * in ppoll, which always fails with EINTR, and does not learn which
 * signal it was; so it restarts only while every handler the program
 * installed has SA_RESTART (signal(2) in glibc sets it), and returns
 * EINTR once any handler lacks it. A signal whose action is to ignore
 * it, or the default, does not interrupt a sleep at all.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "preload/preload.h"

#define EXPORT __attribute__((visibility("default")))

/* Per signal: a handler without SA_RESTART is installed. */
static uint8_t no_restart[_NSIG];
static int n_no_restart;

static void note(int sig, const struct sigaction *act)
{
	if (sig <= 0 || sig >= _NSIG || act == NULL)
		return;
	bool handler = (act->sa_flags & SA_SIGINFO) ||
		       (act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN);
	uint8_t now = handler && !(act->sa_flags & SA_RESTART);
	__atomic_add_fetch(&n_no_restart, (int)now - (int)no_restart[sig], __ATOMIC_RELAXED);
	no_restart[sig] = now;
}

bool sig_restart(void)
{
	return __atomic_load_n(&n_no_restart, __ATOMIC_RELAXED) == 0;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int r = real.sigaction(sig, act, old);
	if (r == 0)
		note(sig, act);
	return r;
}

static sighandler_t install(int sig, sighandler_t h, int flags)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* glibc's signal(): BSD semantics, SA_RESTART. */
EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	return install(sig, h, SA_RESTART);
}

sighandler_t bsd_signal(int sig, sighandler_t h);

EXPORT sighandler_t bsd_signal(int sig, sighandler_t h)
{
	return install(sig, h, SA_RESTART);
}

EXPORT sighandler_t sysv_signal(int sig, sighandler_t h)
{
	return install(sig, h, SA_RESETHAND | SA_NODEFER);
}
