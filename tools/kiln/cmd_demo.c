/* kiln demo: ResNet-18 (or -50) built through the graph API, compiled for the best device present
 * with a batch profile 1..16 (or up to the largest of --batches), timed at batch 1 and 8 (or
 * --batches) with graphs off and on, and checked against
 * the CPU reference kernels (an unoptimized CPU build of the same graph). */
#include "cli.h"
#include "resnet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct demo_opts {
    kiln_device device;
    kiln_precision precision;
    double seconds; /* per configuration */
    int max_runs;
    int depth;                /* ResNet depth: 18 or 50 */
    const char *timing_cache; /* --timing-cache FILE */
    int profile;              /* --profile: per-step profile at batch 1, whole-module graph */
    int check;                /* compare with the CPU reference (--no-check turns it off) */
    int keep_nchw;            /* --nchw: no NHWC layout pass (for before/after timings) */
    int n_batches;            /* --batches 1,8,256 (default 1,8) */
    int64_t batches[8];
    int64_t max_batch;        /* the profile's max: 16, or the largest batch asked for */
} demo_opts;

static kiln_status compile_for(const kiln_graph *g, kiln_device dev, kiln_precision prec, int optimize,
                               const char *timing_cache, const demo_opts *o, kiln_module **m) {
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.keep_nchw = o->keep_nchw;
    cfg.timing_cache = timing_cache;
    cfg.device = dev;
    cfg.precision = prec;
    cfg.optimize = optimize;
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 224, 224}, .opt = {8, 3, 224, 224},
                            .max = {o->max_batch, 3, 224, 224}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    return kiln_compile(g, &cfg, m);
}

/* Median latency of kiln_session_run (+ synchronize) over runs bounded by time and count. */
static kiln_status time_runs(kiln_session *s, kiln_tensor *in, kiln_tensor *out, const demo_opts *o,
                             double *median, int *runs) {
    double *t = malloc((size_t)o->max_runs * sizeof *t);
    if (!t) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = kiln_session_run(s, in, 1, out, 1); /* warm-up (and recording) */
    if (st == KILN_OK) st = kiln_session_synchronize(s);
    int n = 0;
    double start = now_ms();
    while (st == KILN_OK && n < o->max_runs && (n < 3 || now_ms() - start < o->seconds * 1e3)) {
        double t0 = now_ms();
        st = kiln_session_run(s, in, 1, out, 1);
        if (st == KILN_OK) st = kiln_session_synchronize(s);
        t[n++] = now_ms() - t0;
    }
    if (st == KILN_OK) {
        qsort(t, (size_t)n, sizeof *t, cmp_double);
        *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
        *runs = n;
    }
    free(t);
    return st;
}

static int parse(int argc, char **argv, demo_opts *o) {
    o->device = KILN_DEVICE_AUTO;
    o->precision = KILN_PRECISION_FP32;
    o->seconds = 2.0;
    o->max_runs = 1000;
    o->depth = 18;
    o->timing_cache = NULL;
    o->profile = 0;
    o->check = 1;
    o->keep_nchw = 0;
    o->n_batches = 2;
    o->batches[0] = 1;
    o->batches[1] = 8;
    o->max_batch = 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--device") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "cpu")) o->device = KILN_DEVICE_CPU;
            else if (!strncmp(d, "cuda", 4)) o->device = KILN_DEVICE_CUDA;
            else if (!strcmp(d, "auto")) o->device = KILN_DEVICE_AUTO;
            else return kiln_cli_usage_error("demo", "unknown device '%s' (cpu, cuda or auto)", d);
        } else if (!strcmp(a, "--fp16")) o->precision = KILN_PRECISION_FP16;
        else if (!strcmp(a, "--tf32")) o->precision = KILN_PRECISION_TF32;
        else if (!strcmp(a, "--fp32")) o->precision = KILN_PRECISION_FP32;
        else if (!strcmp(a, "--bf16")) o->precision = KILN_PRECISION_BF16;
        else if (!strcmp(a, "--profile")) o->profile = 1;
        else if (!strcmp(a, "--no-check")) o->check = 0;
        else if (!strcmp(a, "--nchw")) o->keep_nchw = 1;
        else if (!strcmp(a, "--batches") && i + 1 < argc) {
            const char *p = argv[++i];
            o->n_batches = 0;
            while (*p) {
                char *end;
                long long b = strtoll(p, &end, 10);
                if (end == p || b < 1 || b > 4096 || o->n_batches == 8 || (*end && *end != ','))
                    return kiln_cli_usage_error("demo", "--batches needs up to 8 comma-separated batch sizes in 1..4096");
                o->batches[o->n_batches++] = b;
                if (b > o->max_batch) o->max_batch = b;
                p = *end ? end + 1 : end;
            }
            if (!o->n_batches) return kiln_cli_usage_error("demo", "--batches needs a list such as 1,8,256");
        }
        else if (!strcmp(a, "--timing-cache") && i + 1 < argc) o->timing_cache = argv[++i];
        else if (!strcmp(a, "--model") && i + 1 < argc) {
            const char *mdl = argv[++i];
            if (!strcmp(mdl, "resnet18")) o->depth = 18;
            else if (!strcmp(mdl, "resnet50")) o->depth = 50;
            else return kiln_cli_usage_error("demo", "unknown model '%s' (resnet18 or resnet50)", mdl);
        }
        else if (!strcmp(a, "--seconds") && i + 1 < argc) {
            char *end;
            o->seconds = strtod(argv[++i], &end);
            if (*end || !(o->seconds > 0)) return kiln_cli_usage_error("demo", "--seconds needs a positive number");
        } else return kiln_cli_usage_error("demo", "unknown option '%s'", a);
    }
    return 0;
}

