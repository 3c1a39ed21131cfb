/* TensorProto decoding: element types, raw little-endian data, the typed repeated fields and
 * external data files kept inside the model's folder. */
#include "onnx_private.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- element types -------------------------------------------------------------------------- */

kiln_dtype kn_onnx_dtype(int64_t code) {
    switch (code) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return KILN_F32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return KILN_U8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return KILN_I8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return KILN_I32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return KILN_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return KILN_BOOL;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return KILN_F16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return KILN_F64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return KILN_BF16;
    default: return KILN_DTYPE_INVALID;
    }
}

int kn_onnx_code(kiln_dtype t) {
    switch (t) {
    case KILN_F32: return 1;
    case KILN_U8: return 2;
    case KILN_I8: return 3;
    case KILN_I32: return 6;
    case KILN_I64: return 7;
    case KILN_BOOL: return 9;
    case KILN_F16: return 10;
    case KILN_F64: return 11;
    case KILN_BF16: return 16;
    default: return 0;
    }
}

const char *kn_onnx_type_name(int64_t code) {
    static const char *const names[] = {
        "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING",
        "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
        "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4",
        "FLOAT4E2M1", "FLOAT8E8M0", "UINT2", "INT2",
    };
    if (code < 0 || code >= (int64_t)(sizeof names / sizeof names[0])) return "an unknown type";
    return names[code];
}

/* ---- files ------------------------------------------------------------------------------------ */

kiln_status kn_onnx_read_file(const char *path, void **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return kn_error(e == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO, "cannot open '%s': %s", path,
                        strerror(e));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return kn_error(KILN_ERR_IO, "cannot read '%s': not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    void *buf = kn_malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory reading '%s' (%zu bytes)", path, n);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        kn_free(buf);
        return kn_error(KILN_ERR_IO, "cannot read '%s': read %zu of %zu bytes", path, got, n);
    }
    *data = buf;
    *size = n;
    return KILN_OK;
}

/* ---- external data ---------------------------------------------------------------------------- */

