/* kiln bench: throughput and latency of a model, as trtexec reports them, with the CUDA-graph
 * counters; --cudagraphs all compares off, block and whole.
 *
 * How it measures: each timed iteration calls kiln_session_run (the enqueue time is how long it
 * takes to return) and then kiln_session_synchronize (the end-to-end latency is run + sync).
 * Iterations run back to back, one at a time; throughput is iterations over the wall time of the
 * timed loop. Inputs stay in the session's input slots (kiln_session_input_slot): the first run
 * copies the host data in, later runs pass the slot pointers, so no input is copied per run; an
 * input without a slot (not read by any device step) is passed from host memory. Outputs stay in
 * the session's own buffers (no copies). All times come from the host's monotonic clock. */
#include "args.h"

#include "base/base.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct stats {
    double min, max, mean, median, p90, p95, p99, std;
} stats;

typedef struct bench_result {
    kiln_cudagraphs_mode mode;
    int64_t iterations, warmup_runs;
    double warmup_ms, total_s;
    double first_run_ms; /* the session's first run at the shape: prepare, warm-up, record, launch */
    double new_shape_ms; /* then the first run at a new shape in the same session (-1: not measured) */
    int64_t new_shape_batch;
    /* with provisional kernels: from that run's start until the tuned kernels were prepared in the
     * background, and the next run at the new shape, which swaps them in and records again (-1: not measured) */
    double new_shape_ready_ms, new_shape_swap_ms;
    double qps, items_per_s;
    stats latency, enqueue;
    double cv, enqueue_fraction;
    int enqueue_bound, unstable;
    kiln_counters counters;
} bench_result;

