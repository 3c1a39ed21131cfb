/* Slice, Gather, Expand, Tile, Pad: hand-computed cases, random shapes and data (f32, f16, i64)
 * against references written here, and the error messages. */
#include "tensor_testutil.h"

/* ---- Slice ------------------------------------------------------------------------------------- */

/* The source indices of one sliced axis, by walking the range as Python does after the spec's
 * clamping (a loop, not a formula). Returns the count. */
static int64_t slice_axis_ref(int64_t dim, int64_t s, int64_t e, int64_t step, int64_t *out) {
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    int64_t n = 0;
    if (step > 0) {
        if (s < 0) s = 0;
        if (s > dim) s = dim;
        if (e < 0) e = 0;
        if (e > dim) e = dim;
        for (int64_t i = s; i < e; i += step) out[n++] = i;
    } else {
        if (s < 0) s = 0;
        if (s > dim - 1) s = dim - 1;
        if (e < -1) e = -1;
        if (e > dim - 1) e = dim - 1;
        for (int64_t i = s; i > e; i += step) out[n++] = i;
    }
    return n;
}

static kiln_status run_slice(const char *name, const kn_tensor *x, int k, const int64_t *starts, const int64_t *ends,
                             const int64_t *axes, const int64_t *steps, kn_tensor *y) {
    kn_node n;
    kt_node(&n, KN_OP_Slice, name);
    kn_tensor in[5] = {*x, kt_host_i64(k, starts), kt_host_i64(k, ends), kt_host_i64(k, axes ? axes : starts),
                       kt_host_i64(k, steps ? steps : starts)};
    int n_in = 3;
    if (!axes) in[3].dtype = KILN_DTYPE_INVALID; /* omitted optional input */
    if (axes || steps) n_in = 4;
    if (steps) n_in = 5;
    kiln_status st = kt_run(&n, in, n_in, y, 1);
    for (int i = 1; i < 5; i++) kt_free(&in[i]);
    kt_node_free(&n);
    return st;
}

