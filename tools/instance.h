/*
 * tools/instance.h - the instance commands (instance.c).
 */
#ifndef BH_TOOLS_INSTANCE_H
#define BH_TOOLS_INSTANCE_H

/* argv[0] is the command name. `exe` is this program, for the domains. */
int bh_cmd_up(int argc, char **argv, const char *exe);
int bh_cmd_down(int argc, char **argv);
/* status, stats, conns */
int bh_cmd_query(int argc, char **argv);
int bh_cmd_logs(int argc, char **argv);
int bh_cmd_inject(int argc, char **argv);
/* run.c: `bulkhead run NAME [--host-fallback] [--] CMD [ARGS...]`. */
int bh_cmd_run(int argc, char **argv);

#endif /* BH_TOOLS_INSTANCE_H */
