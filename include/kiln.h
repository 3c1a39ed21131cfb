/*
 * kiln — an ahead-of-time inference compiler and runtime for neural networks.
 *
 * Worked example: load an ONNX model, compile it for batch 1..16, run it with CUDA graphs.
 *
 *     kiln_graph *g = NULL;
 *     kiln_module *m = NULL;
 *     kiln_session *s = NULL;
 *     if (kiln_graph_load_onnx("resnet18.onnx", &g) != KILN_OK) {
 *         fprintf(stderr, "%s\n", kiln_last_error());   // says what and where
 *         return 1;
 *     }
 *     kiln_build_config cfg;
 *     kiln_build_config_init(&cfg);                     // device AUTO, fp32, min_block_size 5
 *     cfg.precision = KILN_PRECISION_FP16;
 *     kiln_input_profile p = { .name = "x", .rank = 4,
 *         .min = {1, 3, 224, 224}, .opt = {8, 3, 224, 224}, .max = {16, 3, 224, 224} };
 *     cfg.profiles = &p;
 *     cfg.num_profiles = 1;
 *     kiln_compile(g, &cfg, &m);                         // passes, partition, tactics, memory plan
 *     kiln_session_create(m, &s);
 *
 *     kiln_set_cudagraphs_mode(true);                   // like torch_tensorrt.runtime.set_cudagraphs_mode
 *     kiln_tensor in  = { .data = x_dev, .dtype = KILN_F32, .rank = 4, .dims = {8, 3, 224, 224},
 *                         .device = KILN_DEVICE_CUDA };
 *     kiln_tensor out = { .data = y_dev, .device = KILN_DEVICE_CUDA };   // dims filled by run
 *     kiln_session_run(s, &in, 1, &out, 1);             // first time: warm up, record, replay
 *     kiln_session_run(s, &in, 1, &out, 1);             // same shape: replay one graph
 *
 *     kiln_session_free(s); kiln_module_free(m); kiln_graph_free(g);
 *
 * Every call that can fail returns a kiln_status; kiln_last_error() then holds a message for
 * this thread, naming the node, input and expectation. kiln never exits or prints on bad input.
 *
 * Ownership: objects made by kiln_*_create / kiln_compile / kiln_*_load are freed by the matching
 * kiln_*_free. Strings returned through `char **out` are freed with kiln_free.
 * Threads: a module is immutable and may be shared by many sessions on many threads; a session is
 * used by one thread at a time.
 */
#ifndef KILN_H
#define KILN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define KILN_API __declspec(dllexport)
#else
#define KILN_API __attribute__((visibility("default")))
#endif

#define KILN_MAX_RANK 8

/* ---- status ------------------------------------------------------------------------------ */

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERR_INVALID_ARGUMENT, /* a NULL pointer, a bad enum, a malformed string */
    KILN_ERR_NOT_FOUND,        /* a file, an input name, a value that does not exist */
    KILN_ERR_PARSE,            /* a model or engine file that cannot be read */
    KILN_ERR_UNSUPPORTED,      /* an op, opset, dtype or feature kiln does not take */
    KILN_ERR_SHAPE,            /* shapes that contradict each other or the profile */
    KILN_ERR_DTYPE,            /* an element type that does not fit */
    KILN_ERR_OUT_OF_MEMORY,    /* host or device allocation failed */
    KILN_ERR_IO,               /* reading or writing a file failed */
    KILN_ERR_DEVICE,           /* a CUDA, cuDNN or cuBLAS call failed */
    KILN_ERR_VERSION,          /* an engine file for another version, device or library */
    KILN_ERR_CORRUPT,          /* a truncated file or a checksum mismatch */
    KILN_ERR_INTERNAL,         /* a bug in kiln: please report it */
    KILN_STATUS_COUNT
} kiln_status;

/* The message of the last failed call on this thread ("" when none). Valid until the next call. */
KILN_API const char *kiln_last_error(void);
/* A stable name for a status code, e.g. "KILN_ERR_SHAPE". */
KILN_API const char *kiln_status_name(kiln_status status);
/* kiln's version, "MAJOR.MINOR.PATCH". */
KILN_API const char *kiln_version(void);
/* Frees memory that kiln returned to the caller (strings from the *_to_text / report calls). */
KILN_API void kiln_free(void *ptr);

