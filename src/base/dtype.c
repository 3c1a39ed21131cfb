/* Element types: names, sizes, half-precision conversion, generic load/store. */
#include "base.h"

#include <math.h>

static const struct {
    const char *name;
    size_t size;
} kn_dtypes[] = {
    [KILN_DTYPE_INVALID] = {"invalid", 0}, [KILN_F32] = {"f32", 4}, [KILN_F16] = {"f16", 2},
    [KILN_BF16] = {"bf16", 2},             [KILN_F64] = {"f64", 8}, [KILN_I64] = {"i64", 8},
    [KILN_I32] = {"i32", 4},               [KILN_I8] = {"i8", 1},   [KILN_U8] = {"u8", 1},
    [KILN_BOOL] = {"bool", 1},
};
_Static_assert(sizeof kn_dtypes / sizeof kn_dtypes[0] == KILN_DTYPE_COUNT,
               "every dtype needs a name and a size");

const char *kiln_dtype_name(kiln_dtype t) {
    if ((int)t < 0 || t >= KILN_DTYPE_COUNT) return "invalid";
    return kn_dtypes[t].name;
}

size_t kiln_dtype_size(kiln_dtype t) {
    if ((int)t < 0 || t >= KILN_DTYPE_COUNT) return 0;
    return kn_dtypes[t].size;
}

float kn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; mant <<= 1; } while (!(mant & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kn_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff);
    uint32_t mant = x & 0x7fffff;
    if (exp == 255) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    int32_t e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: correct */
    return (uint16_t)(sign | half);
}

float kn_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kn_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

double kn_load_f64(const void *d, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_F32: return ((const float *)d)[i];
    case KILN_F16: return kn_f16_to_f32(((const uint16_t *)d)[i]);
    case KILN_BF16: return kn_bf16_to_f32(((const uint16_t *)d)[i]);
    case KILN_F64: return ((const double *)d)[i];
    case KILN_I64: return (double)((const int64_t *)d)[i];
    case KILN_I32: return ((const int32_t *)d)[i];
    case KILN_I8: return ((const int8_t *)d)[i];
    case KILN_U8: return ((const uint8_t *)d)[i];
    case KILN_BOOL: return ((const uint8_t *)d)[i] != 0;
    default: return 0;
    }
}

void kn_store_f64(void *d, kiln_dtype t, int64_t i, double v) {
    switch (t) {
    case KILN_F32: ((float *)d)[i] = (float)v; break;
    case KILN_F16: ((uint16_t *)d)[i] = kn_f32_to_f16((float)v); break;
    case KILN_BF16: ((uint16_t *)d)[i] = kn_f32_to_bf16((float)v); break;
    case KILN_F64: ((double *)d)[i] = v; break;
    /* float -> int casts truncate toward zero, as ONNX Cast does; NaN/out of range saturate */
    case KILN_I64:
        ((int64_t *)d)[i] = isnan(v) ? 0 : v >= 9.2233720368547758e18 ? INT64_MAX
                          : v <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)v;
        break;
    case KILN_I32: ((int32_t *)d)[i] = isnan(v) ? 0 : v >= 2147483647.0 ? INT32_MAX
                                     : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
        break;
    case KILN_I8: ((int8_t *)d)[i] = (int8_t)(int64_t)v; break;
    case KILN_U8: ((uint8_t *)d)[i] = (uint8_t)(int64_t)v; break;
    case KILN_BOOL: ((uint8_t *)d)[i] = v != 0; break;
    default: break;
    }
}

void kn_convert(const void *src, kiln_dtype st, void *dst, kiln_dtype dt, int64_t n) {
    if (st == dt) {
        memcpy(dst, src, (size_t)n * kiln_dtype_size(st));
        return;
    }
    if (st == KILN_F32 && dt == KILN_F16) {
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = kn_f32_to_f16(((const float *)src)[i]);
        return;
    }
    if (st == KILN_F16 && dt == KILN_F32) {
        for (int64_t i = 0; i < n; i++) ((float *)dst)[i] = kn_f16_to_f32(((const uint16_t *)src)[i]);
        return;
    }
    if (st == KILN_I64 && dt != KILN_F32 && dt != KILN_F64 && dt != KILN_F16 && dt != KILN_BF16) {
        for (int64_t i = 0; i < n; i++) { /* integer to integer: keep exact, wrap like C */
            int64_t v = ((const int64_t *)src)[i];
            switch (dt) {
            case KILN_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
            case KILN_I8: ((int8_t *)dst)[i] = (int8_t)v; break;
            case KILN_U8: ((uint8_t *)dst)[i] = (uint8_t)v; break;
            case KILN_BOOL: ((uint8_t *)dst)[i] = v != 0; break;
            default: break;
            }
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) kn_store_f64(dst, dt, i, kn_load_f64(src, st, i));
}

const char *kn_dims_str(int rank, const int64_t *dims, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    if (rank == 0) {
        snprintf(buf, cap, "scalar");
        return buf;
    }
    for (int i = 0; i < rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? "x%lld" : "%lld", (long long)dims[i]);
    return buf;
}
