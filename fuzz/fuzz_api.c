/*
 * libFuzzer: the request handler the HTTP server and the SCF runtime share.
 * The input is split at NUL bytes into method, path, Authorization,
 * X-Api-Key, Content-Type and body, then answered by td_api_handle over a
 * real (in-memory) SQLite store with a push key and a read key set.
 */
#include "api_fixture.h"
#include "clock.h"
#include "log.h"
#include "store.h"
#include "tokendist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *field[6] = {"GET", "/", NULL, NULL, NULL, ""};
    char *copy = malloc(size + 1);
    size_t start = 0;
    int n = 0;
    td_api_req q = {0};
    td_api_resp r;

    td_api *api = fixture_api();
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (size_t i = 0; i <= size && n < 6; i++)
        if (i == size || copy[i] == '\0') {
            field[n++] = copy + start;
            start = i + 1;
            if (n == 5) break;
        }
    q.method = field[0];
    q.path = field[1];
    q.authorization = field[2];
    q.x_api_key = field[3];
    q.content_type = field[4];
    q.body = start <= size ? copy + start : "";
    q.body_len = start <= size ? size - start : 0;
    q.content_length = (long long)q.body_len;
    q.remote = "127.0.0.1";
    td_api_handle(api, &q, &r);
    if (r.status < 200 || r.status > 599 || (r.body_len && !r.body)) __builtin_trap();
    td_api_resp_clear(&r);
    free(copy);
    return 0;
}
