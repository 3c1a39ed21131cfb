/* CPU reference kernels for the shape, layout and data-movement ops. They are dtype-generic:
 * elements are moved by their byte size and never converted, so the same kernel serves f32, f16,
 * i64 (shape arithmetic, exactly) or bool. Host inputs (shapes, axes, pads, ...) are read from
 * in[i].host through the plans in ops/tensor.h, the same code the shape functions use. Nothing
 * here allocates. Resize is in tensor_resize.c. */
#include "cpu.h"
#include "tensor_cpu.h"

#include "ops/tensor.h"

/* Row-major strides (in elements) of dims. */
static void kn_strides(int rank, const int64_t *dims, int64_t *st) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        st[i] = s;
        s *= dims[i];
    }
}

/* dst (dense, dims) [i] = src[base + sum_d i_d * sst[d]]: the one loop behind Transpose, Slice and
 * Expand. The innermost dim runs as a plain loop. */
static void kn_strided_gather(char *dst, const char *src, size_t esz, int rank, const int64_t *dims,
                              const int64_t *sst, int64_t base) {
    int64_t n = kn_numel(rank, dims);
    if (n == 0) return;
    if (rank == 0) {
        kn_cpu_copy_bytes(dst, src + base * (int64_t)esz, esz);
        return;
    }
    int64_t idx[KILN_MAX_RANK] = {0}, inner = dims[rank - 1], is = sst[rank - 1], off = base;
    for (int64_t o = 0; o < n; o += inner) {
        const char *s = src + off * (int64_t)esz;
        char *d = dst + o * (int64_t)esz;
        if (is == 1) {
            memcpy(d, s, (size_t)inner * esz);
        } else {
            for (int64_t i = 0; i < inner; i++) kn_cpu_copy_bytes(d + i * (int64_t)esz, s + i * is * (int64_t)esz, esz);
        }
        for (int d2 = rank - 2; d2 >= 0; d2--) { /* odometer over the outer dims */
            off += sst[d2];
            if (++idx[d2] < dims[d2]) break;
            off -= sst[d2] * dims[d2];
            idx[d2] = 0;
        }
    }
}

/* ---- copies: Flatten, Reshape, Squeeze, Unsqueeze (none when the planner aliased the buffers) -- */

static kiln_status kn_cpu_copy(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    size_t bytes = kn_tensor_bytes(y);
    if (bytes && y->data != x->data) memmove(y->data, x->data, bytes);
    return KILN_OK;
}

/* ---- Transpose ---------------------------------------------------------------------------------- */

static kiln_status kn_cpu_transpose(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    const int64_t *perm;
    int k = kn_attr_ints(a->node, "perm", &perm);
    int64_t ist[KILN_MAX_RANK], sst[KILN_MAX_RANK];
    kn_strides(x->rank, x->dims, ist);
    for (int d = 0; d < y->rank; d++) sst[d] = ist[k ? perm[d] : x->rank - 1 - d];
    kn_strided_gather(y->data, x->data, kiln_dtype_size(x->dtype), y->rank, y->dims, sst, 0);
    return KILN_OK;
}

/* ---- Concat, Split -------------------------------------------------------------------------------- */

static int kn_axis_of(const kn_node *n, int rank, int64_t def) {
    int64_t a = kn_attr_i(n, "axis", def);
    return (int)(a < 0 ? a + rank : a);
}

static kiln_status kn_cpu_concat(const kn_kernel_args *a) {
    const kn_tensor *y = &a->out[0];
    int axis = kn_axis_of(a->node, y->rank, 0);
    size_t esz = kiln_dtype_size(y->dtype);
    int64_t outer = kn_numel(axis, y->dims), inner = kn_numel(y->rank - axis - 1, y->dims + axis + 1);
    int64_t ochunk = y->dims[axis] * inner, at = 0;
    for (int i = 0; i < a->n_in; i++) {
        const kn_tensor *x = &a->in[i];
        int64_t chunk = x->dims[axis] * inner;
        if (chunk)
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)y->data + (o * ochunk + at) * (int64_t)esz, (const char *)x->data + o * chunk * (int64_t)esz,
                       (size_t)chunk * esz);
        at += chunk;
    }
    return KILN_OK;
}

static kiln_status kn_cpu_split(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0];
    int axis = kn_axis_of(a->node, x->rank, 0);
    size_t esz = kiln_dtype_size(x->dtype);
    int64_t outer = kn_numel(axis, x->dims), inner = kn_numel(x->rank - axis - 1, x->dims + axis + 1);
    int64_t ichunk = x->dims[axis] * inner, at = 0;
    for (int i = 0; i < a->n_out; i++) {
        const kn_tensor *y = &a->out[i];
        int64_t chunk = y->dims[axis] * inner;
        if (chunk && y->data)
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)y->data + o * chunk * (int64_t)esz, (const char *)x->data + (o * ichunk + at) * (int64_t)esz,
                       (size_t)chunk * esz);
        at += chunk;
    }
    return KILN_OK;
}

