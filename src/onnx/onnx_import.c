/* The ONNX importer: ModelProto (decoded by protobuf-c from the official schema) -> kn_graph.
 *
 * Order of work: check the IR version and opsets; list every unsupported op (one message); make
 * initializers constants; declare the graph inputs that are not initializers; add the nodes in a
 * topological order, turning Constant nodes into constants and upgrading older-opset forms into
 * kiln's op semantics (onnx_upgrade.c); mark the outputs; verify and infer shapes, so that
 * contradicting shapes fail here, naming the node; finally check the declared output types. */
#include "onnx_private.h"

#include <stdlib.h>

/* ---- string map ------------------------------------------------------------------------------- */

static uint64_t kn_strhash(const char *s) { return kn_hash_bytes(KN_HASH_SEED, s, strlen(s)); }

static kiln_status kn_strmap_grow(kn_strmap *m) {
    int cap = m->cap ? m->cap * 2 : 64;
    const char **keys = kn_calloc((size_t)cap, sizeof *keys);
    int *vals = kn_malloc((size_t)cap * sizeof *vals);
    if (!keys || !vals) {
        kn_free(keys);
        kn_free(vals);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory indexing names");
    }
    for (int i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        uint64_t h = kn_strhash(m->keys[i]) & (uint64_t)(cap - 1);
        while (keys[h]) h = (h + 1) & (uint64_t)(cap - 1);
        keys[h] = m->keys[i];
        vals[h] = m->vals[i];
    }
    kn_free(m->keys);
    kn_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return KILN_OK;
}

kiln_status kn_strmap_put(kn_strmap *m, const char *key, int val) {
    if ((m->n + 1) * 2 > m->cap) KN_TRY(kn_strmap_grow(m));
    uint64_t mask = (uint64_t)(m->cap - 1);
    uint64_t h = kn_strhash(key) & mask;
    while (m->keys[h] && strcmp(m->keys[h], key) != 0) h = (h + 1) & mask;
    if (!m->keys[h]) m->n++;
    m->keys[h] = key;
    m->vals[h] = val;
    return KILN_OK;
}

int kn_strmap_get(const kn_strmap *m, const char *key, int def) {
    if (!m->cap || !key) return def;
    uint64_t mask = (uint64_t)(m->cap - 1);
    for (uint64_t h = kn_strhash(key) & mask; m->keys[h]; h = (h + 1) & mask)
        if (strcmp(m->keys[h], key) == 0) return m->vals[h];
    return def;
}

void kn_strmap_free(kn_strmap *m) {
    kn_free(m->keys);
    kn_free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- small helpers ---------------------------------------------------------------------------- */

static int kn_is_default_domain(const char *d) { return !d || !*d || !strcmp(d, "ai.onnx"); }

static const char *kn_onnx_label(const Onnx__NodeProto *np, int index, char *buf, size_t cap) {
    if (np->name && *np->name) snprintf(buf, cap, "%s", np->name);
    else snprintf(buf, cap, "#%d", index);
    return buf;
}

kiln_status kn_onnx_new_node(kn_onnx_ctx *c, kn_op op, const char *name, int n_in, const int *in,
                             int n_out, const int *out, int *k) {
    return kn_graph_new_node(c->g, op, name, n_in, in, n_out, out, k);
}

kiln_status kn_onnx_set_input(kn_graph *g, int k, int slot, int v) {
    kn_node *n = &g->nodes[k];
    if (slot >= n->n_in) {
        int *in = kn_realloc(n->in, (size_t)(slot + 1) * sizeof *in);
        if (!in) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
        for (int i = n->n_in; i <= slot; i++) in[i] = -1;
        n->in = in;
        n->n_in = slot + 1;
    }
    n->in[slot] = v;
    /* trailing omitted inputs are dropped, so that arity checks see the real count */
    while (n->n_in > 0 && n->in[n->n_in - 1] < 0) n->n_in--;
    return KILN_OK;
}

void kn_onnx_del_attr(kn_graph *g, int k, const char *name) {
    kn_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) {
            kn_attr_clear(&n->attrs[i]);
            memmove(&n->attrs[i], &n->attrs[i + 1], (size_t)(n->n_attrs - i - 1) * sizeof *n->attrs);
            n->n_attrs--;
            return;
        }
}

/* ---- model header ------------------------------------------------------------------------------- */