static void test_slice_hand(void) {
    int64_t d = 10;
    kn_tensor x = kt_tensor(KILN_I64, 1, &d), y;
    for (int i = 0; i < 10; i++) ((int64_t *)x.data)[i] = 100 + i;
    struct { int64_t s, e, step; int n; int64_t v[10]; } c[] = {
        {8, 1, -3, 3, {8, 5, 2}},
        {-1, INT64_MIN, -1, 10, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
        {20, -1000, -2, 5, {9, 7, 5, 3, 1}},
        {2, 1000, 3, 3, {2, 5, 8}},
        {-100, 3, 1, 3, {0, 1, 2}},
        {5, 2, 1, 0, {0}},
        {-3, INT64_MAX, 1, 3, {7, 8, 9}},
        {1, -1, INT64_MAX, 1, {1}},
        {9, 0, INT64_MIN, 1, {9}},
        {10, 20, 1, 0, {0}},
    };
    for (int i = 0; i < (int)(sizeof c / sizeof c[0]); i++) {
        int64_t ax = 0;
        KT_OK(run_slice("s", &x, 1, &c[i].s, &c[i].e, &ax, &c[i].step, &y));
        int ok = y.rank == 1 && y.dims[0] == c[i].n;
        for (int j = 0; ok && j < c[i].n; j++) ok = ((int64_t *)y.data)[j] == 100 + c[i].v[j];
        KT_CHECK(ok, "Slice case %d (start %lld end %lld step %lld): got %s", i, (long long)c[i].s, (long long)c[i].e,
                 (long long)c[i].step, kt_dims(&y));
        kt_free(&y);
    }
    kt_free(&x);
}

static void test_slice_random(void) {
    for (int it = 0; it < 120; it++) {
        int r = (int)kt_rand_int(1, 4);
        int64_t dims[4], starts[4], ends[4], axes[4], steps[4];
        kt_rand_dims(r, 0, 6, dims);
        int k = (int)kt_rand_int(1, r);
        int64_t perm[4] = {0, 1, 2, 3};
        for (int i = r - 1; i > 0; i--) {
            int j = (int)kt_rand_int(0, i);
            int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        int with_axes = it % 3 != 0, with_steps = it % 2 == 0;
        if (!with_axes) k = (int)kt_rand_int(1, r);
        for (int i = 0; i < k; i++) {
            axes[i] = with_axes ? (kt_rand_int(0, 1) ? perm[i] - r : perm[i]) : i;
            starts[i] = kt_rand_int(-9, 9);
            ends[i] = kt_rand_int(0, 5) == 0 ? (kt_rand_int(0, 1) ? INT64_MAX : INT64_MIN) : kt_rand_int(-9, 9);
            steps[i] = with_steps ? kt_rand_int(1, 3) * (kt_rand_int(0, 1) ? 1 : -1) : 1;
        }
        kn_tensor x = kt_tensor(kt_dtypes3[it % 3], r, dims), y;
        kt_randomize(&x);
        KT_OK(run_slice("s", &x, k, starts, ends, with_axes ? axes : NULL, with_steps ? steps : NULL, &y));
        /* reference: per axis, the list of source indices */
        int64_t src[4][16], e[4];
        for (int a = 0; a < r; a++) {
            e[a] = dims[a];
            for (int64_t i = 0; i < dims[a]; i++) src[a][i] = i;
        }
        for (int i = 0; i < k; i++) {
            int a = (int)(axes[i] < 0 ? axes[i] + r : axes[i]);
            e[a] = slice_axis_ref(dims[a], starts[i], ends[i], steps[i], src[a]);
        }
        KT_CHECK(kt_dims_are(&y, r, e), "Slice %s -> %s", kt_dims(&x), kt_dims(&y));
        int bad = 0;
        int64_t oi[4], ii[4];
        for (int64_t o = 0; o < kn_tensor_numel(&y) && kt_dims_are(&y, r, e); o++) {
            kt_unravel(o, r, e, oi);
            for (int a = 0; a < r; a++) ii[a] = src[a][oi[a]];
            bad += !kt_elem_eq(&y, o, &x, kt_ravel(r, dims, ii));
        }
        KT_CHECK(bad == 0, "Slice: %d elements differ", bad);
        kt_free(&y);
        kt_free(&x);
    }
}

static void test_slice_errors_and_attrs(void) {
    int64_t d[2] = {4, 5};
    kn_tensor x = kt_tensor(KILN_F32, 2, d), y;
    kt_randomize(&x);
    int64_t s[2] = {1, 1}, e[2] = {3, 4}, ax2[2] = {1, -1}, ax3[1] = {2}, st0[2] = {1, 0};
    KT_FAILS(run_slice("sl1", &x, 2, s, e, ax2, NULL, &y), KILN_ERR_SHAPE, "Slice 'sl1': axes lists axis 1 twice");
    KT_FAILS(run_slice("sl2", &x, 1, s, e, ax3, NULL, &y), KILN_ERR_SHAPE,
             "Slice 'sl2': axes entry 0 = 2 is out of range for input 0 of shape 4x5");
    KT_FAILS(run_slice("sl3", &x, 2, s, e, NULL, st0, &y), KILN_ERR_INVALID_ARGUMENT, "Slice 'sl3': steps entry 1 is 0");
    /* starts and ends of different lengths */
    {
        kn_node n;
        kt_node(&n, KN_OP_Slice, "sl4");
        kn_tensor in[3] = {x, kt_host_i64(2, s), kt_host_i64(1, e)};
        KT_FAILS(kt_run(&n, in, 3, &y, 1), KILN_ERR_SHAPE, "Slice 'sl4': ends has 1 entries, starts has 2");
        kt_free(&in[1]);
        kt_free(&in[2]);
        kt_node_free(&n);
    }
    /* the opset-1 attribute form: x[1:3, 1:4] */
    {
        kn_node n;
        kt_node(&n, KN_OP_Slice, "sl_attr");
        kt_attr_ints(&n, "starts", 2, s);
        kt_attr_ints(&n, "ends", 2, e);
        KT_OK(kt_run(&n, &x, 1, &y, 1));
        int64_t ed[2] = {2, 3};
        int ok = kt_dims_are(&y, 2, ed);
        for (int i = 0; ok && i < 2; i++)
            for (int j = 0; j < 3; j++) ok &= kt_elem_eq(&y, i * 3 + j, &x, (i + 1) * 5 + j + 1);
        KT_CHECK(ok, "Slice with attributes: %s", kt_dims(&y));
        kt_free(&y);
        kt_node_free(&n);
    }
    kt_free(&x);
}

/* ---- Gather ------------------------------------------------------------------------------------ */

static void test_gather(void) {
    for (int it = 0; it < 80; it++) {
        int r = (int)kt_rand_int(1, 4), q = (int)kt_rand_int(0, 3), axis = (int)kt_rand_int(0, r - 1);
        int64_t dims[4], qd[3];
        kt_rand_dims(r, 1, 5, dims);
        kt_rand_dims(q, 1, 3, qd);
        kiln_dtype it_t = it % 2 ? KILN_I32 : KILN_I64;
        kn_tensor x = kt_tensor(kt_dtypes3[it % 3], r, dims), ix = kt_tensor(it_t, q, qd), y;
        kt_randomize(&x);
        int64_t nq = kn_tensor_numel(&ix);
        for (int64_t i = 0; i < nq; i++) {
            int64_t v = kt_rand_int(-dims[axis], dims[axis] - 1);
            if (it_t == KILN_I64) ((int64_t *)ix.data)[i] = v;
            else ((int32_t *)ix.data)[i] = (int32_t)v;
        }
        if (it % 4 == 0) ix.host = ix.data; /* indices known on the host too */
        kn_node n;
        kt_node(&n, KN_OP_Gather, "g");
        kt_attr_i(&n, "axis", kt_rand_int(0, 1) ? axis : axis - r);
        kn_tensor in[2] = {x, ix};
        KT_OK(kt_run(&n, in, 2, &y, 1));
        int64_t e[8];
        int er = 0;
        for (int i = 0; i < axis; i++) e[er++] = dims[i];
        for (int i = 0; i < q; i++) e[er++] = qd[i];
        for (int i = axis + 1; i < r; i++) e[er++] = dims[i];
        KT_CHECK(kt_dims_are(&y, er, e), "Gather dims %s", kt_dims(&y));
        int bad = 0;
        int64_t oi[8], ii[4], qi[3];
        for (int64_t o = 0; o < kn_tensor_numel(&y); o++) {
            kt_unravel(o, er, e, oi);
            for (int i = 0; i < q; i++) qi[i] = oi[axis + i];
            int64_t qf = kt_ravel(q, qd, qi);
            int64_t v = it_t == KILN_I64 ? ((int64_t *)ix.data)[qf] : ((int32_t *)ix.data)[qf];
            for (int i = 0; i < r; i++) ii[i] = i < axis ? oi[i] : i == axis ? (v < 0 ? v + dims[axis] : v) : oi[i - 1 + q];
            bad += !kt_elem_eq(&y, o, &x, kt_ravel(r, dims, ii));
        }
        KT_CHECK(bad == 0, "Gather: %d elements differ", bad);
        kt_free(&y);
        kt_node_free(&n);
        kt_free(&ix);
        kt_free(&x);
    }
    int64_t d[2] = {5, 2}, three = 3;
    kn_tensor x = kt_tensor(KILN_F32, 2, d), ix = kt_tensor(KILN_I64, 1, &three), y;
    ((int64_t *)ix.data)[0] = 1;
    ((int64_t *)ix.data)[1] = -5;
    ((int64_t *)ix.data)[2] = 5;
    kn_node n;
    kt_node(&n, KN_OP_Gather, "g_bad");
    kn_tensor in[2] = {x, ix};
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "Gather 'g_bad': input 1 (indices) entry 2 = 5 is out of range for axis 0 of size 5");
    kt_free(&y);
    in[1].host = in[1].data; /* known on the host: caught by shape inference */
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "Gather 'g_bad': input 1 (indices) entry 2 = 5 is out of range");
    in[1].dtype = KILN_F32;
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_DTYPE, "input 1 (indices) must be i32 or i64, got f32");
    kt_node_free(&n);
    kt_free(&ix);
    kt_free(&x);
}

