/* kiln conformance: runs the ONNX backend node tests (one folder per test: model.onnx and
 * test_data_set_N/{input,output}_K.pb) through import, compile and a session, and compares the
 * outputs with the expected ones.
 *
 * Each test runs in a child process (unless --no-fork), so a crash or a hang in one kernel is
 * reported as that test's failure and the run goes on. Tests whose model kiln refuses as
 * unsupported (ops outside the op set, element types, features; KILN_ERR_UNSUPPORTED or
 * KILN_ERR_DTYPE from import or compile) are skipped with the reason; so are the tests named in
 * the exclusion file. Tolerances: |got - want| <= atol + rtol * |want| with rtol 1e-3, atol 1e-5
 * for f32/f64; rtol 4e-3, atol 1e-3 for f16 (4 units in the last place near 1); rtol 1.6e-2,
 * atol 1e-2 for bf16; integers and bools exactly; NaN matches NaN, infinities match their sign. */
#include "cli.h"

#include "ir/ir.h"
#include "ops/ops.h"
#include "onnx/onnx.pb-c.h"
#include "onnx/onnx_import.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KC_MSG 1024

typedef enum { KC_PASS = 0, KC_FAIL, KC_SKIP } kc_outcome;

typedef struct kc_test {
    char *name;
    char *group;   /* the op the test is about, for the table */
    int in_scope;  /* every op of the model is in kiln's op set (default domain) */
    kc_outcome outcome;
    char msg[KC_MSG];
} kc_test;

typedef struct kc_opts {
    const char *dir, *filter, *exclude;
    kiln_device device;
    int verbose, fork, timeout_s, min_block_size;
} kc_opts;

/* ---- small helpers ----------------------------------------------------------------------------- */

static char *kc_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int kc_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int kc_strcmp_p(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the entries of dir that start with prefix (and are folders when dirs_only). */
static int kc_list(const char *dir, const char *prefix, int dirs_only, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix))) continue;
        if (dirs_only) {
            char *p = kc_join(dir, e->d_name);
            struct stat sb;
            int ok = p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
            free(p);
            if (!ok) continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, kc_strcmp_p);
    *out = names;
    return n;
}

