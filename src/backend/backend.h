/* The backend interface (DESIGN decision 3): memory, a stream, kernels per op, and a recorder.
 * The runtime's graph logic is written once above this table; the CPU and CUDA backends fill it
 * with designated initializers. Optional entries may be NULL. */
#ifndef KILN_BACKEND_H
#define KILN_BACKEND_H

#include "ops/ops.h"

struct kiln_module;

/* What a kernel gets for one step. The runtime keeps one per step and shape signature, so a
 * recorded graph (a CPU kernel list, a CUDA graph) may keep pointers to it. */
typedef struct kn_kernel_args {
    const kn_node *node;
    const kn_tensor *in; /* in[i].dtype == INVALID for an omitted optional input */
    int n_in;
    const kn_tensor *out;
    int n_out;
    void *state; /* from the kernel's prepare for this shape (NULL when it has none) */
    void *ctx;   /* the backend's session context (stream, library handles, workspace) */
    int tactic;  /* the tactic chosen at build time (index among the kernel's candidates) */
    int timing;  /* set while the builder times tactics: a tactic the kernel does not offer at
                  * this shape fails in prepare rather than standing in for another one */
    /* What the tactic resolved to when the builder timed it (the kernel's tactic_key, e.g. a
     * cuDNN engine and its knobs), or NULL. A kernel that can rebuild it at another shape does
     * so without asking its library's heuristics, and uses the same engine at every shape. */
    const char *tactic_key;
} kn_kernel_args;

typedef struct kn_kernel {
    const char *name; /* for reports: "cpu.conv_im2col_sgemm", "cudnn.conv_fused", ... */
    /* Runs the step. Must not allocate, synchronize or read back when the backend records. */
    kiln_status (*run)(const kn_kernel_args *a);
    /* Per-shape preparation outside any capture (plans, scratch); may be NULL. */
    kiln_status (*prepare)(const kn_kernel_args *a, void **state);
    void (*release)(void *state);
    /* Number of tactics this kernel offers for the step (NULL: one). The builder times each
     * at the opt shape and stores the fastest in the plan. */
    int (*num_tactics)(const kn_kernel_args *a);
    /* Writes what the prepared tactic resolved to, as a printable string without spaces shorter
     * than cap (KN_TACTIC_KEY_MAX), for the plan; returns 0 when there is nothing to keep (NULL:
     * never). Given back in kn_kernel_args.tactic_key at every shape. */
    int (*tactic_key)(const void *state, char *buf, size_t cap);
    /* Whether the prepared tactic compiles its code for each new shape (a cuDNN runtime-fusion
     * engine: ~30 ms a shape); the builder takes such a tactic only when it is clearly faster
     * (KN_COMPILED_TACTIC_GAIN). NULL: never. */
    int (*compiles_per_shape)(const void *state);
    /* Writes what shares a per-shape setup with the prepared tactic (for a cuDNN plan its engine,
     * "cudnn:e39": engines that pick their kernel at each shape set it up at its first run there,
     * whatever their knobs); 0 when nothing. The builder leaves out a whole family once one member
     * is found to set up per shape. NULL: the tactic key stands for itself. */
    int (*setup_family)(const void *state, char *buf, size_t cap);
    /* Whether the step can be captured into a graph (NULL: yes). */
    int (*capturable)(const kn_node *n);
    /* prepare may run on a helper thread of the session, alongside other steps' prepare, once the
     * backend's worker_begin has bound that thread (its own library handles; shared state under
     * the context's lock). Set for kernels whose prepare is slow (cuDNN plan finalization). */
    int prepare_concurrent;
    /* A state for this shape that needs no slow setup (kiln's own kernel where prepare would
     * build a cuDNN plan), run with `run` like any prepared state until the runtime swaps in what
     * prepare made on a background thread (kiln_session_set_provisional_kernels). *tuned set: the
     * state is what prepare would make (the stored tactic is that kernel), nothing more to do.
     * Returns KILN_ERR_UNSUPPORTED where there is none. NULL: none. */
    kiln_status (*prepare_provisional)(const kn_kernel_args *a, void **state, int *tuned);
} kn_kernel;

/* For a kernel's prepare on a new shape's concurrent preparation (src/runtime/prepare.c): whether
 * the step may put itself back because it would wait on work another thread is doing, and the
 * call that does so; prepare then returns KILN_OK with its state left NULL, and the runtime
 * prepares the step again after the others, when it may no longer defer. */
int kn_prepare_may_defer(void);
void kn_prepare_defer(void);
/* Whether this thread prepares in the background, while the session may be running or recording
 * on its stream: prepare must then leave buffers the session's steps share (a cuDNN workspace) as
 * they are, and fit within them. */
int kn_prepare_in_background(void);

