/* Helpers shared by the kiln commands; see args.h. */
#include "args.h"

#include "ir/ir.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- shape strings -------------------------------------------------------------------------- */

int kc_parse_dims(const char *text, int *rank, int64_t *dims, char *err, size_t cap) {
    *rank = 0;
    if (!text || !*text) {
        snprintf(err, cap, "no dims (expected e.g. 1x3x224x224)");
        return 0;
    }
    const char *p = text;
    for (;;) {
        if (*p == '-') {
            snprintf(err, cap, "negative dim in '%s': dims are sizes >= 0", text);
            return 0;
        }
        if (*p == 'x' || *p == 'X' || *p == 0) {
            snprintf(err, cap, "empty dim in '%s' (expected e.g. 1x3x224x224)", text);
            return 0;
        }
        if (!isdigit((unsigned char)*p)) {
            snprintf(err, cap, "'%c' in '%s' is not a digit (dims are written like 1x3x224x224)", *p, text);
            return 0;
        }
        int64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            if (v > ((int64_t)1 << 40)) {
                snprintf(err, cap, "dim too large in '%s'", text);
                return 0;
            }
            v = v * 10 + (*p++ - '0');
        }
        if (*rank >= KILN_MAX_RANK) {
            snprintf(err, cap, "'%s' has more than %d dims", text, KILN_MAX_RANK);
            return 0;
        }
        dims[(*rank)++] = v;
        if (*p == 0) return 1;
        if (*p != 'x' && *p != 'X') {
            if (*p == '-') snprintf(err, cap, "negative dim in '%s': dims are sizes >= 0", text);
            else snprintf(err, cap, "'%c' in '%s' is not a digit (dims are written like 1x3x224x224)", *p, text);
            return 0;
        }
        p++;
    }
}

const kc_shape *kc_shapes_find(const kc_shapes *list, const char *name) {
    for (int i = 0; list && i < list->n; i++)
        if (!strcmp(list->v[i].name, name)) return &list->v[i];
    return NULL;
}

int kc_parse_shapes(const char *text, kc_shapes *list, char *err, size_t cap) {
    if (!text || !*text) {
        snprintf(err, cap, "empty shape list (expected NAME:DIMS, e.g. x:1x3x224x224)");
        return 0;
    }
    const char *p = text;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[KC_NAME_MAX + 128];
        if (len == 0) {
            snprintf(err, cap, "empty entry in '%s' (expected NAME:DIMS[,NAME:DIMS...])", text);
            return 0;
        }
        if (len >= sizeof entry) {
            snprintf(err, cap, "entry too long in '%s'", text);
            return 0;
        }
        memcpy(entry, p, len);
        entry[len] = 0;
        char *colon = strrchr(entry, ':');
        if (!colon) {
            snprintf(err, cap, "'%s' has no input name (expected NAME:DIMS, e.g. NAME:%s)", entry, entry);
            return 0;
        }
        *colon = 0;
        if (!entry[0]) {
            snprintf(err, cap, "'%s:%s' has an empty input name (expected NAME:DIMS)", entry, colon + 1);
            return 0;
        }
        if (strlen(entry) >= KC_NAME_MAX) {
            snprintf(err, cap, "input name '%.40s...' is too long", entry);
            return 0;
        }
        if (kc_shapes_find(list, entry)) {
            snprintf(err, cap, "input '%s' is given twice", entry);
            return 0;
        }
        if (list->n >= KC_MAX_SHAPES) {
            snprintf(err, cap, "more than %d shapes", KC_MAX_SHAPES);
            return 0;
        }
        kc_shape *s = &list->v[list->n];
        char derr[256];
        if (!colon[1]) {
            snprintf(err, cap, "input '%s' has no dims after ':' (expected e.g. %s:1x3x224x224)", entry, entry);
            return 0;
        }
        if (!kc_parse_dims(colon + 1, &s->rank, s->dims, derr, sizeof derr)) {
            snprintf(err, cap, "input '%s': %s", entry, derr);
            return 0;
        }
        memcpy(s->name, entry, strlen(entry) + 1); /* fits: checked above */
        list->n++;
        if (!end) return 1;
        p = end + 1;
    }
}

const char *kc_dims_str(int rank, const int64_t *dims, char *buf, size_t cap) {
    if (rank == 0) {
        snprintf(buf, cap, "scalar");
        return buf;
    }
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? "x" : "", (long long)dims[i]);
    return buf;
}

/* ---- the argument cursor -------------------------------------------------------------------- */

void kc_args_init(kc_args *a, const char *cmd, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->i = 0; /* argv[0] is the command */
}

int kc_next(kc_args *a) {
    if (a->failed) return 0;
    a->i++;
    if (a->i >= a->argc) return 0;
    a->arg = a->argv[a->i];
    a->value = NULL;
    return 1;
}

int kc_usage(kc_args *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    a->failed = 1;
    return kiln_cli_usage_error(a->cmd, "%s", msg);
}

int kc_switch(kc_args *a, const char *name) {
    size_t n = strlen(name);
    if (strncmp(a->arg, name, n)) return 0;
    if (a->arg[n] == 0) return 1;
    if (a->arg[n] == '=') {
        kc_usage(a, "%s takes no value (got '%s')", name, a->arg);
        return 1;
    }
    return 0;
}

