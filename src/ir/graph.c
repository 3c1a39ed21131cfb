/* Graph storage: values, nodes, attributes, constants, the name index, cloning. */
#include "ir.h"

#include <stdlib.h>

/* ---- host tensors -------------------------------------------------------------------------- */

kn_host_tensor *kn_host_tensor_new(kiln_dtype dtype, int rank, const int64_t *dims) {
    if (rank < 0 || rank > KILN_MAX_RANK || kiln_dtype_size(dtype) == 0) return NULL;
    kn_host_tensor *t = kn_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) { kn_free(t); return NULL; }
        t->dims[i] = dims[i];
    }
    size_t bytes = (size_t)kn_numel(rank, dims) * kiln_dtype_size(dtype);
    t->data = kn_aligned_alloc(bytes);
    if (!t->data) { kn_free(t); return NULL; }
    memset(t->data, 0, bytes ? bytes : 1);
    return t;
}

kn_host_tensor *kn_host_tensor_dup(const kn_host_tensor *s) {
    if (!s) return NULL;
    kn_host_tensor *t = kn_host_tensor_new(s->dtype, s->rank, s->dims);
    if (t) memcpy(t->data, s->data, (size_t)kn_host_numel(s) * kiln_dtype_size(s->dtype));
    return t;
}

void kn_host_tensor_free(kn_host_tensor *t) {
    if (!t) return;
    kn_aligned_free(t->data);
    kn_free(t);
}

/* ---- name index ------------------------------------------------------------------------------ */

static uint64_t kn_name_hash(const char *s) { return kn_hash_bytes(KN_HASH_SEED, s, strlen(s)); }