typedef struct bench_opts {
    double warmup_ms, duration_s;
    int64_t min_iterations;
    int64_t batch;
    int provisional; /* --provisional-kernels */
} bench_opts;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values (trtexec's convention). */
static double percentile(const double *v, int64_t n, double p) {
    int64_t r = (int64_t)ceil(p / 100.0 * (double)n);
    if (r < 1) r = 1;
    if (r > n) r = n;
    return v[r - 1];
}

/* Timings of a run: exact min/max/mean/std from running sums over every iteration, percentiles
 * from the samples kept (all of them up to KB_MAX_SAMPLES, then a uniform reservoir, so a long
 * run of sub-microsecond iterations stays within a few MB). */
#define KB_MAX_SAMPLES (1 << 20)

typedef struct samples {
    double *v;
    int64_t n_kept, cap;
    int64_t count;
    double min, max, sum, sumsq;
} samples;

static void samples_stats(samples *x, stats *s) {
    memset(s, 0, sizeof *s);
    if (x->count <= 0) return;
    qsort(x->v, (size_t)x->n_kept, sizeof *x->v, cmp_double);
    s->mean = x->sum / (double)x->count;
    double var = x->sumsq / (double)x->count - s->mean * s->mean;
    s->std = sqrt(var > 0 ? var : 0);
    s->min = x->min;
    s->max = x->max;
    int64_t n = x->n_kept;
    s->median = n % 2 ? x->v[n / 2] : 0.5 * (x->v[n / 2 - 1] + x->v[n / 2]);
    s->p90 = percentile(x->v, n, 90);
    s->p95 = percentile(x->v, n, 95);
    s->p99 = percentile(x->v, n, 99);
}

/* Adds one timing; `slot` is where it goes (-1: not kept). 0, or 1 when out of memory. */
static int samples_add(samples *x, double t, int64_t slot) {
    if (x->count == 0 || t < x->min) x->min = t;
    if (x->count == 0 || t > x->max) x->max = t;
    x->count++;
    x->sum += t;
    x->sumsq += t * t;
    if (slot < 0) return 0;
    if (slot >= x->cap) {
        int64_t ncap = x->cap ? x->cap * 2 : 4096;
        if (ncap > KB_MAX_SAMPLES) ncap = KB_MAX_SAMPLES;
        double *nv = realloc(x->v, (size_t)ncap * sizeof *nv);
        if (!nv) return 1;
        x->v = nv;
        x->cap = ncap;
    }
    x->v[slot] = t;
    if (slot >= x->n_kept) x->n_kept = slot + 1;
    return 0;
}

static uint64_t reservoir_rand(uint64_t *s) { /* xorshift64 */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The first run at a new shape in a warm session (what a server sees when a request brings a batch
 * size it has not run yet): dim 0 of every input at the batch whose profile lets it move goes to
 * batch + 1 (batch - 1 at the max), with the inputs' data repeated. Sets r->new_shape_ms, or leaves
 * -1 when no input can move; a failed run is reported and not fatal. */
static void bench_new_shape(kiln_session *s, const kiln_module *m, const kc_inputs *in, const bench_opts *o, int n_out,
                            bench_result *r) {
    int64_t batch = o->batch;
    kiln_tensor inputs[KC_MAX_SHAPES], outs[KC_MAX_SHAPES];
    void *bufs[KC_MAX_SHAPES] = {0};
    int64_t nb = -1;
    int n_in = in->n_tensors, moved = 0;
    r->new_shape_ms = -1;
    for (int k = 0; k < n_in; k++) {
        kiln_io_info io;
        inputs[k] = in->tensors[k];
        if (kiln_module_input_info(m, k, &io) != KILN_OK || io.rank < 1 || inputs[k].rank < 1 || inputs[k].dims[0] != batch)
            continue;
        int64_t want = batch + 1 <= io.max[0] ? batch + 1 : batch - 1 >= io.min[0] ? batch - 1 : -1;
        if (want < 0 || (nb >= 0 && want != nb)) continue;
        nb = want;
        size_t old_bytes = kiln_dtype_size(inputs[k].dtype), new_bytes;
        for (int d = 0; d < inputs[k].rank; d++) old_bytes *= (size_t)inputs[k].dims[d];
        new_bytes = old_bytes / (size_t)batch * (size_t)nb;
        unsigned char *b = malloc(new_bytes ? new_bytes : 1);
        if (!b) goto done;
        for (size_t off = 0; old_bytes && off < new_bytes; off += old_bytes)
            memcpy(b + off, inputs[k].data, new_bytes - off < old_bytes ? new_bytes - off : old_bytes);
        bufs[k] = b;
        inputs[k].data = b;
        inputs[k].dims[0] = nb;
        inputs[k].device = KILN_DEVICE_CPU;
        moved++;
    }
    if (!moved) goto done;
    memset(outs, 0, sizeof outs);
    kiln_counters before, after;
    kiln_session_counters(s, &before);
    double t0 = kn_now_ms();
    if (kiln_session_run(s, inputs, n_in, outs, n_out) != KILN_OK || kiln_session_synchronize(s) != KILN_OK) {
        fprintf(stderr, "kiln bench: the run at batch %lld (a new shape) failed: %s\n", (long long)nb, kiln_last_error());
        goto done;
    }
    r->new_shape_ms = kn_now_ms() - t0;
    r->new_shape_batch = nb;
    kiln_session_counters(s, &after);
    if (o->provisional && after.provisional > before.provisional) { /* the new shape started on them */
        if (kiln_session_finish_preparation(s) != KILN_OK) goto done;
        r->new_shape_ready_ms = kn_now_ms() - t0;
        memset(outs, 0, sizeof outs);
        double t1 = kn_now_ms();
        if (kiln_session_run(s, inputs, n_in, outs, n_out) != KILN_OK || kiln_session_synchronize(s) != KILN_OK) {
            fprintf(stderr, "kiln bench: the second run at batch %lld failed: %s\n", (long long)nb, kiln_last_error());
            goto done;
        }
        r->new_shape_swap_ms = kn_now_ms() - t1;
    }
done:
    for (int k = 0; k < n_in; k++) free(bufs[k]);
}

static int bench_one(const kiln_module *m, kc_inputs *in, kiln_cudagraphs_mode mode, const bench_opts *o,
                     bench_result *r) {
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->new_shape_ms = r->new_shape_ready_ms = r->new_shape_swap_ms = -1;
    kiln_session *s = NULL;
    kiln_tensor inputs[KC_MAX_SHAPES], outs[KC_MAX_SHAPES];
    int n_in = in->n_tensors, n_out = kiln_module_num_outputs(m);
    samples lat = {0}, enq = {0};
    int64_t n = 0;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int rc = 0;
    if (n_out > KC_MAX_SHAPES) {
        fprintf(stderr, "kiln bench: the model has %d outputs; this tool takes at most %d\n", n_out, KC_MAX_SHAPES);
        return 1;
    }
    if (kiln_session_create(m, &s) != KILN_OK) return kiln_cli_fail("bench", "creating a session");
    if (kiln_session_set_cudagraphs_mode(s, mode) != KILN_OK ||
        kiln_session_set_provisional_kernels(s, o->provisional) != KILN_OK) {
        rc = kiln_cli_fail("bench", "setting up the session");
        goto done;
    }
    /* first run: host inputs copied into the slots */
    memcpy(inputs, in->tensors, sizeof inputs[0] * (size_t)n_in);
    memset(outs, 0, sizeof outs);
    double t_first = kn_now_ms();
    if (kiln_session_run(s, inputs, n_in, outs, n_out) != KILN_OK || kiln_session_synchronize(s) != KILN_OK) {
        rc = kiln_cli_fail("bench", "running the model");
        goto done;
    }
    r->first_run_ms = kn_now_ms() - t_first;
    /* provisional kernels: what is timed below is the tuned ones */
    if (kiln_session_finish_preparation(s) != KILN_OK) {
        rc = kiln_cli_fail("bench", "preparing the tuned kernels");
        goto done;
    }
    for (int k = 0; k < n_in; k++) {
        void *slot = NULL;
        if (kiln_session_input_slot(s, k, &slot) != KILN_OK) {
            rc = kiln_cli_fail("bench", "getting an input slot");
            goto done;
        }
        if (slot) {
            inputs[k].data = slot;
            inputs[k].device = kiln_module_device(m);
        }
    }
    double t_start = kn_now_ms(), now = t_start;
    r->warmup_runs = 1;
    while (now - t_start < o->warmup_ms) {
        for (int k = 0; k < n_out; k++) outs[k].data = NULL;
        if (kiln_session_run(s, inputs, n_in, outs, n_out) != KILN_OK || kiln_session_synchronize(s) != KILN_OK) {
            rc = kiln_cli_fail("bench", "running the model (warm-up)");
            goto done;
        }
        r->warmup_runs++;
        now = kn_now_ms();
    }
    r->warmup_ms = now - t_start;
    double loop0 = kn_now_ms(), loop_end = loop0;
    for (;;) {
        if (n >= o->min_iterations && (loop_end - loop0) >= o->duration_s * 1000.0) break;
        for (int k = 0; k < n_out; k++) outs[k].data = NULL;
        double t0 = kn_now_ms();
        kiln_status st = kiln_session_run(s, inputs, n_in, outs, n_out);
        double t1 = kn_now_ms();
        if (st == KILN_OK) st = kiln_session_synchronize(s);
        double t2 = kn_now_ms();
        if (st != KILN_OK) {
            rc = kiln_cli_fail("bench", "running the model");
            goto done;
        }
        /* the same slot for both, so kept samples stay pairs of one iteration */
        int64_t slot = n < KB_MAX_SAMPLES ? n : (int64_t)(reservoir_rand(&rng) % (uint64_t)(n + 1));
        if (slot >= KB_MAX_SAMPLES) slot = -1;
        if (samples_add(&enq, t1 - t0, slot) || samples_add(&lat, t2 - t0, slot)) {
            fprintf(stderr, "kiln bench: out of host memory for timings\n");
            rc = 1;
            goto done;
        }
        n++;
        loop_end = t2;
    }
    r->iterations = n;
    r->total_s = (loop_end - loop0) / 1000.0;
    r->qps = r->total_s > 0 ? (double)n / r->total_s : 0;
    r->items_per_s = r->qps * (double)o->batch;
    samples_stats(&lat, &r->latency);
    samples_stats(&enq, &r->enqueue);
    r->cv = r->latency.mean > 0 ? r->latency.std / r->latency.mean : 0;
    r->enqueue_fraction = r->latency.mean > 0 ? r->enqueue.mean / r->latency.mean : 0;
    /* on the CPU a run finishes before it returns: enqueue time is the latency, not a bottleneck */
    r->enqueue_bound = kiln_module_device(m) != KILN_DEVICE_CPU && r->enqueue_fraction >= 0.9;
    r->unstable = r->cv > 0.10;
    if (kiln_session_counters(s, &r->counters) != KILN_OK) rc = kiln_cli_fail("bench", "reading the counters");
    if (rc == 0) bench_new_shape(s, m, in, o, n_out, r);
done:
    free(lat.v);
    free(enq.v);
    kiln_session_free(s);
    return rc;
}

static void print_result(const bench_result *r, kiln_device dev, int engine_blocks) {
    printf("=== cudagraphs %s ===\n", kc_cudagraphs_name(r->mode));
    printf("First run at this shape (prepare, record and instantiate where graphs are on): %.3f ms\n", r->first_run_ms);
    if (r->new_shape_ms >= 0)
        printf("First run at a new shape (batch %lld, after the timed runs, same session): %.3f ms%s\n",
               (long long)r->new_shape_batch, r->new_shape_ms, r->new_shape_ready_ms >= 0 ? " (provisional kernels)" : "");
    if (r->new_shape_ready_ms >= 0)
        printf("  tuned kernels prepared %.3f ms after that run began; the next run, which swaps them in and records "
               "again: %.3f ms\n", r->new_shape_ready_ms, r->new_shape_swap_ms);
    printf("Warm-up: %d run%s in %.1f ms; timed: %lld iterations in %.3f s\n", (int)r->warmup_runs, r->warmup_runs == 1 ? "" : "s", r->warmup_ms,
           (long long)r->iterations, r->total_s);
    printf("Throughput: %.2f qps (inferences/s), %.2f items/s\n", r->qps, r->items_per_s);
    const stats *l = &r->latency, *e = &r->enqueue;
    printf("Latency (end to end: run + synchronize): min = %.5g ms, max = %.5g ms, mean = %.5g ms, median = %.5g ms, "
           "percentile(90%%) = %.5g ms, percentile(95%%) = %.5g ms, percentile(99%%) = %.5g ms\n",
           l->min, l->max, l->mean, l->median, l->p90, l->p95, l->p99);
    printf("Enqueue Time (kiln_session_run returns): min = %.5g ms, max = %.5g ms, mean = %.5g ms, median = %.5g ms, "
           "percentile(90%%) = %.5g ms, percentile(95%%) = %.5g ms, percentile(99%%) = %.5g ms\n",
           e->min, e->max, e->mean, e->median, e->p90, e->p95, e->p99);
    printf("Coefficient of variation (latency): %.2f %%; enqueue / latency: %.1f %%\n", 100.0 * r->cv,
           100.0 * r->enqueue_fraction);
    const kiln_counters *c = &r->counters;
    printf("CUDA-graph counters (session total, warm-up included): runs %llu, captures %llu, replays %llu, "
           "cache hits %llu, updates %llu, evictions %llu, eager fallbacks %llu, warm-ups %llu\n",
           (unsigned long long)c->runs, (unsigned long long)c->captures, (unsigned long long)c->replays,
           (unsigned long long)c->cache_hits, (unsigned long long)c->updates, (unsigned long long)c->evictions,
           (unsigned long long)c->eager_fallbacks, (unsigned long long)c->warmups);
    if (c->provisional)
        printf("Provisional kernels: %llu shape%s started on them, %llu swapped to the tuned kernels\n",
               (unsigned long long)c->provisional, c->provisional == 1 ? "" : "s", (unsigned long long)c->upgrades);
    if (r->mode == KILN_CUDAGRAPHS_PER_BLOCK && c->captures == 0)
        printf("(no graph was recorded: per-block graphs wrap engine blocks, and %s)\n",
               engine_blocks ? "this module's engine blocks cannot be captured" : "this module has none (all ops fall back)");
    if (r->enqueue_bound)
        printf("[W] * Throughput may be bound by enqueue time rather than device compute (enqueue is %.1f %% of the "
               "latency): the device may be under-used. %s\n", 100.0 * r->enqueue_fraction,
               r->mode == KILN_CUDAGRAPHS_OFF ? "--cudagraphs block or whole may raise the throughput." : "");
    if (r->unstable)
        printf("[W] * Latency is unstable, with a coefficient of variation of %.2f %% (> 10 %%): lock the %s clocks "
               "or run longer (--duration-s) for stable numbers.\n", 100.0 * r->cv, dev == KILN_DEVICE_CPU ? "CPU" : "GPU");
    if (dev == KILN_DEVICE_CPU)
        printf("(CPU device: a run completes before kiln_session_run returns, so enqueue time equals latency "
               "and the enqueue-bound check does not apply.)\n");
}

static void json_stats(FILE *f, const char *name, const stats *s) {
    fprintf(f, "\"%s\": {\"min\": %.9g, \"max\": %.9g, \"mean\": %.9g, \"median\": %.9g, \"p90\": %.9g, "
               "\"p95\": %.9g, \"p99\": %.9g, \"std\": %.9g}",
            name, s->min, s->max, s->mean, s->median, s->p90, s->p95, s->p99, s->std);
}

static int write_json(const char *path, const char *model, kiln_device dev, const kc_inputs *in, const kiln_module *m,
                      const bench_opts *o, const bench_result *r, int n) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kiln bench: --json %s: cannot create: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(f, "{\"model\": ");
    kc_json_str(f, model);
    fprintf(f, ", \"device\": \"%s\", \"batch\": %lld, \"warmup_ms\": %.3f, \"duration_s\": %.3f, "
               "\"min_iterations\": %lld, \"provisional_kernels\": %s,\n \"inputs\": [",
            kc_device_name(dev), (long long)o->batch, o->warmup_ms, o->duration_s, (long long)o->min_iterations,
            o->provisional ? "true" : "false");
    for (int k = 0; k < in->n_tensors; k++) {
        kiln_io_info io;
        kiln_module_input_info(m, k, &io);
        fprintf(f, "%s{\"name\": ", k ? ", " : "");
        kc_json_str(f, io.name);
        fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", kiln_dtype_name(in->tensors[k].dtype));
        for (int i = 0; i < in->tensors[k].rank; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)in->tensors[k].dims[i]);
        fprintf(f, "]}");
    }
    fprintf(f, "],\n \"runs\": [");
    for (int i = 0; i < n; i++) {
        const bench_result *x = &r[i];
        const kiln_counters *c = &x->counters;
        fprintf(f, "%s\n  {\"cudagraphs\": \"%s\", \"iterations\": %lld, \"warmup_runs\": %lld, \"total_s\": %.9g, "
                   "\"first_run_ms\": %.9g, \"throughput_qps\": %.9g, \"throughput_items_per_s\": %.9g, ",
                i ? "," : "", kc_cudagraphs_name(x->mode), (long long)x->iterations, (long long)x->warmup_runs,
                x->total_s, x->first_run_ms, x->qps, x->items_per_s);
        if (x->new_shape_ms >= 0)
            fprintf(f, "\"new_shape_ms\": %.9g, \"new_shape_batch\": %lld, ", x->new_shape_ms, (long long)x->new_shape_batch);
        if (x->new_shape_ready_ms >= 0)
            fprintf(f, "\"new_shape_ready_ms\": %.9g, \"new_shape_swap_ms\": %.9g, ", x->new_shape_ready_ms,
                    x->new_shape_swap_ms);
        json_stats(f, "latency_ms", &x->latency);
        fprintf(f, ", ");
        json_stats(f, "enqueue_ms", &x->enqueue);
        fprintf(f, ", \"latency_cv\": %.9g, \"enqueue_fraction\": %.9g, \"enqueue_bound\": %s, \"unstable\": %s, "
                   "\"counters\": {\"runs\": %llu, \"captures\": %llu, \"replays\": %llu, \"cache_hits\": %llu, "
                   "\"updates\": %llu, \"evictions\": %llu, \"eager_fallbacks\": %llu, \"warmups\": %llu, "
                   "\"provisional\": %llu, \"upgrades\": %llu}}",
                x->cv, x->enqueue_fraction, x->enqueue_bound ? "true" : "false", x->unstable ? "true" : "false",
                (unsigned long long)c->runs, (unsigned long long)c->captures, (unsigned long long)c->replays,
                (unsigned long long)c->cache_hits, (unsigned long long)c->updates, (unsigned long long)c->evictions,
                (unsigned long long)c->eager_fallbacks, (unsigned long long)c->warmups, (unsigned long long)c->provisional,
                (unsigned long long)c->upgrades);
    }
    fprintf(f, "\n]}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "kiln bench: --json %s: write failed\n", path);
        return 1;
    }
    return 0;
}

