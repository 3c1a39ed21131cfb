/* BatchNormalization (inference), InstanceNormalization and LayerNormalization against float64
 * loops written here, f32/f16/bf16/f64, LayerNormalization's axis, broadcast Scale/B, omitted
 * B and the Mean/InvStdDev outputs; and the error paths. */
#include "nn_testutil.h"

static int64_t prod(int n, const int64_t *d) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= d[i];
    return p;
}

static void test_batchnorm(kiln_dtype dt, int rank, const int64_t *dims, float eps) {
    int64_t C = dims[1], cd[1] = {C};
    kt_t in[5] = {kt_rand(dt, rank, dims, -2, 2), kt_rand(dt, 1, cd, 0.5f, 1.5f), kt_rand(dt, 1, cd, -1, 1),
                  kt_rand(dt, 1, cd, -0.5f, 0.5f), kt_rand(dt, 1, cd, 0.1f, 2.0f)},
         y;
    kiln_attr at[1] = {kiln_attr_float("epsilon", eps)};
    kiln_status st = kt_run_op(KN_OP_BatchNormalization, "bn", 5, in, 1, &y, 1, at);
    KT_CHECK(st == KILN_OK, "bn: %s", kiln_last_error());
    if (st == KILN_OK) {
        KT_CHECK(kt_dims_are(&y, rank, dims) && y.t.dtype == dt, "bn: output dims");
        int64_t n = prod(rank, dims), sp = prod(rank - 2, dims + 2);
        double *ref = calloc((size_t)n, sizeof *ref);
        for (int64_t i = 0; i < n; i++) {
            int64_t c = (i / sp) % C;
            ref[i] = (in[0].v[i] - in[3].v[c]) / sqrt(in[4].v[c] + (double)eps) * in[1].v[c] + in[2].v[c];
        }
        double r = kt_ratio(y.v, ref, n, kt_rtol(dt), kt_atol(dt));
        KT_CHECK(r <= 1, "bn %s rank %d: off by %.3g tolerances", kiln_dtype_name(dt), rank, r);
        free(ref);
    }
    kt_free(&y);
    for (int i = 0; i < 5; i++) kt_free(&in[i]);
}

static void test_instancenorm(kiln_dtype dt, int rank, const int64_t *dims, float eps) {
    int64_t C = dims[1], cd[1] = {C};
    kt_t in[3] = {kt_rand(dt, rank, dims, -2, 3), kt_rand(dt, 1, cd, 0.5f, 1.5f), kt_rand(dt, 1, cd, -1, 1)}, y;
    kiln_attr at[1] = {kiln_attr_float("epsilon", eps)};
    kiln_status st = kt_run_op(KN_OP_InstanceNormalization, "in", 3, in, 1, &y, 1, at);
    KT_CHECK(st == KILN_OK, "instancenorm: %s", kiln_last_error());
    if (st == KILN_OK) {
        KT_CHECK(kt_dims_are(&y, rank, dims) && y.t.dtype == dt, "instancenorm: output dims");
        int64_t n = prod(rank, dims), sp = prod(rank - 2, dims + 2);
        double *ref = calloc((size_t)n, sizeof *ref);
        for (int64_t p = 0; p < n / sp; p++) {
            double mean = 0, var = 0;
            for (int64_t i = 0; i < sp; i++) mean += in[0].v[p * sp + i] / (double)sp;
            for (int64_t i = 0; i < sp; i++) var += pow(in[0].v[p * sp + i] - mean, 2) / (double)sp;
            for (int64_t i = 0; i < sp; i++)
                ref[p * sp + i] = (in[0].v[p * sp + i] - mean) / sqrt(var + (double)eps) * in[1].v[p % C] + in[2].v[p % C];
        }
        double r = kt_ratio(y.v, ref, n, kt_rtol(dt), kt_atol(dt));
        KT_CHECK(r <= 1, "instancenorm %s: off by %.3g tolerances", kiln_dtype_name(dt), r);
        free(ref);
    }
    kt_free(&y);
    for (int i = 0; i < 3; i++) kt_free(&in[i]);
}

/* Index into a tensor of rank sr broadcast (numpy, right-aligned) against normalized dims nd[nr]. */
static int64_t bcast_index(const int64_t *coord, int nr, const int64_t *nd, const kt_t *s) {
    int64_t lin = 0;
    for (int i = 0; i < s->t.rank; i++) {
        int64_t d = s->t.dims[i], c = coord[nr - s->t.rank + i];
        lin = lin * d + (d == 1 ? 0 : c);
    }
    (void)nd;
    return lin;
}

typedef struct ln_cfg {
    const char *label;
    kiln_dtype dt;
    int rank;
    int64_t dims[4];
    int axis;
    int scale_rank; /* Scale's rank (its dims are the trailing normalized dims) */
    int scale_ones; /* make Scale's first dim 1 (broadcast) */
    int bias;       /* 0: omitted */
    int n_out;
    int64_t stash;
} ln_cfg;