static void kc_free_list(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* The number K of "<prefix>K.pb" files: 0..K-1 must all exist. */
static int kc_count_pb(const char *dir, const char *prefix) {
    int k = 0;
    for (;; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s%d.pb", prefix, k);
        char *p = kc_join(dir, name);
        int ok = p && kc_is_file(p);
        free(p);
        if (!ok) return k;
    }
}

/* ---- which op a test is about ---------------------------------------------------------------------- */

static void kc_norm(const char *s, char *out, size_t cap) {
    size_t k = 0;
    for (; *s && k + 1 < cap; s++)
        if (*s != '_') out[k++] = (char)((*s >= 'A' && *s <= 'Z') ? *s - 'A' + 'a' : *s);
    out[k] = 0;
}

/* Reads the model's op types (protobuf only, no import) to group the test and to see whether it
 * is in scope. */
static void kc_classify(const char *test_dir, const char *name, kc_test *t) {
    char *path = kc_join(test_dir, "model.onnx");
    void *data = NULL;
    size_t size = 0;
    Onnx__ModelProto *m = NULL;
    if (path && kn_onnx_read_file(path, &data, &size) == KILN_OK)
        m = onnx__model_proto__unpack(NULL, size, data);
    free(path);
    free(data);
    char tn[256], best[128] = "";
    kc_norm(strncmp(name, "test_", 5) ? name : name + 5, tn, sizeof tn);
    size_t best_len = 0;
    const char *only = NULL;
    int multiple = 0;
    t->in_scope = m && m->graph;
    if (m && m->graph) {
        for (size_t i = 0; i < m->graph->n_node; i++) {
            const Onnx__NodeProto *np = m->graph->node[i];
            if (!np->op_type) { t->in_scope = 0; continue; }
            int def = !np->domain || !*np->domain || !strcmp(np->domain, "ai.onnx");
            if (!def || (kn_op_from_name(np->op_type) == KN_OP_INVALID && strcmp(np->op_type, "Upsample")))
                t->in_scope = 0;
            if (!only) only = np->op_type;
            else if (strcmp(only, np->op_type)) multiple = 1;
            char on[128];
            kc_norm(np->op_type, on, sizeof on);
            size_t L = strlen(on);
            if (L > best_len && !strncmp(tn, on, L)) {
                best_len = L;
                snprintf(best, sizeof best, "%s", np->op_type);
            }
        }
    }
    for (int op = 1; op < KN_OP_COUNT; op++) {
        char on[128];
        kc_norm(kn_op_name((kn_op)op), on, sizeof on);
        size_t L = strlen(on);
        if (L > best_len && !strncmp(tn, on, L)) {
            best_len = L;
            snprintf(best, sizeof best, "%s", kn_op_name((kn_op)op));
        }
    }
    if (!best_len) {
        if (only && !multiple) {
            snprintf(best, sizeof best, "%s", only);
        } else { /* the first word of the test's name */
            const char *s = strncmp(name, "test_", 5) ? name : name + 5;
            size_t k = 0;
            while (s[k] && s[k] != '_' && k + 1 < sizeof best) { best[k] = s[k]; k++; }
            best[k] = 0;
        }
    }
    t->group = strdup(best[0] ? best : "?");
    if (m) onnx__model_proto__free_unpacked(m, NULL);
}

/* ---- comparing ---------------------------------------------------------------------------------- */

static int kc_compare(const char *oname, const kiln_tensor *got, const kn_host_tensor *want, char *msg,
                      size_t cap) {
    if (got->dtype != want->dtype) {
        snprintf(msg, cap, "output '%s' has type %s, expected %s", oname, kiln_dtype_name(got->dtype),
                 kiln_dtype_name(want->dtype));
        return 0;
    }
    int same = got->rank == want->rank;
    for (int i = 0; same && i < got->rank; i++) same = got->dims[i] == want->dims[i];
    if (!same) {
        char a[128], b[128];
        snprintf(msg, cap, "output '%s' has shape [%s], expected [%s]", oname,
                 kn_dims_str(got->rank, got->dims, a, sizeof a), kn_dims_str(want->rank, want->dims, b, sizeof b));
        return 0;
    }
    int64_t n = kn_host_numel(want), bad = 0, first = -1;
    double rtol = 1e-3, atol = 1e-5, worst = 0;
    if (want->dtype == KILN_F16) rtol = 4e-3, atol = 1e-3;
    if (want->dtype == KILN_BF16) rtol = 1.6e-2, atol = 1e-2;
    int exact = !kn_dtype_is_float(want->dtype);
    for (int64_t i = 0; i < n; i++) {
        double g = kn_load_f64(got->data, got->dtype, i), w = kn_load_f64(want->data, want->dtype, i);
        int ok;
        if (exact) {
            if (want->dtype == KILN_I64) ok = ((const int64_t *)got->data)[i] == ((const int64_t *)want->data)[i];
            else ok = g == w;
        } else if (isnan(w) || isnan(g)) {
            ok = isnan(w) && isnan(g);
        } else if (isinf(w) || isinf(g)) {
            ok = g == w;
        } else {
            double err = fabs(g - w), lim = atol + rtol * fabs(w);
            ok = err <= lim;
            if (err / lim > worst) worst = err / lim;
        }
        if (!ok) {
            if (first < 0) first = i;
            bad++;
        }
    }
    if (!bad) return 1;
    snprintf(msg, cap, "output '%s': %lld of %lld values differ; first at %lld: got %.9g, expected %.9g%s",
             oname, (long long)bad, (long long)n, (long long)first, kn_load_f64(got->data, got->dtype, first),
             kn_load_f64(want->data, want->dtype, first), exact ? " (exact match required)" : "");
    if (!exact && worst > 0) {
        size_t len = strlen(msg);
        snprintf(msg + len, cap - len, " (worst error %.3g x tolerance)", worst);
    }
    return 0;
}

/* ---- one test ----------------------------------------------------------------------------------- */

typedef struct kc_set {
    int n_in, n_out;
    kn_host_tensor **in, **out;
    char **in_names, **out_names;
} kc_set;

static void kc_set_free(kc_set *s) {
    for (int i = 0; i < s->n_in; i++) { kn_host_tensor_free(s->in[i]); kn_free(s->in_names[i]); }
    for (int i = 0; i < s->n_out; i++) { kn_host_tensor_free(s->out[i]); kn_free(s->out_names[i]); }
    free(s->in); free(s->out); free(s->in_names); free(s->out_names);
    memset(s, 0, sizeof *s);
}

static kiln_status kc_set_load(const char *dir, kc_set *s) {
    memset(s, 0, sizeof *s);
    s->n_in = kc_count_pb(dir, "input_");
    s->n_out = kc_count_pb(dir, "output_");
    s->in = calloc((size_t)s->n_in + 1, sizeof *s->in);
    s->out = calloc((size_t)s->n_out + 1, sizeof *s->out);
    s->in_names = calloc((size_t)s->n_in + 1, sizeof *s->in_names);
    s->out_names = calloc((size_t)s->n_out + 1, sizeof *s->out_names);
    if (!s->in || !s->out || !s->in_names || !s->out_names) return KILN_ERR_OUT_OF_MEMORY;
    for (int io = 0; io < 2; io++) {
        int n = io ? s->n_out : s->n_in;
        for (int k = 0; k < n; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%d.pb", io ? "output" : "input", k);
            char *p = kc_join(dir, name);
            if (!p) return KILN_ERR_OUT_OF_MEMORY;
            kiln_status st = kn_onnx_read_tensor_file(p, io ? &s->out[k] : &s->in[k], io ? &s->out_names[k] : &s->in_names[k]);
            free(p);
            if (st != KILN_OK) return st;
        }
    }
    return KILN_OK;
}

/* Index of the tensor for `name`: by TensorProto name when they are named, else by position. */
static int kc_match(char **names, int n, const char *name, int pos) {
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(names[i], name)) return i;
    return pos < n ? pos : -1;
}

