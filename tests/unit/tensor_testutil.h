/* Helpers for the tensor-op tests (test_ops_tensor_*.c): a node on the stack, tensors with random
 * data of any dtype, and one call that runs an op the way the runtime does: attribute check,
 * shape inference, then the CPU kernel (prepare, run, release). The references these tests
 * compare with are written in the tests themselves, by index arithmetic. */
#ifndef KILN_TENSOR_TESTUTIL_H
#define KILN_TENSOR_TESTUTIL_H

#include "testlib.h"

#include "backend/cpu/cpu.h"
#include "ir/shape_infer.h"

#include <stdlib.h>
#include <string.h>

#define KT_UNUSED __attribute__((unused))

static const kiln_dtype kt_dtypes3[3] = {KILN_F32, KILN_F16, KILN_I64};

static KT_UNUSED void kt_node(kn_node *n, kn_op op, const char *name) {
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = (char *)name;
}

static KT_UNUSED void kt_node_free(kn_node *n) {
    for (int i = 0; i < n->n_attrs; i++) kn_attr_clear(&n->attrs[i]);
    kn_free(n->attrs);
    n->attrs = NULL;
    n->n_attrs = 0;
}

static KT_UNUSED void kt_attr_i(kn_node *n, const char *name, int64_t v) { kn_node_set_attr_int(n, name, v); }
static KT_UNUSED void kt_attr_f(kn_node *n, const char *name, float v) { kn_node_set_attr_float(n, name, v); }
static KT_UNUSED void kt_attr_ints(kn_node *n, const char *name, int k, const int64_t *v) {
    kn_node_set_attr_ints(n, name, k, v);
}
static KT_UNUSED void kt_attr_s(kn_node *n, const char *name, const char *v) {
    kiln_attr a = kiln_attr_string(name, v);
    kn_node_set_attr(n, &a);
}

/* A tensor with zeroed storage (8 spare bytes so 0-element tensors have a pointer). */
static KT_UNUSED kn_tensor kt_tensor(kiln_dtype dt, int rank, const int64_t *dims) {
    kn_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.rank = rank;
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    t.data = calloc(1, kn_tensor_bytes(&t) + 8);
    return t;
}

static KT_UNUSED void kt_free(kn_tensor *t) {
    free(t->data);
    t->data = NULL;
    t->host = NULL;
}

/* Random, non-zero data of the tensor's dtype (i64 uses full 64-bit values, to catch anything
 * that goes through a double). */
static KT_UNUSED void kt_randomize(kn_tensor *t) {
    int64_t n = kn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float f = kt_uniform(-8.0f, 8.0f);
        if (f > -0.01f && f < 0.01f) f = 0.5f;
        switch (t->dtype) {
        case KILN_F32: ((float *)t->data)[i] = f; break;
        case KILN_F16: ((uint16_t *)t->data)[i] = kn_f32_to_f16(f); break;
        case KILN_BF16: ((uint16_t *)t->data)[i] = kn_f32_to_bf16(f); break;
        case KILN_F64: ((double *)t->data)[i] = (double)f * 1.000000001; break;
        case KILN_I64: ((int64_t *)t->data)[i] = (int64_t)(kt_rand_u64() | 1); break;
        case KILN_I32: ((int32_t *)t->data)[i] = (int32_t)(kt_rand_u64() | 1); break;
        default: ((uint8_t *)t->data)[i] = (uint8_t)(kt_rand_u64() | 1); break;
        }
    }
}

/* A 1-D i64 tensor known on the host (a shape, axes, pads input). */
static KT_UNUSED kn_tensor kt_host_i64(int k, const int64_t *v) {
    int64_t d = k;
    kn_tensor t = kt_tensor(KILN_I64, 1, &d);
    if (k) memcpy(t.data, v, (size_t)k * 8);
    t.host = t.data;
    return t;
}

static KT_UNUSED kn_tensor kt_host_f32(int k, const float *v) {
    int64_t d = k;
    kn_tensor t = kt_tensor(KILN_F32, 1, &d);
    if (k) memcpy(t.data, v, (size_t)k * 4);
    t.host = t.data;
    return t;
}

