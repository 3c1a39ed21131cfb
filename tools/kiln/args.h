/* Helpers shared by the kiln commands: an argument cursor, shape strings ("x:1x3x224x224"),
 * the build flags every command that compiles takes, torch op names for --fallback-ops, model
 * loading (.onnx compiled on the fly, .kiln loaded), and input tensors (from .npy files or seeded
 * random data).
 *
 * Conventions: a usage error prints "kiln CMD: message" and makes the command exit 2; a failure
 * of the work (a model that does not load or compile) prints kiln_last_error() and exits 1. */
#ifndef KILN_CLI_ARGS_H
#define KILN_CLI_ARGS_H

#include "cli.h"
#include "npy.h"

#include <stdbool.h>
#include <stdint.h>

#if defined(__GNUC__)
#define KN_CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KN_CLI_PRINTF(f, a)
#endif

#define KC_NAME_MAX 256
#define KC_MAX_SHAPES 64
#define KC_MAX_FALLBACK 256

/* ---- shape strings -------------------------------------------------------------------------- */

typedef struct kc_shape {
    char name[KC_NAME_MAX];
    int rank;
    int64_t dims[KILN_MAX_RANK];
} kc_shape;

typedef struct kc_shapes {
    int n;
    kc_shape v[KC_MAX_SHAPES];
} kc_shapes;

/* "1x3x224x224" -> rank 4. Returns 0 and writes a message into err on a malformed string
 * (empty, a non-digit, an empty dim, a negative dim, more than KILN_MAX_RANK dims). */
int kc_parse_dims(const char *text, int *rank, int64_t *dims, char *err, size_t cap);
/* Appends "name:dims[,name:dims...]" to list. The name is everything before the last ':' of an
 * entry (ONNX names such as "input:0" work). A name given twice is an error. */
int kc_parse_shapes(const char *text, kc_shapes *list, char *err, size_t cap);
const kc_shape *kc_shapes_find(const kc_shapes *list, const char *name);
/* "1x3x224x224"; "scalar" for rank 0. */
const char *kc_dims_str(int rank, const int64_t *dims, char *buf, size_t cap);

/* ---- the argument cursor -------------------------------------------------------------------- */

typedef struct kc_args {
    const char *cmd;
    int argc;
    char **argv;
    int i;
    const char *arg;   /* the current argument */
    const char *value; /* the value of the flag kc_flag just matched */
    int failed;        /* a usage error was printed */
} kc_args;

/* argv[0] is the command's name (as main.c passes it). */
void kc_args_init(kc_args *a, const char *cmd, int argc, char **argv);
/* Moves to the next argument; 0 at the end or after a usage error. */
int kc_next(kc_args *a);
/* The current argument is exactly `name` (a flag without a value). "--name=x" is a usage error. */
int kc_switch(kc_args *a, const char *name);
/* The current argument is `name VALUE` or `name=VALUE`: sets a->value. A missing value is a
 * usage error (a->failed). `alias` may be NULL or a second spelling ("-o"). */
int kc_flag(kc_args *a, const char *name, const char *alias);
/* Not a flag: a positional argument ("-" alone counts as positional). */
int kc_positional(const kc_args *a);
/* Prints the usage error, sets a->failed and returns 2. */
int kc_usage(kc_args *a, const char *fmt, ...) KN_CLI_PRINTF(2, 3);
/* The standard error for an argument nobody took. */
int kc_unknown(kc_args *a);

/* Strict number parsing: the whole string, within [lo, hi]. 1 on success. */
int kc_parse_ll(const char *s, long long lo, long long hi, long long *out);
int kc_parse_double(const char *s, double lo, double hi, double *out);

/* ---- build flags ---------------------------------------------------------------------------- */

typedef struct kc_build {
    /* build: --shapes sets min = opt = max. run/bench/inspect: --shapes is the shape to run at,
     * and the profile of an input without --min/--opt/--max. */
    int shapes_are_profile;
    kc_shapes min, opt, max, shapes;
    int precision; /* -1: not given */
    const char *precision_flag;
    char *fallback[KC_MAX_FALLBACK]; /* ONNX op types or node names (torch names mapped), owned */
    char *fallback_given[KC_MAX_FALLBACK]; /* what the user wrote, for messages, owned */
    int n_fallback;
    int min_block_size; /* -1: the default */
    bool require_full, pass_through, avoid_rtc;
    long long workspace_mib; /* --workspace-mib; -1: not given */
    kiln_device device;
    int device_index;
    const char *timing_cache;
    bool verbose;
    /* filled by kc_build_config */
    kiln_input_profile profiles[KC_MAX_SHAPES];
    int n_profiles;
} kc_build;

void kc_build_init(kc_build *b, int shapes_are_profile);
void kc_build_free(kc_build *b);
/* Takes the current argument when it is a build flag: 1 taken, 0 not a build flag. A bad value
 * sets a->failed (message printed). */