/* ---- inputs kiln needs before the run ----------------------------------------------------------
 * Many node tests feed shape parameters (Reshape's shape, Expand's shape, reduction axes, Pad's pads,
 * Range's bounds) as graph inputs, while kiln reads them on the host at build time, as TensorRT does
 * with shape tensors. The runner binds such inputs to the data set's values as initializers: it
 * finds the graph inputs that reach a host-read input slot (through ops evaluated on the host;
 * Shape only reads dims), and rewrites the model per data set. Such passes are reported with the
 * names of the bound inputs. */

typedef struct kc_model {
    Onnx__ModelProto *m;
    void *bytes;
    size_t size;
    char **inputs;  /* graph inputs that are not initializers, in order (borrowed from m) */
    int n_inputs;
    char *frozen;   /* per entry of inputs: bound to the data set's value */
    int n_frozen;
} kc_model;

static void kc_model_free(kc_model *k) {
    if (k->m) onnx__model_proto__free_unpacked(k->m, NULL);
    kn_free(k->bytes);
    free(k->inputs);
    free(k->frozen);
    memset(k, 0, sizeof *k);
}

static int kc_input_index(const kc_model *k, const char *name) {
    for (int i = 0; i < k->n_inputs; i++)
        if (!strcmp(k->inputs[i], name)) return i;
    return -1;
}

/* Reads the model's protobuf and finds the inputs to bind. Returns 0 when it cannot (the import
 * will then report the problem). */
static int kc_model_scan(const char *path, kc_model *k) {
    memset(k, 0, sizeof *k);
    if (kn_onnx_read_file(path, &k->bytes, &k->size) != KILN_OK) return 0;
    k->m = onnx__model_proto__unpack(NULL, k->size, k->bytes);
    if (!k->m || !k->m->graph) return 0;
    const Onnx__GraphProto *g = k->m->graph;
    k->inputs = calloc(g->n_input + 1, sizeof *k->inputs);
    k->frozen = calloc(g->n_input + 1, 1);
    if (!k->inputs || !k->frozen) return 0;
    for (size_t i = 0; i < g->n_input; i++) {
        const char *nm = g->input[i]->name;
        int init = 0;
        for (size_t j = 0; j < g->n_initializer && !init; j++) init = nm && g->initializer[j]->name && !strcmp(nm, g->initializer[j]->name);
        if (nm && !init) k->inputs[k->n_inputs++] = g->input[i]->name;
    }
    /* values needed on the host, found backwards from the host-read slots */
    size_t cap = 64, n = 0;
    const char **need = malloc(cap * sizeof *need);
    if (!need) return 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        if (!np->op_type || (np->domain && *np->domain && strcmp(np->domain, "ai.onnx"))) continue;
        uint32_t mask;
        if (!strcmp(np->op_type, "Upsample")) mask = 1u << 1;
        else {
            const kn_op_def *d = kn_op_get(kn_op_from_name(np->op_type));
            mask = d ? d->host_inputs : 0;
        }
        for (size_t s = 0; s < np->n_input && s < 32; s++)
            if ((mask >> s & 1) && np->input[s] && *np->input[s]) {
                if (n == cap) {
                    const char **nn = realloc(need, (cap *= 2) * sizeof *nn);
                    if (!nn) { free(need); return 0; }
                    need = nn;
                }
                need[n++] = np->input[s];
            }
    }
    for (size_t q = 0; q < n; q++) {
        int gi = kc_input_index(k, need[q]);
        if (gi >= 0) {
            if (!k->frozen[gi]) k->n_frozen++;
            k->frozen[gi] = 1;
            continue;
        }
        for (size_t i = 0; i < g->n_node; i++) { /* its producer is evaluated on the host: so are its inputs */
            const Onnx__NodeProto *np = g->node[i];
            int produces = 0;
            for (size_t o = 0; o < np->n_output && !produces; o++) produces = np->output[o] && !strcmp(np->output[o], need[q]);
            if (!produces || !np->op_type || !strcmp(np->op_type, "Shape")) continue;
            for (size_t s = 0; s < np->n_input; s++) {
                if (!np->input[s] || !*np->input[s]) continue;
                int dup = 0;
                for (size_t r = 0; r < n && !dup; r++) dup = !strcmp(need[r], np->input[s]);
                if (dup) continue;
                if (n == cap) {
                    const char **nn = realloc(need, (cap *= 2) * sizeof *nn);
                    if (!nn) { free(need); return 0; }
                    need = nn;
                }
                need[n++] = np->input[s];
            }
        }
    }
    free(need);
    return 1;
}