/* ---- Expand, Tile ------------------------------------------------------------------------------- */

static void test_expand(void) {
    for (int it = 0; it < 60; it++) {
        int r = (int)kt_rand_int(0, 4), k = (int)kt_rand_int(0, 4);
        int64_t dims[4], shape[4], e[4];
        kt_rand_dims(r, 1, 4, dims);
        for (int i = 0; i < r; i++)
            if (kt_rand_int(0, 1)) dims[i] = 1;
        int er = r > k ? r : k;
        for (int i = 0; i < er; i++) {
            int xi = i - (er - r), si = i - (er - k);
            int64_t xd = xi >= 0 ? dims[xi] : 1;
            int64_t sd = xd == 1 ? kt_rand_int(1, 3) : kt_rand_int(0, 1) ? xd : 1; /* 1: keep the input's */
            if (si >= 0) shape[si] = sd;
            else sd = 1;
            e[i] = xd == 1 ? sd : xd;
        }
        kn_tensor x = kt_tensor(kt_dtypes3[it % 3], r, dims), y;
        kt_randomize(&x);
        kn_node n;
        kt_node(&n, KN_OP_Expand, "ex");
        kn_tensor in[2] = {x, kt_host_i64(k, shape)};
        KT_OK(kt_run(&n, in, 2, &y, 1));
        KT_CHECK(kt_dims_are(&y, er, e), "Expand %s -> %s", kt_dims(&x), kt_dims(&y));
        int bad = 0;
        int64_t oi[4], ii[4];
        for (int64_t o = 0; o < kn_tensor_numel(&y) && kt_dims_are(&y, er, e); o++) {
            kt_unravel(o, er, e, oi);
            for (int i = 0; i < r; i++) ii[i] = dims[i] == 1 ? 0 : oi[i + er - r];
            bad += !kt_elem_eq(&y, o, &x, kt_ravel(r, dims, ii));
        }
        KT_CHECK(bad == 0, "Expand: %d elements differ", bad);
        kt_free(&y);
        kt_free(&in[1]);
        kt_node_free(&n);
        kt_free(&x);
    }
    int64_t d[2] = {3, 2}, s[1] = {4};
    kn_tensor x = kt_tensor(KILN_F32, 2, d), y;
    kn_node n;
    kt_node(&n, KN_OP_Expand, "ex_bad");
    kn_tensor in[2] = {x, kt_host_i64(1, s)};
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "Expand 'ex_bad': shapes 3x2 and 4 do not broadcast");
    kt_free(&in[1]);
    kt_node_free(&n);
    kt_free(&x);
}

