/* Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat, Split: random
 * shapes and data (f32, f16, i64), negative axes, the old attribute forms, and error messages,
 * each against a reference written here. */
#include "tensor_testutil.h"

/* The output is a byte-exact copy of the input with the given dims. */
static void check_copy(const char *what, const kn_tensor *x, const kn_tensor *y, int rank, const int64_t *dims) {
    char a[96], b[96];
    KT_CHECK(kt_dims_are(y, rank, dims), "%s: dims %s, expected %s", what, kt_dims(y), kn_dims_str(rank, dims, a, sizeof a));
    KT_CHECK(y->dtype == x->dtype, "%s: dtype %s", what, kiln_dtype_name(y->dtype));
    int64_t n = kn_tensor_numel(x);
    KT_CHECK(kn_tensor_numel(y) == n && memcmp(x->data, y->data, kn_tensor_bytes(x)) == 0, "%s: data differ (%s)", what,
             kn_dims_str(x->rank, x->dims, b, sizeof b));
}

static void test_flatten(void) {
    for (int it = 0; it < 40; it++) {
        int64_t dims[5];
        int r = (int)kt_rand_int(0, 5);
        kt_rand_dims(r, 1, 4, dims);
        int64_t axis = kt_rand_int(-r, r);
        kiln_dtype dt = kt_dtypes3[it % 3];
        kn_tensor x = kt_tensor(dt, r, dims), y;
        kt_randomize(&x);
        kn_node n;
        kt_node(&n, KN_OP_Flatten, "f");
        kt_attr_i(&n, "axis", axis);
        KT_OK(kt_run(&n, &x, 1, &y, 1));
        int64_t a = axis < 0 ? axis + r : axis, e[2] = {1, 1};
        for (int i = 0; i < r; i++) e[i < a ? 0 : 1] *= dims[i];
        check_copy("Flatten", &x, &y, 2, e);
        kt_free(&y);
        kt_node_free(&n);
        kt_free(&x);
    }
    int64_t d[3] = {2, 3, 4};
    kn_tensor x = kt_tensor(KILN_F32, 3, d), y;
    kn_node n;
    kt_node(&n, KN_OP_Flatten, "flat_bad");
    kt_attr_i(&n, "axis", 4);
    KT_FAILS(kt_run(&n, &x, 1, &y, 1), KILN_ERR_SHAPE, "Flatten 'flat_bad': attribute 'axis' = 4 is out of range [-3, 3]");
    kt_node_free(&n);
    kt_free(&x);
}

static kiln_status run_reshape(const char *name, kn_tensor *x, int k, const int64_t *shape, int allowzero, kn_tensor *y) {
    kn_node n;
    kt_node(&n, KN_OP_Reshape, name);
    if (allowzero >= 0) kt_attr_i(&n, "allowzero", allowzero);
    kn_tensor in[2] = {*x, kt_host_i64(k, shape)};
    kiln_status st = kt_run(&n, in, 2, y, 1);
    kt_free(&in[1]);
    kt_node_free(&n);
    return st;
}