/* Log verbosity on stderr: 0 warnings only (default), 1 info, 2 verbose (each pass's effect). */
KILN_API void kiln_set_log_level(int level);

/* ---- element types and tensors -------------------------------------------------------------- */

typedef enum kiln_dtype {
    KILN_DTYPE_INVALID = 0,
    KILN_F32,
    KILN_F16,
    KILN_BF16,
    KILN_F64,
    KILN_I64,
    KILN_I32,
    KILN_I8,
    KILN_U8,
    KILN_BOOL,
    KILN_DTYPE_COUNT
} kiln_dtype;

KILN_API const char *kiln_dtype_name(kiln_dtype dtype); /* "f32", "f16", ... */
KILN_API size_t kiln_dtype_size(kiln_dtype dtype);      /* bytes per element, 0 if invalid */

typedef enum kiln_device {
    KILN_DEVICE_AUTO = 0, /* CUDA when a GPU is present, else the CPU */
    KILN_DEVICE_CPU,
    KILN_DEVICE_CUDA,
} kiln_device;

/* A view of caller memory: a dense, row-major array. kiln never frees `data`. */
typedef struct kiln_tensor {
    void *data;
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    kiln_device device; /* where `data` lives: KILN_DEVICE_CPU (host) or KILN_DEVICE_CUDA */
} kiln_tensor;

/* ---- graphs: build in C or import from ONNX --------------------------------------------------- */

typedef struct kiln_graph kiln_graph;

typedef enum kiln_attr_type {
    KILN_ATTR_INT = 1,
    KILN_ATTR_FLOAT,
    KILN_ATTR_STRING,
    KILN_ATTR_INTS,
    KILN_ATTR_FLOATS,
    KILN_ATTR_TENSOR, /* `tensor` points to a kiln_tensor on the host (Constant's value) */
} kiln_attr_type;

typedef struct kiln_attr {
    const char *name;
    kiln_attr_type type;
    int64_t i;
    float f;
    const char *s;
    const int64_t *ints;
    const float *floats;
    int count; /* elements in ints or floats */
    const kiln_tensor *tensor;
} kiln_attr;

static inline kiln_attr kiln_attr_int(const char *name, int64_t v) {
    kiln_attr a = {0};
    a.name = name; a.type = KILN_ATTR_INT; a.i = v;
    return a;
}
static inline kiln_attr kiln_attr_float(const char *name, float v) {
    kiln_attr a = {0};
    a.name = name; a.type = KILN_ATTR_FLOAT; a.f = v;
    return a;
}
static inline kiln_attr kiln_attr_string(const char *name, const char *v) {
    kiln_attr a = {0};
    a.name = name; a.type = KILN_ATTR_STRING; a.s = v;
    return a;
}
static inline kiln_attr kiln_attr_ints(const char *name, int count, const int64_t *v) {
    kiln_attr a = {0};
    a.name = name; a.type = KILN_ATTR_INTS; a.ints = v; a.count = count;
    return a;
}
static inline kiln_attr kiln_attr_floats(const char *name, int count, const float *v) {
    kiln_attr a = {0};
    a.name = name; a.type = KILN_ATTR_FLOATS; a.floats = v; a.count = count;
    return a;
}

/* An empty graph. */
KILN_API kiln_status kiln_graph_create(kiln_graph **out);
KILN_API void kiln_graph_free(kiln_graph *graph);
/* Declares a graph input. dims[i] < 0 with dim_names[i] set makes a symbolic dim (e.g. "batch");
 * dims[i] < 0 without a name is an unknown dim. dim_names may be NULL. */
KILN_API kiln_status kiln_graph_add_input(kiln_graph *graph, const char *name, kiln_dtype dtype,
                                          int rank, const int64_t *dims,
                                          const char *const *dim_names);