static kiln_status kn_onnx_check_header(const Onnx__ModelProto *m, const char *src, int64_t *opset) {
    *opset = -1;
    if (!m->has_ir_version || !m->graph)
        return kn_error(KILN_ERR_PARSE, "'%s' is not an ONNX model (it has no %s)", src,
                        !m->has_ir_version ? "ir_version" : "graph");
    if (m->ir_version < KN_ONNX_MIN_IR_VERSION)
        return kn_error(KILN_ERR_UNSUPPORTED, "'%s': ONNX IR version %lld is not supported (kiln takes %d or newer)",
                        src, (long long)m->ir_version, KN_ONNX_MIN_IR_VERSION);
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (o && kn_is_default_domain(o->domain)) *opset = o->has_version ? o->version : 1;
    }
    return KILN_OK;
}

/* ---- unsupported ops: one message for all --------------------------------------------------------- */

typedef struct kn_bad_node {
    const char *domain, *op;
    int index;
} kn_bad_node;

static int kn_bad_cmp(const void *pa, const void *pb) {
    const kn_bad_node *a = pa, *b = pb;
    int d = strcmp(a->domain, b->domain);
    if (d) return d;
    d = strcmp(a->op, b->op);
    if (d) return d;
    return a->index - b->index;
}

static int kn_onnx_op_known(const char *op) {
    return !strcmp(op, "Constant") || !strcmp(op, "Upsample") || kn_op_from_model_name(op) != KN_OP_INVALID;
}

static kiln_status kn_onnx_check_ops(kn_onnx_ctx *c) {
    const Onnx__GraphProto *gp = c->graph;
    int has_default = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        char lb[128];
        if (!np->op_type || !*np->op_type)
            return kn_error(KILN_ERR_PARSE, "node %s has no op_type", kn_onnx_label(np, (int)i, lb, sizeof lb));
        has_default |= kn_is_default_domain(np->domain);
    }
    if (has_default && c->opset < 0)
        return kn_error(KILN_ERR_PARSE, "'%s' imports no opset for the default ONNX domain", c->src);
    if (has_default && (c->opset < KN_ONNX_MIN_OPSET || c->opset > KN_ONNX_MAX_OPSET))
        return kn_error(KILN_ERR_UNSUPPORTED,
                        "'%s' uses opset %lld of the default ONNX domain; kiln takes opsets %d to 21 "
                        "(and reads %d to %d as 21)", c->src, (long long)c->opset, KN_ONNX_MIN_OPSET,
                        22, KN_ONNX_MAX_OPSET);
    kn_bad_node *bad = NULL;
    int n_bad = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        int def = kn_is_default_domain(np->domain);
        if (def && kn_onnx_op_known(np->op_type)) continue;
        if (!bad) {
            bad = kn_malloc(gp->n_node * sizeof *bad);
            if (!bad) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
        }
        bad[n_bad++] = (kn_bad_node){def ? "" : np->domain, np->op_type, (int)i};
    }
    if (!n_bad) return KILN_OK;
    qsort(bad, (size_t)n_bad, sizeof *bad, kn_bad_cmp);
    kn_strbuf sb = {0};
    int groups = 0;
    for (int i = 0; i < n_bad;) {
        int j = i;
        while (j < n_bad && !strcmp(bad[j].domain, bad[i].domain) && !strcmp(bad[j].op, bad[i].op)) j++;
        if (i == 0 || strcmp(bad[i].domain, bad[i - 1].domain)) {
            if (groups) kn_sb_puts(&sb, "; ");
            if (*bad[i].domain) kn_sb_printf(&sb, "ops of the unsupported domain '%s': ", bad[i].domain);
            else kn_sb_puts(&sb, "unsupported ops: ");
        } else {
            kn_sb_puts(&sb, ", ");
        }
        kn_sb_printf(&sb, "%s (", bad[i].op);
        for (int k = i; k < j; k++) {
            char lb[128];
            if (k - i == 8) {
                kn_sb_printf(&sb, ", and %d more", j - k);
                break;
            }
            kn_sb_printf(&sb, "%s%s", k > i ? ", " : "", kn_onnx_label(gp->node[bad[k].index], bad[k].index, lb, sizeof lb));
        }
        kn_sb_puts(&sb, ")");
        groups++;
        i = j;
    }
    kn_free(bad);
    kiln_status st = kn_error(KILN_ERR_UNSUPPORTED, "%s", sb.failed || !sb.data ? "unsupported ops" : sb.data);
    kn_sb_free(&sb);
    return st;
}

/* ---- types and shapes of values ------------------------------------------------------------------ */

/* Applies a TypeProto to value v. strict: a graph input, which must be a tensor of a known type
 * and rank; otherwise the type is a hint, used where it makes sense and ignored elsewhere. */