/* ---- Slice ------------------------------------------------------------------------------------------ */

static kiln_status kn_cpu_slice(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    kn_slice_plan p;
    KN_TRY(kn_slice_plan_make(a->node, a->in, a->n_in, &p));
    int64_t ist[KILN_MAX_RANK], sst[KILN_MAX_RANK], base = 0;
    kn_strides(x->rank, x->dims, ist);
    for (int d = 0; d < x->rank; d++) {
        base += p.start[d] * ist[d];
        sst[d] = p.step[d] * ist[d];
    }
    kn_strided_gather(y->data, x->data, kiln_dtype_size(x->dtype), y->rank, y->dims, sst, base);
    return KILN_OK;
}

/* ---- Gather ------------------------------------------------------------------------------------------ */

static kiln_status kn_cpu_gather(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *ix = &a->in[1], *y = &a->out[0];
    int axis = kn_axis_of(a->node, x->rank, 0);
    size_t esz = kiln_dtype_size(x->dtype);
    int64_t outer = kn_numel(axis, x->dims), dim = x->dims[axis];
    int64_t inner = kn_numel(x->rank - axis - 1, x->dims + axis + 1), nidx = kn_tensor_numel(ix);
    size_t row = (size_t)inner * esz;
    for (int64_t j = 0; j < nidx; j++) {
        int64_t v = ix->dtype == KILN_I64 ? ((const int64_t *)ix->data)[j] : ((const int32_t *)ix->data)[j];
        if (v < -dim || v >= dim)
            return kn_node_error(a->node, KILN_ERR_SHAPE, "input 1 (indices) entry %lld = %lld is out of range for axis %d of size %lld",
                                 (long long)j, (long long)v, axis, (long long)dim);
        if (v < 0) v += dim;
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)y->data + (o * nidx + j) * (int64_t)row, (const char *)x->data + (o * dim + v) * (int64_t)row, row);
    }
    return KILN_OK;
}

/* ---- Expand, Tile -------------------------------------------------------------------------------------- */

static kiln_status kn_cpu_expand(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int64_t sst[KILN_MAX_RANK];
    kn_cpu_broadcast_strides(x, y, sst);
    kn_strided_gather(y->data, x->data, kiln_dtype_size(x->dtype), y->rank, y->dims, sst, 0);
    return KILN_OK;
}