/* Imports the model with the frozen inputs made initializers holding set's values. */
static kiln_status kc_model_load_bound(kc_model *k, const char *test_dir, const kc_set *set, kiln_graph **out) {
    Onnx__GraphProto *g = k->m->graph;
    size_t n_in0 = g->n_input, n_init0 = g->n_initializer;
    Onnx__ValueInfoProto **in0 = g->input;
    Onnx__TensorProto **init0 = g->initializer;
    Onnx__ValueInfoProto **in = calloc(n_in0 + 1, sizeof *in);
    Onnx__TensorProto **init = calloc(n_init0 + (size_t)k->n_frozen + 1, sizeof *init);
    Onnx__TensorProto *extra = calloc((size_t)k->n_frozen + 1, sizeof *extra);
    kiln_status st = KILN_OK;
    if (!in || !init || !extra) st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    size_t ni = 0, nz = n_init0;
    if (st == KILN_OK && n_init0) memcpy(init, init0, n_init0 * sizeof *init);
    for (size_t i = 0; i < n_in0 && st == KILN_OK; i++) {
        int gi = kc_input_index(k, in0[i]->name ? in0[i]->name : "");
        if (gi < 0 || !k->frozen[gi]) {
            in[ni++] = in0[i];
            continue;
        }
        int j = kc_match(set->in_names, set->n_in, k->inputs[gi], gi);
        if (j < 0) {
            st = kn_error(KILN_ERR_NOT_FOUND, "no data for input '%s'", k->inputs[gi]);
            break;
        }
        const kn_host_tensor *t = set->in[j];
        Onnx__TensorProto *tp = &extra[nz - n_init0];
        onnx__tensor_proto__init(tp);
        tp->name = k->inputs[gi];
        tp->has_data_type = 1;
        tp->data_type = kn_onnx_code(t->dtype);
        tp->n_dims = (size_t)t->rank;
        tp->dims = (int64_t *)t->dims;
        tp->has_raw_data = 1;
        tp->raw_data.len = (size_t)kn_host_numel(t) * kiln_dtype_size(t->dtype);
        tp->raw_data.data = t->data;
        init[nz++] = tp;
    }
    if (st == KILN_OK) {
        g->input = in;
        g->n_input = ni;
        g->initializer = init;
        g->n_initializer = nz;
        size_t size = onnx__model_proto__get_packed_size(k->m);
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf) st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of memory");
        else {
            onnx__model_proto__pack(k->m, buf);
            st = kiln_graph_load_onnx_memory(buf, size, test_dir, out);
            free(buf);
        }
        g->input = in0;
        g->n_input = n_in0;
        g->initializer = init0;
        g->n_initializer = n_init0;
    }
    free(in);
    free(init);
    free(extra);
    return st;
}

static int kc_is_skip(kiln_status st) { return st == KILN_ERR_UNSUPPORTED || st == KILN_ERR_DTYPE; }

