/* Tactic timing (DESIGN decision 4): for each step whose kernel offers several tactics, run each
 * at the opt shape on the real device, keep the fastest whose output agrees with tactic 0, and
 * store the choice in the plan. A timing cache file (keyed by device and library versions, op,
 * attributes, dtypes and shapes) makes a rebuild fast. */
#include "runtime/runtime.h"

#include <math.h>
#include <stdlib.h>

/* A tactic that compiles its code per shape is chosen over the fastest one that does not only when
 * it takes less than 1 / KN_COMPILED_TACTIC_GAIN of that one's time. */
#define KN_COMPILED_TACTIC_GAIN 1.10
/* A module built to avoid runtime compilation also leaves out tactics whose first run at a new
 * shape sets their kernel up: each is run once at a second shape of the profile, and a launch
 * call slower than this (host time) marks its setup family (kn_kernel.setup_family). A cuDNN
 * execute call costs ~0.01-0.02 ms; the engines that pick and set up their kernel at each new shape
 * took 2-4 ms (H100, cuDNN 9.19, ResNet-50 fp16), about ten of them per new batch size. */
#define KN_SETUP_SLOW_MS 1.0

typedef struct kn_tc_entry {
    uint64_t key;
    int tactic;
    float ms;
    char tkey[KN_TACTIC_KEY_MAX]; /* the kernel's tactic key ("" when none) */
} kn_tc_entry;

typedef struct kn_timing_cache {
    kn_tc_entry *e;
    int n, cap;
    int dirty;
} kn_timing_cache;

/* A kernel's tactic key is kept only when it was written whole and is valid (module.h). */
static int kn_tactic_key_ok(int written, const char *key) {
    return written > 0 && written < KN_TACTIC_KEY_MAX && (int)strlen(key) == written && kn_tactic_key_valid(key);
}

static void kn_tc_load(kn_timing_cache *tc, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return; /* a missing cache is an empty one */
    char line[512];
    /* version 1 lines hold "key tactic ms"; version 2 adds the tactic key (or "-") */
    int version = 0;
    if (fgets(line, sizeof line, f)) {
        if (strncmp(line, "kiln-timing-cache 1", 19) == 0) version = 1;
        else if (strncmp(line, "kiln-timing-cache 2", 19) == 0) version = 2;
    }
    if (!version) {
        KN_WARN("timing cache '%s' is not a kiln timing cache (version 1 or 2); ignoring it", path);
        fclose(f);
        return;
    }
    unsigned long long key;
    int tactic;
    float ms;
    char tkey[KN_TACTIC_KEY_MAX];
    while (fgets(line, sizeof line, f)) {
        tkey[0] = 0;
        int got = sscanf(line, "%llx %d %f %159s", &key, &tactic, &ms, tkey);
        if (got < 3 || tactic < 0 || (version == 2 && got != 4)) continue;
        if (!kn_tactic_key_valid(tkey)) tkey[0] = 0; /* "-": none */
        if (KN_GROW(tc->e, tc->cap, tc->n + 1) != KILN_OK) break;
        kn_tc_entry *e = &tc->e[tc->n++];
        e->key = key;
        e->tactic = tactic;
        e->ms = ms;
        memcpy(e->tkey, tkey, sizeof tkey);
    }
    fclose(f);
}

static void kn_tc_save(const kn_timing_cache *tc, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) {
        KN_WARN("cannot write the timing cache '%s'", path);
        return;
    }
    fprintf(f, "kiln-timing-cache 2\n");
    for (int i = 0; i < tc->n; i++)
        fprintf(f, "%016llx %d %.6f %s\n", (unsigned long long)tc->e[i].key, tc->e[i].tactic, tc->e[i].ms,
                tc->e[i].tkey[0] ? tc->e[i].tkey : "-");
    if (fclose(f) != 0) KN_WARN("writing the timing cache '%s' failed", path);
}