static kiln_status kn_cpu_tile(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    size_t esz = kiln_dtype_size(x->dtype);
    int64_t n = kn_tensor_numel(y), ist[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0}, off = 0;
    kn_strides(x->rank, x->dims, ist);
    for (int64_t o = 0; o < n; o++) {
        kn_cpu_copy_bytes((char *)y->data + o * (int64_t)esz, (const char *)x->data + off * (int64_t)esz, esz);
        for (int d = y->rank - 1; d >= 0; d--) { /* source index = output index mod input dim */
            off += ist[d];
            ++idx[d];
            if (idx[d] % x->dims[d] == 0) off -= ist[d] * x->dims[d];
            if (idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
    }
    return KILN_OK;
}

/* ---- Pad -------------------------------------------------------------------------------------------------- */

static kiln_status kn_cpu_pad(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    kn_pad_plan p;
    KN_TRY(kn_pad_plan_make(a->node, a->in, a->n_in, &p));
    size_t esz = kiln_dtype_size(x->dtype);
    char fill[16] = {0};
    if (p.value) memcpy(fill, p.value, esz);
    else kn_store_f64(fill, x->dtype, 0, p.value_f);
    int64_t n = kn_tensor_numel(y), ist[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0};
    kn_strides(x->rank, x->dims, ist);
    for (int64_t o = 0; o < n; o++) {
        int64_t off = 0;
        int inside = 1;
        for (int d = 0; d < y->rank && inside; d++) {
            int64_t s = kn_pad_src_index(p.mode, idx[d] - p.begin[d], x->dims[d]);
            if (s < 0) inside = 0;
            else off += s * ist[d];
        }
        kn_cpu_copy_bytes((char *)y->data + o * (int64_t)esz, inside ? (const char *)x->data + off * (int64_t)esz : fill, esz);
        for (int d = y->rank - 1; d >= 0; d--) {
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
    }
    return KILN_OK;
}

/* ---- Shape, Constant, ConstantOfShape, Range ------------------------------------------------------- */

static kiln_status kn_cpu_shape(const kn_kernel_args *a) {
    int s, e;
    kn_shape_bounds(a->node, a->in[0].rank, &s, &e);
    for (int i = s; i < e; i++) ((int64_t *)a->out[0].data)[i - s] = a->in[0].dims[i];
    return KILN_OK;
}

static kiln_status kn_cpu_constant(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *y = &a->out[0];
    const kn_attr *at;
    if ((at = kn_node_attr(n, "value"))) {
        memcpy(y->data, at->tensor->data, kn_tensor_bytes(y));
    } else if ((at = kn_node_attr(n, "value_float"))) {
        memcpy(y->data, &at->f, 4);
    } else if ((at = kn_node_attr(n, "value_int"))) {
        memcpy(y->data, &at->i, 8);
    } else if ((at = kn_node_attr(n, "value_floats"))) {
        memcpy(y->data, at->floats, (size_t)at->count * 4);
    } else if ((at = kn_node_attr(n, "value_ints"))) {
        memcpy(y->data, at->ints, (size_t)at->count * 8);
    } else {
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "has no value attribute");
    }
    return KILN_OK;
}

static kiln_status kn_cpu_constant_of_shape(const kn_kernel_args *a) {
    const kn_tensor *y = &a->out[0];
    const kn_attr *at = kn_node_attr(a->node, "value");
    size_t esz = kiln_dtype_size(y->dtype);
    float zero = 0;
    const char *v = at ? (const char *)at->tensor->data : (const char *)&zero;
    int64_t n = kn_tensor_numel(y);
    for (int64_t i = 0; i < n; i++) kn_cpu_copy_bytes((char *)y->data + i * (int64_t)esz, v, esz);
    return KILN_OK;
}

static kiln_status kn_cpu_range(const kn_kernel_args *a) {
    const kn_tensor *y = &a->out[0];
    int64_t cnt;
    KN_TRY(kn_range_count(a->node, a->in, &cnt));
    kiln_dtype t = y->dtype;
    if (kn_dtype_is_int(t)) {
        int64_t s = t == KILN_I64 ? *(const int64_t *)a->in[0].host : (int64_t)kn_load_f64(a->in[0].host, t, 0);
        int64_t d = t == KILN_I64 ? *(const int64_t *)a->in[2].host : (int64_t)kn_load_f64(a->in[2].host, t, 0);
        for (int64_t i = 0; i < cnt; i++) {
            int64_t v = s + i * d;
            switch (t) {
            case KILN_I64: ((int64_t *)y->data)[i] = v; break;
            case KILN_I32: ((int32_t *)y->data)[i] = (int32_t)v; break;
            case KILN_I8: ((int8_t *)y->data)[i] = (int8_t)v; break;
            default: ((uint8_t *)y->data)[i] = (uint8_t)v; break;
            }
        }
    } else {
        double s = kn_load_f64(a->in[0].host, t, 0), d = kn_load_f64(a->in[2].host, t, 0);
        for (int64_t i = 0; i < cnt; i++) kn_store_f64(y->data, t, i, s + (double)i * d);
    }
    return KILN_OK;
}

void kn_cpu_register_tensor(kn_kernel *t) {
    t[KN_OP_Flatten] = (kn_kernel){.name = "cpu.copy", .run = kn_cpu_copy};
    t[KN_OP_Reshape] = (kn_kernel){.name = "cpu.copy", .run = kn_cpu_copy};
    t[KN_OP_Squeeze] = (kn_kernel){.name = "cpu.copy", .run = kn_cpu_copy};
    t[KN_OP_Unsqueeze] = (kn_kernel){.name = "cpu.copy", .run = kn_cpu_copy};
    t[KN_OP_Transpose] = (kn_kernel){.name = "cpu.transpose", .run = kn_cpu_transpose};
    t[KN_OP_Concat] = (kn_kernel){.name = "cpu.concat", .run = kn_cpu_concat};
    t[KN_OP_Split] = (kn_kernel){.name = "cpu.split", .run = kn_cpu_split};
    t[KN_OP_Slice] = (kn_kernel){.name = "cpu.slice", .run = kn_cpu_slice};
    t[KN_OP_Gather] = (kn_kernel){.name = "cpu.gather", .run = kn_cpu_gather};
    t[KN_OP_Expand] = (kn_kernel){.name = "cpu.expand", .run = kn_cpu_expand};
    t[KN_OP_Tile] = (kn_kernel){.name = "cpu.tile", .run = kn_cpu_tile};
    t[KN_OP_Pad] = (kn_kernel){.name = "cpu.pad", .run = kn_cpu_pad};
    t[KN_OP_Shape] = (kn_kernel){.name = "cpu.shape", .run = kn_cpu_shape};
    t[KN_OP_Constant] = (kn_kernel){.name = "cpu.constant", .run = kn_cpu_constant};
    t[KN_OP_ConstantOfShape] = (kn_kernel){.name = "cpu.constant_of_shape", .run = kn_cpu_constant_of_shape};
    t[KN_OP_Range] = (kn_kernel){.name = "cpu.range", .run = kn_cpu_range};
    kn_cpu_register_resize(t);
}
