/* NumPy .npy read and write. The header is a Python dict literal:
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces to a multiple of 64 bytes and ended by '\n' (NEP 1 / numpy.lib.format). */
#include "npy.h"

#include "base/base.h"

#include <errno.h>
#include <stdlib.h>

static const unsigned char kn_npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static const struct {
    kiln_dtype dtype;
    const char *descr; /* what numpy.save writes */
} kn_npy_types[] = {
    {KILN_F32, "<f4"}, {KILN_F16, "<f2"}, {KILN_F64, "<f8"}, {KILN_I64, "<i8"},
    {KILN_I32, "<i4"}, {KILN_I8, "|i1"},  {KILN_U8, "|u1"},  {KILN_BOOL, "|b1"},
};
#define KN_NPY_NTYPES ((int)(sizeof kn_npy_types / sizeof kn_npy_types[0]))

const char *kiln_npy_descr(kiln_dtype dtype) {
    for (int i = 0; i < KN_NPY_NTYPES; i++)
        if (kn_npy_types[i].dtype == dtype) return kn_npy_types[i].descr;
    return NULL;
}

/* Maps a descr to a kiln dtype. Byte order: '<' or '=' (this host is little-endian) for wide
 * types; '|', '<' or '=' for one-byte types. */
static kiln_status kn_npy_dtype(const char *descr, const char *what, kiln_dtype *out) {
    size_t n = strlen(descr);
    if (n >= 2 && descr[0] == '>' && strcmp(descr + 1, "i1") && strcmp(descr + 1, "u1") && strcmp(descr + 1, "b1"))
        return kn_error(KILN_ERR_UNSUPPORTED,
                        "%s: dtype '%s' is big-endian; kiln reads little-endian arrays (save it with "
                        ".astype('<%s'))", what, descr, descr + 1);
    if (n >= 2 && (descr[0] == '<' || descr[0] == '=' || descr[0] == '|' || descr[0] == '>')) {
        for (int i = 0; i < KN_NPY_NTYPES; i++) {
            const char *d = kn_npy_types[i].descr;
            int one_byte = d[0] == '|';
            if (strcmp(descr + 1, d + 1)) continue;
            if (!one_byte && descr[0] == '|') break;
            *out = kn_npy_types[i].dtype;
            return KILN_OK;
        }
    }
    if (!strcmp(descr, "bfloat16") || !strcmp(descr, "<V2") || !strcmp(descr, "|V2"))
        return kn_error(KILN_ERR_UNSUPPORTED, "%s: dtype '%s' looks like bfloat16, which NumPy .npy has no "
                        "standard dtype for; save it as float32", what, descr);
    return kn_error(KILN_ERR_UNSUPPORTED,
                    "%s: dtype '%s' is not one kiln reads (<f4 <f2 <f8 <i8 <i4 |i1 |u1 |b1)", what, descr);
}

/* ---- a small reader for the header's dict literal ---------------------------------------------- */

typedef struct kn_npy_lex {
    const char *p, *end;
} kn_npy_lex;

static void kn_npy_ws(kn_npy_lex *l) {
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r')) l->p++;
}