/* Compiles `graph` for the shapes of data sets [first, last) and checks each of them. */
static kc_outcome kc_run_sets(const kc_opts *o, const kc_model *km, kiln_graph *graph, char **set_names,
                              kc_set *data, int first, int last, char *msg, size_t cap) {
    kc_outcome res = KC_FAIL;
    kiln_module *mod = NULL;
    kiln_session *sess = NULL;
    kiln_tensor *ins = NULL, *outs = NULL;
    void **bufs = NULL;
    kiln_io_info *oinfo = NULL;
    const kn_graph *g = &graph->g;
    kiln_input_profile *prof = calloc((size_t)g->n_inputs + 1, sizeof *prof);
    if (!prof) { snprintf(msg, cap, "out of memory"); goto done; }
    /* profiles: the static shapes of the test inputs (min/max over the data sets) */
    for (int k = 0; k < g->n_inputs; k++) {
        const kn_value *v = &g->values[g->inputs[k]];
        int pos = kc_input_index(km, v->name);
        prof[k].name = v->name;
        prof[k].rank = v->rank;
        for (int s = first; s < last; s++) {
            int j = kc_match(data[s].in_names, data[s].n_in, v->name, pos >= 0 ? pos : k);
            if (j < 0) {
                snprintf(msg, cap, "%s has no tensor for input '%s'", set_names[s], v->name);
                goto done;
            }
            const kn_host_tensor *t = data[s].in[j];
            if (t->rank != v->rank || t->dtype != v->dtype) {
                char a[128];
                snprintf(msg, cap, "%s: input '%s' is %s[%s], the model declares %s of rank %d", set_names[s],
                         v->name, kiln_dtype_name(t->dtype), kn_dims_str(t->rank, t->dims, a, sizeof a),
                         kiln_dtype_name(v->dtype), v->rank);
                goto done;
            }
            for (int d = 0; d < t->rank; d++) {
                if (s == first || t->dims[d] < prof[k].min[d]) prof[k].min[d] = t->dims[d];
                if (s == first || t->dims[d] > prof[k].max[d]) prof[k].max[d] = t->dims[d];
                if (s == first) prof[k].opt[d] = t->dims[d];
            }
        }
    }
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = o->device;
    cfg.profiles = prof;
    cfg.num_profiles = g->n_inputs;
    cfg.min_block_size = o->min_block_size;
    kiln_status st = kiln_compile(graph, &cfg, &mod);
    if (st != KILN_OK) {
        snprintf(msg, cap, "compile: %s", kiln_last_error());
        res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
        goto done;
    }
    if (kiln_session_create(mod, &sess) != KILN_OK) {
        snprintf(msg, cap, "session: %s", kiln_last_error());
        goto done;
    }
    int n_in = kiln_module_num_inputs(mod), n_out = kiln_module_num_outputs(mod);
    ins = calloc((size_t)n_in + 1, sizeof *ins);
    outs = calloc((size_t)n_out + 1, sizeof *outs);
    bufs = calloc((size_t)n_out + 1, sizeof *bufs);
    oinfo = calloc((size_t)n_out + 1, sizeof *oinfo);
    if (!ins || !outs || !bufs || !oinfo) { snprintf(msg, cap, "out of memory"); goto done; }
    for (int k = 0; k < n_out; k++) {
        if (kiln_module_output_info(mod, k, &oinfo[k]) != KILN_OK) {
            snprintf(msg, cap, "output info %d: %s", k, kiln_last_error());
            goto done;
        }
        int64_t n = 1;
        for (int d = 0; d < oinfo[k].rank; d++) n *= oinfo[k].max[d] > 0 ? oinfo[k].max[d] : 1;
        size_t es = kiln_dtype_size(oinfo[k].dtype);
        bufs[k] = calloc((size_t)n * (es ? es : 8) + 64, 1);
        if (!bufs[k]) { snprintf(msg, cap, "out of memory"); goto done; }
    }
    for (int s = first; s < last; s++) {
        for (int k = 0; k < n_in; k++) {
            kiln_io_info info;
            if (kiln_module_input_info(mod, k, &info) != KILN_OK) {
                snprintf(msg, cap, "input info %d: %s", k, kiln_last_error());
                goto done;
            }
            int pos = kc_input_index(km, info.name);
            int j = kc_match(data[s].in_names, data[s].n_in, info.name, pos >= 0 ? pos : k);
            if (j < 0) {
                snprintf(msg, cap, "%s has no tensor for input '%s'", set_names[s], info.name);
                goto done;
            }
            const kn_host_tensor *t = data[s].in[j];
            ins[k] = (kiln_tensor){.data = t->data, .dtype = t->dtype, .rank = t->rank, .device = KILN_DEVICE_CPU};
            memcpy(ins[k].dims, t->dims, sizeof ins[k].dims);
        }
        for (int k = 0; k < n_out; k++) outs[k] = (kiln_tensor){.data = bufs[k], .device = KILN_DEVICE_CPU};
        st = kiln_session_run(sess, ins, n_in, outs, n_out);
        if (st != KILN_OK) {
            snprintf(msg, cap, "%s: run: %s", set_names[s], kiln_last_error());
            res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
            goto done;
        }
        if (data[s].n_out != n_out) {
            snprintf(msg, cap, "%s has %d expected outputs, the module %d", set_names[s], data[s].n_out, n_out);
            goto done;
        }
        for (int k = 0; k < n_out; k++) {
            int j = kc_match(data[s].out_names, data[s].n_out, oinfo[k].name, k);
            char m2[KC_MSG - 64];
            if (!kc_compare(oinfo[k].name, &outs[k], data[s].out[j], m2, sizeof m2)) {
                snprintf(msg, cap, "%s: %s", set_names[s], m2);
                goto done;
            }
        }
    }
    res = KC_PASS;
done:
    if (bufs) for (int k = 0; oinfo && k < kiln_module_num_outputs(mod); k++) free(bufs[k]);
    free(bufs);
    free(oinfo);
    free(ins);
    free(outs);
    free(prof);
    kiln_session_free(sess);
    kiln_module_free(mod);
    return res;
}

static kc_outcome kc_run_test(const kc_opts *o, const char *test_dir, char *msg, size_t cap) {
    kc_outcome res = KC_FAIL;
    kiln_graph *graph = NULL;
    char **sets = NULL;
    int n_sets = 0;
    kc_set *data = NULL;
    kc_model km = {0};
    char *model = kc_join(test_dir, "model.onnx");
    int scanned = model && kc_model_scan(model, &km);
    if (!scanned || km.n_frozen == 0) {
        kiln_status st = model ? kiln_graph_load_onnx(model, &graph) : KILN_ERR_OUT_OF_MEMORY;
        if (st != KILN_OK) {
            snprintf(msg, cap, "import: %s", kiln_last_error());
            res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
            goto done;
        }
    }
    if (!scanned) { /* imported, though protobuf-c could not read it here: should not happen */
        snprintf(msg, cap, "the runner cannot read the model's protobuf");
        goto done;
    }
    n_sets = kc_list(test_dir, "test_data_set_", 1, &sets);
    if (n_sets <= 0) {
        snprintf(msg, cap, "no test_data_set_* folders");
        res = KC_SKIP;
        goto done;
    }
    data = calloc((size_t)n_sets, sizeof *data);
    if (!data) { snprintf(msg, cap, "out of memory"); goto done; }
    for (int s = 0; s < n_sets; s++) {
        char *p = kc_join(test_dir, sets[s]);
        kiln_status st = p ? kc_set_load(p, &data[s]) : KILN_ERR_OUT_OF_MEMORY;
        free(p);
        if (st != KILN_OK) {
            snprintf(msg, cap, "%s: %s", sets[s], kiln_last_error());
            res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
            goto done;
        }
    }
    if (km.n_frozen == 0) {
        res = kc_run_sets(o, &km, graph, sets, data, 0, n_sets, msg, cap);
    } else { /* one build per data set, its shape inputs bound */
        for (int s = 0; s < n_sets; s++) {
            kiln_status st = kc_model_load_bound(&km, test_dir, &data[s], &graph);
            if (st != KILN_OK) {
                snprintf(msg, cap, "import (%s bound): %s", sets[s], kiln_last_error());
                res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
                goto done;
            }
            res = kc_run_sets(o, &km, graph, sets, data, s, s + 1, msg, cap);
            kiln_graph_free(graph);
            graph = NULL;
            if (res != KC_PASS) goto done;
        }
    }
    if (res == KC_PASS) {
        int len = snprintf(msg, cap, "%d data set%s", n_sets, n_sets == 1 ? "" : "s");
        for (int i = 0, f = 0; i < km.n_inputs && len > 0 && (size_t)len < cap; i++)
            if (km.frozen[i])
                len += snprintf(msg + len, cap - (size_t)len, "%s%s", f++ ? ", " : "; inputs bound at build time: ",
                                km.inputs[i]);
    }
done:
    if (data) for (int s = 0; s < n_sets; s++) kc_set_free(&data[s]);
    free(data);
    if (n_sets > 0) kc_free_list(sets, n_sets);
    kc_model_free(&km);
    free(model);
    kiln_graph_free(graph);
    return res;
}

