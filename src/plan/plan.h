/* Engine files (.kiln): the compiled module written to disk and read back without re-timing
 * tactics. The layout is documented in docs/engine-format.md; this header holds the constants,
 * the little-endian encoders/decoders shared by the writer and the reader, and the internal entry
 * points that tests and the fuzzer use (in-memory save and load, the device-line comparison). */
#ifndef KILN_PLAN_H
#define KILN_PLAN_H

#include "build/module.h"

#define KN_PLAN_MAGIC "KILNENG" /* 8 bytes with the terminating NUL */
#define KN_PLAN_END_MAGIC "KILNEND"
#define KN_PLAN_VERSION 2u /* 2: steps carry a tactic key; 1 is still read */
#define KN_PLAN_HEADER_BYTES 64u
#define KN_PLAN_TRAILER_BYTES 16u
#define KN_PLAN_ALIGN 64u /* weights start on this boundary in the file */

/* Section tags: four ASCII characters read as a little-endian u32. */
#define KN_PLAN_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define KN_SEC_INFO KN_PLAN_TAG('I', 'N', 'F', 'O')
#define KN_SEC_CONF KN_PLAN_TAG('C', 'O', 'N', 'F')
#define KN_SEC_GRPH KN_PLAN_TAG('G', 'R', 'P', 'H')
#define KN_SEC_PROF KN_PLAN_TAG('P', 'R', 'O', 'F')
#define KN_SEC_PART KN_PLAN_TAG('P', 'A', 'R', 'T')
#define KN_SEC_MEMP KN_PLAN_TAG('M', 'E', 'M', 'P')
/* Section flag: a reader that does not know the tag must refuse the file (else it skips it). */
#define KN_SEC_REQUIRED 1u

/* Header field offsets. */
enum {
    KN_HDR_MAGIC = 0,
    KN_HDR_VERSION = 8,
    KN_HDR_HEADER_BYTES = 12,
    KN_HDR_FILE_BYTES = 16,
    KN_HDR_META_OFFSET = 24,
    KN_HDR_META_BYTES = 32,
    KN_HDR_WEIGHTS_OFFSET = 40,
    KN_HDR_WEIGHTS_BYTES = 48,
    KN_HDR_N_SECTIONS = 56,
    KN_HDR_RESERVED = 60,
};

/* Per value: whether a constant's data follows. Constants that no node or output reads are
 * stored as plain values (NONE): their data would only cost space. */
#define KN_PLAN_CONST_NONE 0u
#define KN_PLAN_CONST_DATA 1u

/* ---- little-endian encoding ---------------------------------------------------------------- */

static inline void kn_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void kn_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t kn_get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t kn_get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A growable byte buffer for the metadata; `failed` is sticky (allocation failure). */
typedef struct kn_wbuf {
    uint8_t *p;
    size_t n, cap;
    int failed;
} kn_wbuf;

void kn_wb_bytes(kn_wbuf *w, const void *data, size_t n);
void kn_wb_u8(kn_wbuf *w, uint8_t v);
void kn_wb_u32(kn_wbuf *w, uint32_t v);
void kn_wb_i32(kn_wbuf *w, int32_t v);
void kn_wb_u64(kn_wbuf *w, uint64_t v);
void kn_wb_i64(kn_wbuf *w, int64_t v);
void kn_wb_f32(kn_wbuf *w, float v);
void kn_wb_f64(kn_wbuf *w, double v);
void kn_wb_str(kn_wbuf *w, const char *s); /* u32 length, bytes, no NUL; NULL writes length 0 */
void kn_wb_free(kn_wbuf *w);

/* A bounds-checked reader over one section. The first failure records a KILN_ERR_CORRUPT message
 * naming what was being read and where; later reads return zeros and change nothing. */
typedef struct kn_rbuf {
    const uint8_t *p;
    size_t n, pos;
    size_t base;      /* file offset of p[0], for messages */
    kiln_status st;   /* KILN_OK until something is wrong */
} kn_rbuf;

#define KN_PLAN_MAX_STRING (1u << 20)

kiln_status kn_rd_fail(kn_rbuf *r, const char *fmt, ...) KN_PRINTF(2, 3);
uint8_t kn_rd_u8(kn_rbuf *r, const char *what);
uint32_t kn_rd_u32(kn_rbuf *r, const char *what);
int32_t kn_rd_i32(kn_rbuf *r, const char *what);
uint64_t kn_rd_u64(kn_rbuf *r, const char *what);
int64_t kn_rd_i64(kn_rbuf *r, const char *what);
float kn_rd_f32(kn_rbuf *r, const char *what);
double kn_rd_f64(kn_rbuf *r, const char *what);
/* A count of entries that each take at least `min_entry_bytes` of what is left (so a corrupt
 * count cannot ask for more memory than the file could describe), at most `max`. */
int kn_rd_count(kn_rbuf *r, size_t min_entry_bytes, int max, const char *what);
/* A string, copied (kn_malloc'd, NUL-terminated); NULL only when r->st is set. */
char *kn_rd_str(kn_rbuf *r, const char *what);
/* The same into a caller buffer of `cap` bytes; longer strings fail. */
void kn_rd_str_into(kn_rbuf *r, char *buf, size_t cap, const char *what);

/* ---- the device line -------------------------------------------------------------------------- */

/* The line that names the device and library versions for this module's backend and device
 * index: the backend's describe_device, else describe() through a short-lived session context,
 * else the backend name. `m` may be NULL only when the backend has describe_device. */
kiln_status kn_plan_describe(const kn_backend *be, const kiln_module *m, int device_index, char *buf,
                             size_t cap);
/* Splits a describe line into its device part and its library part (see backend.h). */
void kn_plan_split_describe(const char *line, char *device, size_t dcap, char *libs, size_t lcap);
/* Compares the stored line with the present one. A different device part fails with
 * KILN_ERR_VERSION naming both; a different library part fails too when `tuned` (the stored
 * tactics came from those libraries) and is a warning otherwise. */
kiln_status kn_plan_check_device(const char *stored, const char *present, int tuned);

/* ---- in-memory entry points ------------------------------------------------------------------ */

/* Serializes the module (header, metadata, weights, trailer) into one kn_malloc'd buffer. */
kiln_status kn_plan_save_memory(const kiln_module *m, void **data, size_t *size);

enum {
    KN_PLAN_LOAD_SKIP_CRC = 1 << 0, /* for fuzzing: reach the parser with any bytes */
};
/* Builds a module from an engine image in memory (the bytes are not kept). */
kiln_status kn_plan_load_memory(const void *data, size_t size, unsigned flags, kiln_module **out);

#endif