static void test_reshape(void) {
    int64_t d[3] = {2, 3, 4};
    struct { int k; int64_t s[4]; int rank; int64_t e[4]; int allowzero; } cases[] = {
        {2, {4, -1}, 2, {4, 6}, -1},       {2, {0, -1}, 2, {2, 12}, -1},    {3, {0, 0, -1}, 3, {2, 3, 4}, 0},
        {1, {-1}, 1, {24}, -1},            {4, {2, 0, 2, -1}, 4, {2, 3, 2, 2}, -1}, {3, {-1, 0, 4}, 3, {2, 3, 4}, -1},
        {4, {1, 24, 1, 1}, 4, {1, 24, 1, 1}, 1},
    };
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++)
        for (int t = 0; t < 3; t++) {
            kn_tensor x = kt_tensor(kt_dtypes3[t], 3, d), y;
            kt_randomize(&x);
            KT_OK(run_reshape("r", &x, cases[c].k, cases[c].s, cases[c].allowzero, &y));
            check_copy("Reshape", &x, &y, cases[c].rank, cases[c].e);
            kt_free(&y);
            kt_free(&x);
        }
    /* allowzero: a 0 is a real 0 */
    {
        int64_t d0[2] = {0, 4}, s[3] = {0, 4, 3}, e[3] = {0, 4, 3};
        kn_tensor x = kt_tensor(KILN_F32, 2, d0), y;
        KT_OK(run_reshape("rz", &x, 3, s, 1, &y));
        KT_CHECK(kt_dims_are(&y, 3, e), "allowzero: %s", kt_dims(&y));
        kt_free(&y);
        int64_t s2[3] = {3, 0, 0}, e2[3] = {3, 0, 0};
        KT_OK(run_reshape("rz1", &x, 3, s2, 1, &y));
        KT_CHECK(kt_dims_are(&y, 3, e2), "allowzero: %s", kt_dims(&y));
        kt_free(&y);
        KT_FAILS(run_reshape("rz2", &x, 3, s2, 0, &y), KILN_ERR_SHAPE, "Reshape 'rz2': input 1 (shape) 3x0x0 has a 0 at entry 2");
        kt_free(&x);
    }
    /* random: keep some dims with 0, infer one with -1, or merge a prefix */
    for (int it = 0; it < 60; it++) {
        int64_t dims[6], s[6], e[6];
        int r = (int)kt_rand_int(1, 6);
        kt_rand_dims(r, 1, 4, dims);
        kn_tensor x = kt_tensor(kt_dtypes3[it % 3], r, dims), y;
        kt_randomize(&x);
        int k, er;
        if (it % 2) {
            int neg = (int)kt_rand_int(0, r - 1);
            for (int i = 0; i < r; i++) s[i] = i == neg ? -1 : kt_rand_int(0, 2) == 0 ? 0 : dims[i];
            k = er = r;
            memcpy(e, dims, sizeof dims);
        } else {
            int cut = (int)kt_rand_int(0, r);
            int64_t p = 1, q = 1;
            for (int i = 0; i < r; i++) *(i < cut ? &p : &q) *= dims[i];
            s[0] = p;
            s[1] = -1;
            e[0] = p;
            e[1] = q;
            k = er = 2;
        }
        KT_OK(run_reshape("r", &x, k, s, -1, &y));
        check_copy("Reshape random", &x, &y, er, e);
        kt_free(&y);
        kt_free(&x);
    }
    kn_tensor x = kt_tensor(KILN_F32, 3, d), y;
    int64_t bad1[2] = {5, -1}, bad2[3] = {-1, 2, -1}, bad3[4] = {0, 0, 0, 0}, bad4[2] = {-2, 12};
    KT_FAILS(run_reshape("r1", &x, 2, bad1, -1, &y), KILN_ERR_SHAPE, "Reshape 'r1': cannot reshape 2x3x4 (24 elements) into 5x-1");
    KT_FAILS(run_reshape("r2", &x, 3, bad2, -1, &y), KILN_ERR_SHAPE, "Reshape 'r2': input 1 (shape) -1x2x-1 has more than one -1");
    KT_FAILS(run_reshape("r3", &x, 4, bad3, -1, &y), KILN_ERR_SHAPE, "Reshape 'r3': input 1 (shape) 0x0x0x0 has a 0 at entry 3");
    KT_FAILS(run_reshape("r4", &x, 2, bad4, -1, &y), KILN_ERR_SHAPE, "entry 0 = -2, expected >= -1");
    int64_t bad5[2] = {0, -1};
    KT_FAILS(run_reshape("r5", &x, 2, bad5, 1, &y), KILN_ERR_SHAPE, "both 0 and -1 while allowzero=1");
    /* a shape input that is not known on the host */
    {
        kn_node n;
        kt_node(&n, KN_OP_Reshape, "r6");
        int64_t two = 2;
        kn_tensor in[2] = {x, kt_tensor(KILN_I64, 1, &two)};
        KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_UNSUPPORTED, "Reshape 'r6': input 1 must be known before the run");
        kt_free(&in[1]);
        kt_node_free(&n);
    }
    kt_free(&x);
}