static uint64_t kn_step_key(const char *device, const kiln_module *m, const kn_kernel_args *a, const char *kname,
                            int kernel_checks_setup) {
    uint64_t h = kn_hash_bytes(KN_HASH_SEED, device, strlen(device));
    h = kn_hash_bytes(h, kname, strlen(kname));
    h = kn_hash_bytes(h, &m->precision, sizeof m->precision);
    if (m->avoid_runtime_compilation) /* other candidate lists (hashed only when set: older keys stay valid) */
        h = kn_hash_bytes(h, "no-rtc", 6);
    if (m->workspace_limit) /* plans over the limit are not candidates (hashed only when set) */
        h = kn_hash_bytes(h, &m->workspace_limit, sizeof m->workspace_limit);
    if (m->precision == KILN_PRECISION_FP32) /* strict fp32's lists gained cuDNN's global engines: timed again */
        h = kn_hash_bytes(h, "fp32-engines-2", 14);
    if (kernel_checks_setup) /* choices made before the per-shape setup check are timed again */
        h = kn_hash_bytes(h, "setup-check-2", 13);
    h = kn_hash_bytes(h, &a->node->op, sizeof a->node->op);
    for (int i = 0; i < a->n_in + a->n_out; i++) {
        const kn_tensor *t = i < a->n_in ? &a->in[i] : &a->out[i - a->n_in];
        h = kn_hash_bytes(h, &t->dtype, sizeof t->dtype);
        h = kn_hash_bytes(h, &t->rank, sizeof t->rank);
        h = kn_hash_bytes(h, t->dims, (size_t)(t->rank > 0 ? t->rank : 0) * sizeof t->dims[0]);
    }
    for (int i = 0; i < a->node->n_attrs; i++) {
        const kn_attr *at = &a->node->attrs[i];
        h = kn_hash_bytes(h, at->name, strlen(at->name));
        h = kn_hash_bytes(h, &at->i, sizeof at->i);
        h = kn_hash_bytes(h, &at->f, sizeof at->f);
        if (at->ints) h = kn_hash_bytes(h, at->ints, (size_t)at->count * sizeof *at->ints);
        if (at->floats) h = kn_hash_bytes(h, at->floats, (size_t)at->count * sizeof *at->floats);
    }
    return h;
}

/* Fills the step's non-constant inputs with seeded values in [-1, 1], so that tactics compare
 * on real numbers rather than whatever the arena held. Integer inputs (indices) are not timed.
 * A block of at most KN_FILL_BLOCK values repeats over a large input: generating and converting
 * every element of a batch-256 activation on the host took longer than timing its tactics. */
#define KN_FILL_BLOCK ((int64_t)1 << 20)
static kiln_status kn_fill_inputs(kiln_session *s, const kiln_module *m, const kn_kernel_args *a, int *ok) {
    *ok = 1;
    for (int i = 0; i < a->n_in; i++) {
        const kn_tensor *t = &a->in[i];
        int v = a->node->in[i];
        if (v < 0 || m->graph->values[v].constant || !t->data) continue;
        if (!kn_dtype_is_float(t->dtype)) { *ok = 0; return KILN_OK; }
        uint64_t seed = 0x243f6a8885a308d3ull + (uint64_t)i;
        int64_t n = kn_tensor_numel(t), nb = n < KN_FILL_BLOCK ? n : KN_FILL_BLOCK;
        size_t es = kiln_dtype_size(t->dtype);
        float *f = kn_malloc((size_t)(nb ? nb : 1) * sizeof(float));
        void *raw = kn_malloc((size_t)(nb ? nb : 1) * es);
        if (!f || !raw) { kn_free(f); kn_free(raw); return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); }
        for (int64_t e = 0; e < nb; e++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            f[e] = (float)((double)(seed >> 40) / 8388608.0 - 1.0);
        }
        kn_convert(f, KILN_F32, raw, t->dtype, nb);
        kiln_status st = KILN_OK;
        for (int64_t off = 0; off < n && st == KILN_OK; off += nb) {
            int64_t len = n - off < nb ? n - off : nb;
            st = s->be->copy_in(s->ctx, (char *)t->data + (size_t)off * es, raw, (size_t)len * es, KILN_DEVICE_CPU);
        }
        if (st == KILN_OK) st = s->be->synchronize(s->ctx);
        kn_free(f);
        kn_free(raw);
        KN_TRY(st);
    }
    return KILN_OK;
}

/* ms of one step, after one warm-up run: the mean device time of launches recorded into a graph
 * and replayed where the backend records (what the step costs in a captured module: the host's
 * launch cost stays out; timed eagerly, cuDNN's execute call, several microseconds of host work,
 * made every engine of a batch-1 convolution look alike and a cheaper launch look faster),
 * else of eager launches (the mean device time where the backend has a timer, else the median
 * host-clock time of single runs). */