static kiln_status kn_index_rebuild(kn_graph *g, int cap) {
    int *idx = kn_malloc((size_t)cap * sizeof *idx);
    if (!idx) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory indexing value names");
    for (int i = 0; i < cap; i++) idx[i] = -1;
    for (int v = 0; v < g->n_values; v++) {
        uint64_t h = kn_name_hash(g->values[v].name) & (uint64_t)(cap - 1);
        while (idx[h] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
        idx[h] = v;
    }
    kn_free(g->name_index);
    g->name_index = idx;
    g->name_index_cap = cap;
    return KILN_OK;
}

int kn_graph_find_value(const kn_graph *g, const char *name) {
    if (!name || !g->name_index_cap) return -1;
    uint64_t mask = (uint64_t)(g->name_index_cap - 1);
    for (uint64_t h = kn_name_hash(name) & mask;; h = (h + 1) & mask) {
        int v = g->name_index[h];
        if (v < 0) return -1;
        if (strcmp(g->values[v].name, name) == 0) return v;
    }
}

kiln_status kn_graph_new_value(kn_graph *g, const char *name, int *out) {
    char buf[256];
    const char *use = name;
    if (!use || !*use || kn_graph_find_value(g, use) >= 0) {
        for (int k = g->n_values;; k++) {
            snprintf(buf, sizeof buf, "%.200s_%d", name && *name ? name : "v", k); /* room for the suffix */
            if (kn_graph_find_value(g, buf) < 0) break;
        }
        use = buf;
    }
    KN_TRY(KN_GROW(g->values, g->cap_values, g->n_values + 1));
    if ((g->n_values + 1) * 2 > g->name_index_cap)
        KN_TRY(kn_index_rebuild(g, g->name_index_cap ? g->name_index_cap * 2 : 64));
    kn_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = kn_strdup(use);
    if (!v->name) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    v->rank = -1;
    v->producer = -1;
    uint64_t mask = (uint64_t)(g->name_index_cap - 1);
    uint64_t h = kn_name_hash(use) & mask;
    while (g->name_index[h] >= 0) h = (h + 1) & mask;
    g->name_index[h] = g->n_values;
    *out = g->n_values++;
    return KILN_OK;
}

kiln_status kn_graph_new_node(kn_graph *g, kn_op op, const char *name, int n_in, const int *in,
                              int n_out, const int *out, int *node_out) {
    KN_TRY(KN_GROW(g->nodes, g->cap_nodes, g->n_nodes + 1));
    kn_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    char buf[64];
    if (!name || !*name) {
        snprintf(buf, sizeof buf, "%s_%d", kn_op_name(op), g->n_nodes);
        name = buf;
    }
    n->name = kn_strdup(name);
    n->in = kn_malloc((size_t)(n_in ? n_in : 1) * sizeof(int));
    n->out = kn_malloc((size_t)(n_out ? n_out : 1) * sizeof(int));
    if (!n->name || !n->in || !n->out) {
        kn_free(n->name); kn_free(n->in); kn_free(n->out);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory adding a node");
    }
    n->n_in = n_in;
    n->n_out = n_out;
    if (n_in) memcpy(n->in, in, (size_t)n_in * sizeof(int));
    if (n_out) memcpy(n->out, out, (size_t)n_out * sizeof(int));
    for (int i = 0; i < n_out; i++)
        if (out[i] >= 0) g->values[out[i]].producer = g->n_nodes;
    if (node_out) *node_out = g->n_nodes;
    g->n_nodes++;
    return KILN_OK;
}

kiln_status kn_graph_add_sym(kn_graph *g, const char *name, int *out) {
    for (int i = 0; i < g->n_syms; i++)
        if (strcmp(g->syms[i].name, name) == 0) { *out = i; return KILN_OK; }
    KN_TRY(KN_GROW(g->syms, g->cap_syms, g->n_syms + 1));
    kn_symbol *s = &g->syms[g->n_syms];
    s->name = kn_strdup(name);
    if (!s->name) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    s->min = 1;
    s->max = INT64_MAX;
    *out = g->n_syms++;
    return KILN_OK;
}

void kn_value_set_constant(kn_value *v, kn_host_tensor *t) {
    kn_host_tensor_free(v->constant);
    v->constant = t;
    v->dtype = t->dtype;
    v->rank = t->rank;
    for (int i = 0; i < t->rank; i++) v->dims[i] = (kn_dim){t->dims[i], -1};
}

/* ---- attributes --------------------------------------------------------------------------- */

void kn_attr_clear(kn_attr *a) {
    kn_free(a->name); kn_free(a->s); kn_free(a->ints); kn_free(a->floats);
    kn_host_tensor_free(a->tensor);
    memset(a, 0, sizeof *a);
}

kiln_status kn_attr_copy(kn_attr *d, const kn_attr *s) {
    memset(d, 0, sizeof *d);
    d->type = s->type; d->i = s->i; d->f = s->f; d->count = s->count;
    d->name = kn_strdup(s->name);
    int ok = d->name != NULL;
    if (s->s) ok &= (d->s = kn_strdup(s->s)) != NULL;
    if (s->ints) {
        d->ints = kn_malloc((size_t)(s->count ? s->count : 1) * sizeof(int64_t));
        ok &= d->ints != NULL;
        if (d->ints && s->count) memcpy(d->ints, s->ints, (size_t)s->count * sizeof(int64_t));
    }
    if (s->floats) {
        d->floats = kn_malloc((size_t)(s->count ? s->count : 1) * sizeof(float));
        ok &= d->floats != NULL;
        if (d->floats && s->count) memcpy(d->floats, s->floats, (size_t)s->count * sizeof(float));
    }
    if (s->tensor) ok &= (d->tensor = kn_host_tensor_dup(s->tensor)) != NULL;
    if (!ok) {
        kn_attr_clear(d);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory copying an attribute");
    }
    return KILN_OK;
}

static kiln_status kn_node_put_attr(kn_node *n, kn_attr *a) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, a->name) == 0) {
            kn_attr_clear(&n->attrs[i]);
            n->attrs[i] = *a;
            return KILN_OK;
        }
    kn_attr *p = kn_realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *p);
    if (!p) {
        kn_attr_clear(a);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory adding an attribute");
    }
    n->attrs = p;
    n->attrs[n->n_attrs++] = *a;
    return KILN_OK;
}

