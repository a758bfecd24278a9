/*
 * domains/sandbox.h - least privilege for a running domain process.
 *
 * Once a domain has attached everything it was handed (regions mapped,
 * its own ring pages made writable, the TAP or pcap handle open, the
 * poller thread started), it needs no new files, sockets, processes or
 * privileges. bh_sandbox_enter() then:
 *
 *   1. drops every capability (bounding set, then effective, permitted
 *      and inheritable): the driver's backend was opened already;
 *   2. sets no_new_privs;
 *   3. loads a seccomp filter (libseccomp) that allows only the system
 *      calls the domains make while running, and kills the process on
 *      any other (SIGSYS, which the supervisor sees and restarts):
 *      no open, socket, connect, bind, exec, fork, ptrace; mprotect only
 *      without PROT_WRITE or PROT_EXEC (a read-only page of a shared
 *      region stays read-only); mmap never executable.
 *
 * The list is one for all four domains (mono runs them in one process);
 * the socket server's extra calls (accept4, sendmsg with descriptors,
 * memfd_create for application regions) are allowed to the others too.
 *
 * Under AddressSanitizer and ThreadSanitizer the filter is not loaded:
 * their runtimes make calls of their own at any time (the leak checker
 * traces the process at exit); capabilities and no_new_privs still go.
 * Returns 0, or -errno with a message in err.
 */
#ifndef BH_DOMAINS_SANDBOX_H
#define BH_DOMAINS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* Before any thread starts: one malloc arena, so no thread ever needs
 * a writable mprotect to grow its own. */
void bh_sandbox_prepare(void);
int bh_sandbox_enter(char *err, size_t errlen);
/* Capabilities and no_new_privs are per thread: each thread the domain
 * starts drops its capabilities and sets no_new_privs first (the seccomp
 * filter then reaches every thread). */
int bh_sandbox_thread(void);
/* Whether this build loads the seccomp filter. */
bool bh_sandbox_filters(void);

#endif /* BH_DOMAINS_SANDBOX_H */