static void rand_perm(int r, int64_t *p) {
    for (int i = 0; i < r; i++) p[i] = i;
    for (int i = r - 1; i > 0; i--) {
        int j = (int)kt_rand_int(0, i);
        int64_t t = p[i]; p[i] = p[j]; p[j] = t;
    }
}

static void test_transpose(void) {
    for (int it = 0; it < 60; it++) {
        int64_t dims[6], perm[6];
        int r = (int)kt_rand_int(0, 6);
        kt_rand_dims(r, 1, 4, dims);
        if (it == 7 && r > 0) dims[0] = 0;
        rand_perm(r, perm);
        int use_default = it % 5 == 0;
        if (use_default)
            for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
        kn_tensor x = kt_tensor(kt_dtypes3[it % 3], r, dims), y;
        kt_randomize(&x);
        kn_node n;
        kt_node(&n, KN_OP_Transpose, "t");
        if (!use_default) kt_attr_ints(&n, "perm", r, perm);
        KT_OK(kt_run(&n, &x, 1, &y, 1));
        int64_t e[6];
        for (int i = 0; i < r; i++) e[i] = dims[perm[i]];
        KT_CHECK(kt_dims_are(&y, r, e), "Transpose dims %s", kt_dims(&y));
        int bad = 0;
        int64_t oi[6], ii[6];
        for (int64_t o = 0; o < kn_tensor_numel(&y); o++) {
            kt_unravel(o, r, e, oi);
            for (int d = 0; d < r; d++) ii[perm[d]] = oi[d];
            bad += !kt_elem_eq(&y, o, &x, kt_ravel(r, dims, ii));
        }
        KT_CHECK(bad == 0, "Transpose %s: %d elements differ", kt_dims(&x), bad);
        kt_free(&y);
        kt_node_free(&n);
        kt_free(&x);
    }
    int64_t d[3] = {2, 3, 4}, p1[3] = {0, 2, 2}, p2[2] = {1, 0};
    kn_tensor x = kt_tensor(KILN_F32, 3, d), y;
    kn_node n;
    kt_node(&n, KN_OP_Transpose, "tp");
    kt_attr_ints(&n, "perm", 3, p1);
    KT_FAILS(kt_run(&n, &x, 1, &y, 1), KILN_ERR_INVALID_ARGUMENT, "Transpose 'tp': attribute 'perm' = [0x2x2] is not a permutation");
    kt_attr_ints(&n, "perm", 2, p2);
    KT_FAILS(kt_run(&n, &x, 1, &y, 1), KILN_ERR_SHAPE, "attribute 'perm' has 2 entries, expected 3");
    kt_node_free(&n);
    kt_free(&x);
}

