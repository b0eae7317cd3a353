/*
 * libFuzzer: what clients write about addresses and names -- the
 * X-Forwarded-For / X-Real-IP values behind a trusted proxy, and the Host
 * header -- and what operators write in --trusted-proxy / --allowed-host.
 * The input is split at NUL bytes into a CIDR setting, the TCP peer,
 * X-Forwarded-For, X-Real-IP and Host.
 */
#include "host.h"
#include "peer.h"
#include "tokendist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *field[5] = {"127.0.0.0/8", "127.0.0.1", NULL, NULL, "localhost"};
    char *copy = malloc(size + 1), out[TD_PEER_ADDR_LEN], err[512];
    char *cidr_v[2] = {NULL, "::1/128"};
    td_strlist cidrs = {cidr_v, 2};
    td_peer_trust t;
    const char *header;
    td_host_rule h;
    td_peer_addr a;
    size_t start = 0;
    int n = 0;

    memcpy(copy, data, size);
    copy[size] = '\0';
    for (size_t i = 0; i <= size && n < 5; i++)
        if (i == size || copy[i] == '\0') {
            field[n++] = copy + start;
            start = i + 1;
        }
    cidr_v[0] = (char *)field[0];
    /* Every --real-ip-header mode (unset too), chosen by the data. */
    header = !size ? NULL : data[size - 1] % 3 == 0 ? "X-Real-IP" : data[size - 1] % 3 == 1 ? "X-Forwarded-For" : NULL;
    if (td_peer_trust_init(&t, &cidrs, header, err, sizeof err) != TD_OK) {
        if (!err[0]) __builtin_trap();          /* a refusal says why */
        cidrs.n = 0;
        cidr_v[0] = NULL;
        td_peer_trust_init(&t, &cidrs, header, err, sizeof err);
    }
    {
        const char *c = td_peer_client(&t, field[1], field[2], field[3], out);
        /* The client is the peer itself or an address we wrote: never the
         * client's own bytes. */
        if (c != field[1] && (c != out || !td_peer_parse(out, strlen(out), &a))) __builtin_trap();
    }
    if (td_host_name_check(field[4], err, sizeof err) == TD_OK) {
        td_strlist names = {(char **)&field[4], 1};
        if (td_host_rule_init(&h, &names, 0) != TD_OK) __builtin_trap();
        if (field[4][0] && !strchr(field[4], ':') && !td_host_allowed(&h, field[4])) __builtin_trap();
        td_host_rule_free(&h);
    }
    if (td_host_rule_init(&h, NULL, 1) == TD_OK) {
        (void)td_host_allowed(&h, field[4]);
        td_host_rule_free(&h);
    }
    td_peer_trust_free(&t);
    free(copy);
    return 0;
}