static int kc_flag1(kc_args *a, const char *name) {
    size_t n = strlen(name);
    if (strncmp(a->arg, name, n)) return 0;
    if (a->arg[n] == '=') {
        a->value = a->arg + n + 1;
        return 1;
    }
    if (a->arg[n] != 0) return 0;
    if (a->i + 1 >= a->argc) {
        kc_usage(a, "%s needs a value", name);
        a->value = "";
        return 1;
    }
    a->value = a->argv[++a->i];
    return 1;
}

int kc_flag(kc_args *a, const char *name, const char *alias) {
    return kc_flag1(a, name) || (alias && kc_flag1(a, alias));
}

int kc_positional(const kc_args *a) { return a->arg[0] != '-' || a->arg[1] == 0; }

int kc_unknown(kc_args *a) {
    if (kc_positional(a)) return kc_usage(a, "unexpected argument '%s'", a->arg);
    return kc_usage(a, "unknown flag '%s'", a->arg);
}

int kc_parse_ll(const char *s, long long lo, long long hi, long long *out) {
    if (!s || !*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int kc_parse_double(const char *s, double lo, double hi, double *out) {
    if (!s || !*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* ---- devices and modes ---------------------------------------------------------------------------- */

int kc_parse_device(const char *s, kiln_device *dev, int *index) {
    *index = 0;
    if (!strcmp(s, "cpu")) *dev = KILN_DEVICE_CPU;
    else if (!strcmp(s, "auto")) *dev = KILN_DEVICE_AUTO;
    else if (!strcmp(s, "cuda") || !strcmp(s, "gpu")) *dev = KILN_DEVICE_CUDA;
    else if (!strncmp(s, "cuda:", 5)) {
        long long v;
        if (!kc_parse_ll(s + 5, 0, 1023, &v)) return 0;
        *dev = KILN_DEVICE_CUDA;
        *index = (int)v;
    } else return 0;
    return 1;
}

const char *kc_device_name(kiln_device dev) {
    switch (dev) {
    case KILN_DEVICE_CPU: return "cpu";
    case KILN_DEVICE_CUDA: return "cuda";
    case KILN_DEVICE_AUTO: return "auto";
    }
    return "?";
}

int kc_parse_cudagraphs(const char *s, int allow_all, kiln_cudagraphs_mode *mode, int *all) {
    if (all) *all = 0;
    if (!strcmp(s, "off")) *mode = KILN_CUDAGRAPHS_OFF;
    else if (!strcmp(s, "block") || !strcmp(s, "per-block") || !strcmp(s, "per_block")) *mode = KILN_CUDAGRAPHS_PER_BLOCK;
    else if (!strcmp(s, "whole")) *mode = KILN_CUDAGRAPHS_WHOLE;
    else if (allow_all && !strcmp(s, "all")) {
        *mode = KILN_CUDAGRAPHS_OFF;
        *all = 1;
    } else return 0;
    return 1;
}

const char *kc_cudagraphs_name(kiln_cudagraphs_mode mode) {
    switch (mode) {
    case KILN_CUDAGRAPHS_OFF: return "off";
    case KILN_CUDAGRAPHS_PER_BLOCK: return "block";
    case KILN_CUDAGRAPHS_WHOLE: return "whole";
    case KILN_CUDAGRAPHS_DEFAULT: return "default";
    }
    return "?";
}

/* ---- torch op names ------------------------------------------------------------------------------ */

static const struct {
    const char *aten;
    const char *onnx;
} kc_torch_ops[] = {
    {"add", "Add"}, {"sub", "Sub"}, {"rsub", "Sub"}, {"mul", "Mul"}, {"div", "Div"},
    {"relu", "Relu"}, {"relu6", "Clip"}, {"hardtanh", "Clip"}, {"clamp", "Clip"}, {"clamp_min", "Clip"},
    {"clamp_max", "Clip"}, {"clip", "Clip"}, {"sigmoid", "Sigmoid"}, {"tanh", "Tanh"}, {"gelu", "Gelu"},
    {"leaky_relu", "LeakyRelu"}, {"elu", "Elu"}, {"selu", "Selu"}, {"hardswish", "HardSwish"},
    {"hardsigmoid", "HardSigmoid"}, {"softplus", "Softplus"}, {"mish", "Mish"}, {"prelu", "PRelu"},
    {"_prelu_kernel", "PRelu"}, {"erf", "Erf"},
    {"conv1d", "Conv"}, {"conv2d", "Conv"}, {"conv3d", "Conv"}, {"convolution", "Conv"},
    {"_convolution", "Conv"}, {"conv_transpose1d", "ConvTranspose"}, {"conv_transpose2d", "ConvTranspose"},
    {"conv_transpose3d", "ConvTranspose"},
    {"addmm", "Gemm"}, {"linear", "Gemm,MatMul"}, {"mm", "MatMul"}, {"bmm", "MatMul"}, {"matmul", "MatMul"},
    {"max_pool1d", "MaxPool"}, {"max_pool2d", "MaxPool"}, {"max_pool3d", "MaxPool"},
    {"max_pool2d_with_indices", "MaxPool"}, {"avg_pool1d", "AveragePool"}, {"avg_pool2d", "AveragePool"},
    {"avg_pool3d", "AveragePool"}, {"adaptive_avg_pool2d", "GlobalAveragePool,AveragePool"},
    {"adaptive_max_pool2d", "GlobalMaxPool,MaxPool"},
    {"batch_norm", "BatchNormalization"}, {"native_batch_norm", "BatchNormalization"},
    {"_native_batch_norm_legit", "BatchNormalization"},
    {"_native_batch_norm_legit_no_training", "BatchNormalization"},
    {"instance_norm", "InstanceNormalization"}, {"layer_norm", "LayerNormalization"},
    {"native_layer_norm", "LayerNormalization"},
    {"softmax", "Softmax"}, {"_softmax", "Softmax"}, {"log_softmax", "LogSoftmax"}, {"_log_softmax", "LogSoftmax"},
    {"flatten", "Flatten"}, {"view", "Reshape"}, {"reshape", "Reshape"}, {"_unsafe_view", "Reshape"},
    {"permute", "Transpose"}, {"transpose", "Transpose"}, {"t", "Transpose"}, {"cat", "Concat"},
    {"concat", "Concat"}, {"split", "Split"}, {"split_with_sizes", "Split"}, {"chunk", "Split"},
    {"slice", "Slice"}, {"squeeze", "Squeeze"}, {"unsqueeze", "Unsqueeze"}, {"expand", "Expand"},
    {"repeat", "Tile"}, {"index_select", "Gather"}, {"embedding", "Gather"}, {"constant_pad_nd", "Pad"},
    {"pad", "Pad"}, {"upsample_nearest2d", "Resize"}, {"upsample_bilinear2d", "Resize"},
    {"mean", "ReduceMean"}, {"sum", "ReduceSum"}, {"amax", "ReduceMax"}, {"amin", "ReduceMin"},
    {"maximum", "Max"}, {"minimum", "Min"}, {"pow", "Pow"}, {"sqrt", "Sqrt"}, {"rsqrt", "Sqrt,Reciprocal"},
    {"reciprocal", "Reciprocal"}, {"neg", "Neg"}, {"abs", "Abs"}, {"exp", "Exp"}, {"log", "Log"},
    {"floor", "Floor"}, {"ceil", "Ceil"}, {"eq", "Equal"}, {"lt", "Less"}, {"gt", "Greater"},
    {"logical_not", "Not"}, {"logical_and", "And"}, {"where", "Where"}, {"clone", "Identity"},
    {"alias", "Identity"}, {"dropout", "Dropout"}, {"native_dropout", "Dropout"}, {"_to_copy", "Cast"},
    {"to", "Cast"}, {"arange", "Range"},
};

const char *kc_fallback_map(const char *name) {
    const char *p = name;
    if (!strncmp(p, "torch.ops.", 10)) p += 10;
    if (!strncmp(p, "aten::", 6)) p += 6;
    else if (!strncmp(p, "aten.", 5)) p += 5;
    else if (p == name) return name; /* an ONNX op type or a node name */
    else return NULL;                /* torch.ops.<other namespace> */
    char base[64];
    size_t n = strcspn(p, ".");
    if (n == 0 || n >= sizeof base) return NULL;
    memcpy(base, p, n);
    base[n] = 0;
    if (n > 1 && base[n - 1] == '_' && base[n - 2] != '_') base[n - 1] = 0; /* in-place forms: relu_ */
    for (size_t i = 0; i < sizeof kc_torch_ops / sizeof kc_torch_ops[0]; i++)
        if (!strcmp(kc_torch_ops[i].aten, base)) return kc_torch_ops[i].onnx;
    return NULL;
}

/* ---- build flags ------------------------------------------------------------------------------ */

void kc_build_init(kc_build *b, int shapes_are_profile) {
    memset(b, 0, sizeof *b);
    b->shapes_are_profile = shapes_are_profile;
    b->precision = -1;
    b->min_block_size = -1;
    b->workspace_mib = -1;
    b->device = KILN_DEVICE_AUTO;
}

void kc_build_free(kc_build *b) {
    for (int i = 0; i < b->n_fallback; i++) {
        free(b->fallback[i]);
        free(b->fallback_given[i]);
    }
    b->n_fallback = 0;
}

static int kc_shapes_flag(kc_args *a, kc_shapes *list, const char *flag) {
    char err[512];
    if (a->failed) return 1;
    if (!kc_parse_shapes(a->value, list, err, sizeof err)) kc_usage(a, "%s '%s': %s", flag, a->value, err);
    return 1;
}

static int kc_add_fallback(kc_args *a, kc_build *b, const char *token) {
    const char *mapped = kc_fallback_map(token);
    if (!mapped)
        return kc_usage(a, "--fallback-ops: unknown torch op '%s'; give its ONNX op type (e.g. Mul, Conv, "
                           "MaxPool) or a node name instead", token);
    const char *p = mapped;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (b->n_fallback >= KC_MAX_FALLBACK) return kc_usage(a, "--fallback-ops: more than %d entries", KC_MAX_FALLBACK);
        b->fallback[b->n_fallback] = strndup(p, n);
        b->fallback_given[b->n_fallback] = strdup(token);
        if (!b->fallback[b->n_fallback] || !b->fallback_given[b->n_fallback]) {
            free(b->fallback[b->n_fallback]);
            free(b->fallback_given[b->n_fallback]);
            fprintf(stderr, "kiln %s: out of memory\n", a->cmd);
            a->failed = 1;
            return 1;
        }
        b->n_fallback++;
        if (!p[n]) break;
        p += n + 1;
    }
    return 0;
}

int kc_build_flag(kc_args *a, kc_build *b) {
    static const struct {
        const char *flag;
        kiln_precision p;
    } precisions[] = {{"--fp32", KILN_PRECISION_FP32}, {"--tf32", KILN_PRECISION_TF32},
                      {"--fp16", KILN_PRECISION_FP16}, {"--bf16", KILN_PRECISION_BF16}};
    for (int i = 0; i < 4; i++)
        if (kc_switch(a, precisions[i].flag)) {
            if (a->failed) return 1;
            if (b->precision >= 0 && b->precision != (int)precisions[i].p)
                kc_usage(a, "%s and %s contradict each other: give one precision", b->precision_flag, precisions[i].flag);
            b->precision = (int)precisions[i].p;
            b->precision_flag = precisions[i].flag;
            return 1;
        }
    if (kc_flag(a, "--min", "--min-shapes")) return kc_shapes_flag(a, &b->min, "--min");
    if (kc_flag(a, "--opt", "--opt-shapes")) return kc_shapes_flag(a, &b->opt, "--opt");
    if (kc_flag(a, "--max", "--max-shapes")) return kc_shapes_flag(a, &b->max, "--max");
    if (kc_flag(a, "--shapes", NULL)) return kc_shapes_flag(a, &b->shapes, "--shapes");
    if (kc_flag(a, "--fallback-ops", NULL)) {
        if (a->failed) return 1;
        const char *p = a->value;
        if (!*p) return kc_usage(a, "--fallback-ops needs a list of op types or node names"), 1;
        for (;;) {
            size_t n = strcspn(p, ",");
            if (n == 0) return kc_usage(a, "--fallback-ops '%s': empty entry", a->value), 1;
            char tok[512];
            if (n >= sizeof tok) return kc_usage(a, "--fallback-ops: entry too long"), 1;
            memcpy(tok, p, n);
            tok[n] = 0;
            kc_add_fallback(a, b, tok);
            if (a->failed || !p[n]) return 1;
            p += n + 1;
        }
    }
    if (kc_flag(a, "--min-block-size", NULL)) {
        long long v;
        if (a->failed) return 1;
        if (!kc_parse_ll(a->value, 0, 1000000, &v))
            kc_usage(a, "--min-block-size '%s': expected an integer >= 0", a->value);
        else b->min_block_size = (int)v;
        return 1;
    }
    if (kc_switch(a, "--require-full-compilation")) {
        b->require_full = true;
        return 1;
    }
    if (kc_switch(a, "--avoid-runtime-compilation")) {
        b->avoid_rtc = true;
        return 1;
    }
    if (kc_flag(a, "--workspace-mib", NULL)) {
        long long v;
        if (a->failed) return 1;
        if (!kc_parse_ll(a->value, 1, 1 << 20, &v))
            kc_usage(a, "--workspace-mib '%s': expected a whole number of MiB from 1 to 1048576", a->value);
        else b->workspace_mib = v;
        return 1;
    }
    if (kc_switch(a, "--pass-through-build-failures")) {
        b->pass_through = true;
        return 1;
    }
    if (kc_flag(a, "--device", NULL)) {
        if (a->failed) return 1;
        if (!kc_parse_device(a->value, &b->device, &b->device_index))
            kc_usage(a, "--device '%s': expected cpu, cuda, cuda:N or auto", a->value);
        return 1;
    }
    if (kc_flag(a, "--timing-cache", NULL)) {
        if (a->failed) return 1;
        if (!*a->value) kc_usage(a, "--timing-cache needs a file name");
        b->timing_cache = a->value;
        return 1;
    }
    if (kc_switch(a, "--verbose") || kc_switch(a, "-v")) {
        b->verbose = true;
        return 1;
    }
    return 0;
}

void kc_build_help(FILE *f, int shapes_are_profile) {
    fprintf(f,
            "\nbuild options (for an .onnx model):\n"
            "  --min NAME:DIMS[,...]       profile minimum shapes, e.g. x:1x3x224x224\n"
            "  --opt NAME:DIMS[,...]       profile shapes that kernels are tuned for\n"
            "  --max NAME:DIMS[,...]       profile maximum shapes (memory is planned for these)\n");
    if (shapes_are_profile)
        fprintf(f, "  --shapes NAME:DIMS[,...]    fixed shapes: min = opt = max\n");
    fprintf(f,
            "  --fp32 | --tf32 | --fp16 | --bf16\n"
            "                              precision inside engine blocks (default fp32)\n"
            "  --fallback-ops LIST         ops forced out of engine blocks: ONNX op types (Mul), node\n"
            "                              names, or torch ops (torch.ops.aten.mul.Tensor, aten::conv2d)\n"
            "  --min-block-size N          engine blocks with fewer ops fall back (default 5)\n"
            "  --require-full-compilation  a graph break is an error\n"
            "  --pass-through-build-failures\n"
            "                              a failed engine build is an error, not a fallback\n"
            "  --device cpu|cuda[:N]|auto  where to build and run (default auto: CUDA when present)\n"
            "  --timing-cache FILE         reuse and update tactic timings in FILE\n"
            "  --avoid-runtime-compilation no library kernels compiled or set up for each new shape\n"
            "                              (cuDNN's runtime fusion, engines that pick a kernel per\n"
            "                              shape): a new shape takes milliseconds, at some cost in speed\n"
            "  --workspace-mib N           the most workspace one cuDNN plan may use, in MiB (default\n"
            "                              1024); plans needing more are not considered\n"
            "  --verbose, -v               log the passes and the build on stderr\n"
            "Missing profile parts are filled in: opt from %s, min and max from opt.\n",
            shapes_are_profile ? "max (else min)" : "--shapes (else max, else min)");
}

static int kc_profile_usage(const char *cmd, const char *fmt, ...) KN_CLI_PRINTF(2, 3);
static int kc_profile_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_cli_usage_error(cmd, "%s", msg);
}

static void kc_name_list_add(const char **names, int *n, const kc_shapes *l) {
    for (int i = 0; l && i < l->n; i++) {
        int seen = 0;
        for (int k = 0; k < *n; k++) seen |= !strcmp(names[k], l->v[i].name);
        if (!seen && *n < KC_MAX_SHAPES) names[(*n)++] = l->v[i].name;
    }
}

int kc_build_config(const char *cmd, kc_build *b, const kc_shapes *extra, kiln_build_config *cfg) {
    kiln_build_config_init(cfg);
    cfg->device = b->device;
    cfg->device_index = b->device_index;
    if (b->precision >= 0) cfg->precision = (kiln_precision)b->precision;
    if (b->min_block_size >= 0) cfg->min_block_size = b->min_block_size;
    cfg->fallback_ops = (const char *const *)b->fallback;
    cfg->num_fallback_ops = b->n_fallback;
    cfg->require_full_compilation = b->require_full;
    cfg->avoid_runtime_compilation = b->avoid_rtc;
    if (b->workspace_mib > 0) cfg->workspace_limit = (size_t)b->workspace_mib << 20;
    cfg->pass_through_build_failures = b->pass_through;
    cfg->timing_cache = b->timing_cache;
    cfg->verbose = b->verbose ? 1 : 0;

    const char *names[KC_MAX_SHAPES];
    int n = 0;
    kc_name_list_add(names, &n, &b->min);
    kc_name_list_add(names, &n, &b->opt);
    kc_name_list_add(names, &n, &b->max);
    kc_name_list_add(names, &n, &b->shapes);
    kc_name_list_add(names, &n, extra);
    b->n_profiles = 0;
    for (int k = 0; k < n; k++) {
        const char *name = names[k];
        const kc_shape *mn = kc_shapes_find(&b->min, name), *op = kc_shapes_find(&b->opt, name);
        const kc_shape *mx = kc_shapes_find(&b->max, name), *sh = kc_shapes_find(&b->shapes, name);
        const kc_shape *run = b->shapes_are_profile ? NULL : sh ? sh : kc_shapes_find(extra, name);
        if (b->shapes_are_profile && sh && (mn || op || mx))
            return kc_profile_usage(cmd, "input '%s' is given by --shapes and by --min/--opt/--max: give one or "
                                         "the other", name);
        kiln_input_profile *p = &b->profiles[b->n_profiles++];
        memset(p, 0, sizeof *p);
        p->name = name;
        if (!mn && !op && !mx) {
            const kc_shape *s = sh ? sh : kc_shapes_find(extra, name);
            p->rank = s->rank;
            memcpy(p->min, s->dims, sizeof p->min);
            memcpy(p->opt, s->dims, sizeof p->opt);
            memcpy(p->max, s->dims, sizeof p->max);
            continue;
        }
        const kc_shape *given[4] = {mn, op, mx, run};
        static const char *const what[4] = {"--min", "--opt", "--max", "the run shape"};
        for (int i = 0, first = -1; i < 4; i++) {
            if (!given[i]) continue;
            if (first < 0) first = i;
            else if (given[i]->rank != given[first]->rank)
                return kc_profile_usage(cmd, "input '%s': %s has %d dims but %s has %d", name, what[first],
                                        given[first]->rank, what[i], given[i]->rank);
        }
        const kc_shape *o = op ? op : run ? run : mx ? mx : mn;
        const kc_shape *lo = mn ? mn : o, *hi = mx ? mx : o;
        p->rank = lo->rank;
        char a[128], c[128], e[128];
        kc_dims_str(lo->rank, lo->dims, a, sizeof a);
        kc_dims_str(hi->rank, hi->dims, c, sizeof c);
        for (int d = 0; run && d < p->rank; d++)
            if (run->dims[d] < lo->dims[d] || run->dims[d] > hi->dims[d])
                return kc_profile_usage(cmd, "input '%s': the run shape %s is outside the profile %s..%s", name,
                                        kc_dims_str(run->rank, run->dims, e, sizeof e), a, c);
        for (int d = 0; d < p->rank; d++) {
            p->min[d] = lo->dims[d];
            p->opt[d] = o->dims[d];
            p->max[d] = hi->dims[d];
            if (!(p->min[d] <= p->opt[d] && p->opt[d] <= p->max[d]))
                return kc_profile_usage(cmd, "input '%s', dim %d: need min <= opt <= max, got %lld/%lld/%lld "
                                             "(min %s, opt %s, max %s)", name, d, (long long)p->min[d],
                                        (long long)p->opt[d], (long long)p->max[d], a,
                                        kc_dims_str(o->rank, o->dims, e, sizeof e), c);
        }
    }
    cfg->profiles = b->n_profiles ? b->profiles : NULL;
    cfg->num_profiles = b->n_profiles;
    return 0;
}

/* ---- models -------------------------------------------------------------------------------------- */

int kc_is_kiln_file(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && !strcmp(path + n - 5, ".kiln");
}

int kc_load_graph(const char *cmd, const char *path, kiln_graph **out) {
    *out = NULL;
    if (kiln_graph_load_onnx(path, out) != KILN_OK) {
        char what[1200];
        snprintf(what, sizeof what, "loading %s", path);
        return kiln_cli_fail(cmd, what);
    }
    return 0;
}

int kc_graph_num_inputs(const kiln_graph *g) { return g ? g->g.n_inputs : 0; }

const char *kc_graph_input(const kiln_graph *g, int k, int *rank, int64_t *dims) {
    const kn_value *v = &g->g.values[g->g.inputs[k]];
    *rank = v->rank;
    for (int i = 0; i < v->rank && i < KILN_MAX_RANK; i++) dims[i] = v->dims[i].sym >= 0 ? -1 : v->dims[i].v;
    return v->name;
}

void kc_check_fallback_names(const char *cmd, const kiln_graph *graph, const kc_build *b) {
    const kn_graph *g = &graph->g;
    for (int i = 0; i < b->n_fallback; i++) {
        if (i > 0 && !strcmp(b->fallback_given[i], b->fallback_given[i - 1])) continue; /* one group */
        int matched = 0;
        for (int j = i; j < b->n_fallback && !strcmp(b->fallback_given[j], b->fallback_given[i]); j++)
            for (int n = 0; n < g->n_nodes && !matched; n++) {
                const kn_node *nd = &g->nodes[n];
                matched = !strcmp(kn_op_name(nd->op), b->fallback[j]) || (nd->name && !strcmp(nd->name, b->fallback[j]));
            }
        if (matched) continue;
        int is_op = kn_op_from_name(b->fallback[i]) != KN_OP_INVALID;
        fprintf(stderr, "kiln %s: warning: --fallback-ops '%s' %s\n", cmd, b->fallback_given[i],
                is_op ? "matches no node of the model (no node has that op type)"
                      : "matches no op type or node name of the model; it has no effect");
    }
}

/* Every input name the user gave (--min/--opt/--max/--shapes, input files) must be a graph input. */
int kc_check_input_names(const char *cmd, const kiln_graph *graph, const kc_build *b, const kc_shapes *extra) {
    const kn_graph *g = &graph->g;
    const kc_shapes *lists[5] = {&b->min, &b->opt, &b->max, &b->shapes, extra};
    for (int l = 0; l < 5; l++)
        for (int i = 0; lists[l] && i < lists[l]->n; i++) {
            const char *name = lists[l]->v[i].name;
            int found = 0;
            for (int k = 0; k < g->n_inputs && !found; k++) found = !strcmp(g->values[g->inputs[k]].name, name);
            if (found) continue;
            char list[1024];
            size_t len = 0;
            list[0] = 0;
            for (int k = 0; k < g->n_inputs && len < sizeof list; k++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s'%s'", k ? ", " : "", g->values[g->inputs[k]].name);
            return kiln_cli_usage_error(cmd, "the model has no input '%s' (inputs: %s)", name, g->n_inputs ? list : "none");
        }
    return 0;
}

int kc_load_model(const char *cmd, const char *path, kc_build *b, const kc_shapes *extra, kc_model *out) {
    out->module = NULL;
    if (b->verbose) kiln_set_log_level(2);
    if (kc_is_kiln_file(path)) {
        const char *flag = b->min.n ? "--min" : b->opt.n ? "--opt" : b->max.n ? "--max"
                         : (b->shapes.n && b->shapes_are_profile) ? "--shapes" : b->precision_flag ? b->precision_flag
                         : b->n_fallback ? "--fallback-ops" : b->min_block_size >= 0 ? "--min-block-size"
                         : b->require_full ? "--require-full-compilation"
                         : b->avoid_rtc ? "--avoid-runtime-compilation" : b->workspace_mib > 0 ? "--workspace-mib"
                         : b->pass_through ? "--pass-through-build-failures" : b->timing_cache ? "--timing-cache" : NULL;
        if (flag)
            return kiln_cli_usage_error(cmd, "%s applies to .onnx models; %s is already compiled", flag, path);
        if (kiln_module_load(path, &out->module) != KILN_OK) {
            char what[1200];
            snprintf(what, sizeof what, "loading %s", path);
            return kiln_cli_fail(cmd, what);
        }
        kiln_device dev = kiln_module_device(out->module);
        if (b->device != KILN_DEVICE_AUTO && b->device != dev) {
            kiln_module_free(out->module);
            out->module = NULL;
            return kiln_cli_usage_error(cmd, "--device %s: %s was built for %s; rebuild it from the .onnx model",
                                        kc_device_name(b->device), path, kc_device_name(dev));
        }
        return 0;
    }
    kiln_build_config cfg;
    int rc = kc_build_config(cmd, b, extra, &cfg);
    if (rc) return rc;
    if (!out->graph && (rc = kc_load_graph(cmd, path, &out->graph))) return rc;
    if ((rc = kc_check_input_names(cmd, out->graph, b, extra))) return rc;
    kc_check_fallback_names(cmd, out->graph, b);
    if (kiln_compile(out->graph, &cfg, &out->module) != KILN_OK) {
        char what[1200];
        snprintf(what, sizeof what, "compiling %s", path);
        rc = kiln_cli_fail(cmd, what);
        kc_model_free(out);
        return rc;
    }
    return 0;
}

void kc_model_free(kc_model *m) {
    kiln_module_free(m->module);
    kiln_graph_free(m->graph);
    memset(m, 0, sizeof *m);
}

/* ---- inputs ---------------------------------------------------------------------------------------- */

void kc_inputs_init(kc_inputs *in) {
    memset(in, 0, sizeof *in);
    in->seed = 1;
}

void kc_inputs_free(kc_inputs *in) {
    for (int i = 0; i < in->n_files; i++) kiln_npy_free(&in->files[i].npy);
    for (int i = 0; i < in->n_tensors; i++) free(in->bufs[i]);
    in->n_files = in->n_tensors = 0;
}

int kc_inputs_flag(kc_args *a, kc_inputs *in) {
    if (kc_flag(a, "--input", "-i")) {
        if (a->failed) return 1;
        if (in->n_files >= KC_MAX_SHAPES) return kc_usage(a, "more than %d --input files", KC_MAX_SHAPES), 1;
        kc_input_file *f = &in->files[in->n_files];
        memset(f, 0, sizeof *f);
        const char *eq = strchr(a->value, '=');
        if (eq) {
            size_t n = (size_t)(eq - a->value);
            if (n == 0 || n >= sizeof f->name) return kc_usage(a, "--input '%s': expected NAME=FILE.npy", a->value), 1;
            memcpy(f->name, a->value, n);
            f->name[n] = 0;
            f->path = eq + 1;
        } else {
            f->path = a->value;
        }
        if (!*f->path) return kc_usage(a, "--input '%s': no file name", a->value), 1;
        for (int i = 0; i < in->n_files; i++)
            if (!strcmp(in->files[i].name, f->name))
                return kc_usage(a, "--input: input '%s' is given twice", f->name[0] ? f->name : "(unnamed)"), 1;
        in->n_files++;
        return 1;
    }
    if (kc_flag(a, "--seed", NULL)) {
        long long v;
        if (a->failed) return 1;
        if (!kc_parse_ll(a->value, 0, INT64_MAX, &v)) return kc_usage(a, "--seed '%s': expected an integer >= 0", a->value), 1;
        in->seed = (uint64_t)v;
        in->seed_given = 1;
        return 1;
    }
    return 0;
}

int kc_inputs_read(const char *cmd, kc_inputs *in, const kiln_graph *g) {
    for (int i = 0; i < in->n_files; i++) {
        kc_input_file *f = &in->files[i];
        if (!f->name[0]) {
            int n = g ? kc_graph_num_inputs(g) : -1;
            if (n != 1 || in->n_files != 1)
                return kiln_cli_usage_error(cmd, "--input %s: name the input (NAME=FILE.npy)%s", f->path,
                                            n > 1 ? ": the model has several inputs" : "");
            int rank;
            int64_t dims[KILN_MAX_RANK];
            snprintf(f->name, sizeof f->name, "%s", kc_graph_input(g, 0, &rank, dims));
        }
        if (kiln_npy_read(f->path, &f->npy) != KILN_OK) {
            char what[1200];
            snprintf(what, sizeof what, "reading input '%s'", f->name);
            return kiln_cli_fail(cmd, what);
        }
    }
    return 0;
}

int kc_inputs_shapes(const char *cmd, const kc_inputs *in, const kc_shapes *shapes, kc_shapes *out) {
    *out = *shapes;
    for (int i = 0; i < in->n_files; i++) {
        const kc_input_file *f = &in->files[i];
        const kc_shape *s = kc_shapes_find(shapes, f->name);
        char a[128], b[128];
        if (s) {
            int same = s->rank == f->npy.rank;
            for (int d = 0; same && d < s->rank; d++) same = s->dims[d] == f->npy.dims[d];
            if (!same)
                return kiln_cli_usage_error(cmd, "input '%s': --shapes gives %s but %s holds %s", f->name,
                                            kc_dims_str(s->rank, s->dims, a, sizeof a), f->path,
                                            kc_dims_str(f->npy.rank, f->npy.dims, b, sizeof b));
            continue;
        }
        if (out->n >= KC_MAX_SHAPES) return kiln_cli_usage_error(cmd, "too many inputs");
        kc_shape *o = &out->v[out->n++];
        snprintf(o->name, sizeof o->name, "%s", f->name);
        o->rank = f->npy.rank;
        memcpy(o->dims, f->npy.dims, sizeof o->dims);
    }
    return 0;
}

int kc_inputs_check_dynamic(const char *cmd, const kiln_graph *g, const kc_build *b, const kc_shapes *run) {
    for (int k = 0; k < kc_graph_num_inputs(g); k++) {
        int rank;
        int64_t dims[KILN_MAX_RANK];
        const char *name = kc_graph_input(g, k, &rank, dims);
        int dynamic = 0;
        for (int i = 0; i < rank; i++) dynamic |= dims[i] < 0;
        if (!dynamic || kc_shapes_find(run, name) || kc_shapes_find(&b->min, name) ||
            kc_shapes_find(&b->opt, name) || kc_shapes_find(&b->max, name))
            continue;
        char buf[256];
        size_t n = 0;
        const kn_value *v = &g->g.values[g->g.inputs[k]];
        for (int i = 0; i < rank && n < sizeof buf; i++) {
            const kn_dim d = v->dims[i];
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", i ? "x" : "");
            if (n >= sizeof buf) break;
            if (d.sym >= 0) n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", g->g.syms[d.sym].name);
            else if (d.v < 0) n += (size_t)snprintf(buf + n, sizeof buf - n, "?");
            else n += (size_t)snprintf(buf + n, sizeof buf - n, "%lld", (long long)d.v);
        }
        return kiln_cli_usage_error(cmd, "input '%s' has dynamic dims (%s): give its shape with --shapes %s:DIMS "
                                         "or its data with --input %s=FILE.npy", name, buf, name, name);
    }
    return 0;
}

/* splitmix64: a seeded stream, the same on every platform */
static uint64_t kc_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void kc_fill_random(void *data, kiln_dtype t, int64_t n, uint64_t *state) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = kc_rand(state);
        double u = (double)(r >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
        switch (t) {
        case KILN_F32: ((float *)data)[i] = (float)(2.0 * u - 1.0); break;
        case KILN_F64: ((double *)data)[i] = 2.0 * u - 1.0; break;
        case KILN_F16: ((uint16_t *)data)[i] = kn_f32_to_f16((float)(2.0 * u - 1.0)); break;
        case KILN_BF16: ((uint16_t *)data)[i] = kn_f32_to_bf16((float)(2.0 * u - 1.0)); break;
        case KILN_I64: ((int64_t *)data)[i] = (int64_t)(r >> 62); break;
        case KILN_I32: ((int32_t *)data)[i] = (int32_t)(r >> 62); break;
        case KILN_I8: ((int8_t *)data)[i] = (int8_t)(r >> 62); break;
        case KILN_U8: ((uint8_t *)data)[i] = (uint8_t)(r >> 62); break;
        case KILN_BOOL: ((uint8_t *)data)[i] = (uint8_t)(r >> 63); break;
        default: break;
        }
    }
}

int kc_inputs_make(const char *cmd, kc_inputs *in, const kiln_module *m, const kc_shapes *run) {
    int n = kiln_module_num_inputs(m);
    if (n > KC_MAX_SHAPES) {
        fprintf(stderr, "kiln %s: the model has %d inputs; this tool takes at most %d\n", cmd, n, KC_MAX_SHAPES);
        return 1;
    }
    kiln_io_info infos[KC_MAX_SHAPES];
    for (int k = 0; k < n; k++)
        if (kiln_module_input_info(m, k, &infos[k]) != KILN_OK) return kiln_cli_fail(cmd, "reading the model's inputs");
    /* every name the user gave must be an input */
    char list[1024];
    size_t len = 0;
    list[0] = 0;
    for (int k = 0; k < n && len < sizeof list; k++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s'%s'", k ? ", " : "", infos[k].name);
    for (int i = 0; i < in->n_files + (run ? run->n : 0); i++) {
        const char *name = i < in->n_files ? in->files[i].name : run->v[i - in->n_files].name;
        int found = 0;
        for (int k = 0; k < n; k++) found |= !strcmp(infos[k].name, name);
        if (!found)
            return kiln_cli_usage_error(cmd, "the model has no input '%s' (inputs: %s)", name, n ? list : "none");
    }
    uint64_t state = in->seed;
    for (int k = 0; k < n; k++) {
        const kiln_io_info *io = &infos[k];
        kiln_tensor *t = &in->tensors[k];
        memset(t, 0, sizeof *t);
        t->device = KILN_DEVICE_CPU;
        t->dtype = io->dtype;
        in->n_tensors = k + 1;
        in->bufs[k] = NULL;
        in->random[k] = 0;
        const kc_input_file *f = NULL;
        for (int i = 0; i < in->n_files; i++)
            if (!strcmp(in->files[i].name, io->name)) f = &in->files[i];
        if (f) {
            if (f->npy.dtype != io->dtype) {
                const char *want = kiln_npy_descr(io->dtype);
                fprintf(stderr, "kiln %s: input '%s': %s holds %s (%s), the model expects %s%s%s%s\n", cmd, io->name,
                        f->path, kiln_dtype_name(f->npy.dtype), kiln_npy_descr(f->npy.dtype),
                        kiln_dtype_name(io->dtype), want ? " (save it with .astype('" : "", want ? want : "",
                        want ? "'))" : " (NumPy has no bfloat16: leave --input out to use random data)");
                return 1;
            }
            t->rank = f->npy.rank;
            memcpy(t->dims, f->npy.dims, sizeof t->dims);
            t->data = f->npy.data;
            continue;
        }
        const kc_shape *s = kc_shapes_find(run, io->name);
        if (s && s->rank != io->rank) {
            char a[128];
            return kiln_cli_usage_error(cmd, "input '%s' has %d dims, --shapes gives %s", io->name, io->rank,
                                        kc_dims_str(s->rank, s->dims, a, sizeof a));
        }
        t->rank = io->rank;
        memcpy(t->dims, s ? s->dims : io->opt, sizeof t->dims);
        int64_t count = 1;
        for (int i = 0; i < t->rank; i++) count *= t->dims[i];
        size_t bytes = (size_t)count * kiln_dtype_size(io->dtype);
        in->bufs[k] = malloc(bytes ? bytes : 1);
        if (!in->bufs[k]) {
            fprintf(stderr, "kiln %s: out of host memory for input '%s' (%zu bytes)\n", cmd, io->name, bytes);
            return 1;
        }
        kc_fill_random(in->bufs[k], io->dtype, count, &state);
        t->data = in->bufs[k];
        in->random[k] = 1;
    }
    return 0;
}

/* ---- output ---------------------------------------------------------------------------------------- */

void kc_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

void kc_safe_filename(const char *name, char *buf, size_t cap) {
    size_t n = 0;
    for (; name && *name && n + 1 < cap; name++) {
        char c = *name;
        buf[n++] = (isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-') ? c : '_';
    }
    if (n == 0 && cap > 1) buf[n++] = '_';
    if (n > 0 && buf[0] == '.') buf[0] = '_'; /* no hidden files, no ".." */
    buf[n] = 0;
}
