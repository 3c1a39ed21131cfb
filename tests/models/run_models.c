/* Model tests against PyTorch: imports each model exported by export_models.py, compiles it for the
 * CPU (or, with KILN_MODELS_DEVICE=cuda, the GPU; fp32 either way) with a batch profile 1..3, runs batch 1 and batch 3 and compares with PyTorch's outputs.
 *
 *     kiln_model_check MODELS_DIR [name ...]
 *
 * The error is max|kiln - torch| / max|torch| over the output (relative to the output's scale, so
 * that values near zero do not dominate); above 1e-3 (fp32) the model fails. Exit 0 when every
 * model passes. */
#include "kiln.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOL 1e-3

/* where the models run (KILN_MODELS_DEVICE; the CPU unless it says cuda) */
static kiln_device g_device = KILN_DEVICE_CPU;

static const char *const default_models[] = {"resnet18",    "resnet50",        "mobilenet_v2", "squeezenet1_1",
                                             "densenet121", "efficientnet_b0", "transformer"};

typedef struct npy {
    float *data;
    int rank;
    int64_t dims[KILN_MAX_RANK];
} npy;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Reads a little-endian float32, C-order .npy file (format 1.0 to 3.0). */
static int npy_read(const char *path, npy *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 0;
    }
    unsigned char head[12];
    int ok = fread(head, 1, 10, f) == 10 && !memcmp(head, "\x93NUMPY", 6);
    uint32_t hlen = 0;
    if (ok && head[6] == 1) {
        hlen = head[8] | (uint32_t)head[9] << 8;
    } else if (ok && (head[6] == 2 || head[6] == 3) && fread(head + 10, 1, 2, f) == 2) {
        hlen = head[8] | (uint32_t)head[9] << 8 | (uint32_t)head[10] << 16 | (uint32_t)head[11] << 24;
    } else {
        ok = 0;
    }
    char *h = ok && hlen < 65536 ? calloc(hlen + 1, 1) : NULL;
    ok = ok && h && fread(h, 1, hlen, f) == hlen;
    ok = ok && strstr(h, "'descr': '<f4'") && strstr(h, "'fortran_order': False");
    const char *sh = ok ? strstr(h, "'shape': (") : NULL;
    int64_t n = 1;
    if (sh) {
        const char *p = sh + 10;
        while (*p && *p != ')' && out->rank < KILN_MAX_RANK) {
            char *end;
            long long d = strtoll(p, &end, 10);
            if (end == p) break;
            out->dims[out->rank++] = d;
            n *= d;
            p = end;
            while (*p == ',' || *p == ' ') p++;
        }
    }
    ok = ok && sh && out->rank > 0;
    if (ok) {
        out->data = malloc((size_t)n * sizeof(float));
        ok = out->data && fread(out->data, sizeof(float), (size_t)n, f) == (size_t)n;
    }
    free(h);
    fclose(f);
    if (!ok) {
        fprintf(stderr, "%s: not a float32 C-order .npy file\n", path);
        free(out->data);
        out->data = NULL;
    }
    return ok;
}

static int64_t numel(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    return n;
}