static kiln_status kn_onnx_apply_type(kn_onnx_ctx *c, int v, const Onnx__TypeProto *tp,
                                      const char *what, int strict) {
    kn_graph *g = c->g;
    const char *name = g->values[v].name;
    if (!tp) {
        if (strict) return kn_error(KILN_ERR_PARSE, "%s '%s' has no type", what, name);
        return KILN_OK;
    }
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        if (strict)
            return kn_error(KILN_ERR_UNSUPPORTED, "%s '%s' is not a tensor (sequences, maps, optionals "
                            "and sparse tensors are not supported)", what, name);
        return KILN_OK;
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int64_t code = tt->has_elem_type ? tt->elem_type : 0;
    kiln_dtype dt = kn_onnx_dtype(code);
    if (dt == KILN_DTYPE_INVALID) {
        if (strict)
            return kn_error(code ? KILN_ERR_UNSUPPORTED : KILN_ERR_PARSE,
                            "%s '%s' has element type %s, which kiln does not support", what, name,
                            kn_onnx_type_name(code));
        return KILN_OK;
    }
    const Onnx__TensorShapeProto *sp = tt->shape;
    if (!sp) {
        if (strict)
            return kn_error(KILN_ERR_UNSUPPORTED, "%s '%s' has no shape; kiln needs the rank of every input",
                            what, name);
        g->values[v].dtype = dt;
        return KILN_OK;
    }
    if (sp->n_dim > KILN_MAX_RANK) {
        if (strict)
            return kn_error(KILN_ERR_UNSUPPORTED, "%s '%s' has %zu dims; kiln takes at most %d", what,
                            name, sp->n_dim, KILN_MAX_RANK);
        return KILN_OK;
    }
    kn_dim dims[KILN_MAX_RANK];
    for (size_t i = 0; i < sp->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sp->dim[i];
        dims[i] = (kn_dim){-1, -1};
        if (!d) continue;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0) {
            if (d->dim_value > ((int64_t)1 << 40)) {
                if (strict)
                    return kn_error(KILN_ERR_PARSE, "%s '%s': dim %zu = %lld is implausibly large", what, name,
                                    i, (long long)d->dim_value);
                return KILN_OK;
            }
            dims[i].v = d->dim_value;
        }
        else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param &&
                 *d->dim_param)
            KN_TRY(kn_graph_add_sym(g, d->dim_param, &dims[i].sym));
    }
    int64_t numel = 1; /* of the known dims: keeps later products from overflowing */
    for (size_t i = 0; i < sp->n_dim; i++) {
        if (dims[i].v < 0) continue;
        if (dims[i].v && numel > ((int64_t)1 << 48) / dims[i].v) {
            if (strict)
                return kn_error(KILN_ERR_PARSE, "%s '%s' has implausibly large dims", what, name);
            return KILN_OK;
        }
        numel *= dims[i].v ? dims[i].v : 1;
    }
    kn_value *val = &g->values[v];
    val->dtype = dt;
    val->rank = (int)sp->n_dim;
    memcpy(val->dims, dims, sp->n_dim * sizeof dims[0]);
    return KILN_OK;
}

static const Onnx__TypeProto *kn_onnx_hint(const kn_onnx_ctx *c, const char *name) {
    int k = kn_strmap_get(&c->vinfo, name, -1);
    if (k >= 0) return c->graph->value_info[k] ? c->graph->value_info[k]->type : NULL;
    if (k <= -2) return c->graph->output[-k - 2] ? c->graph->output[-k - 2]->type : NULL;
    return NULL;
}

/* ---- attributes ------------------------------------------------------------------------------------ */

static const char *kn_onnx_attr_type_name(int t) {
    switch (t) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return "FLOAT";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return "INT";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return "STRING";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: return "TENSOR";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: return "GRAPH";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR: return "SPARSE_TENSOR";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: return "TYPE_PROTO";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: return "FLOATS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return "INTS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: return "STRINGS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS: return "TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: return "GRAPHS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS: return "SPARSE_TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS: return "TYPE_PROTOS";
    default: return "UNDEFINED";
    }
}