static void test_squeeze_unsqueeze(void) {
    for (int it = 0; it < 40; it++) {
        int64_t dims[6], axes[6], e[6];
        int r = (int)kt_rand_int(1, 6), k = 0, er = 0;
        kt_rand_dims(r, 1, 3, dims);
        for (int i = 0; i < r; i++)
            if (kt_rand_int(0, 2) == 0) dims[i] = 1;
        int mode = it % 3; /* 0: axes input, 1: no axes, 2: old attribute */
        for (int i = 0; i < r; i++) {
            int drop = dims[i] == 1 && (mode == 1 || kt_rand_int(0, 1));
            if (drop && mode != 1) axes[k++] = kt_rand_int(0, 1) ? i : i - r;
            if (!drop) e[er++] = dims[i];
        }
        if (k == 0 && mode != 1) { /* an empty axes list means every dim of 1 */
            mode = mode == 0 ? 3 : 4;
            er = 0;
            for (int i = 0; i < r; i++)
                if (dims[i] != 1) e[er++] = dims[i];
        }
        int all_ones = mode == 1 || mode >= 3;
        kn_tensor x = kt_tensor(kt_dtypes3[it % 3], r, dims), y;
        kt_randomize(&x);
        kn_node n;
        kt_node(&n, KN_OP_Squeeze, "sq");
        kn_tensor in[2] = {x, kt_host_i64(k, axes)};
        if (mode == 2 || mode == 4) kt_attr_ints(&n, "axes", k, axes);
        KT_OK(kt_run(&n, in, mode == 0 || mode == 3 ? 2 : 1, &y, 1));
        check_copy("Squeeze", &x, &y, er, e);
        kt_free(&y);
        kt_free(&in[1]);
        kt_node_free(&n);

        /* Unsqueeze it back with the dropped positions (negative and unsorted) */
        int64_t uax[6];
        int ku = 0;
        for (int i = 0; i < r; i++) {
            int64_t dk = all_ones ? (dims[i] == 1) : 0;
            for (int j = 0; j < k && !all_ones; j++) dk |= (axes[j] < 0 ? axes[j] + r : axes[j]) == i;
            if (dk) uax[ku++] = kt_rand_int(0, 1) ? i : i - r;
        }
        for (int i = ku - 1; i > 0; i--) {
            int j = (int)kt_rand_int(0, i);
            int64_t t = uax[i]; uax[i] = uax[j]; uax[j] = t;
        }
        kn_tensor sq = kt_tensor(x.dtype, er, e), z;
        memcpy(sq.data, x.data, kn_tensor_bytes(&x));
        kt_node(&n, KN_OP_Unsqueeze, "usq");
        kn_tensor uin[2] = {sq, kt_host_i64(ku, uax)};
        int uattr = mode == 2 || mode == 4;
        if (uattr) kt_attr_ints(&n, "axes", ku, uax);
        KT_OK(kt_run(&n, uin, uattr ? 1 : 2, &z, 1));
        check_copy("Unsqueeze", &x, &z, r, dims);
        kt_free(&z);
        kt_free(&uin[1]);
        kt_free(&sq);
        kt_node_free(&n);
        kt_free(&x);
    }
    int64_t d[3] = {2, 1, 4}, ax = 0, ax2[2] = {1, -2}, ax3 = 4;
    kn_tensor x = kt_tensor(KILN_F32, 3, d), y;
    kn_node n;
    kt_node(&n, KN_OP_Squeeze, "sq_bad");
    kn_tensor in[2] = {x, kt_host_i64(1, &ax)};
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "Squeeze 'sq_bad': cannot squeeze axis 0 of size 2 (input 0 has shape 2x1x4)");
    kt_free(&in[1]);
    in[1] = kt_host_i64(2, ax2);
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "axes lists axis 1 twice");
    kt_free(&in[1]);
    in[1] = kt_host_i64(0, NULL); /* an empty axes list squeezes every dim of 1 */
    KT_OK(kt_run(&n, in, 2, &y, 1));
    int64_t e2[2] = {2, 4};
    KT_CHECK(kt_dims_are(&y, 2, e2), "Squeeze with empty axes: %s", kt_dims(&y));
    kt_free(&y);
    kt_free(&in[1]);
    kt_node_free(&n);
    kt_node(&n, KN_OP_Unsqueeze, "usq_bad");
    in[1] = kt_host_i64(1, &ax3);
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "Unsqueeze 'usq_bad': axes entry 0 = 4 is out of range for an output of rank 4");
    KT_FAILS(kt_run(&n, in, 1, &y, 1), KILN_ERR_INVALID_ARGUMENT, "needs input 1 (axes)");
    kt_free(&in[1]);
    kt_node_free(&n);
    kt_free(&x);
}

