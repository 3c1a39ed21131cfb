/* Slice and Pad: ops that take a window of the input (Slice) or grow/crop it (Pad). Their plans
 * (tensor.h) are shared with the kernels. */
#include "tensor.h"

/* Reads a host-known 1-D integer input, or an ints attribute when the input is absent. */
static kiln_status kn_ints_from(const kn_node *n, const kn_tensor *in, int n_in, int k, const char *name,
                                int64_t *out, int cap, int *count, int *have) {
    *have = 0;
    *count = 0;
    if (n_in > k && kn_tensor_present(&in[k])) {
        if (in[k].rank > 1)
            return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s) must be 1-D, got rank %d", k, name, in[k].rank);
        KN_TRY(kn_host_ints(n, &in[k], k, out, cap, count));
        *have = 1;
        return KILN_OK;
    }
    const kn_attr *a = kn_node_attr(n, name);
    if (a && n_in <= k) { /* an old-opset attribute (only when the input slot is not there) */
        if (a->type != KILN_ATTR_INTS)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' must be a list of ints", name);
        if (a->count > cap)
            return kn_node_error(n, KILN_ERR_SHAPE, "attribute '%s' has %d entries, at most %d allowed", name, a->count, cap);
        memcpy(out, a->ints, (size_t)a->count * sizeof *out);
        *count = a->count;
        *have = 1;
    }
    return KILN_OK;
}

/* ---- Slice --------------------------------------------------------------------------------------- */

kiln_status kn_slice_plan_make(const kn_node *n, const kn_tensor *in, int n_in, kn_slice_plan *p) {
    const kn_tensor *x = &in[0];
    int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
    int ns, ne, na, nst, hs, he, ha, hst;
    char xs[96];
    if (n_in == 2)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "has inputs data and starts but no ends (expected 3 to 5 inputs)");
    KN_TRY(kn_ints_from(n, in, n_in, 1, "starts", starts, KILN_MAX_RANK, &ns, &hs));
    KN_TRY(kn_ints_from(n, in, n_in, 2, "ends", ends, KILN_MAX_RANK, &ne, &he));
    KN_TRY(kn_ints_from(n, in, n_in, 3, "axes", axes, KILN_MAX_RANK, &na, &ha));
    KN_TRY(kn_ints_from(n, in, n_in, 4, "steps", steps, KILN_MAX_RANK, &nst, &hst));
    if (!hs || !he) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "needs starts and ends (inputs 1 and 2)");
    if (ne != ns)
        return kn_node_error(n, KILN_ERR_SHAPE, "ends has %d entries, starts has %d", ne, ns);
    if (ha && na != ns)
        return kn_node_error(n, KILN_ERR_SHAPE, "axes has %d entries, starts has %d", na, ns);
    if (hst && nst != ns)
        return kn_node_error(n, KILN_ERR_SHAPE, "steps has %d entries, starts has %d", nst, ns);
    p->rank = x->rank;
    for (int d = 0; d < x->rank; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->len[d] = x->dims[d];
    }
    unsigned seen = 0;
    for (int i = 0; i < ns; i++) {
        int64_t a = ha ? axes[i] : i;
        if (a < -x->rank || a >= x->rank)
            return kn_node_error(n, KILN_ERR_SHAPE, "%s entry %d = %lld is out of range for input 0 of shape %s",
                                 ha ? "axes" : "starts (no axes given)", i, (long long)a, kn_dims_str(x->rank, x->dims, xs, sizeof xs));
        if (a < 0) a += x->rank;
        if (seen >> a & 1u) return kn_node_error(n, KILN_ERR_SHAPE, "axes lists axis %lld twice", (long long)a);
        seen |= 1u << a;
        int64_t step = hst ? steps[i] : 1, dim = x->dims[a], s = starts[i], e = ends[i], len;
        if (step == 0) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "steps entry %d is 0", i);
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            len = e > s ? (e - s - 1) / step + 1 : 0;
        } else {
            s = s < 0 ? 0 : s;
            s = s > dim - 1 ? dim - 1 : s; /* after the lower bound: an empty axis gives -1, no elements */
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            int64_t mag = step == INT64_MIN ? INT64_MAX : -step;
            len = s > e ? (s - e - 1) / mag + 1 : 0;
        }
        p->start[a] = len > 0 ? s : 0;
        p->step[a] = step;
        p->len[a] = len;
    }
    return KILN_OK;
}

kiln_status kn_infer_slice(kn_infer_ctx *c) {
    kn_slice_plan p;
    KN_TRY(kn_slice_plan_make(c->node, c->in, c->n_in, &p));
    c->out[0].dtype = c->in[0].dtype;
    c->out[0].rank = p.rank;
    memcpy(c->out[0].dims, p.len, (size_t)p.rank * sizeof p.len[0]);
    return KILN_OK;
}