/* --profile: the device time of every step (kiln_session_profile) in a fresh session. */
static int print_profile(const kiln_module *m, kc_inputs *in, kiln_cudagraphs_mode mode) {
    kiln_session *s = NULL;
    char *report = NULL;
    int rc = 0;
    if (kiln_session_create(m, &s) != KILN_OK) return kiln_cli_fail("bench", "creating a session");
    /* the inputs in the session's slots, as in the timed loop, so the profile's end-to-end
     * latency does not include a host-to-device copy of the inputs */
    kiln_tensor inputs[KC_MAX_SHAPES];
    int n_in = in->n_tensors < KC_MAX_SHAPES ? in->n_tensors : KC_MAX_SHAPES;
    memcpy(inputs, in->tensors, sizeof inputs[0] * (size_t)n_in);
    kiln_tensor outs[KC_MAX_SHAPES];
    int n_out = kiln_module_num_outputs(m) < KC_MAX_SHAPES ? kiln_module_num_outputs(m) : KC_MAX_SHAPES;
    memset(outs, 0, sizeof outs);
    if (kiln_session_run(s, inputs, n_in, outs, n_out) != KILN_OK || kiln_session_synchronize(s) != KILN_OK)
        rc = kiln_cli_fail("bench", "running the model");
    for (int k = 0; k < n_in && rc == 0; k++) {
        void *slot = NULL;
        if (kiln_session_input_slot(s, k, &slot) != KILN_OK) rc = kiln_cli_fail("bench", "getting an input slot");
        else if (slot) {
            inputs[k].data = slot;
            inputs[k].device = kiln_module_device(m);
        }
    }
    if (rc == 0 && (kiln_session_set_cudagraphs_mode(s, mode) != KILN_OK ||
                    kiln_session_profile(s, inputs, n_in, false, &report) != KILN_OK))
        rc = kiln_cli_fail("bench", "profiling");
    else
        printf("\n=== per-step profile ===\n%s", report);
    kiln_free(report);
    kiln_session_free(s);
    return rc;
}