/* The attribute's type; models older than IR 3 may leave `type` unset, then the field in use says. */
static int kn_onnx_attr_type(const Onnx__AttributeProto *ap) {
    if (ap->has_type && ap->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED) return (int)ap->type;
    if (ap->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (ap->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (ap->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (ap->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (ap->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    if (ap->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (ap->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (ap->n_strings) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static kiln_status kn_onnx_attr(kn_onnx_ctx *c, int k, const Onnx__AttributeProto *ap) {
    kn_node *n = &c->g->nodes[k];
    if (!ap->name || !*ap->name) return kn_node_error(n, KILN_ERR_PARSE, "has an attribute without a name");
    if (ap->ref_attr_name && *ap->ref_attr_name)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute '%s' refers to a function attribute ('%s')",
                             ap->name, ap->ref_attr_name);
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, ap->name))
            return kn_node_error(n, KILN_ERR_PARSE, "has attribute '%s' twice", ap->name);
    int type = kn_onnx_attr_type(ap);
    kiln_attr a = {0};
    a.name = ap->name;
    kn_host_tensor *t = NULL;
    kiln_tensor view;
    switch (type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: a.type = KILN_ATTR_FLOAT; a.f = ap->f; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: a.type = KILN_ATTR_INT; a.i = ap->i; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
        if (ap->s.len && memchr(ap->s.data, 0, ap->s.len))
            return kn_node_error(n, KILN_ERR_PARSE, "string attribute '%s' holds a NUL byte", ap->name);
        char *s = kn_malloc(ap->s.len + 1);
        if (!s) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
        if (ap->s.len) memcpy(s, ap->s.data, ap->s.len);
        s[ap->s.len] = 0;
        a.type = KILN_ATTR_STRING;
        a.s = s;
        kiln_status st = kn_node_set_attr(n, &a);
        kn_free(s);
        return st;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        if (ap->n_ints > (size_t)INT32_MAX) return kn_node_error(n, KILN_ERR_PARSE, "attribute '%s' is too long", ap->name);
        a.type = KILN_ATTR_INTS; a.count = (int)ap->n_ints; a.ints = ap->ints;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        if (ap->n_floats > (size_t)INT32_MAX) return kn_node_error(n, KILN_ERR_PARSE, "attribute '%s' is too long", ap->name);
        a.type = KILN_ATTR_FLOATS; a.count = (int)ap->n_floats; a.floats = ap->floats;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        if (!ap->t) return kn_node_error(n, KILN_ERR_PARSE, "tensor attribute '%s' holds no tensor", ap->name);
        char what[300], lb[256];
        snprintf(what, sizeof what, "%s: attribute '%s'", kn_node_label(n, lb, sizeof lb), ap->name);
        KN_TRY(kn_onnx_tensor_decode(ap->t, c->base_dir, what, &t));
        view = (kiln_tensor){.data = t->data, .dtype = t->dtype, .rank = t->rank, .device = KILN_DEVICE_CPU};
        memcpy(view.dims, t->dims, sizeof view.dims);
        a.type = KILN_ATTR_TENSOR;
        a.tensor = &view;
        kiln_status st = kn_node_set_attr(&c->g->nodes[k], &a);
        kn_host_tensor_free(t);
        return st;
    }
    default:
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute '%s' has type %s, which kiln does not take",
                             ap->name, kn_onnx_attr_type_name(type));
    }
    return kn_node_set_attr(n, &a);
}

/* ---- Constant nodes become constants ------------------------------------------------------------------ */

static kiln_status kn_onnx_constant(kn_onnx_ctx *c, const Onnx__NodeProto *np, int index) {
    char lb[128], what[320];
    kn_onnx_label(np, index, lb, sizeof lb);
    if (np->n_output != 1 || !np->output[0] || !*np->output[0])
        return kn_error(KILN_ERR_PARSE, "Constant '%s' must have one named output", lb);
    if (np->n_attribute != 1 || !np->attribute[0] || !np->attribute[0]->name)
        return kn_error(KILN_ERR_PARSE, "Constant '%s' must have exactly one attribute, got %zu", lb, np->n_attribute);
    const Onnx__AttributeProto *ap = np->attribute[0];
    const char *an = ap->name;
    int type = kn_onnx_attr_type(ap);
    kn_host_tensor *t = NULL;
    int64_t dims[1];
    if (!strcmp(an, "value")) {
        if (type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR || !ap->t)
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "Constant '%s': attribute 'value' must be a TENSOR, got %s",
                            lb, kn_onnx_attr_type_name(type));
        snprintf(what, sizeof what, "Constant '%s'", lb);
        KN_TRY(kn_onnx_tensor_decode(ap->t, c->base_dir, what, &t));
    } else if (!strcmp(an, "value_float") || !strcmp(an, "value_int")) {
        int is_f = an[6] == 'f';
        int want = is_f ? ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        if (type != want)
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "Constant '%s': attribute '%s' must be %s, got %s", lb,
                            an, kn_onnx_attr_type_name(want), kn_onnx_attr_type_name(type));
        t = kn_host_tensor_new(is_f ? KILN_F32 : KILN_I64, 0, NULL);
        if (t && is_f) *(float *)t->data = ap->f;
        if (t && !is_f) *(int64_t *)t->data = ap->i;
    } else if (!strcmp(an, "value_floats") || !strcmp(an, "value_ints")) {
        int is_f = an[6] == 'f';
        int want = is_f ? ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        if (type != want && !(type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED))
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "Constant '%s': attribute '%s' must be %s, got %s", lb,
                            an, kn_onnx_attr_type_name(want), kn_onnx_attr_type_name(type));
        dims[0] = (int64_t)(is_f ? ap->n_floats : ap->n_ints);
        t = kn_host_tensor_new(is_f ? KILN_F32 : KILN_I64, 1, dims);
        if (t && dims[0]) memcpy(t->data, is_f ? (void *)ap->floats : (void *)ap->ints, (size_t)dims[0] * (is_f ? 4 : 8));
    } else if (!strcmp(an, "sparse_value") || !strcmp(an, "value_string") || !strcmp(an, "value_strings")) {
        return kn_error(KILN_ERR_UNSUPPORTED, "Constant '%s': attribute '%s' (%s) is not supported", lb, an,
                        an[0] == 's' ? "a sparse tensor" : "strings");
    } else {
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "Constant '%s': unknown attribute '%s'", lb, an);
    }
    if (!t) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for Constant '%s'", lb);
    const char *out = np->output[0];
    if (kn_graph_find_value(c->g, out) >= 0) {
        kn_host_tensor_free(t);
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "Constant '%s': value '%s' is defined twice", lb, out);
    }
    return kn_graph_new_constant(c->g, out, t, NULL);
}