static void test_tile(void) {
    for (int it = 0; it < 50; it++) {
        int r = (int)kt_rand_int(1, 4);
        int64_t dims[4], rep[4], e[4];
        kt_rand_dims(r, 1, 3, dims);
        kt_rand_dims(r, it == 3 ? 0 : 1, 3, rep);
        for (int i = 0; i < r; i++) e[i] = dims[i] * rep[i];
        kn_tensor x = kt_tensor(kt_dtypes3[it % 3], r, dims), y;
        kt_randomize(&x);
        kn_node n;
        kt_node(&n, KN_OP_Tile, "tile");
        kn_tensor in[2] = {x, kt_host_i64(r, rep)};
        KT_OK(kt_run(&n, in, 2, &y, 1));
        KT_CHECK(kt_dims_are(&y, r, e), "Tile dims %s", kt_dims(&y));
        int bad = 0;
        int64_t oi[4], ii[4];
        for (int64_t o = 0; o < kn_tensor_numel(&y); o++) {
            kt_unravel(o, r, e, oi);
            for (int i = 0; i < r; i++) ii[i] = oi[i] % dims[i];
            bad += !kt_elem_eq(&y, o, &x, kt_ravel(r, dims, ii));
        }
        KT_CHECK(bad == 0, "Tile: %d elements differ", bad);
        kt_free(&y);
        kt_free(&in[1]);
        kt_node_free(&n);
        kt_free(&x);
    }
    int64_t d[2] = {3, 2}, rp[1] = {2}, rn[2] = {2, -1};
    kn_tensor x = kt_tensor(KILN_F32, 2, d), y;
    kn_node n;
    kt_node(&n, KN_OP_Tile, "tile_bad");
    kn_tensor in[2] = {x, kt_host_i64(1, rp)};
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "Tile 'tile_bad': input 1 (repeats) has 1 entries, expected 2");
    kt_free(&in[1]);
    in[1] = kt_host_i64(2, rn);
    KT_FAILS(kt_run(&n, in, 2, &y, 1), KILN_ERR_SHAPE, "input 1 (repeats) entry 1 = -1 is negative");
    kt_free(&in[1]);
    kt_node_free(&n);
    kt_free(&x);
}