static void fill(float *x, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 40) / 8388608.0 - 1.0);
    }
}

static int run(int argc, char **argv) {
    demo_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    kiln_graph *g = NULL;
    kiln_module *m = NULL, *ref = NULL;
    kiln_session *s = NULL, *rs = NULL;
    float *x = NULL, *y = NULL, *yr = NULL;
    rc = 1;
    if (kiln_resnet_build(o.depth, 224, 0, &g) != KILN_OK) return kiln_cli_fail("demo", "building the ResNet");
    double t0 = now_ms();
    if (compile_for(g, o.device, o.precision, 1, o.timing_cache, &o, &m) != KILN_OK) { kiln_cli_fail("demo", "compiling"); goto done; }
    double build_ms = now_ms() - t0;
    int on_gpu = kiln_module_device(m) == KILN_DEVICE_CUDA;
    printf("kiln demo: ResNet-%d (224x224, seeded random weights), %d nodes\n", o.depth, kiln_graph_num_nodes(g));
    printf("compiled for %s, %s%s, batch profile 1..%lld (opt %lld) in %.0f ms%s: %d segment(s)\n", on_gpu ? "cuda" : "cpu",
           o.precision == KILN_PRECISION_FP16 ? "fp16" : o.precision == KILN_PRECISION_BF16 ? "bf16"
           : o.precision == KILN_PRECISION_TF32 ? "tf32" : "fp32", o.keep_nchw ? " (NCHW kept)" : "",
           (long long)o.max_batch, 8LL, build_ms, o.timing_cache ? " (with the timing cache)" : "", kiln_module_num_segments(m));
    if (o.check && compile_for(g, KILN_DEVICE_CPU, KILN_PRECISION_FP32, 0, NULL, &o, &ref) != KILN_OK) { kiln_cli_fail("demo", "compiling the reference"); goto done; }
    if (kiln_session_create(m, &s) != KILN_OK || (o.check && kiln_session_create(ref, &rs) != KILN_OK)) { kiln_cli_fail("demo", "creating a session"); goto done; }
    x = malloc((size_t)o.max_batch * 3 * 224 * 224 * sizeof *x);
    y = malloc((size_t)o.max_batch * 1000 * sizeof *y);
    yr = malloc((size_t)o.max_batch * 1000 * sizeof *yr);
    if (!x || !y || !yr) { fprintf(stderr, "kiln demo: out of memory\n"); goto done; }
    const int64_t *batches = o.batches;
    const char *graphs_label = on_gpu ? "CUDA graph" : "recorded";
    printf("\n%-6s %-12s %12s %8s\n", "batch", "graphs", "median ms", "runs");
    double worst = 0;
    for (int b = 0; b < o.n_batches; b++) {
        int64_t n = batches[b];
        fill(x, n * 3 * 224 * 224, 42 + (uint64_t)n);
        kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 4, .dims = {n, 3, 224, 224}, .device = KILN_DEVICE_CPU};
        kiln_tensor out = {.data = y, .device = KILN_DEVICE_CPU};
        for (int mode = 0; mode < 2; mode++) {
            kiln_session_set_cudagraphs_mode(s, mode ? KILN_CUDAGRAPHS_WHOLE : KILN_CUDAGRAPHS_OFF);
            double med = 0;
            int runs = 0;
            if (time_runs(s, &in, &out, &o, &med, &runs) != KILN_OK) { kiln_cli_fail("demo", "running"); goto done; }
            printf("%-6lld %-12s %12.3f %8d\n", (long long)n, mode ? graphs_label : "off", med, runs);
            fflush(stdout);
        }
        if (!o.check || n > 16) continue; /* the CPU reference is too slow beyond batch 16 */
        kiln_tensor rout = {.data = yr, .device = KILN_DEVICE_CPU};
        if (kiln_session_run(rs, &in, 1, &rout, 1) != KILN_OK) { kiln_cli_fail("demo", "running the reference"); goto done; }
        double num = 0, den = 0;
        for (int64_t i = 0; i < n * 1000; i++) {
            double d = fabs((double)y[i] - yr[i]);
            if (!(d <= num)) num = d;
            if (fabs(yr[i]) > den) den = fabs(yr[i]);
        }
        double rel = num / (den > 0 ? den : 1);
        if (!(rel <= worst)) worst = rel;
    }
    if (o.profile) { /* where batch 1's time goes, step by step, next to its whole-graph latency */
        fill(x, 3 * 224 * 224, 43);
        kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 4, .dims = {1, 3, 224, 224}, .device = KILN_DEVICE_CPU};
        char *report = NULL;
        void *slot = NULL;
        kiln_tensor tmp = {.data = y, .device = KILN_DEVICE_CPU};
        kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE);
        /* the input stays in the session's slot (as kiln bench keeps it): no copy in the timings */
        if (kiln_session_run(s, &in, 1, &tmp, 1) != KILN_OK || kiln_session_input_slot(s, 0, &slot) != KILN_OK) {
            kiln_cli_fail("demo", "running");
            goto done;
        }
        if (slot) {
            in.data = slot;
            in.device = kiln_module_device(m);
        }
        if (kiln_session_profile(s, &in, 1, false, &report) != KILN_OK) { kiln_cli_fail("demo", "profiling"); goto done; }
        printf("\nbatch 1, input in the session's slot, outputs left in session buffers; %s", report);
        kiln_free(report);
    }
    double tol = o.precision == KILN_PRECISION_FP16 ? 2e-2 : o.precision == KILN_PRECISION_BF16 ? 5e-2
               : o.precision == KILN_PRECISION_TF32 ? 5e-3 : 1e-4;
    if (!o.check) {
        printf("\n(outputs not checked: --no-check)\n");
        rc = 0;
    } else if (worst <= tol) {
        printf("\noutputs match reference (max relative error %.2e, tolerance %.0e)\n", worst, tol);
        rc = 0;
    } else {
        printf("\noutputs DO NOT match reference (max relative error %.2e, tolerance %.0e)\n", worst, tol);
    }