/* ---- nodes ---------------------------------------------------------------------------------------- */

static kiln_status kn_onnx_node(kn_onnx_ctx *c, const Onnx__NodeProto *np, int index) {
    if (!strcmp(np->op_type, "Constant")) return kn_onnx_constant(c, np, index);
    kn_graph *g = c->g;
    char lb[128];
    kn_onnx_label(np, index, lb, sizeof lb);
    kn_op op = !strcmp(np->op_type, "Upsample") ? KN_OP_Resize : kn_op_from_model_name(np->op_type);
    const kn_op_def *def = kn_op_get(op);
    if (!def) return kn_error(KILN_ERR_INTERNAL, "%s '%s': no op definition", np->op_type, lb);
    if (np->n_input > 4096 || np->n_output > 64)
        return kn_error(KILN_ERR_UNSUPPORTED, "%s '%s' has too many inputs or outputs (%zu, %zu)",
                        np->op_type, lb, np->n_input, np->n_output);
    int n_in = (int)np->n_input, n_out = (int)np->n_output;
    int *in = kn_malloc((size_t)(n_in + 1) * sizeof *in);
    int out[64];
    if (!in) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    kiln_status st = KILN_OK;
    for (int i = 0; i < n_in && st == KILN_OK; i++) {
        const char *nm = np->input[i];
        if (!nm || !*nm) { in[i] = -1; continue; }
        in[i] = kn_graph_find_value(g, nm);
        if (in[i] < 0)
            st = kn_error(KILN_ERR_NOT_FOUND, "%s '%s': input %d '%s' is not a graph input, an initializer "
                          "or the output of a node", np->op_type, lb, i, nm);
    }
    while (st == KILN_OK && n_in > 0 && in[n_in - 1] < 0) n_in--; /* trailing omitted inputs */
    /* outputs beyond what kiln computes (MaxPool's indices, BatchNormalization's training
     * statistics, Dropout's mask in old opsets) are dropped when nothing reads them */
    while (st == KILN_OK && def->max_out > 0 && n_out > def->max_out) {
        const char *nm = np->output[n_out - 1];
        if (nm && *nm && kn_strmap_get(&c->used, nm, 0))
            st = kn_error(KILN_ERR_UNSUPPORTED, "%s '%s': output %d ('%s') is used, but kiln computes only "
                          "the first %d output%s of %s", np->op_type, lb, n_out - 1, nm, def->max_out,
                          def->max_out == 1 ? "" : "s", np->op_type);
        n_out--;
    }
    for (int o = 0; o < n_out && st == KILN_OK; o++) {
        const char *nm = np->output[o];
        out[o] = -1;
        if (!nm || !*nm) continue;
        if (kn_graph_find_value(g, nm) >= 0) {
            st = kn_error(KILN_ERR_INVALID_ARGUMENT, "%s '%s': output '%s' is defined twice", np->op_type, lb, nm);
            break;
        }
        st = kn_graph_new_value(g, nm, &out[o]);
        if (st == KILN_OK) st = kn_onnx_apply_type(c, out[o], kn_onnx_hint(c, nm), "value", 0);
    }
    if (st == KILN_OK && def->max_out > 0 && (n_in < def->min_in || n_in > def->max_in || n_out < def->min_out))
        st = kn_error(KILN_ERR_INVALID_ARGUMENT, "%s '%s' has %d inputs and %d outputs; it takes %d to %d inputs "
                      "and %d to %d outputs", np->op_type, lb, n_in, n_out, def->min_in, def->max_in,
                      def->min_out, def->max_out);
    int k = -1;
    if (st == KILN_OK) st = kn_graph_new_node(g, op, np->name && *np->name ? np->name : NULL, n_in, in, n_out, out, &k);
    kn_free(in);
    for (size_t a = 0; a < np->n_attribute && st == KILN_OK; a++)
        if (np->attribute[a]) st = kn_onnx_attr(c, k, np->attribute[a]);
    if (st == KILN_OK) st = kn_onnx_check_attrs(c, k, np->op_type);
    if (st == KILN_OK) st = kn_onnx_upgrade(c, k, np->op_type);
    return st;
}

