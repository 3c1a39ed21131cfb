/* Thread-local error messages and status names. */
#include "base.h"

#include <stdlib.h>

#define KN_MSG_CAP 2048
static _Thread_local char kn_msg[KN_MSG_CAP];

kiln_status kn_error(kiln_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kn_msg, sizeof kn_msg, fmt, ap);
    va_end(ap);
    return code;
}

kiln_status kn_error_context(kiln_status code, const char *fmt, ...) {
    char prefix[512], old[KN_MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, kn_msg, sizeof old);
    size_t n = strlen(prefix);
    memcpy(kn_msg, prefix, n);
    if (n + 2 < sizeof kn_msg) {
        kn_msg[n] = ':';
        kn_msg[n + 1] = ' ';
        size_t room = sizeof kn_msg - n - 3;
        size_t m = strlen(old);
        if (m > room) m = room;
        memcpy(kn_msg + n + 2, old, m);
        kn_msg[n + 2 + m] = 0;
    } else {
        kn_msg[sizeof kn_msg - 1] = 0;
    }
    return code;
}

void kn_clear_error(void) { kn_msg[0] = 0; }

const char *kiln_last_error(void) { return kn_msg; }

static const char *const kn_status_names[] = {
    [KILN_OK] = "KILN_OK",
    [KILN_ERR_INVALID_ARGUMENT] = "KILN_ERR_INVALID_ARGUMENT",
    [KILN_ERR_NOT_FOUND] = "KILN_ERR_NOT_FOUND",
    [KILN_ERR_PARSE] = "KILN_ERR_PARSE",
    [KILN_ERR_UNSUPPORTED] = "KILN_ERR_UNSUPPORTED",
    [KILN_ERR_SHAPE] = "KILN_ERR_SHAPE",
    [KILN_ERR_DTYPE] = "KILN_ERR_DTYPE",
    [KILN_ERR_OUT_OF_MEMORY] = "KILN_ERR_OUT_OF_MEMORY",
    [KILN_ERR_IO] = "KILN_ERR_IO",
    [KILN_ERR_DEVICE] = "KILN_ERR_DEVICE",
    [KILN_ERR_VERSION] = "KILN_ERR_VERSION",
    [KILN_ERR_CORRUPT] = "KILN_ERR_CORRUPT",
    [KILN_ERR_INTERNAL] = "KILN_ERR_INTERNAL",
};
_Static_assert(sizeof kn_status_names / sizeof kn_status_names[0] == KILN_STATUS_COUNT,
               "every status needs a name");

const char *kiln_status_name(kiln_status status) {
    if ((int)status < 0 || status >= KILN_STATUS_COUNT) return "KILN_STATUS_UNKNOWN";
    return kn_status_names[status];
}

const char *kiln_version(void) { return KILN_VERSION_STRING; }

void kiln_free(void *ptr) { free(ptr); }