static kiln_status kn_time_step(kiln_session *s, const kn_kernel *k, const kn_kernel_args *a, float *ms) {
    KN_TRY(k->run(a));
    KN_TRY(s->be->synchronize(s->ctx));
    enum { reps = 5 };
    void *g = s->be->timer_begin ? kn_record_launches(s, k, a, reps) : NULL;
    if (g) {
        enum { REPLAYS = 3 };
        double dev_ms = 0;
        kiln_status st = s->be->graph_launch(s->ctx, g); /* untimed: the first replay uploads the graph */
        if (st == KILN_OK) st = s->be->timer_begin(s->ctx);
        for (int r = 0; r < REPLAYS && st == KILN_OK; r++) st = s->be->graph_launch(s->ctx, g);
        if (st == KILN_OK) st = s->be->timer_end(s->ctx, &dev_ms);
        if (st == KILN_OK) st = s->be->synchronize(s->ctx);
        s->be->graph_free(s->ctx, g);
        KN_TRY(st);
        *ms = (float)(dev_ms / (REPLAYS * reps));
        return KILN_OK;
    }
    if (s->be->timer_begin && s->be->timer_end) {
        double dev_ms = 0;
        KN_TRY(s->be->timer_begin(s->ctx));
        for (int r = 0; r < reps; r++) KN_TRY(k->run(a));
        KN_TRY(s->be->timer_end(s->ctx, &dev_ms));
        *ms = (float)(dev_ms / reps);
        return KILN_OK;
    }
    /* the host clock (the CPU backend): each run timed on its own and the median kept, so that a
     * run the scheduler preempted (a few ms on a loaded machine, against tactics 0.05 ms apart)
     * does not decide; the mean of 5 chose the wrong tactic in 5 of 6 runs of test_tactics_setup
     * beside two busy processes on 2 cores */
    double t[5];
    for (int r = 0; r < reps; r++) {
        double t0 = kn_now_ms();
        KN_TRY(k->run(a));
        KN_TRY(s->be->synchronize(s->ctx));
        t[r] = kn_now_ms() - t0;
    }
    *ms = (float)kn_median(t, reps);
    return KILN_OK;
}

/* The shape at which tactics are checked for a per-shape setup: per input, the profile's max where
 * it differs from opt, else its min. 0 when every input is static (no other shape can come). */
static int kn_second_shape(const kiln_module *m, int64_t (*dims)[KILN_MAX_RANK]) {
    int differs = 0;
    for (int k = 0; k < m->n_inputs; k++) {
        const kiln_io_info *p = &m->inputs[k];
        int max_differs = memcmp(p->max, p->opt, sizeof p->opt) != 0;
        memcpy(dims[k], max_differs ? p->max : p->min, sizeof dims[k]);
        differs |= memcmp(dims[k], p->opt, sizeof p->opt) != 0;
    }
    return differs;
}

/* Host ms of the first run of tactic t of step i at the second shape, prepared as a new shape is
 * at run time (from the tactic key that t resolved to at opt); -1 when it does not prepare or run
 * there. */
static double kn_first_run_ms(kiln_session *s, const kn_kernel *k, const kn_instance *in2, int i, int t,
                              const char *tkey) {
    kn_kernel_args b = in2->args[i];
    b.tactic = t;
    b.timing = 0;
    b.tactic_key = tkey[0] ? tkey : NULL;
    b.state = NULL;
    void *state = NULL;
    if (k->prepare && k->prepare(&b, &state) != KILN_OK) {
        kn_clear_error();
        return -1;
    }
    b.state = state;
    double t0 = kn_now_ms();
    kiln_status st = k->run(&b);
    double ms = kn_now_ms() - t0;
    if (st == KILN_OK) st = s->be->synchronize(s->ctx);
    if (k->release && state) k->release(state);
    if (st != KILN_OK) {
        kn_clear_error();
        return -1;
    }
    return ms;
}

/* Setup families found to set up per shape in this build: another member, or a later step of the
 * same geometry, would find the setup done and look cheap. */
typedef struct kn_setup_set {
    char (*key)[KN_TACTIC_KEY_MAX];
    int n, cap;
} kn_setup_set;

static int kn_setup_has(const kn_setup_set *set, const char *key) {
    for (int i = 0; key[0] && i < set->n; i++)
        if (strcmp(set->key[i], key) == 0) return 1;
    return 0;
}