static void test_concat(void) {
    for (int it = 0; it < 50; it++) {
        int r = (int)kt_rand_int(1, 5), k = (int)kt_rand_int(1, 4), axis = (int)kt_rand_int(0, r - 1);
        int64_t dims[5], len[4], total = 0;
        kt_rand_dims(r, 1, 4, dims);
        kn_tensor in[4], y;
        kiln_dtype dt = kt_dtypes3[it % 3];
        for (int i = 0; i < k; i++) {
            len[i] = kt_rand_int(i == 1 ? 0 : 1, 4);
            int64_t di[5];
            memcpy(di, dims, sizeof dims);
            di[axis] = len[i];
            total += len[i];
            in[i] = kt_tensor(dt, r, di);
            kt_randomize(&in[i]);
        }
        kn_node n;
        kt_node(&n, KN_OP_Concat, "cat");
        kt_attr_i(&n, "axis", kt_rand_int(0, 1) ? axis : axis - r);
        KT_OK(kt_run(&n, in, k, &y, 1));
        int64_t e[5];
        memcpy(e, dims, sizeof dims);
        e[axis] = total;
        KT_CHECK(kt_dims_are(&y, r, e), "Concat dims %s", kt_dims(&y));
        int bad = 0;
        int64_t idx[5];
        for (int64_t o = 0; o < kn_tensor_numel(&y); o++) {
            kt_unravel(o, r, e, idx);
            int src = 0;
            while (idx[axis] >= len[src]) idx[axis] -= len[src++];
            bad += !kt_elem_eq(&y, o, &in[src], kt_ravel(r, in[src].dims, idx));
        }
        KT_CHECK(bad == 0, "Concat: %d elements differ", bad);
        kt_free(&y);
        kt_node_free(&n);
        for (int i = 0; i < k; i++) kt_free(&in[i]);
    }
    int64_t a[2] = {2, 3}, b[2] = {3, 3}, c[3] = {2, 3, 1};
    kn_tensor in[2] = {kt_tensor(KILN_F32, 2, a), kt_tensor(KILN_F32, 2, b)}, y;
    kn_node n;
    kt_node(&n, KN_OP_Concat, "cat_bad");
    kt_attr_i(&n, "axis", 1);
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE,
             "Concat 'cat_bad': input 1 has shape 3x3, input 0 has shape 2x3: they must match except on axis 1");
    kt_free(&in[1]);
    in[1] = kt_tensor(KILN_F16, 2, a);
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_DTYPE, "input 1 has element type f16, input 0 has f32");
    kt_free(&in[1]);
    in[1] = kt_tensor(KILN_F32, 3, c);
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "input 1 has shape 2x3x1 (rank 3)");
    kt_attr_i(&n, "axis", -3);
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "attribute 'axis' = -3 is out of range");
    kt_node_free(&n);
    kt_node(&n, KN_OP_Concat, "cat_noaxis");
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_INVALID_ARGUMENT, "Concat 'cat_noaxis': attribute 'axis' is required");
    kt_node_free(&n);
    kt_free(&in[0]);
    kt_free(&in[1]);
}

/* Checks Split's outputs against the expected sizes along axis. */
static void check_split(const kn_tensor *x, int axis, int k, const int64_t *sizes, const kn_tensor *y) {
    int64_t at = 0, idx[6];
    for (int i = 0; i < k; i++) {
        int64_t e[6];
        memcpy(e, x->dims, sizeof e);
        e[axis] = sizes[i];
        KT_CHECK(kt_dims_are(&y[i], x->rank, e), "Split output %d dims %s, expected size %lld", i, kt_dims(&y[i]),
                 (long long)sizes[i]);
        int bad = 0;
        for (int64_t o = 0; o < kn_tensor_numel(&y[i]); o++) {
            kt_unravel(o, x->rank, e, idx);
            idx[axis] += at;
            bad += !kt_elem_eq(&y[i], o, x, kt_ravel(x->rank, x->dims, idx));
        }
        KT_CHECK(bad == 0, "Split output %d: %d elements differ", i, bad);
        at += sizes[i];
    }
}

