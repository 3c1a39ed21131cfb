/* The kiln tool's NumPy .npy reader and writer (tools/kiln/npy.c): byte-exact against what
 * numpy.save writes (headers copied from NumPy 1.24's output), round trips of every dtype on
 * random data, other header spellings NumPy accepts, and each malformed-file error. */
#include "npy.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The header numpy.save writes for `dict`: magic, version 1.0, length, dict padded with spaces
 * and ended by '\n' to a multiple of 64 bytes. Built by hand from the format spec. */
static size_t numpy_header(const char *dict, unsigned char *out) {
    size_t n = strlen(dict), total = (10 + n + 1 + 63) / 64 * 64;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char)((total - 10) & 0xff);
    out[9] = (unsigned char)((total - 10) >> 8);
    memcpy(out + 10, dict, n);
    memset(out + 10 + n, ' ', total - 10 - n - 1);
    out[total - 1] = '\n';
    return total;
}

static void test_exact_bytes(void) {
    /* np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)): 152 bytes, header length 0x76 */
    float x[6] = {0, 1, 2, 3, 4, 5};
    int64_t dims[2] = {2, 3};
    void *buf = NULL;
    size_t size = 0;
    KT_OK(kiln_npy_encode(KILN_F32, 2, dims, x, &buf, &size));
    unsigned char want[256];
    size_t h = numpy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", want);
    KT_CHECK(h == 128 && want[8] == 0x76, "reference header is 128 bytes (got %zu)", h);
    memcpy(want + h, x, sizeof x);
    KT_CHECK(size == 152, "f32 2x3 file is 152 bytes like numpy's, got %zu", size);
    KT_CHECK(buf && size == 152 && !memcmp(buf, want, 152), "f32 2x3 bytes equal numpy.save's");
    free(buf);

    /* np.save(f, np.array(3, dtype='<i8')): a scalar, shape () */
    int64_t three = 3;
    KT_OK(kiln_npy_encode(KILN_I64, 0, NULL, &three, &buf, &size));
    h = numpy_header("{'descr': '<i8', 'fortran_order': False, 'shape': (), }", want);
    memcpy(want + h, &three, 8);
    KT_CHECK(size == 136 && buf && !memcmp(buf, want, 136), "i64 scalar bytes equal numpy.save's (size %zu)", size);
    free(buf);

    /* np.save(f, np.array([1, 0], dtype=bool)): one dim is written "(2,)" */
    uint8_t bits[2] = {1, 0};
    int64_t two = 2;
    KT_OK(kiln_npy_encode(KILN_BOOL, 1, &two, bits, &buf, &size));
    h = numpy_header("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", want);
    memcpy(want + h, bits, 2);
    KT_CHECK(size == 130 && buf && !memcmp(buf, want, 130), "bool (2,) bytes equal numpy.save's (size %zu)", size);
    free(buf);

    KT_CHECK(!strcmp(kiln_npy_descr(KILN_F16), "<f2") && !strcmp(kiln_npy_descr(KILN_U8), "|u1") &&
                 !strcmp(kiln_npy_descr(KILN_I8), "|i1") && kiln_npy_descr(KILN_BF16) == NULL,
             "descr names");
}

static void test_round_trips(void) {
    static const kiln_dtype types[] = {KILN_F32, KILN_F16, KILN_F64, KILN_I64, KILN_I32, KILN_I8, KILN_U8, KILN_BOOL};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        int64_t dims[3] = {2, 3, 5};
        size_t bytes = 30 * kiln_dtype_size(types[t]);
        unsigned char *data = malloc(bytes);
        for (size_t i = 0; i < bytes; i++) data[i] = (unsigned char)(kt_rand_u64() >> 56);
        if (types[t] == KILN_BOOL)
            for (size_t i = 0; i < bytes; i++) data[i] &= 1;
        void *buf = NULL;
        size_t size = 0;
        KT_OK(kiln_npy_encode(types[t], 3, dims, data, &buf, &size));
        KT_CHECK(size % 64 == 30 * kiln_dtype_size(types[t]) % 64, "%s: header padded to 64 bytes", kiln_dtype_name(types[t]));
        kiln_npy a;
        KT_OK(kiln_npy_parse(buf, size, "mem", &a));
        KT_CHECK(a.dtype == types[t] && a.rank == 3 && a.dims[0] == 2 && a.dims[1] == 3 && a.dims[2] == 5,
                 "%s: dtype and dims round trip", kiln_dtype_name(types[t]));
        KT_CHECK(a.bytes == bytes && a.data && !memcmp(a.data, data, bytes), "%s: data round trips", kiln_dtype_name(types[t]));
        kiln_npy_free(&a);
        free(buf);
        free(data);
    }

    /* through a file */
    char path[64];
    snprintf(path, sizeof path, "test_npy_%d.npy", (int)getpid());
    float x[12];
    kt_fill_uniform(x, 12, -1, 1);
    int64_t dims[2] = {4, 3};
    KT_OK(kiln_npy_write(path, KILN_F32, 2, dims, x));
    kiln_npy a;
    KT_OK(kiln_npy_read(path, &a));
    KT_CHECK(a.dtype == KILN_F32 && a.rank == 2 && a.dims[0] == 4 && a.dims[1] == 3 && a.data &&
                 !memcmp(a.data, x, sizeof x), "file round trip");
    kiln_npy_free(&a);
    remove(path);
    KT_FAILS(kiln_npy_read(path, &a), KILN_ERR_NOT_FOUND, path);
    KT_FAILS(kiln_npy_write("/nonexistent-dir/x.npy", KILN_F32, 2, dims, x), KILN_ERR_IO, "cannot create");
}

