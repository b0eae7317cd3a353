/*
 * get_token -- the smallest useful libtokendist program: get the tenant
 * token, call Feishu with it, and report it when Feishu says it is
 * invalid.
 *
 *   cc get_token.c $(pkg-config --cflags --libs tokendist) -o get_token
 *   ./get_token https://your-api-gateway-url/release/get-token [READ_KEY]
 *
 * It prints where the token came from and how long it has left, never
 * the token itself (tokens are secrets: keep them out of logs).
 */
#include <tokendist.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    td_client_opts *opts;
    td_client *client = NULL;
    td_token *tok = NULL;       /* ours once td_client_get returns; td_free it */
    char err[4096];
    int rc;

    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [READ_KEY]\n", argv[0]);
        return 2;
    }
    /* Options are set one by one; a failed setter is reported by
     * td_client_new, so checking there is enough. */
    opts = td_client_opts_new();
    td_client_opts_set_str(opts, TD_OPT_URL, argv[1]);
    if (argc > 2) td_client_opts_set_str(opts, TD_OPT_READ_KEY, argv[2]);
    td_client_opts_set_long(opts, TD_OPT_MIN_REMAINING, 300);  /* refuse a token with 5 minutes or less left */
    rc = td_client_new(&client, opts, err, sizeof err);
    td_client_opts_free(opts);
    if (rc != TD_OK) {
        fprintf(stderr, "tokendist: %s\n", err);
        return 2;
    }
    if ((rc = td_client_get(client, TD_TOKEN_TENANT, &tok, err, sizeof err)) != TD_OK) {
        fprintf(stderr, "❌ %s (%s)\n", err, td_strerror(rc));
        td_client_free(client);
        return 1;
    }
    printf("got a tenant token from %s: %lld seconds left (libtokendist %s)\n", td_source_name(tok->origin),
           (long long)tok->remaining, td_version());

    /* ... call Feishu with "Authorization: Bearer <tok->token>" ...
     * If Feishu answers code 99991663, 99991664, 99991668 or 99991671, the token is
     * no good: report it, and the next td_client_get fetches a new one. */
    if (argc > 3 && (rc = td_client_report_invalid(client, tok->token, err, sizeof err)) != TD_OK)
        fprintf(stderr, "report: %s\n", err);

    td_free(tok);
    td_client_free(client);
    return 0;
}
