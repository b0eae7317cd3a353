/*
 * cmd_keygen -- `tokendist keygen`: print a new share key for
 * TOKENDIST_SHARE_KEY (seal.h), the one that seals the Gitee copy.
 *
 * The key goes to stdout only, for `KEY=$(tokendist keygen)` or a redirect
 * into the env-file; nothing else is printed on success.
 */
#include "cmd.h"
#include "seal.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("Usage: tokendist keygen\n\n"
          "Prints a new share key: 32 random bytes in base64, for TOKENDIST_SHARE_KEY.  With it set on the\n"
          "refresher and on the clients, the Gitee copy of the token is sealed (AES-256-GCM): who can read\n"
          "the repository but has no key learns nothing.  Rotate by listing the new key first and the old\n"
          "one after it (TOKENDIST_SHARE_KEY=NEW,OLD); see docs/protocol.md.\n\n"
          "Options:\n"
          "  --help                     show this help\n", f);
}

int td_cmd_keygen(int argc, char **argv)
{
    char key[TD_SEAL_KEY_B64], err[256];
    int ex;

    if (argc > 1) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
            usage(stdout);
            return TD_EXIT_OK;
        }
        fprintf(stderr, "tokendist keygen: unexpected argument '%s' (see tokendist keygen --help)\n", argv[1]);
        return TD_EXIT_USAGE;
    }
    if (td_seal_keygen(key, err, sizeof err) != TD_OK) {
        fprintf(stderr, "tokendist keygen: %s\n", err);
        return TD_EXIT_FAIL;
    }
    printf("%s\n", key);
    ex = fflush(stdout) == 0 ? TD_EXIT_OK : TD_EXIT_FAIL;
    memset(key, 0, sizeof key);
    return ex;
}