done:
    free(x); free(y); free(yr);
    kiln_session_free(s); kiln_session_free(rs);
    kiln_module_free(m); kiln_module_free(ref);
    kiln_graph_free(g);
    return rc;
}

static void help(FILE *f) {
    fprintf(f, "usage: kiln demo [--device auto|cpu|cuda] [--fp32|--tf32|--fp16|--bf16] [--seconds S]\n"
               "                 [--model resnet18|resnet50] [--timing-cache FILE] [--profile] [--no-check]\n"
               "                 [--batches 1,8,...] [--nchw]\n\n"
               "Builds ResNet-18 (or --model resnet50; 224x224, seeded random weights) through the graph\n"
               "API, compiles it for the best device present (or --device) with a batch profile 1..16\n"
               "and prints the build time, the median latency at batch 1 and 8 with graphs off and on\n"
               "(--seconds of runs each, default 2), with --profile the device time of every step at\n"
               "batch 1 (kiln_session_profile), and checks the outputs against the CPU reference\n"
               "kernels (unless --no-check). --timing-cache reuses and updates tactic timings.\n"
               "--batches times other batch sizes (the profile's max becomes the largest; tactics are\n"
               "still timed at batch 8; batches above 16 are not checked: the CPU reference is slow).\n"
               "--nchw keeps every activation NCHW (no NHWC layout pass), for before/after timings.\n");
}

const kiln_cli_command kiln_cmd_demo = {"demo", "build, run and check ResNet-18 (or -50) on the best device", run, help};