/* A host-known scalar of dtype dt holding v. */
static KT_UNUSED kn_tensor kt_host_scalar(kiln_dtype dt, double v) {
    kn_tensor t = kt_tensor(dt, 0, NULL);
    if (dt == KILN_I64) *(int64_t *)t.data = (int64_t)v;
    else kn_store_f64(t.data, dt, 0, v);
    t.host = t.data;
    return t;
}

/* Runs the op: check, infer, allocate outputs (caller frees them with kt_free), CPU kernel. */
static KT_UNUSED kiln_status kt_run(kn_node *n, const kn_tensor *in, int n_in, kn_tensor *out, int n_out) {
    const kn_op_def *d = kn_op_get(n->op);
    n->n_in = n_in; /* the node's arity, as the graph would give it (in/out indices stay unset) */
    n->n_out = n_out;
    for (int o = 0; o < n_out; o++) memset(&out[o], 0, sizeof out[o]);
    if (d->check) KN_TRY(d->check(NULL, n));
    if (n_in < d->min_in || n_in > d->max_in || n_out < d->min_out || n_out > d->max_out)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "test: arity %d/%d outside the op's", n_in, n_out);
    kn_tensor ins[16];
    for (int i = 0; i < n_in; i++) {
        ins[i] = in[i];
        ins[i].data = NULL; /* shape inference never sees data */
    }
    kn_infer_ctx ctx = {.g = NULL, .node = n, .n_in = n_in, .n_out = n_out, .in = ins, .out = out};
    KN_TRY(d->infer(&ctx));
    for (int o = 0; o < n_out; o++) {
        out[o].data = calloc(1, kn_tensor_bytes(&out[o]) + 8);
        out[o].host = NULL;
    }
    return kn_cpu_eval_node(n, in, n_in, out, n_out);
}

static KT_UNUSED void kt_free_outs(kn_tensor *out, int n_out) {
    for (int o = 0; o < n_out; o++) kt_free(&out[o]);
}

/* out has the expected dims. */
static KT_UNUSED int kt_dims_are(const kn_tensor *t, int rank, const int64_t *dims) {
    if (t->rank != rank) return 0;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i]) return 0;
    return 1;
}

static KT_UNUSED const char *kt_dims(const kn_tensor *t) {
    static char buf[4][96];
    static int k;
    k = (k + 1) & 3;
    return kn_dims_str(t->rank, t->dims, buf[k], sizeof buf[k]);
}

/* Element i of a and element j of b are the same bytes. */
static KT_UNUSED int kt_elem_eq(const kn_tensor *a, int64_t i, const kn_tensor *b, int64_t j) {
    size_t e = kiln_dtype_size(a->dtype);
    return memcmp((const char *)a->data + i * (int64_t)e, (const char *)b->data + j * (int64_t)e, e) == 0;
}

/* Multi-index <-> flat index, row-major (written here, independent of the library's helpers). */
static KT_UNUSED void kt_unravel(int64_t flat, int rank, const int64_t *dims, int64_t *idx) {
    for (int d = rank - 1; d >= 0; d--) {
        idx[d] = dims[d] ? flat % dims[d] : 0;
        flat = dims[d] ? flat / dims[d] : 0;
    }
}
static KT_UNUSED int64_t kt_ravel(int rank, const int64_t *dims, const int64_t *idx) {
    int64_t f = 0;
    for (int d = 0; d < rank; d++) f = f * dims[d] + idx[d];
    return f;
}

/* Random dims in [lo, hi] for `rank` axes. */
static KT_UNUSED void kt_rand_dims(int rank, int64_t lo, int64_t hi, int64_t *dims) {
    for (int i = 0; i < rank; i++) dims[i] = lo + (int64_t)(kt_rand_u64() % (uint64_t)(hi - lo + 1));
}

static KT_UNUSED int64_t kt_rand_int(int64_t lo, int64_t hi) {
    return lo + (int64_t)(kt_rand_u64() % (uint64_t)(hi - lo + 1));
}

#endif