/* ONNX requires nodes in topological order, but some writers do not keep it: sort by names. */
static kiln_status kn_onnx_node_order(kn_onnx_ctx *c, int **order_out) {
    const Onnx__GraphProto *gp = c->graph;
    int n = (int)gp->n_node;
    *order_out = NULL;
    kn_strmap producer = {0};
    int *pending = kn_calloc((size_t)n + 1, sizeof(int));
    int *order = kn_malloc(((size_t)n + 1) * sizeof(int));
    int *start = kn_calloc((size_t)n + 2, sizeof(int)); /* CSR: producer node -> consumers */
    int *users = NULL, *fill = NULL;
    kiln_status st = KILN_OK;
    if (!pending || !order || !start) goto oom;
    for (int i = 0; i < n && st == KILN_OK; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        for (size_t o = 0; o < np->n_output && st == KILN_OK; o++) {
            const char *nm = np->output[o];
            if (!nm || !*nm) continue;
            int prev = kn_strmap_get(&producer, nm, -1);
            if (prev >= 0) {
                char l1[128], l2[128];
                st = kn_error(KILN_ERR_INVALID_ARGUMENT, "value '%s' is the output of two nodes, %s '%s' and %s '%s'",
                              nm, gp->node[prev]->op_type, kn_onnx_label(gp->node[prev], prev, l1, sizeof l1),
                              np->op_type, kn_onnx_label(np, i, l2, sizeof l2));
            } else {
                st = kn_strmap_put(&producer, nm, i);
            }
        }
    }
    if (st != KILN_OK) goto done;
    int total = 0;
    for (int i = 0; i < n; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        for (size_t k = 0; k < np->n_input; k++) {
            int p = kn_strmap_get(&producer, np->input[k], -1);
            if (p >= 0 && np->input[k][0]) { start[p + 1]++; pending[i]++; total++; }
        }
    }
    for (int i = 0; i < n; i++) start[i + 1] += start[i];
    users = kn_malloc((size_t)(total + 1) * sizeof(int));
    fill = kn_calloc((size_t)n + 1, sizeof(int));
    if (!users || !fill) goto oom;
    for (int i = 0; i < n; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        for (size_t k = 0; k < np->n_input; k++) {
            int p = kn_strmap_get(&producer, np->input[k], -1);
            if (p >= 0 && np->input[k][0]) users[start[p] + fill[p]++] = i;
        }
    }
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (!pending[i]) order[tail++] = i;
    while (head < tail) {
        int i = order[head++];
        for (int u = start[i]; u < start[i + 1]; u++)
            if (--pending[users[u]] == 0) order[tail++] = users[u];
    }
    if (tail != n) {
        for (int i = 0; i < n; i++)
            if (pending[i]) {
                char lb[128];
                st = kn_error(KILN_ERR_INVALID_ARGUMENT, "the graph has a cycle through %s '%s'",
                              gp->node[i]->op_type, kn_onnx_label(gp->node[i], i, lb, sizeof lb));
                break;
            }
        goto done;
    }
    *order_out = order;
    order = NULL;
    goto done;
oom:
    st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory ordering the nodes");
done:
    kn_strmap_free(&producer);
    kn_free(pending); kn_free(order); kn_free(start); kn_free(users); kn_free(fill);
    return st;
}

/* ---- declared output types against inferred ones --------------------------------------------------- */

