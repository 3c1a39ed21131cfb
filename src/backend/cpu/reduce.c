/* CPU reference kernels for ReduceMean/Sum/Max/Min and Softmax/LogSoftmax.
 * Floats (every width) accumulate in double and round once on store; integers accumulate in
 * int64 with wrap-around, ReduceMean divides truncating toward zero. Max/Min propagate NaN.
 * An empty reduction gives Sum 0, Mean NaN (ints: 0), Max the lowest value of the type (-inf),
 * Min the highest (+inf), as ONNX 18 specifies. */
#include "cpu.h"

#include <math.h>

static inline const void *kn_ptr(const kn_tensor *t) { return t->data ? t->data : t->host; }

/* Lowest / highest value of an integer or bool type. */
static int64_t kn_type_min(kiln_dtype t) {
    switch (t) {
    case KILN_I32: return INT32_MIN;
    case KILN_I8: return INT8_MIN;
    case KILN_U8: case KILN_BOOL: return 0;
    default: return INT64_MIN;
    }
}
static int64_t kn_type_max(kiln_dtype t) {
    switch (t) {
    case KILN_I32: return INT32_MAX;
    case KILN_I8: return INT8_MAX;
    case KILN_U8: return UINT8_MAX;
    case KILN_BOOL: return 1;
    default: return INT64_MAX;
    }
}

static inline int64_t kn_ldi(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_I64: return ((const int64_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    default: return ((const uint8_t *)p)[i] != 0; /* bool */
    }
}

static inline void kn_sti(void *p, kiln_dtype t, int64_t i, int64_t v) {
    switch (t) {
    case KILN_I64: ((int64_t *)p)[i] = v; break;
    case KILN_I32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
    case KILN_I8: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; break;
    case KILN_U8: ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v; break;
    default: ((uint8_t *)p)[i] = v != 0; break;
    }
}

static kiln_status kn_cpu_reduce(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    kn_op op = a->node->op;
    kn_tensor axes = {0};
    if (a->n_in > 1 && kn_tensor_present(&a->in[1])) { /* a host input; data is host memory here too */
        axes = a->in[1];
        if (!axes.host) axes.host = axes.data;
    }
    uint32_t mask;
    int noop;
    KN_TRY(kn_reduce_mask(a->node, a->n_in > 1 ? &axes : NULL, x->rank, &mask, &noop));
    const void *xp = kn_ptr(x);
    if (noop) {
        if (xp != y->data && kn_tensor_bytes(y)) memmove(y->data, xp, kn_tensor_bytes(y));
        return KILN_OK;
    }
    /* kept dims (k*) walk the output in order; reduced dims (r*) walk one output's inputs */
    int nk = 0, nr = 0;
    int64_t kd[KILN_MAX_RANK], ks[KILN_MAX_RANK], rd[KILN_MAX_RANK], rs[KILN_MAX_RANK], s = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        if (mask & (1u << i)) { rd[nr] = x->dims[i]; rs[nr++] = s; }
        else { kd[nk] = x->dims[i]; ks[nk++] = s; }
        s *= x->dims[i];
    }
    /* kd/rd are innermost first */
    int64_t n_out = kn_tensor_numel(y), count = 1, kidx[KILN_MAX_RANK] = {0}, base = 0;
    for (int j = 0; j < nr; j++) count *= rd[j];
    int fmode = kn_dtype_is_float(x->dtype);
    for (int64_t o = 0; o < n_out; o++) {
        double f = op == KN_OP_ReduceMax ? -INFINITY : op == KN_OP_ReduceMin ? INFINITY : 0;
        int64_t v = op == KN_OP_ReduceMax ? kn_type_min(x->dtype) : op == KN_OP_ReduceMin ? kn_type_max(x->dtype) : 0;
        int64_t ridx[KILN_MAX_RANK] = {0}, off = base;
        for (int64_t e = 0; e < count; e++) {
            if (fmode) {
                double t = kn_load_f64(xp, x->dtype, off);
                switch (op) {
                case KN_OP_ReduceMax: f = isnan(t) || t > f ? t : f; break; /* once NaN, stays NaN */
                case KN_OP_ReduceMin: f = isnan(t) || t < f ? t : f; break;
                default: f += t; break;
                }
            } else {
                int64_t t = kn_ldi(xp, x->dtype, off);
                switch (op) {
                case KN_OP_ReduceMax: v = t > v ? t : v; break;
                case KN_OP_ReduceMin: v = t < v ? t : v; break;
                default: v = (int64_t)((uint64_t)v + (uint64_t)t); break;
                }
            }
            for (int j = 0; j < nr; j++) { /* odometer over the reduced dims */
                off += rs[j];
                if (++ridx[j] < rd[j]) break;
                off -= rs[j] * rd[j];
                ridx[j] = 0;
            }
        }
        if (op == KN_OP_ReduceMean) {
            f /= (double)count; /* 0/0: NaN for an empty reduction */
            v = count ? v / count : 0;
        }
        if (fmode) kn_store_f64(y->data, y->dtype, o, f);
        else kn_sti(y->data, y->dtype, o, v);
        for (int j = 0; j < nk; j++) { /* odometer over the kept dims */
            base += ks[j];
            if (++kidx[j] < kd[j]) break;
            base -= ks[j] * kd[j];
            kidx[j] = 0;
        }
    }
    return KILN_OK;
}

/* Softmax and LogSoftmax over one axis: [outer, len, inner] with stride `inner` along the axis. */
static kiln_status kn_cpu_softmax(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int axis;
    KN_TRY(kn_norm_axis(a->node, kn_attr_i(a->node, "axis", -1), x->rank, &axis));
    int64_t outer = kn_numel(axis, x->dims), len = x->dims[axis];
    int64_t inner = kn_numel(x->rank - axis - 1, x->dims + axis + 1);
    int logsm = a->node->op == KN_OP_LogSoftmax;
    const void *xp = kn_ptr(x);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t b = o * len * inner + i;
            double m = -INFINITY, sum = 0;
            for (int64_t k = 0; k < len; k++) {
                double t = kn_load_f64(xp, x->dtype, b + k * inner);
                m = t > m || isnan(t) ? t : m;
            }
            for (int64_t k = 0; k < len; k++) sum += exp(kn_load_f64(xp, x->dtype, b + k * inner) - m);
            double ls = log(sum);
            for (int64_t k = 0; k < len; k++) {
                double t = kn_load_f64(xp, x->dtype, b + k * inner) - m;
                kn_store_f64(y->data, y->dtype, b + k * inner, logsm ? t - ls : exp(t) / sum);
            }
        }
    return KILN_OK;
}

void kn_cpu_register_reduce(kn_kernel *t) {
    t[KN_OP_ReduceMean] = (kn_kernel){.name = "cpu.reduce", .run = kn_cpu_reduce};
    t[KN_OP_ReduceSum] = (kn_kernel){.name = "cpu.reduce", .run = kn_cpu_reduce};
    t[KN_OP_ReduceMax] = (kn_kernel){.name = "cpu.reduce", .run = kn_cpu_reduce};
    t[KN_OP_ReduceMin] = (kn_kernel){.name = "cpu.reduce", .run = kn_cpu_reduce};
    t[KN_OP_Softmax] = (kn_kernel){.name = "cpu.softmax", .run = kn_cpu_softmax};
    t[KN_OP_LogSoftmax] = (kn_kernel){.name = "cpu.log_softmax", .run = kn_cpu_softmax};
}