/* Returns 1 when the model passes. */
static int check_model(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    kiln_graph *g = NULL;
    kiln_module *m = NULL;
    kiln_session *s = NULL;
    npy x[2] = {{0}}, y[2] = {{0}};
    const int batches[2] = {1, 3};
    int pass = 0;
    double t0 = now_ms();
    if (kiln_graph_load_onnx(path, &g) != KILN_OK) {
        printf("%-16s FAIL import: %s\n", name, kiln_last_error());
        goto done;
    }
    double t_import = now_ms() - t0;
    for (int b = 0; b < 2; b++) {
        snprintf(path, sizeof path, "%s/%s.x_b%d.npy", dir, name, batches[b]);
        if (!npy_read(path, &x[b])) goto done;
        snprintf(path, sizeof path, "%s/%s.y_b%d.npy", dir, name, batches[b]);
        if (!npy_read(path, &y[b])) goto done;
    }
    kiln_input_profile p = {.name = "x", .rank = x[0].rank};
    for (int d = 0; d < x[0].rank; d++) p.min[d] = p.opt[d] = p.max[d] = x[0].dims[d];
    p.min[0] = 1;
    p.opt[0] = p.max[0] = 3;
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = g_device;
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    cfg.time_tactics = false;
    t0 = now_ms();
    if (kiln_compile(g, &cfg, &m) != KILN_OK) {
        printf("%-16s FAIL compile: %s\n", name, kiln_last_error());
        goto done;
    }
    double t_compile = now_ms() - t0;
    if (kiln_session_create(m, &s) != KILN_OK) {
        printf("%-16s FAIL session: %s\n", name, kiln_last_error());
        goto done;
    }
    pass = 1;
    for (int b = 0; b < 2; b++) {
        kiln_tensor in = {.data = x[b].data, .dtype = KILN_F32, .rank = x[b].rank, .device = KILN_DEVICE_CPU};
        memcpy(in.dims, x[b].dims, sizeof in.dims);
        /* a host buffer the size of PyTorch's output (with data NULL a CUDA session would hand back
         * its own device buffer) */
        kiln_io_info oi;
        int64_t cap = numel(y[b].rank, y[b].dims);
        if (kiln_module_output_info(m, 0, &oi) == KILN_OK && numel(oi.rank, oi.max) > cap) cap = numel(oi.rank, oi.max);
        float *host = malloc((size_t)cap * sizeof(float) + sizeof(float));
        if (!host) {
            printf("%-16s FAIL batch %d: out of host memory\n", name, batches[b]);
            pass = 0;
            continue;
        }
        kiln_tensor out = {.data = host, .device = KILN_DEVICE_CPU};
        t0 = now_ms();
        if (kiln_session_run(s, &in, 1, &out, 1) != KILN_OK) {
            printf("%-16s FAIL run at batch %d: %s\n", name, batches[b], kiln_last_error());
            pass = 0;
            free(host);
            continue;
        }
        double t_run = now_ms() - t0;
        int same = out.dtype == KILN_F32 && out.rank == y[b].rank;
        for (int d = 0; same && d < out.rank; d++) same = out.dims[d] == y[b].dims[d];
        if (!same) {
            printf("%-16s FAIL batch %d: output has rank %d, dim 0 %lld\n", name, batches[b], out.rank,
                   (long long)(out.rank ? out.dims[0] : 0));
            pass = 0;
            free(host);
            continue;
        }
        int64_t n = numel(y[b].rank, y[b].dims);
        double num = 0, den = 0, rel = 0;
        const float *got = out.data;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - y[b].data[i]);
            if (d > num || isnan(d)) num = isnan(d) ? INFINITY : d;
            if (fabs(y[b].data[i]) > den) den = fabs(y[b].data[i]);
        }
        free(host);
        rel = num / (den > 0 ? den : 1);
        int ok = rel <= TOL;
        pass &= ok;
        printf("%-16s batch %d: max error %.3g (max|torch| %.3g), relative %.3g  %s  (import %.0f ms, compile "
               "%.0f ms, run %.0f ms)\n", name, batches[b], num, den, rel, ok ? "ok" : "FAIL", t_import, t_compile,
               t_run);
    }
done:
    for (int b = 0; b < 2; b++) {
        free(x[b].data);
        free(y[b].data);
    }
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
    fflush(stdout);
    return pass;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: kiln_model_check MODELS_DIR [name ...]   (KILN_MODELS_DEVICE=cuda: on the GPU)\n");
        return 2;
    }
    const char *dev = getenv("KILN_MODELS_DEVICE");
    if (dev && strcmp(dev, "cuda") == 0) g_device = KILN_DEVICE_CUDA;
    else if (dev && strcmp(dev, "cpu") != 0) {
        fprintf(stderr, "KILN_MODELS_DEVICE must be cpu or cuda, got '%s'\n", dev);
        return 2;
    }
    printf("device %s\n", g_device == KILN_DEVICE_CUDA ? "cuda" : "cpu");
    int n = argc > 2 ? argc - 2 : (int)(sizeof default_models / sizeof default_models[0]);
    int failed = 0;
    for (int i = 0; i < n; i++) failed += !check_model(argv[1], argc > 2 ? argv[2 + i] : default_models[i]);
    printf("%d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
