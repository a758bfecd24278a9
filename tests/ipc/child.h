/*
 * tests/ipc/child.h - run a function in a child process and report the
 * signal that ended it: how the tests show that a stray write faults in
 * the writer (and only there).
 */
#ifndef BH_TESTS_CHILD_H
#define BH_TESTS_CHILD_H

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Returns the signal that ended fn(arg) in a child, 0 if none, -1 if the
 * child could not be made or waited for. */
static inline int bh_test_child_signal(void (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* The kernel's verdict, not a sanitizer's handler's. */
		signal(SIGSEGV, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

#endif /* BH_TESTS_CHILD_H */
