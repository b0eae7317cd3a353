/*
 * cmd -- the subcommands of the tokendist binary.  Each takes the argv
 * that follows the command word (argv[0] is the command's name) and
 * returns the process exit code.
 */
#ifndef TD_CMD_H
#define TD_CMD_H

#include "config.h"
#include "tokendist.h"

#include <stdio.h>

/* Exit codes shared by all commands. */
enum {
    TD_EXIT_OK = 0,
    TD_EXIT_FAIL = 1,       /* the command ran and failed */
    TD_EXIT_USAGE = 2,      /* bad flags or settings */
};

int td_cmd_serve(int argc, char **argv);
int td_cmd_scf(int argc, char **argv);
int td_cmd_get(int argc, char **argv);
int td_cmd_files(int argc, char **argv);

/* Shared by get and files (cmd_get.c): a client made from the settings
 * (err says which setting is wrong), the exit code of a client error,
 * the seed's one-line advice for it, and what the user should know about
 * a token that was found (a later source served it; the cache file was
 * not written). */
struct td_client;
int td__client_from_config(const td_config *c, struct td_client **out, char *err, size_t errlen);
int td__client_exit_code(int rc);
void td__client_explain(int rc, td_source failed, FILE *f);
void td__client_tell(struct td_client *cl, FILE *f);
int td_cmd_refresh(int argc, char **argv);
int td_cmd_check(int argc, char **argv);
int td_cmd_keygen(int argc, char **argv);

/* The store and the request handler as the settings say, with a shared
 * store's changes flowing into the served snapshots: how both front doors
 * (serve, scf-runtime) start.  listen is the HTTP front's address (NULL
 * for scf-runtime, which listens nowhere): on the loopback, the handler's
 * Host rule is on.  On failure err says which step failed and nothing is
 * left open; td_cmd_close_api undoes it (NULL-safe). */
struct td_store;
struct td_api;
int td_cmd_open_api(const td_config *c, const char *listen, struct td_store **store,
                    struct td_api **api, char *err, size_t errlen);
void td_cmd_close_api(struct td_store *store, struct td_api *api);

/* The refresher inside a front door (serve, scf-runtime), when Feishu
 * credentials are set: it writes straight into the server's store (and to
 * any other enabled sink).  Of several servers sharing a store, only the
 * lease holder fetches; the others serve what it writes.  The fleet
 * carries /invalid reports and overdue renewals to the holder -- also from
 * a server without credentials of its own -- and the API's hooks (fresh
 * on read, /readyz) point into it.  Stop it after the front door. */
#include "fleet.h"
#include "sink.h"
typedef struct td_cmd_refresher {
    td_fleet *fleet;
    struct td_token_conf *tokens;   /* tokens.h: what c configures */
    size_t n;
    td_sinks *sinks;                /* one list per token */
    td_refresher **r;               /* one per token; n == 0 without credentials */
} td_cmd_refresher;
/* me: where this server listens (NULL for scf-runtime, which does not
 * know its address): a sink that is this server itself is dropped
 * (td_sinks_drop_self), and the notice shows where to get the token even
 * without TOKENDIST_PUBLIC_URL and TENCENT_CLOUD_API_URL
 * (td_endpoint_own_url). */
int td_cmd_refresher_start(td_cmd_refresher *s, const td_config *c, struct td_store *store, struct td_api *api,
                           const td_endpoint_self *me);
void td_cmd_refresher_stop(td_cmd_refresher *s);

/* Loads settings for cmd and handles --help and --print-config; returns -1
 * when the command should go on, else the exit code to return (a bad
 * setting: TD_EXIT_USAGE, its message printed).  Logs the settings'
 * warnings (misspelt variable names) and sets the process time zone.
 * main.c. */
int td_cmd_config(td_config *c, unsigned cmd, int argc, char **argv);

/* Prints cmd's --help: usage line, what it does, its options, its exit
 * codes.  main.c. */
void td_cmd_usage(unsigned cmd, FILE *f);

/* The checks of a front door's settings that the settings table cannot
 * make alone (tokens.h, sink.h), run before anything starts: TD_EINVAL
 * with err naming what to fix.  Half-configured Feishu credentials are
 * not an error here: they are logged as a warning naming the missing half
 * and dropped, and the server runs without refreshing. */
int td_cmd_check_front_settings(td_config *c, char *err, size_t errlen);

#endif
