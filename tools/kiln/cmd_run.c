/* kiln run: run a model once on inputs from .npy files (or seeded random data) and print or save
 * its outputs. An .onnx model is compiled on the fly for exactly the given shapes. */
#include "args.h"

#include "base/base.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static size_t output_capacity(const kiln_io_info *io) {
    int64_t most = 1;
    const int64_t *d[3] = {io->min, io->opt, io->max};
    for (int p = 0; p < 3; p++) {
        int64_t n = 1;
        for (int i = 0; i < io->rank; i++) n *= d[p][i] > 0 ? d[p][i] : 0;
        if (n > most) most = n;
    }
    return (size_t)most * kiln_dtype_size(io->dtype);
}

/* First values and statistics of an output (as doubles). */
static void print_values(const kiln_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    if (n == 0) {
        printf("  (empty)\n");
        return;
    }
    int show = n < 8 ? (int)n : 8;
    printf("  values:");
    for (int i = 0; i < show; i++) printf(" %.6g", kn_load_f64(t->data, t->dtype, i));
    printf("%s\n", n > show ? " ..." : "");
    double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
    int64_t finite = 0, nan = 0, inf = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = kn_load_f64(t->data, t->dtype, i);
        if (isnan(v)) { nan++; continue; }
        if (isinf(v)) { inf++; continue; }
        finite++;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        sum += v;
        sq += v * v;
    }
    if (finite) {
        double mean = sum / (double)finite, var = sq / (double)finite - mean * mean;
        printf("  min %.6g  max %.6g  mean %.6g  std %.6g", mn, mx, mean, sqrt(var > 0 ? var : 0));
    }
    if (nan || inf) printf("%s%lld NaN, %lld Inf", finite ? "  " : "  ", (long long)nan, (long long)inf);
    printf("\n");
}

static int make_dir(const char *dir) {
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    }
    fprintf(stderr, "kiln run: --output-dir %s: cannot create the folder: %s\n", dir, strerror(errno));
    return 1;
}

static int write_output(const char *dir, const char *name, const kiln_tensor *t) {
    char file[512], path[4096];
    kc_safe_filename(name, file, sizeof file);
    snprintf(path, sizeof path, "%s/%s.npy", dir, file);
    const void *data = t->data;
    kiln_dtype dtype = t->dtype;
    float *conv = NULL;
    if (dtype == KILN_BF16) { /* NumPy has no bfloat16: widen exactly to float32 */
        int64_t n = 1;
        for (int i = 0; i < t->rank; i++) n *= t->dims[i];
        conv = malloc((size_t)(n ? n : 1) * sizeof(float));
        if (!conv) {
            fprintf(stderr, "kiln run: out of host memory converting '%s'\n", name);
            return 1;
        }
        for (int64_t i = 0; i < n; i++) conv[i] = kn_bf16_to_f32(((const uint16_t *)t->data)[i]);
        data = conv;
        dtype = KILN_F32;
    }
    kiln_status st = kiln_npy_write(path, dtype, t->rank, t->dims, data);
    free(conv);
    if (st != KILN_OK) return kiln_cli_fail("run", "writing an output");
    printf("  -> %s%s\n", path, t->dtype == KILN_BF16 ? " (bf16 widened to float32: NumPy has no bfloat16)" : "");
    return 0;
}