static int run(int argc, char **argv) {
    kc_args a;
    kc_args_init(&a, "bench", argc, argv);
    kc_build b;
    kc_build_init(&b, 0);
    kc_inputs in;
    kc_inputs_init(&in);
    const char *model = NULL, *json = NULL;
    kiln_cudagraphs_mode mode = KILN_CUDAGRAPHS_OFF;
    int all = 0, profile = 0;
    bench_opts o = {.warmup_ms = 200, .duration_s = 3, .min_iterations = 10};
    while (kc_next(&a)) {
        if (kc_build_flag(&a, &b) || kc_inputs_flag(&a, &in)) continue;
        if (kc_flag(&a, "--cudagraphs", NULL)) {
            if (!a.failed && !kc_parse_cudagraphs(a.value, 1, &mode, &all))
                kc_usage(&a, "--cudagraphs '%s': expected off, block, whole or all", a.value);
        } else if (kc_flag(&a, "--warmup-ms", NULL)) {
            if (!a.failed && !kc_parse_double(a.value, 0, 3.6e6, &o.warmup_ms))
                kc_usage(&a, "--warmup-ms '%s': expected a number of milliseconds >= 0", a.value);
        } else if (kc_flag(&a, "--duration-s", NULL)) {
            if (!a.failed && !kc_parse_double(a.value, 0, 86400, &o.duration_s))
                kc_usage(&a, "--duration-s '%s': expected a number of seconds >= 0", a.value);
        } else if (kc_flag(&a, "--iterations", NULL)) {
            long long v = 0;
            if (a.failed) {
                /* the flag had no value: kc_flag reported it */
            } else if (!kc_parse_ll(a.value, 1, 1000000000LL, &v)) {
                kc_usage(&a, "--iterations '%s': expected an integer >= 1", a.value);
            } else {
                o.min_iterations = v;
            }
        } else if (kc_switch(&a, "--provisional-kernels")) {
            o.provisional = 1;
        } else if (kc_switch(&a, "--profile")) {
            profile = 1;
        } else if (kc_flag(&a, "--json", NULL)) {
            if (!a.failed && !*a.value) kc_usage(&a, "--json needs a file name");
            json = a.value;
        } else if (kc_positional(&a)) {
            if (model) kc_usage(&a, "more than one model given ('%s' and '%s')", model, a.arg);
            model = a.arg;
        } else kc_unknown(&a);
    }
    int rc = 0;
    if (a.failed) rc = 2;
    else if (!model) rc = kiln_cli_usage_error("bench", "no model given (kiln bench MODEL --shapes NAME:DIMS)");
    if (rc) {
        kc_build_free(&b);
        return rc;
    }
    kc_model mdl = {0};
    kc_shapes run_shapes;
    bench_result results[3];
    int n_results = 0;
    if (b.verbose) kiln_set_log_level(2);
    if (!kc_is_kiln_file(model) && (rc = kc_load_graph("bench", model, &mdl.graph))) goto done;
    if ((rc = kc_inputs_read("bench", &in, mdl.graph))) goto done;
    if ((rc = kc_inputs_shapes("bench", &in, &b.shapes, &run_shapes))) goto done;
    if (mdl.graph && (rc = kc_inputs_check_dynamic("bench", mdl.graph, &b, &run_shapes))) goto done;
    if ((rc = kc_load_model("bench", model, &b, &run_shapes, &mdl))) goto done;
    if ((rc = kc_inputs_make("bench", &in, mdl.module, &run_shapes))) goto done;
    o.batch = in.n_tensors > 0 && in.tensors[0].rank > 0 ? in.tensors[0].dims[0] : 1;

    kiln_device dev = kiln_module_device(mdl.module);
    char dims[128];
    printf("=== kiln bench: %s ===\n", model);
    printf("device %s, %d segment%s (%d engine block%s); shapes:", kc_device_name(dev),
           kiln_module_num_segments(mdl.module), kiln_module_num_segments(mdl.module) == 1 ? "" : "s",
           kiln_module_num_engine_blocks(mdl.module), kiln_module_num_engine_blocks(mdl.module) == 1 ? "" : "s");
    for (int k = 0; k < in.n_tensors; k++) {
        kiln_io_info io;
        kiln_module_input_info(mdl.module, k, &io);
        printf("%s %s:%s", k ? "," : "", io.name, kc_dims_str(in.tensors[k].rank, in.tensors[k].dims, dims, sizeof dims));
    }
    printf(" (batch %lld: dim 0 of the first input)\n", (long long)o.batch);
    printf("inputs stay in the session's input slots (no copy per run); outputs stay in session buffers\n");
    static const kiln_cudagraphs_mode modes[3] = {KILN_CUDAGRAPHS_OFF, KILN_CUDAGRAPHS_PER_BLOCK, KILN_CUDAGRAPHS_WHOLE};
    int n_modes = all ? 3 : 1;
    for (int i = 0; i < n_modes; i++) {
        if ((rc = bench_one(mdl.module, &in, all ? modes[i] : mode, &o, &results[i]))) goto done;
        n_results++;
        print_result(&results[i], dev, kiln_module_num_engine_blocks(mdl.module));
        fflush(stdout);
    }
    if (all) {
        printf("\n=== comparison ===\n");
        printf("%-6s %12s %14s %10s %10s %10s %12s %9s %8s %9s\n", "mode", "qps", "items/s", "mean ms", "median ms",
               "p99 ms", "enqueue ms", "captures", "replays", "fallbacks");
        for (int i = 0; i < n_results; i++) {
            const bench_result *r = &results[i];
            printf("%-6s %12.2f %14.2f %10.5g %10.5g %10.5g %12.5g %9llu %8llu %9llu\n", kc_cudagraphs_name(r->mode),
                   r->qps, r->items_per_s, r->latency.mean, r->latency.median, r->latency.p99, r->enqueue.mean,
                   (unsigned long long)r->counters.captures, (unsigned long long)r->counters.replays,
                   (unsigned long long)r->counters.eager_fallbacks);
        }
        printf("speed-up of the median over off: block %.2fx, whole %.2fx\n",
               results[1].latency.median > 0 ? results[0].latency.median / results[1].latency.median : 0,
               results[2].latency.median > 0 ? results[0].latency.median / results[2].latency.median : 0);
    }
    if (profile && (rc = print_profile(mdl.module, &in, all ? KILN_CUDAGRAPHS_WHOLE : mode))) goto done;
    if (json && (rc = write_json(json, model, dev, &in, mdl.module, &o, results, n_results))) goto done;
    if (json) printf("wrote %s\n", json);
done:
    kc_model_free(&mdl);
    kc_inputs_free(&in);
    kc_build_free(&b);
    return rc;
}

