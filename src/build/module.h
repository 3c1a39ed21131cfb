/* The compiled module: an immutable plan of steps grouped into segments, with a memory plan and
 * the backend's per-module state (device weights, chosen tactics). */
#ifndef KILN_MODULE_H
#define KILN_MODULE_H

#include "backend/backend.h"
#include "ir/shape_infer.h"

typedef enum kn_segment_kind { KN_SEG_ENGINE = 0, KN_SEG_FALLBACK = 1 } kn_segment_kind;

/* Why a node is not in an engine block. */
typedef enum kn_break_reason {
    KN_BREAK_NONE = 0,
    KN_BREAK_FORCED,        /* the user forced it (op type or node name) */
    KN_BREAK_UNSUPPORTED,   /* the engine does not take this op (or these attributes/dtypes) */
    KN_BREAK_SMALL_BLOCK,   /* its block had fewer nodes than min_block_size */
    KN_BREAK_BUILD_FAILED,  /* the engine build of its block failed (and passes through is off) */
} kn_break_reason;

typedef struct kn_segment {
    kn_segment_kind kind;
    int first, count;     /* steps [first, first + count) */
    kn_break_reason reason; /* for fallback segments */
    char detail[192];     /* e.g. "forced by --fallback-ops Mul" */
    int capturable;       /* every step may be recorded into a graph */
} kn_segment;

/* Longest tactic key, terminator included (kn_kernel.tactic_key). */
#define KN_TACTIC_KEY_MAX 160
/* A tactic key is 1..KN_TACTIC_KEY_MAX-1 characters of [A-Za-z0-9:=,._+-/], not "-" (it goes
 * into the timing cache's space-separated text, where "-" stands for none, and into JSON). */
int kn_tactic_key_valid(const char *key);

typedef struct kn_step {
    int node;             /* index in module->graph->nodes */
    int segment;
    const kn_kernel *kernel;
    int tactic;
    kn_break_reason reason; /* for fallback steps */
    float tactic_ms;      /* measured time of the chosen tactic at the opt shape (0 if untimed) */
    char tactic_key[KN_TACTIC_KEY_MAX]; /* the kernel's tactic_key for it ("" when none) */
    int view;             /* a view: its output shares its input's memory, the step does no work
                           * (derived from the memory plan by kn_mark_views, not stored) */
} kn_step;

/* The partition of a graph's device nodes (host-evaluated nodes excluded). */
typedef struct kn_partition {
    int n_steps;
    kn_step *steps;       /* topological order */
    int n_segments;
    kn_segment *segments;
} kn_partition;

struct kiln_module {
    kn_graph *graph;           /* optimized, compacted, topologically sorted; owned */
    const kn_backend *backend;
    void *bstate;              /* backend module state */
    kiln_device device;
    int device_index;
    kiln_precision precision;
    int min_block_size;
    int require_full_compilation, pass_through_build_failures;
    int avoid_runtime_compilation; /* kiln_build_config's: kernels compiled per shape are left out */
    size_t workspace_limit;        /* kiln_build_config's: a cuDNN plan's most workspace (0: kiln's) */
    char **fallback_ops;
    int n_fallback_ops;

    /* profiles, one per graph input (static inputs get min == opt == max) */
    int n_inputs;
    kiln_io_info *inputs;      /* names point into graph values */
    int n_outputs;
    kiln_io_info *outputs;

    uint8_t *host_node;        /* per node: evaluated on the host at shape time */
    kn_partition part;

    /* memory plan at the profile's max shape */
    int64_t *offset;           /* per value: arena offset, -1 when not in the arena */
    size_t *bytes;             /* per value: planned bytes */
    size_t arena_size, peak_live;

    void **const_ptr;          /* per value: backend pointer of a constant (or NULL) */
    double build_ms;
};

/* ---- builder steps (src/build/, src/partition/, src/passes/) ----------------------------------- */

/* Runs the optimization pipeline on g in place (src/passes/pipeline.c). */
typedef struct kn_pass_options {
    kiln_precision precision;
    int verbose;
    const kn_backend *backend; /* fusions only where the engine takes the fused form */
} kn_pass_options;
kiln_status kn_passes_run(kn_graph *g, const kn_pass_options *opt);
/* The NHWC layout pass (src/passes/layout_nhwc.c): run after kn_lower_precision, since it rewrites
 * only f16/bf16 activations (and f32 ones in a tf32 build); a no-op unless the backend's
 * prefers_nhwc says so. */
kiln_status kn_pass_layout_nhwc(kn_graph *g, const kn_pass_options *opt, int *changed);

/* Marks nodes forced to fall back (node->fallback) from the user's list. */
void kn_partition_mark_forced(kn_graph *g, char *const *ops, int n_ops);
/* Splits the device nodes (host_node[i] == 0) of a compacted graph into segments. */
kiln_status kn_partition_build(const kn_graph *g, const uint8_t *host_node,
                               const kn_backend *be, int min_block_size,
                               int require_full_compilation, kn_partition *out);
void kn_partition_free(kn_partition *p);
/* Text or JSON report of a partition. */
void kn_partition_report(const kn_graph *g, const kn_partition *p, int json, kn_strbuf *sb);
const char *kn_break_reason_name(kn_break_reason r);

/* Memory plan: offsets for every value that lives in the arena (src/build/memory_plan.c).
 * `bytes[v]` > 0 marks the values to place; first/last are step indices of each value's life. */
typedef struct kn_mem_request {
    size_t bytes;
    int first, last; /* inclusive step range during which the value must stay intact */
} kn_mem_request;
kiln_status kn_memory_plan(const kn_mem_request *req, int n, size_t align, int64_t *offsets,
                           size_t *arena_size, size_t *peak_live);

/* Views (docs/DESIGN.md, "Views"): ops whose output is the input's bytes in the same order
 * (Reshape, Flatten, Squeeze, Unsqueeze, Identity without kiln.to_layout, and a Transpose that
 * moves only dims of size 1 at every shape of the profile, as g's symbol ranges say). */
int kn_node_is_view(const kn_graph *g, const kn_node *n);
/* Sets steps[s].view where the plan gives a view step's output its input's offset. */
void kn_mark_views(kiln_module *m);

/* Graph-level precision lowering (fp16/bf16 storage inside the graph, casts at the edges). */
kiln_status kn_lower_precision(kn_graph *g, kiln_precision p);

/* Unary elementwise ops that compute the same in any layout: the NHWC pass takes them inside
 * NHWC regions, and a backend that honours kiln.layout accepts them (src/passes/layout_nhwc.c). */
int kn_layout_free_unary(kn_op op);

#endif