/* Runs one test in a child process; a crash, a timeout or a lost result is a failure. */
static kc_outcome kc_run_isolated(const kc_opts *o, const char *test_dir, char *msg, size_t cap) {
    if (!o->fork) return kc_run_test(o, test_dir, msg, cap);
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(msg, cap, "pipe: %s", strerror(errno));
        return KC_FAIL;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(msg, cap, "fork: %s", strerror(errno));
        return KC_FAIL;
    }
    if (pid == 0) {
        close(fds[0]);
        if (o->timeout_s > 0) alarm((unsigned)o->timeout_s);
        char m[KC_MSG];
        m[0] = 0;
        kc_outcome r = kc_run_test(o, test_dir, m, sizeof m);
        char line[KC_MSG + 4];
        int len = snprintf(line, sizeof line, "%d%s", (int)r, m);
        if (len > (int)sizeof line - 1) len = (int)sizeof line - 1;
        ssize_t w = write(fds[1], line, (size_t)len);
        (void)w;
        close(fds[1]);
        _exit(0);
    }
    close(fds[1]);
    char buf[KC_MSG + 4];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
        if (got >= sizeof buf - 1) break;
    }
    close(fds[0]);
    buf[got] = 0;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig == SIGALRM) snprintf(msg, cap, "timed out after %d s", o->timeout_s);
        else snprintf(msg, cap, "crashed with signal %d (%s)", sig, strsignal(sig));
        return KC_FAIL;
    }
    if (got < 1 || buf[0] < '0' || buf[0] > '2') {
        snprintf(msg, cap, "the test process exited (status %d) without a result", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return KC_FAIL;
    }
    size_t len = strlen(buf + 1);
    if (len >= cap) len = cap - 1;
    memcpy(msg, buf + 1, len);
    msg[len] = 0;
    return (kc_outcome)(buf[0] - '0');
}

/* ---- exclusions ---------------------------------------------------------------------------------- */

typedef struct kc_excl {
    char **names, **reasons;
    int n;
} kc_excl;

static int kc_load_exclusions(const char *path, kc_excl *ex) {
    memset(ex, 0, sizeof *ex);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#' || *p == '\n') continue;
        char *end = p;
        while (*end && *end != ' ' && *end != '\t' && *end != '#' && *end != '\n') end++;
        char *hash = strchr(end, '#');
        const char *reason = "listed in the exclusion file";
        if (hash) {
            reason = hash + 1;
            while (*reason == ' ') reason++;
            char *nl = strchr(hash, '\n');
            if (nl) *nl = 0;
        }
        *end = 0;
        char **nn = realloc(ex->names, (size_t)(ex->n + 1) * sizeof *nn);
        if (!nn) break;
        ex->names = nn;
        char **nr = realloc(ex->reasons, (size_t)(ex->n + 1) * sizeof *nr);
        if (!nr) break;
        ex->reasons = nr;
        ex->names[ex->n] = strdup(p);
        ex->reasons[ex->n] = strdup(*reason ? reason : "listed in the exclusion file");
        if (ex->names[ex->n] && ex->reasons[ex->n]) ex->n++;
    }
    fclose(f);
    return 0;
}

static const char *kc_excluded(const kc_excl *ex, const char *name) {
    for (int i = 0; i < ex->n; i++)
        if (!strcmp(ex->names[i], name)) return ex->reasons[i];
    return NULL;
}

/* ---- the report ---------------------------------------------------------------------------------- */

static int kc_group_cmp(const void *a, const void *b) {
    const kc_test *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    return c ? c : strcmp(x->name, y->name);
}