static void help(FILE *f) {
    fprintf(f,
            "usage: kiln bench MODEL.onnx|MODEL.kiln --shapes NAME:DIMS[,...] [options] [build options]\n\n"
            "Measures a model like trtexec: throughput (inferences/s, and items/s with dim 0 of the first\n"
            "input as the batch), latency min/mean/median/p90/p95/p99 (end to end: kiln_session_run plus\n"
            "kiln_session_synchronize), enqueue time (until kiln_session_run returns), the CUDA-graph\n"
            "counters, and warnings when a run is enqueue-bound (enqueue >= 90%% of the latency, on a GPU)\n"
            "or unstable (coefficient of variation > 10%%). An .onnx model is compiled first; its profile\n"
            "is --shapes unless --min/--opt/--max are given (then --shapes is the shape to run at).\n"
            "Inputs are seeded random data (or --input files) kept in the session's input slots, so\n"
            "no input is copied per run; outputs stay in the session's buffers. Iterations run one at a\n"
            "time, each synchronized, timed by the host's monotonic clock. Also reported: the session's\n"
            "first run, and, when the profile lets dim 0 move, the first run at batch + 1 (batch - 1 at the\n"
            "max) in the same session after the timed runs: the cost of a new shape (prepare, record,\n"
            "instantiate).\n\n"
            "options:\n"
            "  --shapes NAME:DIMS[,...]    the shapes to run at (default: the profile's opt shapes)\n"
            "  --cudagraphs off|block|whole|all\n"
            "                              CUDA graphs: none (default), per engine block, the whole module\n"
            "                              as one graph, or all three in turn with a comparison table\n"
            "  --warmup-ms N               warm up for N ms before timing (default 200)\n"
            "  --duration-s N              time for at least N seconds (default 3)\n"
            "  --iterations N              and at least N iterations (default 10)\n"
            "  --provisional-kernels       at a new shape, run kiln's own convolutions while cuDNN's plans\n"
            "                              are prepared in the background (kiln_session_set_provisional_kernels);\n"
            "                              also reports when they were ready and the run that swapped them in\n"
            "  --profile                   then time every step on its own (device time per launch,\n"
            "                              median; from a recorded graph where it can be captured) and\n"
            "                              list them by time with op, node, kernel, tactic and share,\n"
            "                              with their sum against the end-to-end latency\n"
            "  --json FILE                 write the results as JSON (numbers in ms, s and 1/s)\n"
            "  -i, --input NAME=FILE.npy   input data from a NumPy file instead of random data\n"
            "  --seed N                    the random inputs' seed (default 1)\n");
    kc_build_help(f, 0);
    fprintf(f,
            "\nexamples:\n"
            "  kiln bench resnet18.onnx --shapes x:8x3x224x224 --fp16 --cudagraphs all --json r18.json\n"
            "  kiln bench resnet18.kiln --shapes x:16x3x224x224 --duration-s 10\n"
            "\nexit status: 0 success, 1 the model did not load, compile or run, 2 a usage error.\n");
}

const kiln_cli_command kiln_cmd_bench = {"bench", "measure throughput, latency and CUDA-graph use", run, help};