/* Adds a constant (weights); the data is copied. */
KILN_API kiln_status kiln_graph_add_initializer(kiln_graph *graph, const char *name,
                                                kiln_dtype dtype, int rank, const int64_t *dims,
                                                const void *data);
/* Adds a node by ONNX op type. Empty input names ("") mark omitted optional inputs.
 * Values are created by name as outputs appear; inputs must already exist. */
KILN_API kiln_status kiln_graph_add_node(kiln_graph *graph, const char *op_type, const char *name,
                                         int num_inputs, const char *const *inputs,
                                         int num_outputs, const char *const *outputs,
                                         int num_attrs, const kiln_attr *attrs);
/* Marks an existing value as a graph output. */
KILN_API kiln_status kiln_graph_add_output(kiln_graph *graph, const char *name);
/* Checks the graph (names resolve, no cycles, attributes and shapes fit); infers shapes. */
KILN_API kiln_status kiln_graph_verify(kiln_graph *graph);
/* A readable text dump: inputs, nodes in topological order with shapes, outputs. */
KILN_API kiln_status kiln_graph_to_text(const kiln_graph *graph, char **out);
KILN_API int kiln_graph_num_nodes(const kiln_graph *graph);

/* Imports an ONNX model (IR version >= 3, opsets 7..21). External data files are read from the
 * model's folder. */
KILN_API kiln_status kiln_graph_load_onnx(const char *path, kiln_graph **out);
/* Same, from memory. External data, if any, is looked up relative to `base_dir` (may be NULL). */
KILN_API kiln_status kiln_graph_load_onnx_memory(const void *data, size_t size,
                                                 const char *base_dir, kiln_graph **out);

/* ---- build configuration ------------------------------------------------------------------------ */

typedef enum kiln_precision {
    KILN_PRECISION_FP32 = 0, /* true fp32 */
    KILN_PRECISION_TF32,     /* fp32 storage, tensor-core TF32 math on the GPU */
    KILN_PRECISION_FP16,     /* fp16 storage and math inside engine blocks */
    KILN_PRECISION_BF16,
} kiln_precision;

/* Dimension ranges for one input: min <= opt <= max elementwise. */
typedef struct kiln_input_profile {
    const char *name;
    int rank;
    int64_t min[KILN_MAX_RANK];
    int64_t opt[KILN_MAX_RANK];
    int64_t max[KILN_MAX_RANK];
} kiln_input_profile;

typedef struct kiln_build_config {
    kiln_device device;
    int device_index;
    kiln_precision precision;
    const kiln_input_profile *profiles; /* one per dynamic input; static inputs may be omitted */
    int num_profiles;
    int min_block_size;                 /* engine blocks smaller than this fall back (default 5) */
    const char *const *fallback_ops;    /* op types ("Mul") or node names forced to fall back */
    int num_fallback_ops;
    bool require_full_compilation;      /* a graph break is an error */
    bool pass_through_build_failures;   /* a failed engine build is an error, not a fallback */
    bool optimize;                      /* run the graph passes (default true) */
    size_t workspace_limit;             /* the most workspace bytes one cuDNN plan may use; plans
                                         * needing more are not considered (0: kiln's limit, 1 GiB).
                                         * cuBLASLt keeps its fixed 32 MiB per session; kept in the
                                         * module */
    const char *timing_cache;           /* path of a timing cache file, or NULL */
    bool time_tactics;                  /* measure candidate kernels (default true) */
    int verbose;                        /* progress and pass effects on stderr */
    bool keep_nchw;                     /* no NHWC layout pass even where the backend prefers it
                                         * (CUDA fp16/bf16 convolutions); default false */
    bool avoid_runtime_compilation;     /* leave out library kernels compiled for each new shape
                                         * (cuDNN's runtime-fusion engines, ~30-350 ms a shape and
                                         * convolution) and, for a dynamic profile, engines whose
                                         * first run at a new shape sets their kernel up (measured
                                         * while timing tactics): new shapes prepare in
                                         * milliseconds, at some cost in speed (fused residuals run
                                         * as a separate epilogue); kept in the module; default
                                         * false */
} kiln_build_config;

