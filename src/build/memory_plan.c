/* The memory planner (DESIGN decision 1): every activation gets a fixed offset in one arena,
 * made once per profile at its max shape. Greedy by size: the largest value is placed first, at
 * the lowest offset that does not overlap any placed value whose lifetime intersects its own. */
#include "module.h"

#include <stdlib.h>

typedef struct kn_placed {
    int64_t off;
    size_t bytes;
    int first, last;
} kn_placed;

/* A request with its index, so that qsort needs no global state (compiles may run in parallel). */
typedef struct kn_order {
    size_t bytes;
    int first, index;
} kn_order;

static int kn_cmp_size_desc(const void *a, const void *b) {
    const kn_order *ra = a, *rb = b;
    if (ra->bytes != rb->bytes) return ra->bytes < rb->bytes ? 1 : -1;
    if (ra->first != rb->first) return ra->first - rb->first;
    return ra->index - rb->index;
}

static int kn_cmp_off(const void *a, const void *b) {
    const kn_placed *pa = a, *pb = b;
    return pa->off < pb->off ? -1 : pa->off > pb->off;
}

kiln_status kn_memory_plan(const kn_mem_request *req, int n, size_t align, int64_t *offsets,
                           size_t *arena_size, size_t *peak_live) {
    kn_order *idx = kn_malloc((size_t)(n ? n : 1) * sizeof *idx);
    kn_placed *placed = kn_malloc((size_t)(n ? n : 1) * sizeof *placed);
    kn_placed *conflicts = kn_malloc((size_t)(n ? n : 1) * sizeof *conflicts);
    if (!idx || !placed || !conflicts) {
        kn_free(idx); kn_free(placed); kn_free(conflicts);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning memory");
    }
    int m = 0, n_placed = 0;
    for (int i = 0; i < n; i++) {
        offsets[i] = -1;
        if (req[i].bytes > 0) idx[m++] = (kn_order){req[i].bytes, req[i].first, i};
    }
    qsort(idx, (size_t)m, sizeof *idx, kn_cmp_size_desc);
    size_t arena = 0;
    for (int k = 0; k < m; k++) {
        const kn_mem_request *r = &req[idx[k].index];
        size_t bytes = (r->bytes + align - 1) / align * align;
        int nc = 0;
        for (int p = 0; p < n_placed; p++)
            if (placed[p].first <= r->last && r->first <= placed[p].last) conflicts[nc++] = placed[p];
        qsort(conflicts, (size_t)nc, sizeof *conflicts, kn_cmp_off);
        int64_t off = 0;
        for (int c = 0; c < nc; c++) {
            if (conflicts[c].off >= off + (int64_t)bytes) break; /* fits in the gap before it */
            int64_t end = conflicts[c].off + (int64_t)conflicts[c].bytes;
            if (end > off) off = end;
        }
        offsets[idx[k].index] = off;
        placed[n_placed++] = (kn_placed){off, bytes, r->first, r->last};
        if ((size_t)off + bytes > arena) arena = (size_t)off + bytes;
    }
    /* peak of simultaneously live bytes: the lower bound any plan must meet */
    int max_step = 0;
    for (int i = 0; i < n; i++)
        if (req[i].bytes && req[i].last > max_step) max_step = req[i].last;
    size_t peak = 0;
    for (int s = 0; s <= max_step && m > 0; s++) {
        size_t live = 0;
        for (int i = 0; i < n; i++)
            if (req[i].bytes && req[i].first <= s && s <= req[i].last)
                live += (req[i].bytes + align - 1) / align * align;
        if (live > peak) peak = live;
    }
    *arena_size = arena;
    *peak_live = peak;
    kn_free(idx); kn_free(placed); kn_free(conflicts);
    return KILN_OK;
}

/* ---- views ---------------------------------------------------------------------------------- */

/* A dim that is 1 at every shape of the profile: the constant 1, or a symbol whose range ends
 * at 1. */
static int kn_dim_is_unit(const kn_graph *g, kn_dim d) {
    if (d.sym < 0) return d.v == 1;
    return d.sym < g->n_syms && g->syms[d.sym].max <= 1;
}

/* A Transpose that moves only dims of size 1 keeps every element where it was (at batch 1,
 * [B, S, E] -> [S, B, E]): a reshape. */
static int kn_transpose_keeps_order(const kn_graph *g, const kn_node *n) {
    const kn_value *x = &g->values[n->in[0]];
    const int64_t *perm = NULL;
    int np = kn_attr_ints(n, "perm", &perm), r = x->rank;
    if (r < 0 || r > KILN_MAX_RANK || (np != 0 && np != r)) return 0;
    int64_t last = -1;
    for (int i = 0; i < r; i++) {
        int64_t a = np ? perm[i] : r - 1 - i; /* no perm: the dims reversed */
        if (a < 0 || a >= r) return 0;
        if (kn_dim_is_unit(g, x->dims[a])) continue;
        if (a < last) return 0;
        last = a;
    }
    return 1;
}

int kn_node_is_view(const kn_graph *g, const kn_node *n) {
    if (!n || n->n_in < 1 || n->n_out != 1 || n->in[0] < 0 || n->out[0] < 0) return 0;
    switch (n->op) {
    case KN_OP_Reshape:
    case KN_OP_Flatten:
    case KN_OP_Squeeze:
    case KN_OP_Unsqueeze: return 1;
    case KN_OP_Identity: return !kn_node_attr(n, "kiln.to_layout"); /* a layout change is a transpose */
    case KN_OP_Transpose: return kn_transpose_keeps_order(g, n);
    default: return 0;
    }
}

void kn_mark_views(kiln_module *m) {
    const kn_graph *g = m->graph;
    for (int s = 0; s < m->part.n_steps; s++) {
        kn_step *st = &m->part.steps[s];
        const kn_node *nd = &g->nodes[st->node];
        st->view = kn_node_is_view(g, nd) && m->offset[nd->out[0]] >= 0 && m->offset[nd->out[0]] == m->offset[nd->in[0]];
    }
}
