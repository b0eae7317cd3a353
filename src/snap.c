/* snap -- see snap.h. */
#include "snap.h"
#include "tokendist.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void td_snap_retain(td_snap *s) { __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED); }

void td_snap_release(td_snap *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    free(s->name);
    free(s->json);
    free(s->token);
    free(s->tenant);
    free(s->provider);
    free(s->derived_from);
    free(s);
}

td_snap *td_snap_new(const char *name, const char *json, size_t len, int64_t gen, int64_t exp)
{
    td_snap *s = calloc(1, sizeof *s);
    json_t *o = NULL;
    const char *tok, *ten, *prov, *from;

    if (!s) return NULL;
    s->refs = 1;
    s->generated_ts = gen;
    s->expire_ts = exp;
    s->json_len = len;
    if (!(s->name = strdup(name)) || !(s->json = malloc(len + 1))) goto fail;
    memcpy(s->json, json, len);
    s->json[len] = '\0';
    o = json_loadb(json, len, 0, NULL);
    if (!(tok = json_string_value(json_object_get(o, "access_token"))) || !(s->token = strdup(tok)))
        goto fail;
    if ((ten = json_string_value(json_object_get(o, "tenant_access_token"))) && !(s->tenant = strdup(ten)))
        goto fail;
    if ((prov = json_string_value(json_object_get(o, "provider"))) && !(s->provider = strdup(prov)))
        goto fail;
    if ((from = json_string_value(json_object_get(o, "derived_from"))) && !(s->derived_from = strdup(from)))
        goto fail;
    json_decref(o);
    return s;
fail:
    json_decref(o);
    td_snap_release(s);
    return NULL;
}

void td_snaps_init(td_snaps *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
}

void td_snaps_free(td_snaps *t)
{
    for (size_t i = 0; i < t->n; i++) td_snap_release(t->v[i]);
    free(t->v);
    free(t->claims);
    pthread_mutex_destroy(&t->lock);
    memset(t, 0, sizeof *t);
}

static td_snap **slot_of(td_snaps *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i]->name, name)) return &t->v[i];
    return NULL;
}

td_snap *td_snaps_get(td_snaps *t, const char *name)
{
    td_snap **slot, *s = NULL;

    pthread_mutex_lock(&t->lock);
    if ((slot = slot_of(t, name))) td_snap_retain(s = *slot);
    pthread_mutex_unlock(&t->lock);
    return s;
}

static td_snap_claim *claim_of(td_snaps *t, const char *name)
{
    for (size_t i = 0; i < t->nclaims; i++)
        if (!strcmp(t->claims[i].name, name)) return &t->claims[i];
    return NULL;
}

/* Places held by claims for names not served yet (lock held).  Claims are
 * few (one per writer at work), so they are counted, not kept counted. */
static size_t held_places(td_snaps *t)
{
    size_t k = 0;
    for (size_t i = 0; i < t->nclaims; i++)
        if (!slot_of(t, t->claims[i].name)) k++;
    return k;
}

int td_snaps_install(td_snaps *t, td_snap *s)
{
    td_snap **slot, *old = NULL;
    int rc = TD_OK;

    pthread_mutex_lock(&t->lock);
    if ((slot = slot_of(t, s->name))) {
        /* The same record again (a reload) keeps the served snapshot, and
         * with it the HTTP front's cached response. */
        int same = (*slot)->generated_ts == s->generated_ts && (*slot)->json_len == s->json_len &&
                   !memcmp((*slot)->json, s->json, s->json_len);
        if (!same && (*slot)->generated_ts <= s->generated_ts) old = *slot, *slot = s, s = NULL;
    } else if (claim_of(t, s->name) || t->n + held_places(t) < TD_SNAP_NAMES_MAX) {
        /* A claimed name takes the place held for it. */
        td_snap **v = realloc(t->v, (t->n + 1) * sizeof *v);
        if (v) t->v = v, v[t->n++] = s, s = NULL;
        else rc = TD_ENOMEM;
    } else {
        rc = TD_ETOOBIG;
    }
    pthread_mutex_unlock(&t->lock);
    td_snap_release(old);
    td_snap_release(s);
    return rc;
}

int td_snaps_claim(td_snaps *t, const char *name)
{
    td_snap_claim *c;
    int rc = TD_OK;

    if (strlen(name) >= sizeof c->name) return TD_EINVAL;
    pthread_mutex_lock(&t->lock);
    if ((c = claim_of(t, name))) {
        c->writers++;
    } else if (!slot_of(t, name) && t->n + held_places(t) >= TD_SNAP_NAMES_MAX) {
        rc = TD_ETOOBIG;
    } else if ((c = realloc(t->claims, (t->nclaims + 1) * sizeof *c))) {
        t->claims = c;
        c = &t->claims[t->nclaims++];
        snprintf(c->name, sizeof c->name, "%s", name);
        c->writers = 1;
    } else {
        rc = TD_ENOMEM;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void td_snaps_unclaim(td_snaps *t, const char *name)
{
    td_snap_claim *c;

    pthread_mutex_lock(&t->lock);
    if ((c = claim_of(t, name)) && --c->writers == 0) *c = t->claims[--t->nclaims];
    pthread_mutex_unlock(&t->lock);
}

void td_snaps_each(td_snaps *t, void (*fn)(void *ud, const td_snap *s), void *ud)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n; i++) fn(ud, t->v[i]);
    pthread_mutex_unlock(&t->lock);
}
