/* libFuzzer: the token record parser (POST bodies, store contents, Gitee
 * files and endpoint answers all go through it). */
#include "record.h"
#include "tokendist.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    td_record *r = NULL;

    if (td_record_parse((const char *)data, size, 1700000000, TD_RECORD_MAX_SKEW, &r, err, sizeof err) == TD_OK) {
        size_t len;
        const char *json = td_record_json(r, &len);
        td_record *back = NULL;
        /* What we serve must parse again to the same bytes. */
        if (td_record_parse(json, len, 0, -1, &back, err, sizeof err) != TD_OK ||
            strcmp(td_record_json(back, NULL), json) != 0)
            __builtin_trap();
        td_record_free(back);
        (void)td_record_field(r, "tenant_access_token");
    }
    td_record_free(r);
    return 0;
}