/* ---- Pad ----------------------------------------------------------------------------------------- */

/* Source index of padded coordinate x (already shifted by the begin pad), -1 for the constant:
 * reflection by repeated mirroring, as numpy.pad does. */
static int64_t pad_ref_index(const char *mode, int64_t x, int64_t dim) {
    if (x >= 0 && x < dim) return x;
    if (!strcmp(mode, "constant")) return -1;
    if (!strcmp(mode, "edge")) return x < 0 ? 0 : dim - 1;
    if (!strcmp(mode, "wrap")) {
        while (x < 0) x += dim;
        while (x >= dim) x -= dim;
        return x;
    }
    if (dim == 1) return 0;
    while (x < 0 || x >= dim) {
        if (x < 0) x = -x;
        if (x >= dim) x = 2 * (dim - 1) - x;
    }
    return x;
}

static kiln_status run_pad(const char *name, const char *mode, const kn_tensor *x, int np, const int64_t *pads,
                           const kn_tensor *value, int na, const int64_t *axes, kn_tensor *y) {
    kn_node n;
    kt_node(&n, KN_OP_Pad, name);
    if (mode) kt_attr_s(&n, "mode", mode);
    kn_tensor in[4] = {*x, kt_host_i64(np, pads), {0}, kt_host_i64(na, axes)};
    if (value) in[2] = *value;
    int n_in = axes ? 4 : value ? 3 : 2;
    kiln_status st = kt_run(&n, in, n_in, y, 1);
    kt_free(&in[1]);
    kt_free(&in[3]);
    kt_node_free(&n);
    return st;
}

static void test_pad_hand(void) {
    int64_t d = 3;
    kn_tensor x = kt_tensor(KILN_I64, 1, &d), y;
    for (int i = 0; i < 3; i++) ((int64_t *)x.data)[i] = i + 1;
    struct { const char *mode; int64_t b, e; int n; int64_t v[11]; } c[] = {
        {"reflect", 2, 2, 7, {3, 2, 1, 2, 3, 2, 1}},
        {"edge", 2, 2, 7, {1, 1, 1, 2, 3, 3, 3}},
        {"wrap", 2, 2, 7, {2, 3, 1, 2, 3, 1, 2}},
        {"constant", 1, 2, 6, {9, 1, 2, 3, 9, 9}},
        {"reflect", 4, 4, 11, {1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3}}, /* numpy.pad(reflect) beyond one mirror */
        {"constant", -1, 1, 3, {2, 3, 9}},                         /* negative pads crop */
    };
    kn_tensor nine = kt_host_scalar(KILN_I64, 9);
    for (int i = 0; i < (int)(sizeof c / sizeof c[0]); i++) {
        int64_t pads[2] = {c[i].b, c[i].e};
        KT_OK(run_pad("p", c[i].mode, &x, 2, pads, &nine, 0, NULL, &y));
        int ok = y.rank == 1 && y.dims[0] == c[i].n;
        for (int j = 0; ok && j < c[i].n; j++) ok = ((int64_t *)y.data)[j] == c[i].v[j];
        KT_CHECK(ok, "Pad case %d (%s %lld %lld)", i, c[i].mode, (long long)c[i].b, (long long)c[i].e);
        kt_free(&y);
    }
    kt_free(&nine);
    kt_free(&x);
}