static int kn_is_little_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void kn_swap_bytes(void *data, size_t elem, size_t n) {
    uint8_t *p = data;
    for (size_t i = 0; i < n; i++, p += elem)
        for (size_t a = 0, b = elem - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

static kiln_status kn_parse_u64(const char *s, const char *key, const char *what, uint64_t *out) {
    if (!s || !*s) return kn_error(KILN_ERR_PARSE, "%s: external data '%s' is empty", what, key);
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return kn_error(KILN_ERR_PARSE, "%s: external data '%s' = \"%s\" is not a byte count", what, key, s);
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return KILN_OK;
}

/* The location must be a relative path that stays inside base_dir, symbolic links included. */
static kiln_status kn_external_path(const char *base_dir, const char *loc, const char *what,
                                    char **out) {
    *out = NULL;
    if (!base_dir)
        return kn_error(KILN_ERR_NOT_FOUND,
                        "%s: its data is in the external file '%s', but the model was loaded from "
                        "memory without a folder to look in", what, loc);
    if (!*loc || loc[0] == '/' || loc[0] == '\\')
        return kn_error(KILN_ERR_INVALID_ARGUMENT,
                        "%s: external data location '%s' must be a path relative to the model's folder",
                        what, loc);
    for (const char *p = loc; *p;) { /* refuse ".." components before touching the file system */
        const char *e = p;
        while (*e && *e != '/' && *e != '\\') e++;
        if (e - p == 2 && p[0] == '.' && p[1] == '.')
            return kn_error(KILN_ERR_INVALID_ARGUMENT,
                            "%s: external data location '%s' leaves the model's folder", what, loc);
        p = *e ? e + 1 : e;
    }
    size_t n = strlen(base_dir) + strlen(loc) + 2;
    char *joined = kn_malloc(n);
    if (!joined) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    snprintf(joined, n, "%s/%s", base_dir, loc);
    char *real_base = realpath(base_dir, NULL);
    char *real_file = realpath(joined, NULL);
    kiln_status st = KILN_OK;
    if (!real_base) {
        st = kn_error(KILN_ERR_NOT_FOUND, "%s: the model folder '%s' cannot be resolved: %s", what,
                      base_dir, strerror(errno));
    } else if (!real_file) {
        st = kn_error(KILN_ERR_NOT_FOUND, "%s: external data file '%s' cannot be opened: %s", what,
                      joined, strerror(errno));
    } else {
        size_t b = strlen(real_base);
        int inside = strncmp(real_file, real_base, b) == 0 &&
                     (real_file[b] == '/' || (b == 1 && real_base[0] == '/'));
        if (!inside)
            st = kn_error(KILN_ERR_INVALID_ARGUMENT,
                          "%s: external data file '%s' resolves to '%s', outside the model's folder",
                          what, loc, real_file);
    }
    free(real_base);
    free(real_file);
    if (st != KILN_OK) {
        kn_free(joined);
        return st;
    }
    *out = joined;
    return KILN_OK;
}

static kiln_status kn_read_external(const Onnx__TensorProto *tp, const char *base_dir,
                                    const char *what, void *dst, size_t bytes) {
    const char *loc = NULL;
    uint64_t offset = 0, length = 0;
    int has_length = 0;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e || !e->key) continue;
        if (!strcmp(e->key, "location")) loc = e->value;
        else if (!strcmp(e->key, "offset")) KN_TRY(kn_parse_u64(e->value, "offset", what, &offset));
        else if (!strcmp(e->key, "length")) {
            KN_TRY(kn_parse_u64(e->value, "length", what, &length));
            has_length = 1;
        }
    }
    if (!loc) return kn_error(KILN_ERR_PARSE, "%s: external data has no 'location'", what);
    if (has_length && length != bytes)
        return kn_error(KILN_ERR_PARSE, "%s: external data length %llu does not match its %zu bytes",
                        what, (unsigned long long)length, bytes);
    char *path;
    KN_TRY(kn_external_path(base_dir, loc, what, &path));
    kiln_status st = KILN_OK;
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f) {
        st = kn_error(KILN_ERR_NOT_FOUND, "%s: cannot open external data file '%s': %s", what, path, strerror(errno));
    } else if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = kn_error(KILN_ERR_IO, "%s: external data '%s' is not a regular file", what, path);
    } else if (offset > (uint64_t)sb.st_size || bytes > (uint64_t)sb.st_size - offset) {
        st = kn_error(KILN_ERR_CORRUPT,
                      "%s: external data file '%s' has %lld bytes, too few for %zu bytes at offset %llu",
                      what, path, (long long)sb.st_size, bytes, (unsigned long long)offset);
    } else if (offset > (uint64_t)LLONG_MAX || fseeko(f, (off_t)offset, SEEK_SET) != 0 ||
               (bytes && fread(dst, 1, bytes, f) != bytes)) {
        st = kn_error(KILN_ERR_IO, "%s: cannot read %zu bytes at offset %llu of '%s'", what, bytes,
                      (unsigned long long)offset, path);
    }
    if (f) fclose(f);
    kn_free(path);
    return st;
}

/* ---- decoding --------------------------------------------------------------------------------- */

static kiln_status kn_count_error(const char *what, const char *field, size_t got, int64_t want) {
    return kn_error(KILN_ERR_PARSE, "%s: %s holds %zu values, its dims need %lld", what, field, got,
                    (long long)want);
}

