/*
 * snap -- what the server serves from memory: one immutable, reference-
 * counted snapshot per token name (the record's JSON, serialised once),
 * in a table that a successful store replaces entry by entry.
 *
 * GETs read the table under a short lock and hold a reference to the
 * snapshot while its bytes are sent; a writer installs a new snapshot
 * without waiting for readers, and the old one is freed when its last
 * response is done.
 */
#ifndef TD_SNAP_H
#define TD_SNAP_H

#include "record.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define TD_SNAP_NAMES_MAX 1024      /* distinct token names kept in memory */

/* One served record: immutable once made. */
typedef struct td_snap {
    int refs;
    char *name;
    char *json;
    size_t json_len;
    int64_t generated_ts;
    int64_t expire_ts;
    char *token;            /* access_token, for /invalid reports */
    char *tenant;           /* tenant_access_token, or NULL */
    char *provider;         /* the record's "provider" ("wechat"), or NULL (the seed's: Feishu) */
    char *derived_from;     /* a ticket's token name, or NULL */
} td_snap;

/* A snapshot of a validated record's JSON text, refs 1; NULL when out of
 * memory or when json has no access_token string. */
td_snap *td_snap_new(const char *name, const char *json, size_t len, int64_t gen, int64_t exp);
void td_snap_retain(td_snap *s);
void td_snap_release(td_snap *s);   /* NULL-safe */

/* A place in the table held for a name whose record is being stored. */
typedef struct td_snap_claim {
    char name[TD_NAME_MAX + sizeof TD_TICKET_SUFFIX];
    int writers;            /* claims of this name not yet given back */
} td_snap_claim;

/* The table of served snapshots. */
typedef struct td_snaps {
    pthread_mutex_t lock;
    td_snap **v;
    size_t n;
    td_snap_claim *claims;  /* names being written */
    size_t nclaims;
} td_snaps;

void td_snaps_init(td_snaps *t);
void td_snaps_free(td_snaps *t);

/* The snapshot of name, retained (caller releases), or NULL. */
td_snap *td_snaps_get(td_snaps *t, const char *name);

/* Installs s unless the served one is newer (two writers can finish in
 * either order); consumes the caller's reference either way.  TD_ETOOBIG
 * when s would be the (TD_SNAP_NAMES_MAX + 1)-th name, counting the places
 * held by claims of other names; a claimed name always fits. */
int td_snaps_install(td_snaps *t, td_snap *s);

/* The name limit decided before a record is written, so that a name
 * refused is never stored and a name acknowledged always has its place:
 * a writer claims name, stores the record, installs it, and gives the
 * claim back (td_snaps_unclaim) whether the write succeeded or not.
 * Returns TD_OK when name is served or a place is free (held for name
 * until its last claim is given back), TD_ETOOBIG when the served names
 * and the places held for others fill the table, TD_ENOMEM. */
int td_snaps_claim(td_snaps *t, const char *name);
void td_snaps_unclaim(td_snaps *t, const char *name);

/* Calls fn for every snapshot, under the table's lock: fn must be quick
 * and must not call back into the table. */
void td_snaps_each(td_snaps *t, void (*fn)(void *ud, const td_snap *s), void *ud);

#endif