static void test_layernorm(const ln_cfg *c) {
    int rank = c->rank, axis = c->axis < 0 ? c->axis + rank : c->axis, nr = rank - axis;
    int64_t sd[4];
    for (int i = 0; i < c->scale_rank; i++) sd[i] = c->dims[rank - c->scale_rank + i];
    if (c->scale_ones && c->scale_rank > 1) sd[0] = 1;
    kt_t in[3] = {kt_rand(c->dt, rank, c->dims, -2, 3), kt_rand(c->dt, c->scale_rank, sd, 0.5f, 1.5f),
                  c->bias ? kt_rand(c->dt, c->scale_rank, sd, -1, 1) : kt_absent()},
         y[3];
    kiln_attr at[3] = {kiln_attr_int("axis", c->axis), kiln_attr_float("epsilon", 1e-3f),
                       kiln_attr_int("stash_type", c->stash ? c->stash : 1)};
    kiln_status st = kt_run_op(KN_OP_LayerNormalization, c->label, c->bias ? 3 : 2, in, c->n_out, y, 3, at);
    KT_CHECK(st == KILN_OK, "%s: %s", c->label, kiln_last_error());
    if (st == KILN_OK) {
        KT_CHECK(kt_dims_are(&y[0], rank, c->dims) && y[0].t.dtype == c->dt, "%s: output dims", c->label);
        int64_t outer = prod(axis, c->dims), inner = prod(nr, c->dims + axis), n = outer * inner;
        double *ref = calloc((size_t)n, sizeof *ref), *rm = calloc((size_t)outer, sizeof *rm),
               *ri = calloc((size_t)outer, sizeof *ri);
        for (int64_t r = 0; r < outer; r++) {
            const double *x = in[0].v + r * inner;
            double mean = 0, var = 0;
            for (int64_t j = 0; j < inner; j++) mean += x[j] / (double)inner;
            for (int64_t j = 0; j < inner; j++) var += (x[j] - mean) * (x[j] - mean) / (double)inner;
            rm[r] = mean;
            ri[r] = 1 / sqrt(var + (double)1e-3f);
            for (int64_t j = 0; j < inner; j++) {
                int64_t coord[4], t = j;
                for (int d = nr - 1; d >= 0; d--) {
                    coord[d] = t % c->dims[axis + d];
                    t /= c->dims[axis + d];
                }
                double s = in[1].v[bcast_index(coord, nr, c->dims + axis, &in[1])];
                double b = c->bias ? in[2].v[bcast_index(coord, nr, c->dims + axis, &in[2])] : 0;
                ref[r * inner + j] = (x[j] - mean) * ri[r] * s + b;
            }
        }
        double q = kt_ratio(y[0].v, ref, n, kt_rtol(c->dt), kt_atol(c->dt));
        KT_CHECK(q <= 1, "%s: Y off by %.3g tolerances", c->label, q);
        if (c->n_out > 1) {
            int64_t md[4];
            for (int i = 0; i < rank; i++) md[i] = i < axis ? c->dims[i] : 1;
            kiln_dtype sdt = c->stash == 10 ? KILN_F16 : c->stash == 11 ? KILN_F64 : KILN_F32;
            KT_CHECK(kt_dims_are(&y[1], rank, md) && y[1].t.dtype == sdt, "%s: Mean dims/dtype", c->label);
            KT_CHECK(kt_ratio(y[1].v, rm, outer, kt_rtol(sdt), kt_atol(sdt)) <= 1, "%s: Mean", c->label);
            if (c->n_out > 2) {
                KT_CHECK(kt_dims_are(&y[2], rank, md) && y[2].t.dtype == sdt, "%s: InvStdDev dims", c->label);
                KT_CHECK(kt_ratio(y[2].v, ri, outer, kt_rtol(sdt), kt_atol(sdt)) <= 1, "%s: InvStdDev", c->label);
            }
        }
        free(ref);
        free(rm);
        free(ri);
    }
    for (int o = 0; o < c->n_out; o++) kt_free(&y[o]);
    for (int i = 0; i < 3; i++) kt_free(&in[i]);
}

static const ln_cfg ln_cases[] = {
    {"ln_last", KILN_F32, 3, {2, 5, 16}, -1, 1, 0, 1, 1},
    {"ln_axis1", KILN_F32, 3, {3, 4, 6}, 1, 2, 0, 1, 3},
    {"ln_axis0", KILN_F32, 2, {4, 7}, 0, 2, 0, 1, 3},
    {"ln_broadcast_scale", KILN_F32, 4, {2, 3, 4, 5}, -3, 3, 1, 1, 1},
    {"ln_scale_rank1_of_2", KILN_F32, 3, {2, 4, 6}, 1, 1, 0, 1, 2},
    {"ln_no_bias", KILN_F32, 3, {2, 3, 8}, -1, 1, 0, 0, 3},
    {"ln_f16", KILN_F16, 3, {2, 6, 32}, -1, 1, 0, 1, 3},
    {"ln_f16_stash_f16", KILN_F16, 2, {3, 16}, -1, 1, 0, 1, 3, 10},
    {"ln_bf16", KILN_BF16, 2, {4, 24}, -1, 1, 0, 1, 1},
    {"ln_f64", KILN_F64, 3, {2, 3, 10}, -2, 2, 0, 1, 3, 11},
};