kiln_status kn_node_set_attr(kn_node *n, const kiln_attr *a) {
    if (!a->name) return kn_error(KILN_ERR_INVALID_ARGUMENT, "an attribute has no name");
    kn_attr t = {0};
    t.type = a->type; t.i = a->i; t.f = a->f; t.count = a->count;
    t.name = kn_strdup(a->name);
    int ok = t.name != NULL;
    switch (a->type) {
    case KILN_ATTR_INT: case KILN_ATTR_FLOAT: break;
    case KILN_ATTR_STRING:
        if (!a->s) { kn_attr_clear(&t); return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has a NULL string", a->name); }
        ok &= (t.s = kn_strdup(a->s)) != NULL;
        break;
    case KILN_ATTR_INTS:
        if (a->count < 0 || (a->count && !a->ints)) { kn_attr_clear(&t); return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has no ints", a->name); }
        t.ints = kn_malloc((size_t)(a->count ? a->count : 1) * sizeof(int64_t));
        ok &= t.ints != NULL;
        if (t.ints && a->count) memcpy(t.ints, a->ints, (size_t)a->count * sizeof(int64_t));
        break;
    case KILN_ATTR_FLOATS:
        if (a->count < 0 || (a->count && !a->floats)) { kn_attr_clear(&t); return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has no floats", a->name); }
        t.floats = kn_malloc((size_t)(a->count ? a->count : 1) * sizeof(float));
        ok &= t.floats != NULL;
        if (t.floats && a->count) memcpy(t.floats, a->floats, (size_t)a->count * sizeof(float));
        break;
    case KILN_ATTR_TENSOR: {
        const kiln_tensor *s = a->tensor;
        if (!s || (!s->data && kn_numel(s->rank, s->dims) > 0) || s->rank < 0 || s->rank > KILN_MAX_RANK) {
            kn_attr_clear(&t);
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has no tensor", a->name);
        }
        t.tensor = kn_host_tensor_new(s->dtype, s->rank, s->dims);
        ok &= t.tensor != NULL;
        if (t.tensor && s->data)
            memcpy(t.tensor->data, s->data, (size_t)kn_numel(s->rank, s->dims) * kiln_dtype_size(s->dtype));
        break;
    }
    default:
        kn_attr_clear(&t);
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has unknown type %d", a->name, (int)a->type);
    }
    if (!ok) {
        kn_attr_clear(&t);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory copying an attribute");
    }
    return kn_node_put_attr(n, &t);
}

kiln_status kn_node_set_attr_int(kn_node *n, const char *name, int64_t v) {
    kiln_attr a = kiln_attr_int(name, v);
    return kn_node_set_attr(n, &a);
}
kiln_status kn_node_set_attr_float(kn_node *n, const char *name, float v) {
    kiln_attr a = kiln_attr_float(name, v);
    return kn_node_set_attr(n, &a);
}
kiln_status kn_node_set_attr_ints(kn_node *n, const char *name, int count, const int64_t *v) {
    kiln_attr a = kiln_attr_ints(name, count, v);
    return kn_node_set_attr(n, &a);
}

const kn_attr *kn_node_attr(const kn_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}
int64_t kn_attr_i(const kn_node *n, const char *name, int64_t def) {
    const kn_attr *a = kn_node_attr(n, name);
    return a && a->type == KILN_ATTR_INT ? a->i : a && a->type == KILN_ATTR_FLOAT ? (int64_t)a->f : def;
}
float kn_attr_f(const kn_node *n, const char *name, float def) {
    const kn_attr *a = kn_node_attr(n, name);
    return a && a->type == KILN_ATTR_FLOAT ? a->f : a && a->type == KILN_ATTR_INT ? (float)a->i : def;
}
const char *kn_attr_s(const kn_node *n, const char *name, const char *def) {
    const kn_attr *a = kn_node_attr(n, name);
    return a && a->type == KILN_ATTR_STRING ? a->s : def;
}
int kn_attr_ints(const kn_node *n, const char *name, const int64_t **v) {
    const kn_attr *a = kn_node_attr(n, name);
    if (!a || a->type != KILN_ATTR_INTS) { *v = NULL; return 0; }
    *v = a->ints;
    return a->count;
}
int kn_attr_floats(const kn_node *n, const char *name, const float **v) {
    const kn_attr *a = kn_node_attr(n, name);
    if (!a || a->type != KILN_ATTR_FLOATS) { *v = NULL; return 0; }
    *v = a->floats;
    return a->count;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

kn_graph *kn_graph_new(void) {
    kn_graph *g = kn_calloc(1, sizeof(struct kiln_graph));
    if (g) g->opset = 21;
    return g;
}

static void kn_node_clear(kn_node *n) {
    kn_free(n->name); kn_free(n->in); kn_free(n->out);
    for (int i = 0; i < n->n_attrs; i++) kn_attr_clear(&n->attrs[i]);
    kn_free(n->attrs);
}

void kn_graph_reset(kn_graph *g) {
    for (int i = 0; i < g->n_values; i++) {
        kn_free(g->values[i].name);
        kn_host_tensor_free(g->values[i].constant);
    }
    for (int i = 0; i < g->n_nodes; i++) kn_node_clear(&g->nodes[i]);
    for (int i = 0; i < g->n_syms; i++) kn_free(g->syms[i].name);
    kn_free(g->values); kn_free(g->nodes); kn_free(g->inputs); kn_free(g->outputs);
    kn_free(g->syms); kn_free(g->name_index);
    memset(g, 0, sizeof *g);
    g->opset = 21;
}

void kn_graph_destroy(kn_graph *g) {
    if (!g) return;
    kn_graph_reset(g);
    kn_free(g);
}

kiln_status kn_graph_clone(const kn_graph *s, kn_graph **out) {
    *out = NULL;
    kn_graph *g = kn_graph_new();
    if (!g) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory cloning a graph");
    kiln_status st = KILN_OK;
    g->opset = s->opset;
    for (int i = 0; i < s->n_syms && st == KILN_OK; i++) {
        int k;
        st = kn_graph_add_sym(g, s->syms[i].name, &k);
        if (st == KILN_OK) { g->syms[k].min = s->syms[i].min; g->syms[k].max = s->syms[i].max; }
    }
    for (int i = 0; i < s->n_values && st == KILN_OK; i++) {
        int v;
        st = kn_graph_new_value(g, s->values[i].name, &v);
        if (st != KILN_OK) break;
        kn_value *d = &g->values[v];
        char *name = d->name;
        *d = s->values[i];
        d->name = name;
        d->constant = NULL;
        if (s->values[i].constant) {
            d->constant = kn_host_tensor_dup(s->values[i].constant);
            if (!d->constant) st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory cloning constants");
        }
    }
    for (int i = 0; i < s->n_nodes && st == KILN_OK; i++) {
        const kn_node *sn = &s->nodes[i];
        int k;
        st = kn_graph_new_node(g, sn->op, sn->name, sn->n_in, sn->in, sn->n_out, sn->out, &k);
        if (st != KILN_OK) break;
        kn_node *dn = &g->nodes[k];
        dn->dead = sn->dead;
        dn->fallback = sn->fallback;
        if (sn->n_attrs) {
            dn->attrs = kn_calloc((size_t)sn->n_attrs, sizeof *dn->attrs);
            if (!dn->attrs) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); break; }
            for (int a = 0; a < sn->n_attrs && st == KILN_OK; a++) {
                st = kn_attr_copy(&dn->attrs[a], &sn->attrs[a]);
                if (st == KILN_OK) dn->n_attrs++;
            }
        }
    }
    /* producers of the clone follow the source (dead producers included) */
    for (int i = 0; i < s->n_values && st == KILN_OK; i++) g->values[i].producer = s->values[i].producer;
    if (st == KILN_OK) st = KN_GROW(g->inputs, g->cap_inputs, s->n_inputs);
    if (st == KILN_OK) st = KN_GROW(g->outputs, g->cap_outputs, s->n_outputs);
    if (st == KILN_OK) {
        if (s->n_inputs) memcpy(g->inputs, s->inputs, (size_t)s->n_inputs * sizeof(int));
        if (s->n_outputs) memcpy(g->outputs, s->outputs, (size_t)s->n_outputs * sizeof(int));
        g->n_inputs = s->n_inputs;
        g->n_outputs = s->n_outputs;
    }
    if (st != KILN_OK) {
        kn_graph_destroy(g);
        return st;
    }
    *out = g;
    return KILN_OK;
}

const char *kn_node_label(const kn_node *n, char *buf, size_t cap) {
    snprintf(buf, cap, "%s '%s'", kn_op_name(n->op), n->name ? n->name : "?");
    return buf;
}

kiln_status kn_node_error(const kn_node *n, kiln_status code, const char *fmt, ...) {
    char msg[1536], label[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kn_error(code, "%s: %s", kn_node_label(n, label, sizeof label), msg);
}
