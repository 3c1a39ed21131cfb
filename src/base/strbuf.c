/* A growable string for reports and dumps. */
#include "base.h"

#include <stdlib.h>

static int kn_sb_reserve(kn_strbuf *sb, size_t extra) {
    if (sb->failed) return 0;
    if (sb->len + extra + 1 <= sb->cap) return 1;
    size_t ncap = sb->cap ? sb->cap : 256;
    while (ncap < sb->len + extra + 1) ncap *= 2;
    char *p = realloc(sb->data, ncap);
    if (!p) {
        sb->failed = 1;
        return 0;
    }
    sb->data = p;
    sb->cap = ncap;
    return 1;
}

void kn_sb_printf(kn_strbuf *sb, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && kn_sb_reserve(sb, (size_t)n)) {
        vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap2);
        sb->len += (size_t)n;
    }
    va_end(ap2);
}

void kn_sb_puts(kn_strbuf *sb, const char *s) {
    size_t n = strlen(s);
    if (!kn_sb_reserve(sb, n)) return;
    memcpy(sb->data + sb->len, s, n + 1);
    sb->len += n;
}

void kn_sb_json_str(kn_strbuf *sb, const char *s) {
    kn_sb_puts(sb, "\"");
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') kn_sb_printf(sb, "\\%c", c);
        else if (c < 0x20) kn_sb_printf(sb, "\\u%04x", c);
        else kn_sb_printf(sb, "%c", c);
    }
    kn_sb_puts(sb, "\"");
}

kiln_status kn_sb_finish(kn_strbuf *sb, char **out) {
    *out = NULL;
    if (sb->failed || !kn_sb_reserve(sb, 0)) {
        kn_sb_free(sb);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory building a text report");
    }
    sb->data[sb->len] = 0;
    *out = sb->data;
    sb->data = NULL;
    sb->len = sb->cap = 0;
    return KILN_OK;
}

void kn_sb_free(kn_strbuf *sb) {
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}