static void test_pad_random(void) {
    static const char *modes[4] = {"constant", "reflect", "edge", "wrap"};
    for (int it = 0; it < 120; it++) {
        int r = (int)kt_rand_int(1, 4);
        int64_t dims[4], pads[8], axes[4], b[4] = {0}, e[4] = {0}, od[4];
        kt_rand_dims(r, 1, 4, dims);
        const char *mode = modes[it % 4];
        int with_axes = it % 3 == 0, na = with_axes ? (int)kt_rand_int(1, r) : r;
        int64_t perm[4] = {0, 1, 2, 3};
        for (int i = r - 1; i > 0; i--) {
            int j = (int)kt_rand_int(0, i);
            int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        for (int i = 0; i < na; i++) {
            int a = with_axes ? (int)perm[i] : i;
            axes[i] = kt_rand_int(0, 1) ? a : a - r;
            pads[i] = b[a] = kt_rand_int(-(dims[a] - 1) / 2, 5);
            pads[na + i] = e[a] = kt_rand_int(-(dims[a] - 1) / 2, 5);
        }
        for (int a = 0; a < r; a++) od[a] = dims[a] + b[a] + e[a];
        kiln_dtype dt = kt_dtypes3[(it / 4) % 3];
        kn_tensor x = kt_tensor(dt, r, dims), y;
        kt_randomize(&x);
        kn_tensor val = kt_host_scalar(dt, 0);
        kt_randomize(&val);
        int use_value = it % 2 == 0;
        KT_OK(run_pad("p", it % 8 == 0 ? NULL : mode, &x, 2 * na, pads, use_value || with_axes ? &val : NULL, with_axes ? na : 0,
                      with_axes ? axes : NULL, &y));
        if (it % 8 == 0) mode = "constant";
        KT_CHECK(kt_dims_are(&y, r, od), "Pad %s dims %s", mode, kt_dims(&y));
        char zero[8] = {0};
        kn_tensor zt = {.data = zero, .dtype = dt};
        int bad = 0;
        int64_t oi[4], ii[4];
        for (int64_t o = 0; o < kn_tensor_numel(&y) && kt_dims_are(&y, r, od); o++) {
            kt_unravel(o, r, od, oi);
            int inside = 1;
            for (int a = 0; a < r; a++) {
                ii[a] = pad_ref_index(mode, oi[a] - b[a], dims[a]);
                inside &= ii[a] >= 0;
            }
            if (inside) bad += !kt_elem_eq(&y, o, &x, kt_ravel(r, dims, ii));
            else bad += !kt_elem_eq(&y, o, use_value || with_axes ? &val : &zt, 0);
        }
        KT_CHECK(bad == 0, "Pad %s %s: %d elements differ", mode, kt_dims(&x), bad);
        kt_free(&y);
        kt_free(&val);
        kt_free(&x);
    }
}

static void test_pad_errors(void) {
    int64_t d[2] = {2, 3}, p3[3] = {1, 1, 1}, pn[4] = {0, -2, 0, -2}, p4[4] = {1, 1, 1, 1};
    kn_tensor x = kt_tensor(KILN_F32, 2, d), y;
    KT_FAILS(run_pad("pad1", NULL, &x, 3, p3, NULL, 0, NULL, &y), KILN_ERR_SHAPE, "Pad 'pad1': pads has 3 entries, expected 4");
    KT_FAILS(run_pad("pad2", NULL, &x, 4, pn, NULL, 0, NULL, &y), KILN_ERR_SHAPE,
             "Pad 'pad2': pads -2 and -2 on axis 1 of input 0 (2x3) leave a negative size -1");
    KT_FAILS(run_pad("pad3", "mirror", &x, 4, p4, NULL, 0, NULL, &y), KILN_ERR_INVALID_ARGUMENT,
             "Pad 'pad3': attribute 'mode' = 'mirror', expected constant, reflect, edge or wrap");
    kn_tensor v = kt_host_scalar(KILN_I64, 1);
    KT_FAILS(run_pad("pad4", NULL, &x, 4, p4, &v, 0, NULL, &y), KILN_ERR_DTYPE,
             "Pad 'pad4': input 2 (constant_value) has element type i64, input 0 has f32");
    kt_free(&v);
    int64_t d0[2] = {0, 3};
    kn_tensor x0 = kt_tensor(KILN_F32, 2, d0);
    KT_FAILS(run_pad("pad5", "edge", &x0, 4, p4, NULL, 0, NULL, &y), KILN_ERR_SHAPE, "Pad 'pad5': mode 'edge' cannot pad axis 0 of size 0");
    kt_free(&x0);
    kt_free(&x);
}

int main(void) {
    kt_seed(23);
    test_slice_hand();
    test_slice_random();
    test_slice_errors_and_attrs();
    test_gather();
    test_expand();
    test_tile();
    test_pad_hand();
    test_pad_random();
    test_pad_errors();
    return kt_finish();
}