static void kn_setup_add(kn_setup_set *set, const char *key) {
    if (!key[0] || kn_setup_has(set, key) || KN_GROW(set->key, set->cap, set->n + 1) != KILN_OK) {
        kn_clear_error();
        return;
    }
    memcpy(set->key[set->n++], key, KN_TACTIC_KEY_MAX);
}

/* Reads the step's output as floats for the comparison of tactics: all of it when small, else
 * KN_CHECK_CHUNKS evenly spaced chunks (the same ones for every tactic); a wrong engine is wrong
 * far beyond one chunk, and reading back 9 full batch-256 outputs made such builds minutes long.
 * *n_got is the number of values read. */
#define KN_CHECK_CHUNKS 8
#define KN_CHECK_CHUNK ((int64_t)1 << 16)
static kiln_status kn_fetch_output(kiln_session *s, const kn_kernel_args *a, float *host, int64_t n, int64_t *n_got) {
    const kn_tensor *o = &a->out[0];
    size_t es = kiln_dtype_size(o->dtype);
    int whole = n <= KN_CHECK_CHUNKS * KN_CHECK_CHUNK;
    int64_t take = whole ? n : KN_CHECK_CHUNKS * KN_CHECK_CHUNK;
    void *raw = kn_malloc(take ? (size_t)take * es : 1);
    if (!raw) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    kiln_status st = KILN_OK;
    if (whole) st = s->be->copy_out(s->ctx, raw, KILN_DEVICE_CPU, o->data, (size_t)n * es);
    for (int c = 0; !whole && c < KN_CHECK_CHUNKS && st == KILN_OK; c++) {
        int64_t off = (n - KN_CHECK_CHUNK) / (KN_CHECK_CHUNKS - 1) * c;
        st = s->be->copy_out(s->ctx, (char *)raw + (size_t)(c * KN_CHECK_CHUNK) * es, KILN_DEVICE_CPU,
                             (const char *)o->data + (size_t)off * es, (size_t)KN_CHECK_CHUNK * es);
    }
    if (st == KILN_OK) st = s->be->synchronize(s->ctx);
    if (st == KILN_OK) kn_convert(raw, o->dtype, host, KILN_F32, take);
    kn_free(raw);
    *n_got = take;
    return st;
}