static void kc_report(kc_test *tests, int n, int verbose) {
    qsort(tests, (size_t)n, sizeof *tests, kc_group_cmp);
    printf("\n%-28s %7s %7s %8s\n", "op", "passed", "failed", "skipped");
    for (int i = 0; i < n;) {
        int j = i, c[3] = {0, 0, 0};
        while (j < n && !strcmp(tests[j].group, tests[i].group)) c[tests[j++].outcome]++;
        printf("%-28s %7d %7d %8d\n", tests[i].group, c[KC_PASS], c[KC_FAIL], c[KC_SKIP]);
        for (int k = i; k < j; k++)
            if (tests[k].outcome == KC_FAIL) printf("    FAIL %s: %s\n", tests[k].name, tests[k].msg);
        /* skip reasons: each distinct reason once with its count, unless verbose */
        for (int k = i; k < j; k++) {
            if (tests[k].outcome != KC_SKIP) continue;
            if (verbose) {
                printf("    skip %s: %s\n", tests[k].name, tests[k].msg);
                continue;
            }
            int seen = 0, count = 0;
            for (int q = i; q < k && !seen; q++)
                seen = tests[q].outcome == KC_SKIP && !strcmp(tests[q].msg, tests[k].msg);
            if (seen) continue;
            for (int q = k; q < j; q++) count += tests[q].outcome == KC_SKIP && !strcmp(tests[q].msg, tests[k].msg);
            printf("    skip x%d (%s%s): %.200s\n", count, tests[k].name, count > 1 ? ", ..." : "", tests[k].msg);
        }
        i = j;
    }
}

/* ---- the command ----------------------------------------------------------------------------------- */

/* Whether CUDA is usable, asked in a child when tests run forked: a CUDA context made in the
 * parent does not survive fork(), and every forked test would fail to initialise. */
static int kc_cuda_usable(const kc_opts *o) {
    if (!o->fork) return kiln_cuda_available();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) _exit(kiln_cuda_available() ? 0 : 1);
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int run(int argc, char **argv) {
    kc_opts o = {.device = KILN_DEVICE_CPU, .fork = 1, .timeout_s = 300, .min_block_size = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--device") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "cpu")) o.device = KILN_DEVICE_CPU;
            else if (!strcmp(d, "cuda")) o.device = KILN_DEVICE_CUDA;
            else return kiln_cli_usage_error("conformance", "unknown device '%s' (cpu or cuda)", d);
        } else if (!strcmp(a, "--filter") && i + 1 < argc) {
            o.filter = argv[++i];
        } else if (!strcmp(a, "--exclude") && i + 1 < argc) {
            o.exclude = argv[++i];
        } else if (!strcmp(a, "--timeout") && i + 1 < argc) {
            o.timeout_s = atoi(argv[++i]);
        } else if (!strcmp(a, "--min-block-size") && i + 1 < argc) {
            o.min_block_size = atoi(argv[++i]);
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            o.verbose = 1;
        } else if (!strcmp(a, "--no-fork")) {
            o.fork = 0;
        } else if (a[0] == '-') {
            return kiln_cli_usage_error("conformance", "unknown option '%s'", a);
        } else if (!o.dir) {
            o.dir = a;
        } else {
            return kiln_cli_usage_error("conformance", "more than one folder given ('%s')", a);
        }
    }
    if (!o.dir) return kiln_cli_usage_error("conformance", "give the folder of the tests");
    if (o.device == KILN_DEVICE_CUDA && !kc_cuda_usable(&o)) {
        /* every test would be refused and the run would look clean */
        printf("SKIP: kiln conformance --device cuda: no CUDA device is usable (a CPU-only build or no GPU); "
               "nothing ran\n");
        return 77; /* the conventional "skipped" code: nothing ran, nothing passed */
    }
    kc_excl ex = {0};
    if (o.exclude && kc_load_exclusions(o.exclude, &ex) != 0) {
        fprintf(stderr, "kiln conformance: cannot read the exclusion file '%s': %s\n", o.exclude, strerror(errno));
        return 1;
    }

    /* DIR is a folder of tests, or one test */
    char **names = NULL;
    int n_names;
    char *single = kc_join(o.dir, "model.onnx");
    int is_single = single && kc_is_file(single);
    free(single);
    char *parent = NULL;
    if (is_single) {
        char *d = strdup(o.dir);
        while (d && strlen(d) > 1 && d[strlen(d) - 1] == '/') d[strlen(d) - 1] = 0;
        char *slash = d ? strrchr(d, '/') : NULL;
        names = malloc(sizeof *names);
        if (!d || !names) { free(d); free(names); return 1; }
        names[0] = strdup(slash ? slash + 1 : d);
        if (slash) { *slash = 0; parent = d; } else { free(d); parent = strdup("."); }
        n_names = 1;
    } else {
        n_names = kc_list(o.dir, "", 1, &names);
        parent = strdup(o.dir);
        if (n_names < 0) {
            fprintf(stderr, "kiln conformance: cannot read the folder '%s': %s\n", o.dir, strerror(errno));
            free(parent);
            return 1;
        }
    }
    kc_test *tests = calloc((size_t)n_names + 1, sizeof *tests);
    if (!tests || !parent) return 1;
    int n = 0, counts[3] = {0, 0, 0}, scope = 0, scope_counts[3] = {0, 0, 0};
    double t0 = kn_now_ms();
    for (int i = 0; i < n_names; i++) {
        if (o.filter && !strstr(names[i], o.filter)) continue;
        char *dir = kc_join(parent, names[i]);
        char *model = dir ? kc_join(dir, "model.onnx") : NULL;
        int has_model = model && kc_is_file(model);
        free(model);
        if (!has_model) { free(dir); continue; }
        kc_test *t = &tests[n++];
        t->name = strdup(names[i]);
        kc_classify(dir, names[i], t);
        const char *why = kc_excluded(&ex, names[i]);
        if (why) {
            t->outcome = KC_SKIP;
            snprintf(t->msg, sizeof t->msg, "excluded: %s", why);
        } else {
            t->outcome = kc_run_isolated(&o, dir, t->msg, sizeof t->msg);
        }
        free(dir);
        counts[t->outcome]++;
        scope += t->in_scope;
        if (t->in_scope) scope_counts[t->outcome]++;
        if (o.verbose)
            printf("%-4s %s: %s\n", t->outcome == KC_PASS ? "ok" : t->outcome == KC_FAIL ? "FAIL" : "skip", t->name, t->msg);
    }
    kc_report(tests, n, o.verbose);
    printf("\nin scope (every op in kiln's op set): %d tests: %d passed (%.1f%%), %d failed, %d skipped; "
           "of those kiln does not refuse, %.1f%% pass\n", scope, scope_counts[KC_PASS],
           scope ? 100.0 * scope_counts[KC_PASS] / scope : 0.0, scope_counts[KC_FAIL], scope_counts[KC_SKIP],
           scope_counts[KC_PASS] + scope_counts[KC_FAIL]
               ? 100.0 * scope_counts[KC_PASS] / (scope_counts[KC_PASS] + scope_counts[KC_FAIL]) : 0.0);
    /* kiln's element types are f32, f16, bf16, f64, i64, i32, i8, u8 and bool: tests of other
     * types (uint16, int4, float8, string, ...) are outside the first release as much as its ops */
    int typed = 0, typed_pass = 0;
    for (int i = 0; i < n; i++) {
        const kc_test *t = &tests[i];
        int other_type = t->outcome == KC_SKIP && strstr(t->msg, "element type") &&
                         (strstr(t->msg, "not support") || strstr(t->msg, "not take"));
        if (!t->in_scope || other_type) continue;
        typed++;
        typed_pass += t->outcome == KC_PASS;
    }
    printf("in scope (ops in kiln's op set, element types kiln has): %d tests: %d passed (%.1f%%)\n", typed,
           typed_pass, typed ? 100.0 * typed_pass / typed : 0.0);
    printf("%.1f s on %s\n", (kn_now_ms() - t0) / 1000.0, o.device == KILN_DEVICE_CUDA ? "cuda" : "cpu");
    printf("%d passed, %d failed, %d skipped\n", counts[KC_PASS], counts[KC_FAIL], counts[KC_SKIP]);
    fflush(stdout);
    for (int i = 0; i < n; i++) { free(tests[i].name); free(tests[i].group); }
    free(tests);
    kc_free_list(names, n_names);
    free(parent);
    for (int i = 0; i < ex.n; i++) { free(ex.names[i]); free(ex.reasons[i]); }
    free(ex.names);
    free(ex.reasons);
    return counts[KC_FAIL] ? 1 : 0;
}