typedef struct kn_backend {
    const char *name;
    kiln_device device;
    /* The engine takes this node into an engine block. Fallback nodes use fallback_kernel. */
    int (*supports_op)(const kn_graph *g, const kn_node *n);
    /* The optimized kernel for an engine step (may be fused, may have tactics), or NULL. */
    const kn_kernel *(*engine_kernel)(const kn_graph *g, const kn_node *n);
    /* The plain per-op kernel for a fallback step (unfused, untuned), or NULL. */
    const kn_kernel *(*fallback_kernel)(const kn_graph *g, const kn_node *n);
    /* Whether 4-D activations of convolution blocks should be NHWC at this precision (the layout
     * pass then marks nodes with kiln.layout = 1 and inserts Identity nodes with kiln.to_layout at
     * the edges; the backend's kernels for those nodes must honour them). NULL: never. */
    int (*prefers_nhwc)(kiln_precision p);
    /* The channel count the layout pass zero-pads a narrow NHWC convolution input to (in its
     * conversion to NHWC, with the convolutions' weights padded to match), for c input channels
     * at this precision; c (or NULL) for none. */
    int64_t (*nhwc_pad_channels)(kiln_precision p, int64_t c);
    /* Whether MatMul-Softmax-MatMul should become one KilnAttention node at this precision (the
     * fuse_attention pass). NULL: yes (where supports_op takes the node). */
    int (*fuses_attention)(kiln_precision p);

    /* Module: device copies of constants (per value, NULL if not a constant); module state. */
    kiln_status (*module_init)(struct kiln_module *m, void **mstate);
    void (*module_free)(struct kiln_module *m, void *mstate);

    /* Session context: device, stream, arena of arena_bytes, library workspaces. */
    kiln_status (*session_init)(const struct kiln_module *m, size_t arena_bytes, void **ctx);
    void (*session_free)(void *ctx);
    void *(*arena)(void *ctx);
    kiln_status (*set_stream)(void *ctx, void *stream);
    kiln_status (*synchronize)(void *ctx);
    /* Binds the calling helper thread, worker 1..n of a new shape's preparation, to the session's
     * device and to library handles of its own (made on first use, kept by the session), so that
     * steps with prepare_concurrent prepare there; worker_end unbinds it. NULL: the runtime
     * prepares every step on the calling thread. */
    kiln_status (*worker_begin)(void *ctx, int worker);
    void (*worker_end)(void *ctx);

    /* Memory outside the arena (per-shape buffers made outside any capture). */
    kiln_status (*alloc)(void *ctx, size_t bytes, void **ptr);
    void (*free)(void *ctx, void *ptr);
    /* Copies on the session's stream; `dev` is backend memory, `host_or_dev` says where the
     * other side is. */
    kiln_status (*copy_in)(void *ctx, void *dst_dev, const void *src, size_t bytes, kiln_device src_where);
    kiln_status (*copy_out)(void *ctx, void *dst, kiln_device dst_where, const void *src_dev, size_t bytes);

    /* Launches one step: runs it, or appends it to the recording in progress. */
    kiln_status (*launch)(void *ctx, const kn_kernel *k, const kn_kernel_args *a);
    /* The recorder: between begin and end, launches are recorded, not run. end() on failure
     * leaves the stream usable and returns the error naming the step that broke the capture.
     * end() may defer instantiation to the first graph_launch, so that graph_update can refresh
     * an existing executable graph (cudaGraphExecUpdate) instead of instantiating anew. */
    kiln_status (*record_begin)(void *ctx);
    kiln_status (*record_end)(void *ctx, void **graph);
    /* Tries to update `graph` in place from a fresh recording (CUDA: cudaGraphExecUpdate).
     * Returns OK and sets *updated when it did; NULL entry: never. */
    kiln_status (*graph_update)(void *ctx, void *graph, void *fresh, int *updated);
    kiln_status (*graph_launch)(void *ctx, void *graph);
    void (*graph_free)(void *ctx, void *graph);

    /* Device timing for profiles: timer_begin marks the session's stream, timer_end marks it
     * again, waits and returns the device time between the marks in ms (CUDA: events). NULL:
     * the runtime times with the host clock around synchronize calls. */
    kiln_status (*timer_begin)(void *ctx);
    kiln_status (*timer_end)(void *ctx, double *ms);

    /* One line naming the device and library versions ("NVIDIA H100 sm_90 cudnn 91900 ..."): keys
     * the timing cache and is stored in engine files. NULL: the backend name is enough.
     * Engine files compare the device part (device name, compute capability) and the library part
     * (versions of the libraries whose tactics are stored) separately: write the device part
     * first and the libraries after " | ", e.g. "NVIDIA H100 80GB HBM3 sm_90 | cuda 12040 cudnn
     * 90100 cublasLt 120400" (without " | ", the library part starts at the first token that
     * begins with cuda, cudnn, cublas, driver, runtime or openblas). */
    void (*describe)(void *ctx, char *buf, size_t cap);
    /* The same line without a session, for device `device_index` (engine files check it before
     * uploading weights). NULL: kiln makes a short-lived session context to call describe. */
    void (*describe_device)(int device_index, char *buf, size_t cap);
} kn_backend;

const kn_backend *kn_backend_cpu(void);
/* NULL in a CPU-only build or when no CUDA device is usable. */
const kn_backend *kn_backend_cuda(void);

#endif
