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

static int kc_is_skip(kiln_status st) { return st == KILN_ERR_UNSUPPORTED || st == KILN_ERR_DTYPE; }

static kc_outcome kc_run_test(const kc_opts *o, const char *test_dir, char *msg, size_t cap) {
    kc_outcome res = KC_FAIL;
    kiln_graph *graph = NULL;
    kiln_module *mod = NULL;
    kiln_session *sess = NULL;
    char **sets = NULL;
    int n_sets = 0;
    kc_set *data = NULL;
    kiln_input_profile *prof = NULL;
    kiln_tensor *ins = NULL, *outs = NULL;
    char *model = kc_join(test_dir, "model.onnx");
    kiln_status st = model ? kiln_graph_load_onnx(model, &graph) : KILN_ERR_OUT_OF_MEMORY;
    free(model);
    if (st != KILN_OK) {
        snprintf(msg, cap, "import: %s", kiln_last_error());
        res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
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
        st = p ? kc_set_load(p, &data[s]) : KILN_ERR_OUT_OF_MEMORY;
        free(p);
        if (st != KILN_OK) {
            snprintf(msg, cap, "%s: %s", sets[s], kiln_last_error());
            res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
            goto done;
        }
    }

    /* profiles: the static shapes of the test inputs (min/max over the data sets) */
    const kn_graph *g = &graph->g;
    prof = calloc((size_t)g->n_inputs + 1, sizeof *prof);
    if (!prof) { snprintf(msg, cap, "out of memory"); goto done; }
    for (int k = 0; k < g->n_inputs; k++) {
        const kn_value *v = &g->values[g->inputs[k]];
        prof[k].name = v->name;
        prof[k].rank = v->rank;
        for (int s = 0; s < n_sets; s++) {
            int j = kc_match(data[s].in_names, data[s].n_in, v->name, k);
            if (j < 0) {
                snprintf(msg, cap, "%s has no tensor for input '%s'", sets[s], v->name);
                goto done;
            }
            const kn_host_tensor *t = data[s].in[j];
            if (t->rank != v->rank || t->dtype != v->dtype) {
                char a[128];
                snprintf(msg, cap, "%s: input '%s' is %s[%s], the model declares %s of rank %d", sets[s], v->name,
                         kiln_dtype_name(t->dtype), kn_dims_str(t->rank, t->dims, a, sizeof a),
                         kiln_dtype_name(v->dtype), v->rank);
                goto done;
            }
            for (int d = 0; d < t->rank; d++) {
                if (s == 0 || t->dims[d] < prof[k].min[d]) prof[k].min[d] = t->dims[d];
                if (s == 0 || t->dims[d] > prof[k].max[d]) prof[k].max[d] = t->dims[d];
                if (s == 0) prof[k].opt[d] = t->dims[d];
            }
        }
    }
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = o->device;
    cfg.profiles = prof;
    cfg.num_profiles = g->n_inputs;
    cfg.min_block_size = o->min_block_size;
    st = kiln_compile(graph, &cfg, &mod);
    if (st != KILN_OK) {
        snprintf(msg, cap, "compile: %s", kiln_last_error());
        res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
        goto done;
    }
    st = kiln_session_create(mod, &sess);
    if (st != KILN_OK) {
        snprintf(msg, cap, "session: %s", kiln_last_error());
        goto done;
    }
    int n_in = kiln_module_num_inputs(mod), n_out = kiln_module_num_outputs(mod);
    ins = calloc((size_t)n_in + 1, sizeof *ins);
    outs = calloc((size_t)n_out + 1, sizeof *outs);
    void **bufs = calloc((size_t)n_out + 1, sizeof *bufs);
    kiln_io_info *oinfo = calloc((size_t)n_out + 1, sizeof *oinfo);
    if (!ins || !outs || !bufs || !oinfo) {
        free(bufs); free(oinfo);
        snprintf(msg, cap, "out of memory");
        goto done;
    }
    int ok = 1;
    for (int k = 0; k < n_out && ok; k++) {
        if (kiln_module_output_info(mod, k, &oinfo[k]) != KILN_OK) {
            snprintf(msg, cap, "output info %d: %s", k, kiln_last_error());
            ok = 0;
            break;
        }
        int64_t n = 1;
        for (int d = 0; d < oinfo[k].rank; d++) n *= oinfo[k].max[d] > 0 ? oinfo[k].max[d] : 1;
        bufs[k] = calloc((size_t)n * (kiln_dtype_size(oinfo[k].dtype) ? kiln_dtype_size(oinfo[k].dtype) : 8) + 64, 1);
        if (!bufs[k]) { snprintf(msg, cap, "out of memory"); ok = 0; }
    }
    for (int s = 0; s < n_sets && ok; s++) {
        for (int k = 0; k < n_in && ok; k++) {
            kiln_io_info info;
            if (kiln_module_input_info(mod, k, &info) != KILN_OK) {
                snprintf(msg, cap, "input info %d: %s", k, kiln_last_error());
                ok = 0;
                break;
            }
            int j = kc_match(data[s].in_names, data[s].n_in, info.name, k);
            if (j < 0) {
                snprintf(msg, cap, "%s has no tensor for input '%s'", sets[s], info.name);
                ok = 0;
                break;
            }
            const kn_host_tensor *t = data[s].in[j];
            ins[k] = (kiln_tensor){.data = t->data, .dtype = t->dtype, .rank = t->rank, .device = KILN_DEVICE_CPU};
            memcpy(ins[k].dims, t->dims, sizeof ins[k].dims);
        }
        if (!ok) break;
        for (int k = 0; k < n_out; k++) outs[k] = (kiln_tensor){.data = bufs[k], .device = KILN_DEVICE_CPU};
        st = kiln_session_run(sess, ins, n_in, outs, n_out);
        if (st != KILN_OK) {
            snprintf(msg, cap, "%s: run: %s", sets[s], kiln_last_error());
            res = kc_is_skip(st) ? KC_SKIP : KC_FAIL;
            ok = 0;
            break;
        }
        if (data[s].n_out != n_out) {
            snprintf(msg, cap, "%s has %d expected outputs, the module %d", sets[s], data[s].n_out, n_out);
            ok = 0;
            break;
        }
        for (int k = 0; k < n_out && ok; k++) {
            int j = kc_match(data[s].out_names, data[s].n_out, oinfo[k].name, k);
            char m2[KC_MSG - 64];
            if (!kc_compare(oinfo[k].name, &outs[k], data[s].out[j], m2, sizeof m2)) {
                snprintf(msg, cap, "%s: %s", sets[s], m2);
                ok = 0;
            }
        }
    }
    for (int k = 0; k < n_out; k++) free(bufs[k]);
    free(bufs);
    free(oinfo);
    if (ok) {
        res = KC_PASS;
        snprintf(msg, cap, "%d data set%s", n_sets, n_sets == 1 ? "" : "s");
    }
done:
    free(ins);
    free(outs);
    free(prof);
    if (data) for (int s = 0; s < n_sets; s++) kc_set_free(&data[s]);
    free(data);
    if (n_sets > 0) kc_free_list(sets, n_sets);
    kiln_session_free(sess);
    kiln_module_free(mod);
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
    int n = 0, counts[3] = {0, 0, 0}, scope = 0, scope_pass = 0;
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
        scope_pass += t->in_scope && t->outcome == KC_PASS;
        if (o.verbose)
            printf("%-4s %s: %s\n", t->outcome == KC_PASS ? "ok" : t->outcome == KC_FAIL ? "FAIL" : "skip", t->name, t->msg);
    }
    kc_report(tests, n, o.verbose);
    printf("\nin scope (every op in kiln's op set): %d tests, %d passed (%.1f%%); %.1f s on %s\n", scope, scope_pass,
           scope ? 100.0 * scope_pass / scope : 0.0, (kn_now_ms() - t0) / 1000.0,
           o.device == KILN_DEVICE_CUDA ? "cuda" : "cpu");
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
            "op and ends with 'N passed, N failed, N skipped'; exits 1 when a test failed.\n\n"
            "  --device cpu|cuda    where to run (default cpu)\n"
            "  --filter SUBSTR      only the tests whose name contains SUBSTR\n"
            "  --exclude FILE       the exclusion file\n"
            "  --verbose            a line per test as it runs, and every skip reason\n"
            "  --timeout SEC        per-test time limit (default 300)\n"
            "  --min-block-size N   the build's min_block_size (default 1: single ops form engine blocks)\n"
            "  --no-fork            run the tests in this process (for debuggers)\n");
}

const kiln_cli_command kiln_cmd_conformance = {"conformance", "run the ONNX backend node tests", run, help};