static void help(FILE *f) {
    fprintf(f,
            "usage: kiln conformance DIR [--device cpu|cuda] [--filter SUBSTR] [--exclude FILE]\n"
            "                            [--verbose] [--timeout SEC] [--min-block-size N] [--no-fork]\n\n"
            "Runs the ONNX backend node tests under DIR (one folder per test with model.onnx and\n"
            "test_data_set_*/input_K.pb, output_K.pb), or the single test DIR: import, compile with\n"
            "the static shapes of the test inputs, run each data set and compare with the expected\n"
            "outputs (rtol 1e-3, atol 1e-5 for f32/f64; rtol 4e-3, atol 1e-3 for f16; rtol 1.6e-2,\n"
            "atol 1e-2 for bf16; integers and bools exactly; NaN matches NaN).\n\n"
            "Tests that use ops or features kiln does not support are skipped with the reason, as are\n"
            "the tests named in the exclusion file (lines 'test_name  # reason'). Prints a table per\n"
            "op and ends with 'N passed, N failed, N skipped'; exits 1 when a test failed, and 77\n"
            "(skipped) when --device cuda finds no usable GPU.\n\n"
            "  --device cpu|cuda    where to run (default cpu)\n"
            "  --filter SUBSTR      only the tests whose name contains SUBSTR\n"
            "  --exclude FILE       the exclusion file\n"
            "  --verbose            a line per test as it runs, and every skip reason\n"
            "  --timeout SEC        per-test time limit (default 300)\n"
            "  --min-block-size N   the build's min_block_size (default 1: single ops form engine blocks)\n"
            "  --no-fork            run the tests in this process (for debuggers)\n");
}

const kiln_cli_command kiln_cmd_conformance = {"conformance", "run the ONNX backend node tests", run, help};