int kc_build_flag(kc_args *a, kc_build *b);
/* The build flags' part of a command's help. */
void kc_build_help(FILE *f, int shapes_are_profile);
/* Makes the profiles from --min/--opt/--max and --shapes (and, for inputs with none of them,
 * from `extra`, e.g. the shapes of .npy inputs) and fills cfg. Returns 0, or 2 after printing a
 * usage error (ranks that differ, min > opt, a name given both ways in build). */
int kc_build_config(const char *cmd, kc_build *b, const kc_shapes *extra, kiln_build_config *cfg);

/* Maps a name given to --fallback-ops: a torch op ("torch.ops.aten.mul.Tensor", "aten.mul",
 * "aten::mul") to its ONNX op types ("Mul"; some map to several, comma-separated). Returns NULL
 * for an aten op kiln does not know; other names (ONNX op types, node names) come back as given. */
const char *kc_fallback_map(const char *name);

/* ---- devices and CUDA-graph modes -------------------------------------------------------------- */

/* "cpu", "cuda", "cuda:N", "gpu", "auto". */
int kc_parse_device(const char *s, kiln_device *dev, int *index);
/* "off", "block" (also "per-block"), "whole"; "all" only when allow_all (sets *all). */
int kc_parse_cudagraphs(const char *s, int allow_all, kiln_cudagraphs_mode *mode, int *all);
const char *kc_cudagraphs_name(kiln_cudagraphs_mode mode);
const char *kc_device_name(kiln_device dev);

/* ---- models -------------------------------------------------------------------------------------- */

/* A model path names an ONNX file unless it ends in ".kiln". */
int kc_is_kiln_file(const char *path);
/* Imports an ONNX model; 0, or 1 after printing the error. */
int kc_load_graph(const char *cmd, const char *path, kiln_graph **out);
/* Warns about --fallback-ops names that match neither an op type nor a node name of the graph. */
void kc_check_fallback_names(const char *cmd, const kiln_graph *g, const kc_build *b);
/* Every input name given by the build flags or in `extra` must be a graph input (2 if not). */
int kc_check_input_names(const char *cmd, const kiln_graph *g, const kc_build *b, const kc_shapes *extra);
/* Input names and dims of a graph before it is compiled (dims < 0 are dynamic). */
int kc_graph_num_inputs(const kiln_graph *g);
const char *kc_graph_input(const kiln_graph *g, int k, int *rank, int64_t *dims);

typedef struct kc_model {
    kiln_graph *graph;   /* for an .onnx model */
    kiln_module *module;
} kc_model;

/* Loads MODEL into *out (zero it first): a .kiln file with kiln_module_load (build flags are then
 * a usage error, except --device/--verbose), else imports the ONNX model (unless out->graph was
 * already loaded by the caller) and compiles it with the build flags and `extra` run shapes.
 * Returns 0, 1 (load or compile failed) or 2 (usage). */
int kc_load_model(const char *cmd, const char *path, kc_build *b, const kc_shapes *extra, kc_model *out);
void kc_model_free(kc_model *m);

/* ---- inputs --------------------------------------------------------------------------------------- */

typedef struct kc_input_file {
    char name[KC_NAME_MAX]; /* "" when given without a name (the model's single input) */
    const char *path;
    kiln_npy npy;
} kc_input_file;

typedef struct kc_inputs {
    kc_input_file files[KC_MAX_SHAPES];
    int n_files;
    uint64_t seed;
    int seed_given;
    /* filled by kc_inputs_make, one per module input, host memory */
    kiln_tensor tensors[KC_MAX_SHAPES];
    void *bufs[KC_MAX_SHAPES];
    int n_tensors;
    int random[KC_MAX_SHAPES]; /* 1 when the input was made up */
} kc_inputs;

void kc_inputs_init(kc_inputs *in);
void kc_inputs_free(kc_inputs *in);
/* Takes --input NAME=FILE.npy (or FILE.npy for a single-input model) and --seed N. */
int kc_inputs_flag(kc_args *a, kc_inputs *in);
/* Reads the .npy files; names them from the graph when given without a name. 0, 1 or 2. */
int kc_inputs_read(const char *cmd, kc_inputs *in, const kiln_graph *g);
/* The run shapes: --shapes, plus each file's shape for inputs --shapes does not name. A file
 * whose shape differs from --shapes is a usage error (2). */
int kc_inputs_shapes(const char *cmd, const kc_inputs *in, const kc_shapes *shapes, kc_shapes *out);
/* Checks, before compiling an ONNX graph, that every dynamic input has a run shape (2 if not). */
int kc_inputs_check_dynamic(const char *cmd, const kiln_graph *g, const kc_build *b, const kc_shapes *run);
/* One host tensor per module input: the file's data (its dtype must match), or seeded random
 * data (floats uniform in [-1, 1), integers in [0, 4), bools 0/1) at the run shape, or at the
 * profile's opt shape when no run shape is given. 0, 1 or 2. */
int kc_inputs_make(const char *cmd, kc_inputs *in, const kiln_module *m, const kc_shapes *run);

/* ---- output ---------------------------------------------------------------------------------- */

void kc_json_str(FILE *f, const char *s);
/* A file name from a value name: characters other than [A-Za-z0-9._-] become '_'. */
void kc_safe_filename(const char *name, char *buf, size_t cap);

#endif