/* Fills the defaults: AUTO device 0, fp32, min_block_size 5, optimize, time tactics. */
KILN_API void kiln_build_config_init(kiln_build_config *config);

/* ---- modules: the compiled, immutable plan ------------------------------------------------------ */

typedef struct kiln_module kiln_module;

/* Optimizes, partitions and builds `graph` (which is not changed). */
KILN_API kiln_status kiln_compile(const kiln_graph *graph, const kiln_build_config *config,
                                  kiln_module **out);
/* The partition that kiln_compile would make, without building: segments, ops, and the reason
 * for each graph break. json selects JSON instead of text. */
KILN_API kiln_status kiln_dry_run(const kiln_graph *graph, const kiln_build_config *config,
                                  bool json, char **out);
KILN_API void kiln_module_free(kiln_module *module);

/* Engine files: versioned, checksummed; loading never re-times tactics. */
KILN_API kiln_status kiln_module_save(const kiln_module *module, const char *path);
KILN_API kiln_status kiln_module_load(const char *path, kiln_module **out);

typedef struct kiln_io_info {
    const char *name;  /* owned by the module */
    kiln_dtype dtype;
    int rank;
    int64_t min[KILN_MAX_RANK]; /* profile range; min == max for static dims */
    int64_t opt[KILN_MAX_RANK];
    int64_t max[KILN_MAX_RANK];
} kiln_io_info;

KILN_API int kiln_module_num_inputs(const kiln_module *module);
KILN_API int kiln_module_num_outputs(const kiln_module *module);
KILN_API kiln_status kiln_module_input_info(const kiln_module *module, int index,
                                            kiln_io_info *info);
/* For outputs min/opt/max are the output dims at the profile's min/opt/max input shapes. */
KILN_API kiln_status kiln_module_output_info(const kiln_module *module, int index,
                                             kiln_io_info *info);
KILN_API kiln_device kiln_module_device(const kiln_module *module);
/* Segments, chosen tactics, memory plan (arena size next to peak live bytes). */
KILN_API kiln_status kiln_module_report(const kiln_module *module, bool json, char **out);
/* Number of graph breaks (segments - 1) and engine blocks. */
KILN_API int kiln_module_num_segments(const kiln_module *module);
KILN_API int kiln_module_num_engine_blocks(const kiln_module *module);

/* ---- sessions: execution state on one stream -------------------------------------------------- */

typedef struct kiln_session kiln_session;

typedef enum kiln_cudagraphs_mode {
    KILN_CUDAGRAPHS_DEFAULT = -1, /* follow kiln_get_cudagraphs_mode(): per block when on */
    KILN_CUDAGRAPHS_OFF = 0,
    KILN_CUDAGRAPHS_PER_BLOCK,    /* each engine block is one graph; fallback ops run between */
    KILN_CUDAGRAPHS_WHOLE,        /* engine blocks and fallback ops captured as one graph */
} kiln_cudagraphs_mode;

typedef struct kiln_counters {
    uint64_t runs;            /* kiln_session_run calls that succeeded */
    uint64_t captures;        /* graphs recorded */
    uint64_t replays;         /* runs served by replaying recorded graphs */
    uint64_t cache_hits;      /* runs whose shape signature had a recorded graph */
    uint64_t updates;         /* recordings applied to an existing graph in place */
    uint64_t evictions;       /* graphs dropped by the LRU bound */
    uint64_t eager_fallbacks; /* runs with graphs on that ran without them (capture failed) */
    uint64_t warmups;         /* eager runs made before a first capture */
    uint64_t provisional;     /* shapes that started on provisional kernels */
    uint64_t upgrades;        /* shapes whose tuned kernels were swapped in after that */
} kiln_counters;

KILN_API kiln_status kiln_session_create(const kiln_module *module, kiln_session **out);
KILN_API void kiln_session_free(kiln_session *session);

/* Runs the module. inputs are in module input order (or matched by kiln_session_set_input_names).
 * outputs: for each output, dims and dtype are filled; if data is NULL kiln points it at its own
 * buffer, valid until the next run or free of this session; otherwise the result is written
 * there (device says where). */