static void test_norm_errors(void) {
    int64_t xd[4] = {2, 3, 4, 4}, c3[1] = {3}, c4[1] = {4};
    kt_t in[5] = {kt_rand(KILN_F32, 4, xd, -1, 1), kt_rand(KILN_F32, 1, c3, -1, 1), kt_rand(KILN_F32, 1, c3, -1, 1),
                  kt_rand(KILN_F32, 1, c4, -1, 1), kt_rand(KILN_F32, 1, c3, 0, 1)},
         y[3];
    KT_FAILS(kt_run_op(KN_OP_BatchNormalization, "bn1", 5, in, 1, y, 0, NULL), KILN_ERR_SHAPE,
             "BatchNormalization 'bn1': input 'input_mean' has dims 4; expected [3]");
    kt_free(&in[3]);
    in[3] = kt_rand(KILN_F32, 1, c3, -1, 1);
    kiln_attr tm = kiln_attr_int("training_mode", 1);
    KT_FAILS(kt_run_op(KN_OP_BatchNormalization, "bn2", 5, in, 1, y, 1, &tm), KILN_ERR_UNSUPPORTED,
             "BatchNormalization 'bn2': attribute 'training_mode' is 1; kiln runs inference only");
    KT_FAILS(kt_run_op(KN_OP_BatchNormalization, "bn3", 5, in, 3, y, 0, NULL), KILN_ERR_UNSUPPORTED,
             "BatchNormalization 'bn3': has 3 outputs; outputs beyond 'Y'");
    KT_OK(kt_run_op(KN_OP_BatchNormalization, "bn4", 5, in, 1, y, 0, NULL));
    kt_free(&y[0]);
    kt_t bad_scale = kt_rand(KILN_F32, 1, c4, -1, 1);
    kt_t iin[3] = {in[0], bad_scale, in[2]};
    KT_FAILS(kt_run_op(KN_OP_InstanceNormalization, "in1", 3, iin, 1, y, 0, NULL), KILN_ERR_SHAPE,
             "InstanceNormalization 'in1': input 'scale' has dims 4; expected [3]");
    int64_t x1[1] = {3};
    kt_t x1t = kt_rand(KILN_F32, 1, x1, -1, 1);
    iin[0] = x1t;
    iin[1] = in[1];
    KT_FAILS(kt_run_op(KN_OP_InstanceNormalization, "in2", 3, iin, 1, y, 0, NULL), KILN_ERR_SHAPE,
             "InstanceNormalization 'in2': input 'X' has dims 3; expected rank >= 3");
    /* LayerNormalization: Scale that does not broadcast, an axis out of range, a bad stash_type */
    kt_t lin[2] = {in[0], in[1]};
    KT_FAILS(kt_run_op(KN_OP_LayerNormalization, "ln1", 2, lin, 1, y, 0, NULL), KILN_ERR_SHAPE,
             "LayerNormalization 'ln1': input 'Scale' has dims 3; it must broadcast to the normalized dims of X");
    kiln_attr ax = kiln_attr_int("axis", 4);
    lin[1] = bad_scale;
    KT_FAILS(kt_run_op(KN_OP_LayerNormalization, "ln2", 2, lin, 1, y, 1, &ax), KILN_ERR_SHAPE,
             "LayerNormalization 'ln2': axis 4 is out of range for rank 4");
    kiln_attr stash = kiln_attr_int("stash_type", 7);
    KT_FAILS(kt_run_op(KN_OP_LayerNormalization, "ln3", 2, lin, 1, y, 1, &stash), KILN_ERR_INVALID_ARGUMENT,
             "LayerNormalization 'ln3': attribute 'stash_type' is 7");
    kt_free(&x1t);
    kt_free(&bad_scale);
    for (int i = 0; i < 5; i++) kt_free(&in[i]);
}

int main(void) {
    kt_seed(7);
    int64_t d4[4] = {2, 3, 5, 4}, d2[2] = {6, 5}, d5[5] = {1, 4, 3, 2, 5}, d3[3] = {2, 3, 7};
    test_batchnorm(KILN_F32, 4, d4, 1e-5f);
    test_batchnorm(KILN_F32, 2, d2, 1e-3f);
    test_batchnorm(KILN_F16, 4, d4, 1e-5f);
    test_batchnorm(KILN_BF16, 3, d3, 1e-5f);
    test_batchnorm(KILN_F64, 5, d5, 1e-5f);
    test_instancenorm(KILN_F32, 4, d4, 1e-5f);
    test_instancenorm(KILN_F32, 3, d3, 1e-2f);
    test_instancenorm(KILN_F16, 4, d4, 1e-5f);
    test_instancenorm(KILN_F64, 5, d5, 1e-5f);
    for (size_t i = 0; i < sizeof ln_cases / sizeof ln_cases[0]; i++) test_layernorm(&ln_cases[i]);
    test_norm_errors();
    return kt_finish();
}