static int kn_npy_eat(kn_npy_lex *l, char c) {
    kn_npy_ws(l);
    if (l->p < l->end && *l->p == c) {
        l->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (what numpy writes). */
static int kn_npy_str(kn_npy_lex *l, char *buf, size_t cap) {
    kn_npy_ws(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"')) return 0;
    char q = *l->p++;
    size_t n = 0;
    while (l->p < l->end && *l->p != q) {
        if (*l->p == '\\' || n + 1 >= cap) return 0;
        buf[n++] = *l->p++;
    }
    if (l->p >= l->end) return 0;
    l->p++;
    buf[n] = 0;
    return 1;
}

static int kn_npy_word(kn_npy_lex *l, const char *w) {
    kn_npy_ws(l);
    size_t n = strlen(w);
    if ((size_t)(l->end - l->p) < n || memcmp(l->p, w, n)) return 0;
    l->p += n;
    return 1;
}

/* "(2, 3)", "(3,)", "()" */
static kiln_status kn_npy_shape(kn_npy_lex *l, const char *what, int *rank, int64_t *dims) {
    if (!kn_npy_eat(l, '(')) return kn_error(KILN_ERR_PARSE, "%s: the header's 'shape' is not a tuple", what);
    *rank = 0;
    for (;;) {
        if (kn_npy_eat(l, ')')) return KILN_OK;
        kn_npy_ws(l);
        if (l->p >= l->end || *l->p < '0' || *l->p > '9')
            return kn_error(KILN_ERR_PARSE, "%s: the header's 'shape' holds something other than non-negative integers", what);
        int64_t v = 0;
        while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return kn_error(KILN_ERR_PARSE, "%s: a dim in the header's 'shape' is too large", what);
            v = v * 10 + (*l->p++ - '0');
        }
        kn_npy_ws(l);
        if (l->p < l->end && *l->p == 'L') l->p++; /* Python 2 longs */
        if (*rank >= KILN_MAX_RANK)
            return kn_error(KILN_ERR_UNSUPPORTED, "%s: the array has more than %d dims", what, KILN_MAX_RANK);
        dims[(*rank)++] = v;
        if (kn_npy_eat(l, ',')) continue;
        if (kn_npy_eat(l, ')')) return KILN_OK;
        return kn_error(KILN_ERR_PARSE, "%s: the header's 'shape' is malformed", what);
    }
}

kiln_status kiln_npy_parse(const void *buf, size_t size, const char *what, kiln_npy *out) {
    if (!out) return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!what) what = "the .npy data";
    const unsigned char *b = buf;
    if (!b || size < 10 || memcmp(b, kn_npy_magic, 6))
        return kn_error(KILN_ERR_PARSE, "%s: not a NumPy .npy file (no \\x93NUMPY magic)", what);
    int major = b[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return kn_error(KILN_ERR_CORRUPT, "%s: truncated .npy header", what);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hstart = 12;
    } else {
        return kn_error(KILN_ERR_VERSION, "%s: .npy format version %d.%d is not one kiln reads (1.0, 2.0, 3.0)",
                        what, major, b[7]);
    }
    if (hlen > size - hstart) return kn_error(KILN_ERR_CORRUPT, "%s: truncated .npy header", what);

    kn_npy_lex l = {(const char *)b + hstart, (const char *)b + hstart + hlen};
    char descr[32] = {0};
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    kiln_status st;
    if (!kn_npy_eat(&l, '{')) return kn_error(KILN_ERR_PARSE, "%s: the .npy header is not a dict", what);
    for (;;) {
        if (kn_npy_eat(&l, '}')) break;
        char key[32];
        if (!kn_npy_str(&l, key, sizeof key) || !kn_npy_eat(&l, ':'))
            return kn_error(KILN_ERR_PARSE, "%s: the .npy header dict is malformed", what);
        if (!strcmp(key, "descr")) {
            if (!kn_npy_str(&l, descr, sizeof descr))
                return kn_error(KILN_ERR_UNSUPPORTED, "%s: the header's 'descr' is not a simple dtype string "
                                "(structured arrays are not supported)", what);
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (kn_npy_word(&l, "True")) fortran = 1;
            else if (kn_npy_word(&l, "False")) fortran = 0;
            else return kn_error(KILN_ERR_PARSE, "%s: the header's 'fortran_order' is not True or False", what);
            have_order = 1;
        } else if (!strcmp(key, "shape")) {
            if ((st = kn_npy_shape(&l, what, &out->rank, out->dims)) != KILN_OK) return st;
            have_shape = 1;
        } else {
            return kn_error(KILN_ERR_PARSE, "%s: unknown key '%s' in the .npy header", what, key);
        }
        if (kn_npy_eat(&l, ',')) continue;
        if (kn_npy_eat(&l, '}')) break;
        return kn_error(KILN_ERR_PARSE, "%s: the .npy header dict is malformed", what);
    }
    if (!have_descr || !have_order || !have_shape)
        return kn_error(KILN_ERR_PARSE, "%s: the .npy header lacks '%s'", what,
                        !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if ((st = kn_npy_dtype(descr, what, &out->dtype)) != KILN_OK) return st;
    if (fortran) {
        int nontrivial = 0;
        for (int i = 0; i < out->rank; i++) nontrivial += out->dims[i] > 1;
        if (nontrivial > 1)
            return kn_error(KILN_ERR_UNSUPPORTED, "%s: the array is in Fortran order; kiln reads C order "
                            "(save np.ascontiguousarray(a))", what);
    }
    size_t esize = kiln_dtype_size(out->dtype);
    size_t count = 1;
    for (int i = 0; i < out->rank; i++) {
        if (out->dims[i] && count > SIZE_MAX / esize / (size_t)out->dims[i])
            return kn_error(KILN_ERR_PARSE, "%s: the array's size overflows", what);
        count *= (size_t)out->dims[i];
    }
    size_t bytes = count * esize, have = size - hstart - hlen;
    if (have < bytes)
        return kn_error(KILN_ERR_CORRUPT, "%s: truncated: the header promises %zu data bytes, the file holds %zu",
                        what, bytes, have);
    if (have > bytes)
        return kn_error(KILN_ERR_CORRUPT, "%s: %zu bytes follow the array's %zu data bytes", what, have - bytes, bytes);
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data) return kn_error(KILN_ERR_OUT_OF_MEMORY, "%s: out of host memory (%zu bytes)", what, bytes);
    memcpy(out->data, b + hstart + hlen, bytes);
    out->bytes = bytes;
    if (out->dtype == KILN_BOOL) /* numpy bools are 0/1; anything else is normalized */
        for (size_t i = 0; i < bytes; i++) ((unsigned char *)out->data)[i] = ((unsigned char *)out->data)[i] != 0;
    return KILN_OK;
}

kiln_status kiln_npy_read(const char *path, kiln_npy *out) {
    if (!out) return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_read: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return kn_error(errno == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t size = 0, cap = 0;
    kiln_status st = KILN_OK;
    for (;;) {
        if (size == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            char *nb = realloc(buf, ncap);
            if (!nb) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "%s: out of host memory reading it", path); break; }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + size, 1, cap - size, f);
        size += n;
        if (n == 0) {
            if (ferror(f)) st = kn_error(KILN_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (st == KILN_OK) st = kiln_npy_parse(buf, size, path, out);
    free(buf);
    return st;
}

void kiln_npy_free(kiln_npy *npy) {
    if (!npy) return;
    free(npy->data);
    memset(npy, 0, sizeof *npy);
}

kiln_status kiln_npy_encode(kiln_dtype dtype, int rank, const int64_t *dims, const void *data, void **out,
                            size_t *out_size) {
    if (!out || !out_size) return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_encode: out is NULL");
    *out = NULL;
    *out_size = 0;
    const char *descr = kiln_npy_descr(dtype);
    if (!descr)
        return kn_error(KILN_ERR_UNSUPPORTED, "element type %s has no NumPy dtype%s", kiln_dtype_name(dtype),
                        dtype == KILN_BF16 ? " (NumPy has no bfloat16; convert it to f32 first)" : "");
    if (rank < 0 || rank > KILN_MAX_RANK || (rank && !dims))
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_encode: rank %d is outside 0..%d", rank, KILN_MAX_RANK);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t count = 1, esize = kiln_dtype_size(dtype);
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_encode: dim %d is negative", i);
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)dims[i],
                      rank == 1 ? "," : i + 1 < rank ? ", " : "");
        if (dims[i] && count > SIZE_MAX / esize / (size_t)dims[i])
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_encode: the array's size overflows");
        count *= (size_t)dims[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t bytes = count * esize;
    if (bytes && !data) return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_encode: data is NULL");
    /* version 1.0 unless the header outgrows its 16-bit length (never with 8 dims, but cheap) */
    size_t prefix = 10, dlen = (size_t)n + 1; /* + '\n' */
    size_t total_h = (prefix + dlen + 63) / 64 * 64;
    int major = 1;
    if (total_h - prefix > 65535) {
        prefix = 12;
        major = 2;
        total_h = (prefix + dlen + 63) / 64 * 64;
    }
    size_t hlen = total_h - prefix;
    unsigned char *buf = malloc(total_h + bytes);
    if (!buf) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory encoding a .npy array (%zu bytes)", total_h + bytes);
    memcpy(buf, kn_npy_magic, 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8 & 0xff);
    if (major == 2) {
        buf[10] = (unsigned char)(hlen >> 16 & 0xff);
        buf[11] = (unsigned char)(hlen >> 24 & 0xff);
    }
    memcpy(buf + prefix, dict, (size_t)n);
    memset(buf + prefix + n, ' ', hlen - (size_t)n - 1);
    buf[total_h - 1] = '\n';
    if (bytes) memcpy(buf + total_h, data, bytes);
    *out = buf;
    *out_size = total_h + bytes;
    return KILN_OK;
}

kiln_status kiln_npy_write(const char *path, kiln_dtype dtype, int rank, const int64_t *dims, const void *data) {
    if (!path) return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_npy_write: path is NULL");
    void *buf;
    size_t size;
    kiln_status st = kiln_npy_encode(dtype, rank, dims, data, &buf, &size);
    if (st != KILN_OK) return kn_error_context(st, "%s", path);
    FILE *f = fopen(path, "wb");
    if (!f) {
        st = kn_error(KILN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(buf);
        return st;
    }
    size_t w = fwrite(buf, 1, size, f);
    int bad = w != size;
    bad |= fclose(f) != 0;
    free(buf);
    if (bad) return kn_error(KILN_ERR_IO, "%s: write failed (disk full?)", path);
    return KILN_OK;
}