static kiln_status kn_onnx_check_declared(kn_onnx_ctx *c) {
    kn_graph *g = c->g;
    for (size_t i = 0; i < c->graph->n_output; i++) {
        const Onnx__ValueInfoProto *vi = c->graph->output[i];
        int v = kn_graph_find_value(g, vi->name);
        if (v < 0 || !vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !vi->type->tensor_type)
            continue;
        const kn_value *val = &g->values[v];
        if (val->rank < 0 || val->dtype == KILN_DTYPE_INVALID) continue;
        const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
        char where[300] = "";
        if (val->producer >= 0) {
            char lb[256];
            snprintf(where, sizeof where, "%s: ", kn_node_label(&g->nodes[val->producer], lb, sizeof lb));
        }
        kiln_dtype dt = tt->has_elem_type ? kn_onnx_dtype(tt->elem_type) : KILN_DTYPE_INVALID;
        if (dt != KILN_DTYPE_INVALID && dt != val->dtype)
            return kn_error(KILN_ERR_DTYPE, "%soutput '%s' is declared %s by the model but is inferred as %s",
                            where, val->name, kiln_dtype_name(dt), kiln_dtype_name(val->dtype));
        const Onnx__TensorShapeProto *sp = tt->shape;
        if (!sp) continue;
        int bad = (int)sp->n_dim != val->rank;
        for (int d = 0; d < val->rank && !bad; d++) {
            const Onnx__TensorShapeProto__Dimension *dp = sp->dim[d];
            if (dp && dp->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dp->dim_value >= 0 &&
                val->dims[d].sym < 0 && val->dims[d].v >= 0 && val->dims[d].v != dp->dim_value)
                bad = 1;
        }
        if (bad) {
            char decl[160] = "", inf[160] = "";
            size_t a = 0, b = 0;
            for (size_t d = 0; d < sp->n_dim && a < sizeof decl; d++) {
                const Onnx__TensorShapeProto__Dimension *dp = sp->dim[d];
                if (dp && dp->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
                    a += (size_t)snprintf(decl + a, sizeof decl - a, "%s%lld", d ? "x" : "", (long long)dp->dim_value);
                else
                    a += (size_t)snprintf(decl + a, sizeof decl - a, "%s?", d ? "x" : "");
            }
            for (int d = 0; d < val->rank && b < sizeof inf; d++) {
                if (val->dims[d].sym < 0 && val->dims[d].v >= 0)
                    b += (size_t)snprintf(inf + b, sizeof inf - b, "%s%lld", d ? "x" : "", (long long)val->dims[d].v);
                else
                    b += (size_t)snprintf(inf + b, sizeof inf - b, "%s?", d ? "x" : "");
            }
            return kn_error(KILN_ERR_SHAPE, "%soutput '%s' is declared with shape [%s] by the model but is "
                            "inferred as [%s]", where, val->name, sp->n_dim ? decl : "scalar",
                            val->rank ? inf : "scalar");
        }
    }
    return KILN_OK;
}

/* ---- the graph --------------------------------------------------------------------------------------- */

static kiln_status kn_onnx_graph(kn_onnx_ctx *c) {
    const Onnx__GraphProto *gp = c->graph;
    kn_graph *g = c->g;
    KN_TRY(kn_onnx_check_ops(c));
    if (gp->n_sparse_initializer)
        return kn_error(KILN_ERR_UNSUPPORTED, "sparse initializers are not supported ('%s')",
                        gp->sparse_initializer[0] && gp->sparse_initializer[0]->values &&
                                gp->sparse_initializer[0]->values->name ? gp->sparse_initializer[0]->values->name : "?");
    for (size_t i = 0; i < gp->n_value_info; i++)
        if (gp->value_info[i] && gp->value_info[i]->name && *gp->value_info[i]->name)
            KN_TRY(kn_strmap_put(&c->vinfo, gp->value_info[i]->name, (int)i));
    for (size_t i = 0; i < gp->n_output; i++) {
        if (!gp->output[i] || !gp->output[i]->name || !*gp->output[i]->name)
            return kn_error(KILN_ERR_PARSE, "graph output %zu has no name", i);
        KN_TRY(kn_strmap_put(&c->vinfo, gp->output[i]->name, -(int)i - 2));
        KN_TRY(kn_strmap_put(&c->used, gp->output[i]->name, 1));
    }
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t k = 0; k < gp->node[i]->n_input; k++)
            if (gp->node[i]->input[k] && *gp->node[i]->input[k])
                KN_TRY(kn_strmap_put(&c->used, gp->node[i]->input[k], 1));

    /* initializers: constants (an input of the same name, as older models declare, is not an input) */
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !*tp->name) return kn_error(KILN_ERR_PARSE, "initializer %zu has no name", i);
        if (kn_graph_find_value(g, tp->name) >= 0)
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "initializer '%s' is defined twice", tp->name);
        char what[300];
        snprintf(what, sizeof what, "initializer '%s'", tp->name);
        kn_host_tensor *t;
        KN_TRY(kn_onnx_tensor_decode(tp, c->base_dir, what, &t));
        KN_TRY(kn_graph_new_constant(g, tp->name, t, NULL));
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !*vi->name) return kn_error(KILN_ERR_PARSE, "graph input %zu has no name", i);
        int v = kn_graph_find_value(g, vi->name);
        if (v >= 0) {
            if (g->values[v].constant) continue;
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "graph input '%s' is declared twice", vi->name);
        }
        KN_TRY(kn_graph_new_value(g, vi->name, &v));
        KN_TRY(kn_onnx_apply_type(c, v, vi->type, "graph input", 1));
        KN_TRY(KN_GROW(g->inputs, g->cap_inputs, g->n_inputs + 1));
        g->values[v].flags |= KN_VALUE_INPUT;
        g->inputs[g->n_inputs++] = v;
    }

    int *order;
    KN_TRY(kn_onnx_node_order(c, &order));
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < gp->n_node && st == KILN_OK; i++) st = kn_onnx_node(c, gp->node[order[i]], order[i]);
    kn_free(order);
    KN_TRY(st);

    for (size_t i = 0; i < gp->n_output; i++) {
        const char *nm = gp->output[i]->name;
        int v = kn_graph_find_value(g, nm);
        if (v < 0) return kn_error(KILN_ERR_NOT_FOUND, "graph output '%s' is not produced by any node", nm);
        for (int k = 0; k < g->n_outputs; k++)
            if (g->outputs[k] == v) return kn_error(KILN_ERR_INVALID_ARGUMENT, "graph output '%s' is listed twice", nm);
        KN_TRY(KN_GROW(g->outputs, g->cap_outputs, g->n_outputs + 1));
        g->outputs[g->n_outputs++] = v;
        g->values[v].flags |= KN_VALUE_OUTPUT;
    }

    KN_TRY(kiln_graph_verify((kiln_graph *)g));
    if (c->n_fixups) {
        int changed = 0;
        KN_TRY(kn_onnx_upgrade_typed(c, &changed));
        if (changed) KN_TRY(kiln_graph_verify((kiln_graph *)g));
    }
    return kn_onnx_check_declared(c);
}