kiln_status kn_time_tactics(kiln_module *m, const kiln_build_config *c) {
    int any = 0;
    for (int i = 0; i < m->part.n_steps; i++) any |= m->part.steps[i].kernel->num_tactics != NULL;
    if (!any) return KILN_OK;
    kiln_session *s;
    KN_TRY(kiln_session_create(m, &s));
    int64_t dims[64][KILN_MAX_RANK];
    kiln_status st = KILN_OK;
    if (m->n_inputs > 64) st = kn_error(KILN_ERR_UNSUPPORTED, "more than 64 inputs");
    for (int k = 0; k < m->n_inputs && st == KILN_OK; k++)
        memcpy(dims[k], m->inputs[k].opt, sizeof dims[k]);
    kn_instance *in = NULL, *in2 = NULL;
    s->no_prepare = 1; /* each timed tactic is prepared on its own; other steps never run here */
    if (st == KILN_OK) st = kn_session_instance(s, (const int64_t(*)[KILN_MAX_RANK])dims, &in);
    /* a second shape, where each tactic of a kernel that may cost time per shape runs once */
    int64_t dims2[64][KILN_MAX_RANK];
    if (st == KILN_OK && kn_second_shape(m, dims2))
        st = kn_session_instance(s, (const int64_t(*)[KILN_MAX_RANK])dims2, &in2);
    kn_setup_set setup = {0};
    char device[256] = "";
    if (s->be->describe) s->be->describe(s->ctx, device, sizeof device);
    else snprintf(device, sizeof device, "%s", s->be->name);
    kn_timing_cache tc = {0};
    if (c->timing_cache) kn_tc_load(&tc, c->timing_cache);
    int timed = 0, cached = 0;
    double t_start = kn_now_ms(), t_last = t_start;
    float *ref = NULL, *got = NULL;
    for (int i = 0; i < m->part.n_steps && st == KILN_OK; i++) {
        kn_step *step = &m->part.steps[i];
        const kn_kernel *k = step->kernel;
        if (!k->num_tactics) continue;
        kn_kernel_args a = in->args[i];
        int check_setup = in2 && m->avoid_runtime_compilation && k->compiles_per_shape;
        uint64_t key = kn_step_key(device, m, &a, k->name, check_setup);
        int hit = -1;
        for (int e = 0; e < tc.n; e++)
            if (tc.e[e].key == key) hit = e;
        /* a hit needs no tactic count (asking the library is most of a warm build's cost): the
         * key fixes the device, library versions and step, so the count is the same as when it
         * was timed, and a kernel takes any tactic index it once offered */
        if (hit >= 0) {
            step->tactic = tc.e[hit].tactic;
            step->tactic_ms = tc.e[hit].ms;
            memcpy(step->tactic_key, tc.e[hit].tkey, sizeof step->tactic_key);
            cached++;
            continue;
        }
        double t_step = kn_now_ms();
        int nt = k->num_tactics(&a);
        if (nt <= 1) continue;
        int fill_ok;
        st = kn_fill_inputs(s, m, &a, &fill_ok);
        if (st != KILN_OK) break;
        if (!fill_ok) continue; /* keeps tactic 0 */
        int64_t n_out = kn_tensor_numel(&a.out[0]), n_cmp = 0;
        int64_t n_buf = n_out < KN_CHECK_CHUNKS * KN_CHECK_CHUNK ? n_out : KN_CHECK_CHUNKS * KN_CHECK_CHUNK;
        kn_free(ref); kn_free(got);
        ref = kn_malloc((size_t)(n_buf ? n_buf : 1) * sizeof(float));
        got = kn_malloc((size_t)(n_buf ? n_buf : 1) * sizeof(float));
        if (!ref || !got) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory timing tactics"); break; }
        int best = -1, best_pre = -1; /* fastest of all; fastest of those that compile nothing per shape */
        float best_ms = INFINITY, best_pre_ms = INFINITY;
        char best_key[KN_TACTIC_KEY_MAX] = "", best_pre_key[KN_TACTIC_KEY_MAX] = "";
        int best_setup = -1; /* left out as setting up per shape: the choice when nothing else runs */
        float best_setup_ms = INFINITY;
        char best_setup_key[KN_TACTIC_KEY_MAX] = "";
        char times[512] = ""; /* "tactic:ms" of each tactic that ran, for the verbose line */
        size_t tl = 0;
        for (int t = 0; t < nt && st == KILN_OK; t++) {
            a.tactic = t;
            a.timing = 1;
            a.tactic_key = NULL; /* each tactic from the library's own list */
            a.state = NULL;
            void *state = NULL;
            if (k->prepare && k->prepare(&a, &state) != KILN_OK) { kn_clear_error(); continue; } /* tactic not usable */
            a.state = state;
            float ms = 0;
            kiln_status ts = kn_time_step(s, k, &a, &ms);
            if (ts == KILN_OK) ts = kn_fetch_output(s, &a, t == 0 ? ref : got, n_out, &n_cmp);
            if (ts == KILN_OK && t > 0) { /* agree with tactic 0 within a tolerance for reduced precision */
                double worst = 0, scale = 0;
                for (int64_t e = 0; e < n_cmp; e++) {
                    double d = fabs((double)got[e] - ref[e]);
                    if (!(d <= worst)) worst = d;
                    if (fabs(ref[e]) > scale) scale = fabs(ref[e]);
                }
                if (!(worst <= 2e-2 * (scale > 1 ? scale : 1))) {
                    KN_VERBOSE("step %d tactic %d disagrees with tactic 0 (max diff %g); skipped", i, t, worst);
                    ts = KILN_ERR_INTERNAL;
                }
            }
            char tkey[KN_TACTIC_KEY_MAX] = "";
            if (ts == KILN_OK && k->tactic_key && state && !kn_tactic_key_ok(k->tactic_key(state, tkey, sizeof tkey), tkey))
                tkey[0] = 0;
            int compiles = ts == KILN_OK && k->compiles_per_shape && state && k->compiles_per_shape(state);
            char fam[KN_TACTIC_KEY_MAX];
            memcpy(fam, tkey, sizeof fam);
            if (ts == KILN_OK && check_setup && k->setup_family &&
                !kn_tactic_key_ok(k->setup_family(state, fam, sizeof fam), fam))
                fam[0] = 0;
            double first_ms = -1;
            int known = kn_setup_has(&setup, fam);
            if (ts == KILN_OK && check_setup && !compiles && !known) {
                first_ms = kn_first_run_ms(s, k, in2, i, t, tkey);
                if (first_ms > KN_SETUP_SLOW_MS) kn_setup_add(&setup, fam);
            }
            int sets_up = ts == KILN_OK && check_setup && (first_ms > KN_SETUP_SLOW_MS || known);
            if (k->release && state) k->release(state);
            if (ts != KILN_OK) { kn_clear_error(); if (t == 0) { st = kn_error_context(ts, "step %d tactic 0", i); } continue; }
            if (sets_up) {
                if (known)
                    KN_VERBOSE("step %d tactic %d (%s): %s sets its kernel up at each new shape; left out", i, t, tkey, fam);
                else
                    KN_VERBOSE("step %d tactic %d (%s): its first run at another shape took %.2f ms; %s left out", i, t,
                               tkey, first_ms, fam[0] ? fam : "it is");
                if (ms < best_setup_ms) { best_setup_ms = ms; best_setup = t; memcpy(best_setup_key, tkey, sizeof best_setup_key); }
                continue;
            }
            if (ms < best_ms) { best_ms = ms; best = t; memcpy(best_key, tkey, sizeof best_key); }
            if (!compiles && ms < best_pre_ms) { best_pre_ms = ms; best_pre = t; memcpy(best_pre_key, tkey, sizeof best_pre_key); }
            if (c->verbose && tl + 24 < sizeof times) {
                int w = snprintf(times + tl, sizeof times - tl, " %d:%.4f", t, ms);
                if (w > 0) tl += (size_t)w;
            }
        }
        if (st != KILN_OK) break;
        if (best < 0 && best_setup >= 0) {
            KN_WARN("step %d (%s): every tactic sets up per shape; tactic %d kept (new shapes will cost milliseconds)", i,
                    a.node->name ? a.node->name : kn_op_name(a.node->op), best_setup);
            best = best_setup;
            best_ms = best_setup_ms;
            memcpy(best_key, best_setup_key, sizeof best_key);
        }
        if (best < 0) { st = kn_node_error(a.node, KILN_ERR_DEVICE, "no tactic of kernel %s ran", k->name); break; }
        /* a tactic that compiles per shape costs every new shape ~30 ms: it must be clearly faster */
        if (best != best_pre && best_pre >= 0 && best_ms * KN_COMPILED_TACTIC_GAIN > best_pre_ms) {
            KN_VERBOSE("step %d: tactic %d (%.4f ms) compiles per shape; tactic %d (%.4f ms) is within %.0f%% and is kept",
                       i, best, best_ms, best_pre, best_pre_ms, 100.0 * (KN_COMPILED_TACTIC_GAIN - 1));
            best = best_pre;
            best_ms = best_pre_ms;
            memcpy(best_key, best_pre_key, sizeof best_key);
        }
        step->tactic = best;
        step->tactic_ms = best_ms;
        memcpy(step->tactic_key, best_key, sizeof step->tactic_key);
        timed++;
        if (KN_GROW(tc.e, tc.cap, tc.n + 1) == KILN_OK) {
            kn_tc_entry *e = &tc.e[tc.n++];
            e->key = key;
            e->tactic = best;
            e->ms = best_ms;
            memcpy(e->tkey, best_key, sizeof e->tkey);
            tc.dirty = 1;
        }
        if (c->verbose) /* where a cold build's time goes */
            fprintf(stderr, "kiln: timing tactics: step %d/%d (%s %s): %d tactics, best %d at %.4f ms, %.0f ms (ms per tactic:%s)\n",
                    i + 1, m->part.n_steps, k->name, a.node ? a.node->name : "", nt, best, best_ms,
                    kn_now_ms() - t_step, times);
        else if (kn_now_ms() - t_last > 2000) { /* progress on long builds */
            fprintf(stderr, "kiln: timing tactics: step %d/%d (%s)\n", i + 1, m->part.n_steps, k->name);
            t_last = kn_now_ms();
        }
    }
    kn_free(ref); kn_free(got);
    kn_free(setup.key);
    if (st == KILN_OK && c->timing_cache && tc.dirty) kn_tc_save(&tc, c->timing_cache);
    if (c->verbose)
        KN_INFO("tactics: %d steps timed, %d from the timing cache, %.1f ms", timed, cached, kn_now_ms() - t_start);
    kn_free(tc.e);
    kiln_session_free(s);
    return st;
}
