/*
 * preload/sig.c - whether a blocking call a signal interrupted restarts.
 *
 * The kernel restarts a blocking socket call after a handler installed
 * with SA_RESTART and fails it with EINTR otherwise. The library sleeps
 * in ppoll, which always fails with EINTR, and does not learn which
 * signal it was; so, when one comes, it asks the kernel for every
 * signal's action and restarts only if every caught signal's handler has
 * SA_RESTART (glibc's signal(2) sets it), else returns EINTR. A signal
 * whose action is to ignore it, or the default, does not interrupt a
 * sleep at all; the synchronous ones (SIGSEGV and its kind) cannot
 * interrupt one. Nothing is interposed: the kernel's record is read
 * when it is needed, whoever installed the handlers.
 */
#include <signal.h>
#include <string.h>

#include "preload/preload.h"

bool sig_restart(void)
{
	for (int sig = 1; sig < _NSIG; sig++) {
		if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
		    sig == SIGTRAP || sig == SIGSYS || sig == SIGKILL || sig == SIGSTOP)
			continue;
		struct sigaction sa;
		if (real.sigaction(sig, NULL, &sa) != 0)
			continue;
		bool handler = (sa.sa_flags & SA_SIGINFO) ||
			       (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
		if (handler && !(sa.sa_flags & SA_RESTART))
			return false;
	}
	return true;
}
