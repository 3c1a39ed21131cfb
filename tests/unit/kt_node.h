/* The one-node op harness shared by the op-family tests: build a single node, infer its shapes,
 * run the CPU kernel, and hold tensors as doubles rounded to their dtype, so that references can
 * be plain float64 loops written in each test. */
#ifndef KILN_KT_NODE_H
#define KILN_KT_NODE_H

#include "testlib.h"

#include "ir/shape_infer.h"
#include "ops/ops.h"

typedef struct kt_t {
    kiln_dtype dt;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    double *v; /* values, already rounded to dt */
    int no_host; /* input not known on the host */
} kt_t;

int64_t kt_n(const kt_t *t);
kt_t kt_make(kiln_dtype dt, int rank, const int64_t *dims);
double kt_round(kiln_dtype dt, double v);
void kt_rand(kt_t *t, double lo, double hi);
kt_t kt_rnd(kiln_dtype dt, int rank, const int64_t *dims, double lo, double hi);
kt_t kt_scalar(kiln_dtype dt, double v);
void kt_free(kt_t *t);
kiln_status kt_run(const char *op, const char *name, int n_in, const kt_t *ins, int n_attr, const kiln_attr *attrs, int n_out, kt_t *outs);
double kt_rtol(kiln_dtype dt);
void kt_expect(const char *what, const kt_t *out, const double *ref, int64_t n);
void kt_expect_shape(const char *what, const kt_t *out, kiln_dtype dt, int rank, const int64_t *dims);

#define KT_D(...) ((const int64_t[]){__VA_ARGS__})

#endif
