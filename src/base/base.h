/* Shared helpers for every room of kiln: statuses with messages, allocation, logging, dtypes,
 * half-precision conversion, hashing and a growable string buffer. */
#ifndef KILN_BASE_H
#define KILN_BASE_H

#include "kiln.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
#define KN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define KN_UNUSED __attribute__((unused))
#else
#define KN_PRINTF(f, a)
#define KN_UNUSED
#endif

/* ---- status -------------------------------------------------------------------------------- */

/* Records a message for this thread and returns `code`. */
kiln_status kn_error(kiln_status code, const char *fmt, ...) KN_PRINTF(2, 3);
/* Prefixes the current message with context ("while building step 'conv1': ..."); returns code. */
kiln_status kn_error_context(kiln_status code, const char *fmt, ...) KN_PRINTF(2, 3);
void kn_clear_error(void);

#define KN_TRY(expr)                                                                              \
    do {                                                                                          \
        kiln_status kn_try_s_ = (expr);                                                           \
        if (kn_try_s_ != KILN_OK) return kn_try_s_;                                               \
    } while (0)

/* Sets `st` and jumps to `label` on failure: for functions that must clean up. */
#define KN_CHECK_GOTO(st, expr, label)                                                            \
    do {                                                                                          \
        (st) = (expr);                                                                            \
        if ((st) != KILN_OK) goto label;                                                          \
    } while (0)

#define KN_ARG_CHECK(cond, name)                                                                  \
    do {                                                                                          \
        if (!(cond)) return kn_error(KILN_ERR_INVALID_ARGUMENT, "%s: invalid argument '%s'",      \
                                     __func__, name);                                             \
    } while (0)

/* ---- allocation: every function returns NULL on failure and never aborts --------------------- */

void *kn_malloc(size_t size);
void *kn_calloc(size_t count, size_t size);
void *kn_realloc(void *ptr, size_t size);
char *kn_strdup(const char *s);
void kn_free(void *ptr);
/* 64-byte aligned host memory (free with kn_aligned_free). */
void *kn_aligned_alloc(size_t size);
void kn_aligned_free(void *ptr);

/* Grows *arr (of element size `elem`) to hold at least `need` elements, doubling capacity. */
kiln_status kn_grow(void **arr, int *cap, int need, size_t elem);
#define KN_GROW(arr, cap, need) kn_grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* ---- logging (stderr; library code logs only warnings by default) ------------------------------ */

extern int kn_log_level;
void kn_log(int level, const char *fmt, ...) KN_PRINTF(2, 3);
#define KN_WARN(...) kn_log(0, __VA_ARGS__)
#define KN_INFO(...) kn_log(1, __VA_ARGS__)
#define KN_VERBOSE(...) kn_log(2, __VA_ARGS__)

/* ---- dtypes ------------------------------------------------------------------------------------ */

static inline int kn_dtype_is_float(kiln_dtype t) {
    return t == KILN_F32 || t == KILN_F16 || t == KILN_BF16 || t == KILN_F64;
}
static inline int kn_dtype_is_int(kiln_dtype t) {
    return t == KILN_I64 || t == KILN_I32 || t == KILN_I8 || t == KILN_U8;
}

float kn_f16_to_f32(uint16_t h);
uint16_t kn_f32_to_f16(float f); /* round to nearest even */
float kn_bf16_to_f32(uint16_t h);
uint16_t kn_f32_to_bf16(float f); /* round to nearest even */

/* Reads element i of `data` (of type t) as double / writes a double into it (with conversion). */
double kn_load_f64(const void *data, kiln_dtype t, int64_t i);
void kn_store_f64(void *data, kiln_dtype t, int64_t i, double v);
/* Converts `n` elements between types (host memory). */
void kn_convert(const void *src, kiln_dtype st, void *dst, kiln_dtype dt, int64_t n);

/* ---- dims ---------------------------------------------------------------------------------------- */

static inline int64_t kn_numel(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    return n;
}
/* "1x3x224x224" into buf. */
const char *kn_dims_str(int rank, const int64_t *dims, char *buf, size_t cap);

/* ---- hashing --------------------------------------------------------------------------------- */

uint64_t kn_hash_bytes(uint64_t h, const void *data, size_t n); /* FNV-1a 64, chainable */
#define KN_HASH_SEED 0xcbf29ce484222325ull
uint32_t kn_crc32(uint32_t crc, const void *data, size_t n);

/* ---- string buffer ------------------------------------------------------------------------------ */

typedef struct kn_strbuf {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: the text is incomplete */
} kn_strbuf;

void kn_sb_printf(kn_strbuf *sb, const char *fmt, ...) KN_PRINTF(2, 3);
void kn_sb_puts(kn_strbuf *sb, const char *s);
/* JSON string literal with escapes. */
void kn_sb_json_str(kn_strbuf *sb, const char *s);
/* Hands the text to the caller (free with kiln_free) or fails with OUT_OF_MEMORY. */
kiln_status kn_sb_finish(kn_strbuf *sb, char **out);
void kn_sb_free(kn_strbuf *sb);

/* ---- time ---------------------------------------------------------------------------------------- */
double kn_now_ms(void); /* monotonic clock */
double kn_median(double *v, int n); /* of n > 0 timings; sorts v in place */

#endif