/* Other spellings NumPy accepts: key order, double quotes, version 2.0, '=' byte order, L suffix. */
static void test_header_variants(void) {
    unsigned char buf[512];
    const char *dict = "{\"shape\": (3L,), \"fortran_order\": False, \"descr\": \"=i4\"}";
    size_t n = strlen(dict), total = (12 + n + 1 + 63) / 64 * 64;
    memcpy(buf, "\x93NUMPY\x02\x00", 8);
    uint32_t hl = (uint32_t)(total - 12);
    buf[8] = (unsigned char)hl;
    buf[9] = (unsigned char)(hl >> 8);
    buf[10] = buf[11] = 0;
    memcpy(buf + 12, dict, n);
    memset(buf + 12 + n, ' ', total - 12 - n - 1);
    buf[total - 1] = '\n';
    int32_t v[3] = {7, -8, 9};
    memcpy(buf + total, v, sizeof v);
    kiln_npy a;
    KT_OK(kiln_npy_parse(buf, total + sizeof v, "v2", &a));
    KT_CHECK(a.dtype == KILN_I32 && a.rank == 1 && a.dims[0] == 3 && a.data && ((int32_t *)a.data)[1] == -8,
             "version 2.0 header with other spellings");
    kiln_npy_free(&a);

    /* Fortran order is the same bytes when at most one dim exceeds 1 */
    size_t h = numpy_header("{'descr': '<f8', 'fortran_order': True, 'shape': (1, 4), }", buf);
    double d[4] = {1.5, -2.5, 3.5, 0.25};
    memcpy(buf + h, d, sizeof d);
    KT_OK(kiln_npy_parse(buf, h + sizeof d, "f", &a));
    KT_CHECK(a.dtype == KILN_F64 && a.data && ((double *)a.data)[3] == 0.25, "trivial Fortran order reads");
    kiln_npy_free(&a);
}

static void expect_bad(const char *dict, size_t data_bytes, kiln_status code, const char *needle) {
    unsigned char buf[1024] = {0};
    size_t h = numpy_header(dict, buf);
    kiln_npy a;
    KT_FAILS(kiln_npy_parse(buf, h + data_bytes, "bad.npy", &a), code, needle);
    KT_CHECK(a.data == NULL, "no data on failure (%s)", dict);
}

static void test_errors(void) {
    kiln_npy a;
    KT_FAILS(kiln_npy_parse("PK\x03\x04 not npy at all", 20, "x.npz", &a), KILN_ERR_PARSE, "x.npz: not a NumPy .npy file");
    KT_FAILS(kiln_npy_parse("\x93NUMPY\x04\x00\x10\x00", 10, "v4", &a), KILN_ERR_VERSION, "version 4.0");
    expect_bad("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, KILN_ERR_UNSUPPORTED, "big-endian");
    expect_bad("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, KILN_ERR_UNSUPPORTED, "Fortran order");
    expect_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, KILN_ERR_CORRUPT,
               "truncated: the header promises 24 data bytes, the file holds 20");
    expect_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28, KILN_ERR_CORRUPT, "4 bytes follow");
    expect_bad("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, KILN_ERR_UNSUPPORTED,
               "dtype '<c8' is not one kiln reads");
    expect_bad("{'descr': '<V2', 'fortran_order': False, 'shape': (2,), }", 4, KILN_ERR_UNSUPPORTED, "bfloat16");
    expect_bad("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, KILN_ERR_UNSUPPORTED,
               "structured arrays");
    expect_bad("{'descr': '<f4', 'shape': (2,), }", 8, KILN_ERR_PARSE, "lacks 'fortran_order'");
    expect_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 8, KILN_ERR_PARSE, "non-negative");
    expect_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, KILN_ERR_UNSUPPORTED,
               "more than 8 dims");
    unsigned char trunc[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 200, 0, '{', '}'};
    KT_FAILS(kiln_npy_parse(trunc, sizeof trunc, "t", &a), KILN_ERR_CORRUPT, "truncated .npy header");

    void *buf = NULL;
    size_t size = 0;
    int64_t dims[1] = {2};
    uint16_t h[2] = {0x3f80, 0x4000};
    KT_FAILS(kiln_npy_encode(KILN_BF16, 1, dims, h, &buf, &size), KILN_ERR_UNSUPPORTED, "NumPy has no bfloat16");
    KT_CHECK(buf == NULL, "no buffer on failure");
    KT_FAILS(kiln_npy_write("bf16.npy", KILN_BF16, 1, dims, h), KILN_ERR_UNSUPPORTED, "bf16.npy: element type bf16");
}

int main(void) {
    kt_seed(7);
    test_exact_bytes();
    test_round_trips();
    test_header_variants();
    test_errors();
    return kt_finish();
}