kiln_status kn_onnx_tensor_decode(const Onnx__TensorProto *tp, const char *base_dir,
                                  const char *what, kn_host_tensor **out) {
    *out = NULL;
    int64_t code = tp->has_data_type ? tp->data_type : 0;
    kiln_dtype dt = kn_onnx_dtype(code);
    if (dt == KILN_DTYPE_INVALID)
        return kn_error(code == 0 ? KILN_ERR_PARSE : KILN_ERR_UNSUPPORTED,
                        "%s has element type %s, which kiln does not support", what,
                        kn_onnx_type_name(code));
    if (tp->n_dims > KILN_MAX_RANK)
        return kn_error(KILN_ERR_UNSUPPORTED, "%s has %zu dims, kiln takes at most %d", what,
                        tp->n_dims, KILN_MAX_RANK);
    if (tp->segment) return kn_error(KILN_ERR_UNSUPPORTED, "%s is segmented, which kiln does not support", what);
    int rank = (int)tp->n_dims;
    int64_t dims[KILN_MAX_RANK];
    size_t esize = kiln_dtype_size(dt);
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = tp->dims[i];
        if (dims[i] < 0) return kn_error(KILN_ERR_PARSE, "%s has a negative dim %lld", what, (long long)dims[i]);
        if (dims[i] && numel > ((int64_t)1 << 40) / dims[i])
            return kn_error(KILN_ERR_PARSE, "%s is too large (dims overflow)", what);
        numel *= dims[i];
    }
    if ((uint64_t)numel * esize > ((uint64_t)1 << 40))
        return kn_error(KILN_ERR_UNSUPPORTED, "%s is too large (%lld elements)", what, (long long)numel);
    size_t bytes = (size_t)numel * esize;

    int external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    /* check the sizes before allocating: a corrupt dim must not make a huge allocation */
    if (!external && numel > 0) {
        size_t have;
        if (tp->has_raw_data) have = tp->raw_data.len / esize;
        else if (dt == KILN_F32) have = tp->n_float_data;
        else if (dt == KILN_F64) have = tp->n_double_data;
        else if (dt == KILN_I64) have = tp->n_int64_data;
        else have = tp->n_int32_data;
        if (tp->has_raw_data && tp->raw_data.len != bytes)
            return kn_error(KILN_ERR_PARSE, "%s: raw_data has %zu bytes, its dims need %zu", what,
                            tp->raw_data.len, bytes);
        if (have != (size_t)numel)
            return kn_count_error(what,
                                  tp->has_raw_data ? "raw_data" : dt == KILN_F32 ? "float_data"
                                  : dt == KILN_F64 ? "double_data" : dt == KILN_I64 ? "int64_data"
                                                                    : "int32_data",
                                  have, numel);
    }
    kn_host_tensor *t = kn_host_tensor_new(dt, rank, dims);
    if (!t) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for %s (%zu bytes)", what, bytes);
    kiln_status st = KILN_OK;
    if (numel == 0) {
        /* nothing to read */
    } else if (external) {
        st = kn_read_external(tp, base_dir, what, t->data, bytes);
        if (st == KILN_OK && !kn_is_little_endian()) kn_swap_bytes(t->data, esize, (size_t)numel);
    } else if (tp->has_raw_data) {
        memcpy(t->data, tp->raw_data.data, bytes);
        if (!kn_is_little_endian()) kn_swap_bytes(t->data, esize, (size_t)numel);
    } else {
        switch (dt) {
        case KILN_F32: memcpy(t->data, tp->float_data, bytes); break;
        case KILN_F64: memcpy(t->data, tp->double_data, bytes); break;
        case KILN_I64: memcpy(t->data, tp->int64_data, bytes); break;
        case KILN_I32: memcpy(t->data, tp->int32_data, bytes); break;
        default: /* int32_data holds the bit patterns of the narrow types */
            for (int64_t i = 0; i < numel; i++) {
                int32_t v = tp->int32_data[i];
                switch (dt) {
                case KILN_F16: case KILN_BF16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
                case KILN_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
                case KILN_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
                case KILN_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
                default: break;
                }
            }
        }
    }
    if (st == KILN_OK && dt == KILN_BOOL) /* raw bools must read as 0/1 */
        for (int64_t i = 0; i < numel; i++) ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
    if (st != KILN_OK) {
        kn_host_tensor_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

kiln_status kn_onnx_parse_tensor(const void *data, size_t size, const char *base_dir,
                                 kn_host_tensor **out, char **name) {
    *out = NULL;
    if (name) *name = NULL;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, data);
    if (!tp) return kn_error(KILN_ERR_PARSE, "cannot decode a TensorProto (%zu bytes): truncated or not a tensor", size);
    char what[300];
    snprintf(what, sizeof what, "tensor '%s'", tp->name ? tp->name : "");
    kiln_status st = kn_onnx_tensor_decode(tp, base_dir, what, out);
    if (st == KILN_OK && name) {
        *name = kn_strdup(tp->name ? tp->name : "");
        if (!*name) {
            kn_host_tensor_free(*out);
            *out = NULL;
            st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
        }
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}

kiln_status kn_onnx_read_tensor_file(const char *path, kn_host_tensor **out, char **name) {
    *out = NULL;
    if (name) *name = NULL;
    void *data;
    size_t size;
    KN_TRY(kn_onnx_read_file(path, &data, &size));
    char *dir = kn_strdup(path);
    if (!dir) {
        kn_free(data);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir ? 1 : 0] = 0; /* "/x.pb" keeps "/" */
    else strcpy(dir, ".");
    kiln_status st = kn_onnx_parse_tensor(data, size, dir, out, name);
    if (st != KILN_OK) kn_error_context(st, "reading '%s'", path);
    kn_free(dir);
    kn_free(data);
    return st;
}
