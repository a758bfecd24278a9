/*
 * apps/apps.h - applications over the client library (apps/).
 */
#ifndef BH_APPS_APPS_H
#define BH_APPS_APPS_H

/* argv[0] is the command name. */
int bh_cmd_serve(int argc, char **argv);
int bh_cmd_get(int argc, char **argv);
int bh_cmd_nc(int argc, char **argv);
int bh_cmd_loadgen(int argc, char **argv);

#endif /* BH_APPS_APPS_H */