/* ---- Pad ----------------------------------------------------------------------------------------- */

kiln_status kn_pad_mode_parse(const kn_node *n, kn_pad_mode *mode) {
    const char *m = kn_attr_s(n, "mode", "constant");
    if (strcmp(m, "constant") == 0) *mode = KN_PAD_CONSTANT;
    else if (strcmp(m, "reflect") == 0) *mode = KN_PAD_REFLECT;
    else if (strcmp(m, "edge") == 0) *mode = KN_PAD_EDGE;
    else if (strcmp(m, "wrap") == 0) *mode = KN_PAD_WRAP;
    else
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'mode' = '%s', expected constant, reflect, edge or wrap", m);
    return KILN_OK;
}

kiln_status kn_check_pad(const kn_graph *g, const kn_node *n) {
    kn_pad_mode m;
    return kn_pad_mode_parse(n, &m);
}

kiln_status kn_pad_plan_make(const kn_node *n, const kn_tensor *in, int n_in, kn_pad_plan *p) {
    const kn_tensor *x = &in[0];
    int64_t pads[2 * KILN_MAX_RANK], axes[KILN_MAX_RANK];
    int np, na, hp, ha;
    char xs[96];
    KN_TRY(kn_pad_mode_parse(n, &p->mode));
    KN_TRY(kn_ints_from(n, in, n_in, 1, "pads", pads, 2 * KILN_MAX_RANK, &np, &hp));
    if (!hp) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "needs input 1 (pads)");
    KN_TRY(kn_ints_from(n, in, n_in, 3, "axes", axes, KILN_MAX_RANK, &na, &ha));
    if (!ha) {
        na = x->rank;
        for (int i = 0; i < na; i++) axes[i] = i;
    }
    if (np != 2 * na)
        return kn_node_error(n, KILN_ERR_SHAPE, "pads has %d entries, expected %d (2 x %d %s)", np, 2 * na, na,
                             ha ? "axes" : "dims of input 0");
    p->rank = x->rank;
    for (int d = 0; d < x->rank; d++) p->begin[d] = p->end[d] = 0;
    unsigned seen = 0;
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i];
        if (a < -x->rank || a >= x->rank)
            return kn_node_error(n, KILN_ERR_SHAPE, "axes entry %d = %lld is out of range for input 0 of shape %s", i,
                                 (long long)a, kn_dims_str(x->rank, x->dims, xs, sizeof xs));
        if (a < 0) a += x->rank;
        if (seen >> a & 1u) return kn_node_error(n, KILN_ERR_SHAPE, "axes lists axis %lld twice", (long long)a);
        seen |= 1u << a;
        p->begin[a] = pads[i];
        p->end[a] = pads[na + i];
    }
    for (int d = 0; d < x->rank; d++) {
        int64_t o = x->dims[d] + p->begin[d] + p->end[d];
        if (o < 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "pads %lld and %lld on axis %d of input 0 (%s) leave a negative size %lld",
                                 (long long)p->begin[d], (long long)p->end[d], d, kn_dims_str(x->rank, x->dims, xs, sizeof xs),
                                 (long long)o);
        if (p->mode != KN_PAD_CONSTANT && x->dims[d] == 0 && o > 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "mode '%s' cannot pad axis %d of size 0", kn_attr_s(n, "mode", ""), d);
        p->out[d] = o;
    }
    p->value = NULL;
    p->value_f = kn_attr_f(n, "value", 0.0f);
    if (n_in > 2 && kn_tensor_present(&in[2])) {
        const kn_tensor *v = &in[2];
        if (v->dtype != x->dtype)
            return kn_node_error(n, KILN_ERR_DTYPE, "input 2 (constant_value) has element type %s, input 0 has %s",
                                 kiln_dtype_name(v->dtype), kiln_dtype_name(x->dtype));
        int64_t cnt = kn_tensor_numel(v);
        if (cnt > 1)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 2 (constant_value) must be a scalar, got shape %s",
                                 kn_dims_str(v->rank, v->dims, xs, sizeof xs));
        if (cnt == 1) {
            if (!v->host)
                return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                                     "input 2 (constant_value) must be known before the run (a constant or computed from shapes)");
            p->value = v->host;
        }
    }
    return KILN_OK;
}

kiln_status kn_infer_pad(kn_infer_ctx *c) {
    kn_pad_plan p;
    KN_TRY(kn_pad_plan_make(c->node, c->in, c->n_in, &p));
    c->out[0].dtype = c->in[0].dtype;
    c->out[0].rank = p.rank;
    memcpy(c->out[0].dims, p.out, (size_t)p.rank * sizeof p.out[0]);
    return KILN_OK;
}