KILN_API kiln_status kiln_session_run(kiln_session *session, const kiln_tensor *inputs,
                                      int num_inputs, kiln_tensor *outputs, int num_outputs);
/* The session's planned slot for input `index`: a caller who writes the input there and passes
 * this pointer to kiln_session_run saves the copy. Valid for the session's life. */
KILN_API kiln_status kiln_session_input_slot(kiln_session *session, int index, void **slot);
/* Runs on a caller's CUDA stream (cudaStream_t) instead of the session's own; NULL restores it. */
KILN_API kiln_status kiln_session_set_stream(kiln_session *session, void *stream);
/* Waits for the session's work to finish. */
KILN_API kiln_status kiln_session_synchronize(kiln_session *session);

/* Global switch, the seed's runtime.set_cudagraphs_mode: on = per engine block. */
KILN_API void kiln_set_cudagraphs_mode(bool enabled);
KILN_API bool kiln_get_cudagraphs_mode(void);
/* A session's own mode; KILN_CUDAGRAPHS_DEFAULT follows the global switch. */
KILN_API kiln_status kiln_session_set_cudagraphs_mode(kiln_session *session,
                                                      kiln_cudagraphs_mode mode);
/* The mode the next run will use. */
KILN_API kiln_cudagraphs_mode kiln_session_cudagraphs_mode(const kiln_session *session);
/* The seed's enable_cudagraphs(module): whole module when the module has graph breaks, per block
 * otherwise, until kiln_session_end_cudagraphs, which restores the previous mode and frees the
 * graphs recorded in the scope. Scopes nest. */
KILN_API kiln_status kiln_session_begin_cudagraphs(kiln_session *session);
KILN_API kiln_status kiln_session_end_cudagraphs(kiln_session *session);
/* Bound of the recorded-graph cache, keyed by input shapes (default 8; LRU eviction). */
KILN_API kiln_status kiln_session_set_graph_cache_size(kiln_session *session, int max_graphs);
/* Eager runs before the first capture of a shape (default 1). */
KILN_API kiln_status kiln_session_set_warmup_runs(kiln_session *session, int runs);
/* Provisional kernels (off by default). On: at a new input shape, steps whose tuned kernel needs
 * slow host-side setup (a cuDNN plan: 0.1-0.3 ms of CPU each, and far more for engines that
 * compile per shape) first run on kiln's own kernels, which need none (the implicit-GEMM and
 * depthwise convolutions of NHWC fp16/bf16), while the setup runs on background threads; the
 * first run at any shape after it has finished swaps the tuned kernels in and re-records that
 * shape's graphs. A new shape's first run then costs little more than recording it. Results at a
 * shape agree within the precision's tolerance before and after the swap, not bit for bit.
 * Background preparation never grows the cuDNN workspace (its plans fit the one the session has),
 * and needs helper threads (KILN_PREPARE_THREADS=1 turns this off). */
KILN_API kiln_status kiln_session_set_provisional_kernels(kiln_session *session, bool enabled);
/* Waits for background preparation (provisional kernels) to finish; the next run swaps the tuned
 * kernels in. Returns at once when there is none. */
KILN_API kiln_status kiln_session_finish_preparation(kiln_session *session);
/* Drops every recorded graph (the next run records anew). */
KILN_API kiln_status kiln_session_reset_graphs(kiln_session *session);
KILN_API kiln_status kiln_session_counters(const kiln_session *session, kiln_counters *out);
/* Profiles one shape: runs the module (in the session's CUDA-graph mode) to measure the end-to-end
 * latency, then times every step on its own (device time per launch, median of a few runs; steps
 * that can be captured are timed as a recorded graph, without host launch costs). *report (free
 * with kiln_free) lists the steps by time with op, node, kernel, tactic and share of the sum, and
 * the sum against the end-to-end latency; json selects JSON. Leaves outputs in the session's
 * buffers as a run does. */
KILN_API kiln_status kiln_session_profile(kiln_session *session, const kiln_tensor *inputs, int num_inputs,
                                          bool json, char **report);

/* Whether a CUDA device is usable in this process (false on a CPU-only build). */
KILN_API bool kiln_cuda_available(void);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
