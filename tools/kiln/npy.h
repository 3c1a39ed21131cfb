/* NumPy .npy files (format versions 1.0, 2.0 and 3.0): little-endian, C-order arrays of the
 * dtypes kiln shares with NumPy: <f4 <f2 <f8 <i8 <i4 |i1 |u1 |b1. bfloat16 has no NumPy dtype,
 * so reading or writing it fails with a clear message. Errors are kiln statuses with the message
 * in kiln_last_error(), naming the file. */
#ifndef KILN_CLI_NPY_H
#define KILN_CLI_NPY_H

#include "kiln.h"

/* An array read from a .npy file; data is owned (free with kiln_npy_free). */
typedef struct kiln_npy {
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    void *data;
    size_t bytes;
} kiln_npy;

/* The NumPy descr of a kiln dtype ("<f4"), or NULL when NumPy has none (bf16, invalid). */
const char *kiln_npy_descr(kiln_dtype dtype);

/* Parses a whole .npy file held in memory; `what` names it in messages (a path). */
kiln_status kiln_npy_parse(const void *buf, size_t size, const char *what, kiln_npy *out);
kiln_status kiln_npy_read(const char *path, kiln_npy *out);
void kiln_npy_free(kiln_npy *npy);

/* Encodes a host array as .npy bytes (version 1.0, or 2.0 when the header needs it), the layout
 * numpy.save writes; *out is malloc'd (free with free()). */
kiln_status kiln_npy_encode(kiln_dtype dtype, int rank, const int64_t *dims, const void *data,
                            void **out, size_t *out_size);
kiln_status kiln_npy_write(const char *path, kiln_dtype dtype, int rank, const int64_t *dims,
                           const void *data);

#endif