static kiln_status kn_onnx_load(const void *data, size_t size, const char *base_dir,
                                const char *src, kiln_graph **out) {
    if (size == 0) return kn_error(KILN_ERR_PARSE, "'%s' is not an ONNX model: it is empty", src);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
    if (!m)
        return kn_error(KILN_ERR_PARSE, "cannot decode '%s' (%zu bytes) as an ONNX model: it is truncated, "
                        "corrupt or not an ONNX model", src, size);
    kn_onnx_ctx c = {0};
    c.src = src;
    c.base_dir = base_dir;
    kiln_status st = kn_onnx_check_header(m, src, &c.opset);
    if (st == KILN_OK) {
        c.graph = m->graph;
        c.g = kn_graph_new();
        if (!c.g) st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    if (st == KILN_OK) {
        c.g->opset = (int)c.opset;
        st = kn_onnx_graph(&c);
    }
    kn_strmap_free(&c.vinfo);
    kn_strmap_free(&c.used);
    kn_free(c.fixups);
    onnx__model_proto__free_unpacked(m, NULL);
    if (st != KILN_OK) {
        kn_graph_destroy(c.g);
        return st;
    }
    *out = (kiln_graph *)c.g;
    return KILN_OK;
}

kiln_status kiln_graph_load_onnx_memory(const void *data, size_t size, const char *base_dir,
                                        kiln_graph **out) {
    KN_ARG_CHECK(out, "out");
    *out = NULL;
    KN_ARG_CHECK(data || size == 0, "data");
    return kn_onnx_load(data, size, base_dir, "(memory)", out);
}

kiln_status kiln_graph_load_onnx(const char *path, kiln_graph **out) {
    KN_ARG_CHECK(out, "out");
    *out = NULL;
    KN_ARG_CHECK(path, "path");
    void *data;
    size_t size;
    KN_TRY(kn_onnx_read_file(path, &data, &size));
    char *dir = kn_strdup(path);
    if (!dir) {
        kn_free(data);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir ? 1 : 0] = 0;
    else strcpy(dir, ".");
    kiln_status st = kn_onnx_load(data, size, dir, path, out);
    kn_free(dir);
    kn_free(data);
    return st;
}
