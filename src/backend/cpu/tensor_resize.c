/* CPU reference kernel for Resize (nearest and linear over any axes). prepare() turns the plan
 * (ops/tensor.h) into per-axis taps, one per output coordinate: the source indices, the linear
 * weight and whether the point lies outside the roi (tf_crop_and_resize). run() only reads them.
 * Nearest moves elements by byte size (any dtype); linear computes in double and stores once. */
#include "tensor_cpu.h"

#include "ops/tensor.h"

#include <math.h>

typedef struct kn_rs_tap {
    int64_t i0, i1; /* source indices (equal when no interpolation is needed) */
    double w;       /* weight of i1; i0 gets 1 - w */
    int outside;    /* tf_crop_and_resize: outside the input, use extrapolation_value */
} kn_rs_tap;

typedef struct kn_rs_state {
    kn_resize_plan p;
    int64_t first[KILN_MAX_RANK]; /* index of axis d's first tap in taps[] */
    int64_t ist[KILN_MAX_RANK];   /* input strides */
    int active[KILN_MAX_RANK];    /* axes with a non-zero weight somewhere (linear) */
    int n_active;
    kn_rs_tap taps[];
} kn_rs_state;

static kn_rs_tap kn_rs_make_tap(const kn_resize_plan *p, int d, int64_t o) {
    kn_rs_tap t = {0, 0, 0.0, 0};
    double x = kn_resize_src_coord(p, d, o);
    int64_t last = p->in[d] - 1;
    if (p->coord == KN_COORD_TF_CROP_AND_RESIZE && (x < 0 || x > (double)last)) {
        t.outside = 1;
        return t;
    }
    if (p->mode == KN_RESIZE_NEAREST) {
        t.i0 = t.i1 = kn_resize_nearest_index(p, d, x);
        return t;
    }
    /* linear: neighbours floor(x) and floor(x)+1, clamped (the reference pads with edge values) */
    if (!(x > -1.0)) { t.i0 = t.i1 = 0; return t; }
    if (!(x < (double)last)) { t.i0 = t.i1 = last; return t; }
    double f = floor(x);
    int64_t i0 = (int64_t)f, i1 = i0 + 1;
    t.w = x - f;
    t.i0 = i0 < 0 ? 0 : i0;
    t.i1 = i1 > last ? last : i1;
    return t;
}

static kiln_status kn_cpu_resize_prepare(const kn_kernel_args *a, void **state) {
    *state = NULL;
    kn_resize_plan p;
    KN_TRY(kn_resize_plan_make(a->node, a->in, a->n_in, &p));
    int64_t total = 0;
    for (int d = 0; d < p.rank; d++) total += p.out[d];
    kn_rs_state *s = kn_calloc(1, sizeof *s + (size_t)total * sizeof(kn_rs_tap));
    if (!s) return kn_node_error(a->node, KILN_ERR_OUT_OF_MEMORY, "out of host memory for the resize tables");
    s->p = p;
    int64_t at = 0, st = 1;
    for (int d = p.rank - 1; d >= 0; d--) {
        s->ist[d] = st;
        st *= p.in[d];
    }
    for (int d = 0; d < p.rank; d++) {
        s->first[d] = at;
        int any = 0;
        for (int64_t o = 0; o < p.out[d]; o++) {
            kn_rs_tap t = kn_rs_make_tap(&p, d, o);
            any |= t.w != 0.0;
            s->taps[at++] = t;
        }
        if (any) s->active[s->n_active++] = d;
    }
    *state = s;
    return KILN_OK;
}

static void kn_cpu_resize_release(void *state) { kn_free(state); }

static kiln_status kn_cpu_resize(const kn_kernel_args *a) {
    const kn_rs_state *s = a->state;
    if (!s) return kn_node_error(a->node, KILN_ERR_INTERNAL, "Resize ran without its prepared tables");
    const kn_resize_plan *p = &s->p;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    size_t esz = kiln_dtype_size(x->dtype);
    int64_t n = kn_tensor_numel(y), idx[KILN_MAX_RANK] = {0};
    char extra[16] = {0};
    kn_store_f64(extra, y->dtype, 0, p->extrapolation_value);
    const kn_rs_tap *tap[KILN_MAX_RANK];
    for (int64_t o = 0; o < n; o++) {
        int outside = 0;
        int64_t base = 0;
        for (int d = 0; d < p->rank; d++) {
            tap[d] = &s->taps[s->first[d] + idx[d]];
            outside |= tap[d]->outside;
            base += tap[d]->i0 * s->ist[d];
        }
        if (outside) {
            kn_cpu_copy_bytes((char *)y->data + o * (int64_t)esz, extra, esz);
        } else if (p->mode == KN_RESIZE_NEAREST || s->n_active == 0) {
            kn_cpu_copy_bytes((char *)y->data + o * (int64_t)esz, (const char *)x->data + base * (int64_t)esz, esz);
        } else {
            double acc = 0;
            for (int c = 0; c < (1 << s->n_active); c++) {
                double w = 1;
                int64_t off = base;
                for (int k = 0; k < s->n_active; k++) {
                    const kn_rs_tap *t = tap[s->active[k]];
                    if (c >> k & 1) {
                        w *= t->w;
                        off += (t->i1 - t->i0) * s->ist[s->active[k]];
                    } else {
                        w *= 1 - t->w;
                    }
                }
                if (w != 0) acc += w * (x->dtype == KILN_F64 ? ((const double *)x->data)[off] : (double)kn_cpu_ld(x->data, x->dtype, off));
            }
            kn_store_f64(y->data, y->dtype, o, acc);
        }
        for (int d = p->rank - 1; d >= 0; d--) {
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
    }
    return KILN_OK;
}

void kn_cpu_register_resize(kn_kernel *t) {
    t[KN_OP_Resize] = (kn_kernel){.name = "cpu.resize", .run = kn_cpu_resize, .prepare = kn_cpu_resize_prepare,
                                  .release = kn_cpu_resize_release};
}
