/*
 * status -- the operator's page, GET /status: one self-contained HTML
 * document (inline style and script, no external asset, no framework)
 * that shows, for every token the server serves or refreshes, how much
 * of its life is left against the platform's renewal window, the last and
 * the next refresh, each sink's last delivery, recent failures and
 * alerts, the lease holder and the recent records as a timeline -- with
 * fingerprints, never a token.
 *
 * One renderer: the page is drawn here, on the server, from the facts that
 * api.c gathers (the JSON of GET /status.json).  With JavaScript off the
 * document comes with the facts drawn in and reloads itself (a meta
 * refresh); with JavaScript on, its script fetches /status.json every few
 * seconds and swaps in the part drawn from it ("html"), so both ways show
 * the same page.  With a read key configured the document comes without
 * facts: its script asks for the key, keeps it in sessionStorage and sends
 * it as Authorization: Bearer (never in the URL, which reaches logs and
 * Referer).
 *
 * The script and the style are fixed texts: the page's
 * Content-Security-Policy allows exactly them (by hash), so nothing drawn
 * from the facts can run even if escaping were ever wrong.
 */
#ifndef TD_STATUS_H
#define TD_STATUS_H

#include <jansson.h>
#include <stddef.h>

#define TD_STATUS_MAX (2u << 20)    /* a page (or its JSON) is at most this long */
#define TD_STATUS_RELOAD_S 30       /* the page without JavaScript reloads this often */
#define TD_STATUS_POLL_S 10         /* the script fetches the facts this often */

/* The whole document.  facts NULL: the document without facts, for a
 * server with read keys (keyed 1), whose script asks for the key.
 * Returns a malloc'd NUL-terminated text (*len set), NULL when out of
 * memory or over TD_STATUS_MAX. */
char *td_status_page(const json_t *facts, int keyed, size_t *len);

/* The part of the page drawn from facts (what the script swaps in). */
char *td_status_fragment(const json_t *facts, size_t *len);

/* The Content-Security-Policy header of the page: its own script and
 * style only (by their SHA-256), fetches to its own origin, no framing. */
const char *td_status_csp(void);

#endif