static void test_split(void) {
    for (int it = 0; it < 60; it++) {
        int r = (int)kt_rand_int(1, 4), axis = (int)kt_rand_int(0, r - 1), k = (int)kt_rand_int(1, 4);
        int64_t dims[4], sizes[4];
        kt_rand_dims(r, 1, 4, dims);
        int mode = it % 4; /* 0 split input, 1 num_outputs, 2 equal, 3 old attribute */
        if (mode == 0 || mode == 3) {
            dims[axis] = 0;
            for (int i = 0; i < k; i++) dims[axis] += sizes[i] = kt_rand_int(0, 3);
        } else if (mode == 1) {
            dims[axis] = kt_rand_int(1, 9);
            int64_t chunk = (dims[axis] + k - 1) / k;
            if (dims[axis] - chunk * (k - 1) < 0) dims[axis] = chunk * k;
            for (int i = 0; i < k; i++) sizes[i] = i < k - 1 ? chunk : dims[axis] - chunk * (k - 1);
        } else {
            dims[axis] = k * kt_rand_int(1, 3);
            for (int i = 0; i < k; i++) sizes[i] = dims[axis] / k;
        }
        kn_tensor x = kt_tensor(kt_dtypes3[it % 3], r, dims), y[4];
        kt_randomize(&x);
        kn_node n;
        kt_node(&n, KN_OP_Split, "split");
        kt_attr_i(&n, "axis", kt_rand_int(0, 1) ? axis : axis - r);
        if (mode == 1) kt_attr_i(&n, "num_outputs", k);
        if (mode == 3) kt_attr_ints(&n, "split", k, sizes);
        kn_tensor in[2] = {x, kt_host_i64(k, sizes)};
        KT_OK(kt_run(&n, in, mode == 0 ? 2 : 1, y, k));
        check_split(&x, axis, k, sizes, y);
        kt_free_outs(y, k);
        kt_free(&in[1]);
        kt_node_free(&n);
        kt_free(&x);
    }
    /* the conformance example: 1-D of 7 into 4 outputs with num_outputs gives 2, 2, 2, 1 */
    int64_t d7 = 7;
    kn_tensor x = kt_tensor(KILN_F32, 1, &d7), y[4];
    kt_randomize(&x);
    kn_node n;
    kt_node(&n, KN_OP_Split, "s7");
    kt_attr_i(&n, "num_outputs", 4);
    KT_OK(kt_run(&n, &x, 1, y, 4));
    int64_t e7[4] = {2, 2, 2, 1};
    check_split(&x, 0, 4, e7, y);
    kt_free_outs(y, 4);
    KT_FAILS(kt_run(&n, &x, 1, y, 3), KILN_ERR_INVALID_ARGUMENT, "Split 's7': attribute 'num_outputs' = 4, but the node has 3 outputs");
    kt_node_free(&n);
    kt_node(&n, KN_OP_Split, "s_bad");
    int64_t sp[2] = {3, 3};
    kn_tensor in[2] = {x, kt_host_i64(2, sp)};
    KT_FAILS(kt_run(&n, in, 2, y, 2), KILN_ERR_SHAPE, "Split 's_bad': input 1 (split) sums to 6, but axis 0 of input 0 (7) has 7");
    KT_FAILS(kt_run(&n, in, 2, y, 3), KILN_ERR_SHAPE, "input 1 (split) has 2 entries, but the node has 3 outputs");
    KT_FAILS(kt_run(&n, &x, 1, y, 2), KILN_ERR_SHAPE, "axis 0 of size 7 does not split evenly into 2 outputs");
    kt_free(&in[1]);
    kt_node_free(&n);
    kt_free(&x);
}

int main(void) {
    kt_seed(11);
    test_flatten();
    test_reshape();
    test_transpose();
    test_squeeze_unsqueeze();
    test_concat();
    test_split();
    return kt_finish();
}