static int run(int argc, char **argv) {
    kc_args a;
    kc_args_init(&a, "run", argc, argv);
    kc_build b;
    kc_build_init(&b, 0);
    kc_inputs in;
    kc_inputs_init(&in);
    const char *model = NULL, *out_dir = NULL;
    kiln_cudagraphs_mode mode = KILN_CUDAGRAPHS_DEFAULT;
    while (kc_next(&a)) {
        if (kc_build_flag(&a, &b) || kc_inputs_flag(&a, &in)) continue;
        if (kc_flag(&a, "--output-dir", NULL)) {
            if (!a.failed && !*a.value) kc_usage(&a, "--output-dir needs a folder");
            out_dir = a.value;
        } else if (kc_flag(&a, "--cudagraphs", NULL)) {
            if (!a.failed && !kc_parse_cudagraphs(a.value, 0, &mode, NULL))
                kc_usage(&a, "--cudagraphs '%s': expected off, block or whole", a.value);
        } else if (kc_positional(&a)) {
            if (model) kc_usage(&a, "more than one model given ('%s' and '%s')", model, a.arg);
            model = a.arg;
        } else kc_unknown(&a);
    }
    int rc = 0;
    if (a.failed) rc = 2;
    else if (!model) rc = kiln_cli_usage_error("run", "no model given (kiln run MODEL.onnx|MODEL.kiln)");
    if (rc) {
        kc_build_free(&b);
        return rc;
    }

    kc_model mdl = {0};
    kiln_session *s = NULL;
    kiln_tensor outs[KC_MAX_SHAPES];
    void *out_bufs[KC_MAX_SHAPES] = {0};
    size_t out_cap[KC_MAX_SHAPES] = {0};
    int n_out = 0;
    kc_shapes run_shapes;
    if (b.verbose) kiln_set_log_level(2);
    if (!kc_is_kiln_file(model) && (rc = kc_load_graph("run", model, &mdl.graph))) goto done;
    if ((rc = kc_inputs_read("run", &in, mdl.graph))) goto done;
    if ((rc = kc_inputs_shapes("run", &in, &b.shapes, &run_shapes))) goto done;
    if (mdl.graph && (rc = kc_inputs_check_dynamic("run", mdl.graph, &b, &run_shapes))) goto done;
    if ((rc = kc_load_model("run", model, &b, &run_shapes, &mdl))) goto done;
    if ((rc = kc_inputs_make("run", &in, mdl.module, &run_shapes))) goto done;

    if (kiln_session_create(mdl.module, &s) != KILN_OK) {
        rc = kiln_cli_fail("run", "creating a session");
        goto done;
    }
    if (mode != KILN_CUDAGRAPHS_DEFAULT && kiln_session_set_cudagraphs_mode(s, mode) != KILN_OK) {
        rc = kiln_cli_fail("run", "setting the CUDA-graph mode");
        goto done;
    }
    n_out = kiln_module_num_outputs(mdl.module);
    if (n_out > KC_MAX_SHAPES) {
        fprintf(stderr, "kiln run: the model has %d outputs; this tool takes at most %d\n", n_out, KC_MAX_SHAPES);
        rc = 1;
        n_out = 0;
        goto done;
    }
    char dims[128];
    printf("model %s: device %s, %d segment%s (%d engine block%s)\n", model,
           kc_device_name(kiln_module_device(mdl.module)), kiln_module_num_segments(mdl.module),
           kiln_module_num_segments(mdl.module) == 1 ? "" : "s", kiln_module_num_engine_blocks(mdl.module),
           kiln_module_num_engine_blocks(mdl.module) == 1 ? "" : "s");
    for (int k = 0; k < in.n_tensors; k++) {
        kiln_io_info io;
        kiln_module_input_info(mdl.module, k, &io);
        const char *from = NULL;
        for (int i = 0; i < in.n_files; i++)
            if (!strcmp(in.files[i].name, io.name)) from = in.files[i].path;
        kc_dims_str(in.tensors[k].rank, in.tensors[k].dims, dims, sizeof dims);
        if (from) printf("input  '%s': %s %s (from %s)\n", io.name, kiln_dtype_name(in.tensors[k].dtype), dims, from);
        else printf("input  '%s': %s %s (random, seed %llu)\n", io.name, kiln_dtype_name(in.tensors[k].dtype), dims,
                    (unsigned long long)in.seed);
    }
    for (int k = 0; k < n_out; k++) {
        kiln_io_info io;
        if (kiln_module_output_info(mdl.module, k, &io) != KILN_OK) {
            rc = kiln_cli_fail("run", "reading the model's outputs");
            goto done;
        }
        out_cap[k] = output_capacity(&io);
        out_bufs[k] = malloc(out_cap[k] ? out_cap[k] : 1);
        if (!out_bufs[k]) {
            fprintf(stderr, "kiln run: out of host memory for output '%s'\n", io.name);
            rc = 1;
            goto done;
        }
        memset(&outs[k], 0, sizeof outs[k]);
        outs[k].data = out_bufs[k];
        outs[k].device = KILN_DEVICE_CPU;
    }
    double t0 = kn_now_ms();
    if (kiln_session_run(s, in.tensors, in.n_tensors, outs, n_out) != KILN_OK ||
        kiln_session_synchronize(s) != KILN_OK) {
        rc = kiln_cli_fail("run", "running the model");
        goto done;
    }
    double ms = kn_now_ms() - t0;
    printf("ran in %.3f ms (first run: includes preparing this shape)\n", ms);
    if (out_dir && (rc = make_dir(out_dir))) goto done;
    for (int k = 0; k < n_out; k++) {
        kiln_io_info io;
        kiln_module_output_info(mdl.module, k, &io);
        const kiln_tensor *t = &outs[k];
        int64_t n = 1;
        for (int i = 0; i < t->rank; i++) n *= t->dims[i];
        if ((size_t)n * kiln_dtype_size(t->dtype) > out_cap[k]) { /* the plan bounds every output */
            fprintf(stderr, "kiln run: output '%s' is larger than the profile's max shape allows\n", io.name);
            rc = 1;
            goto done;
        }
        printf("output '%s': %s %s\n", io.name, kiln_dtype_name(t->dtype), kc_dims_str(t->rank, t->dims, dims, sizeof dims));
        print_values(t);
        if (out_dir && (rc = write_output(out_dir, io.name, t))) goto done;
    }
done:
    for (int k = 0; k < n_out; k++) free(out_bufs[k]);
    kiln_session_free(s);
    kc_model_free(&mdl);
    kc_inputs_free(&in);
    kc_build_free(&b);
    return rc;
}

static void help(FILE *f) {
    fprintf(f,
            "usage: kiln run MODEL.onnx|MODEL.kiln [--shapes NAME:DIMS,...] [--input NAME=FILE.npy ...]\n"
            "                [--output-dir DIR] [--seed N] [--cudagraphs off|block|whole] [build options]\n\n"
            "Runs a model once and prints each output's name, shape, first values and statistics.\n"
            "An .onnx model is compiled first; its profile is the run shapes (--shapes, or the shapes of\n"
            "the --input files) unless --min/--opt/--max say otherwise.\n\n"
            "options:\n"
            "  --shapes NAME:DIMS[,...]    the shapes to run at (default: the profile's opt shapes)\n"
            "  -i, --input NAME=FILE.npy   an input's data as a NumPy .npy file (little-endian, C order;\n"
            "                              <f4 <f2 <f8 <i8 <i4 |i1 |u1 |b1); FILE.npy alone for a model with\n"
            "                              one input. Inputs without a file get seeded random data:\n"
            "                              floats uniform in [-1, 1), integers in [0, 4), bools 0/1\n"
            "  --seed N                    the random inputs' seed (default 1)\n"
            "  --output-dir DIR            write each output as DIR/NAME.npy (bf16 outputs as float32)\n"
            "  --cudagraphs off|block|whole\n"
            "                              run with CUDA graphs: none, one per engine block, or the whole\n"
            "                              module as one graph (default: the global switch, off)\n");
    kc_build_help(f, 0);
    fprintf(f,
            "\nexamples:\n"
            "  kiln run resnet18.onnx --shapes x:8x3x224x224 --output-dir out\n"
            "  kiln run resnet18.kiln --input x=batch.npy --cudagraphs whole\n"
            "\nexit status: 0 success, 1 the model or an input did not load, compile or run, 2 a usage error.\n");
}

const kiln_cli_command kiln_cmd_run = {"run", "run a model on .npy or random inputs and save its outputs", run, help};
