/* The CUDA backend's host side: session context, checked calls, the kernel table and helpers
 * shared by the op families (src/backend/cuda/, the .c files). Kernels themselves are in the .cu files behind
 * cuda_kernels.h. */
#ifndef KILN_CUDA_INTERNAL_H
#define KILN_CUDA_INTERNAL_H

#include "backend/backend.h"
#include "build/module.h"
#include "cuda_kernels.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <pthread.h>

/* Library workspaces. cuBLASLt gets a fixed slab per session (what NVIDIA recommends on Hopper);
 * cuDNN gets at least KN_CUDNN_WS_MIN and grows, outside any capture, while no recorded graph
 * of the session could still point at the old buffer. Plans needing more than KN_CUDNN_WS_MAX
 * (or the module's workspace_limit, when lower) are not considered. */
#define KN_CUBLASLT_WS_BYTES ((size_t)32 << 20)
#define KN_CUDNN_WS_MIN ((size_t)16 << 20)
#define KN_CUDNN_WS_MAX ((size_t)1 << 30)

#define KN_CUDA_PREP_WORKERS 64 /* helper threads of a new shape's preparation, at most */

typedef struct kn_cuda_ctx {
    int device;
    kiln_precision precision;
    int avoid_runtime_compilation; /* the module's: no cuDNN engine that compiles per shape */
    cudaStream_t own_stream; /* made at session_init */
    cudaStream_t stream;     /* own_stream, or the caller's (set_stream) */
    void *arena;
    size_t arena_bytes;
    cublasLtHandle_t lt;
    void *lt_ws;
    size_t lt_ws_bytes;
    cudnnHandle_t dnn;
    void *dnn_ws;
    size_t dnn_ws_bytes;
    size_t dnn_ws_cap; /* the most a plan may use: the module's workspace_limit, else KN_CUDNN_WS_MAX */
    /* Preparation threads (backend.h worker_begin): a cuDNN handle each, made on first use, for
     * finalizing plans (runs execute them on `dnn`); `lock` guards the workspace size and the
     * kernel caches below while they prepare. */
    cudnnHandle_t dnn_worker[KN_CUDA_PREP_WORKERS];
    pthread_mutex_t lock;
    cudaEvent_t ev_start, ev_stop;
    /* recorder */
    int recording;
    kiln_status record_status;
    char record_msg[1024];
    const kn_node *last_node; /* the last step launched (for messages) */
    int live_graphs;          /* recorded graphs not yet freed */
    /* cuDNN plans shared by the steps of one shape with the same graph and engine config
     * (cuda_conv.c, "shared plans"), under `lock`; `shared_ready` wakes steps waiting for one */
    struct kn_dnn_shared **shared;
    int n_shared, cap_shared;
    pthread_cond_t shared_ready;
    /* cuDNN kernel caches, one per step and graph variant, for engines that compile their kernel at
     * run time: on a dynamic-shape graph a new shape binds the kernel compiled at an earlier one */
    struct kn_dnn_kcache *kcache;
    int n_kcache, cap_kcache;
} kn_cuda_ctx;

typedef struct kn_dnn_kcache {
    const kn_node *node;
    int variant;
    int refused; /* the engine made no plan on the dynamic graph: use static graphs for this step */
    cudnnBackendDescriptor_t cache;
} kn_dnn_kcache;

/* Per-module state: one device buffer holding every constant. */
typedef struct kn_cuda_module {
    int device;
    void *consts;
    size_t const_bytes;
} kn_cuda_module;

/* ---- checked calls ----------------------------------------------------------------------------
 * Each turns a failed CUDA / cuDNN / cuBLASLt call into KILN_ERR_DEVICE with a message naming the
 * call, its error, the source line and the step being prepared or launched. */
kiln_status kn_cuda_fail(const char *file, int line, const char *call, const char *err);
const char *kn_cublas_status_name(cublasStatus_t s);

#define KN_CU(call)                                                                               \
    do {                                                                                          \
        cudaError_t kn_cu_e_ = (call);                                                            \
        if (kn_cu_e_ != cudaSuccess)                                                              \
            return kn_cuda_fail(__FILE__, __LINE__, #call, cudaGetErrorString(kn_cu_e_));        \
    } while (0)
#define KN_CUDNN(call)                                                                            \
    do {                                                                                          \
        cudnnStatus_t kn_dnn_e_ = (call);                                                         \
        if (kn_dnn_e_ != CUDNN_STATUS_SUCCESS)                                                    \
            return kn_cuda_fail(__FILE__, __LINE__, #call, cudnnGetErrorString(kn_dnn_e_));      \
    } while (0)
#define KN_CUBLAS(call)                                                                           \
    do {                                                                                          \
        cublasStatus_t kn_lt_e_ = (call);                                                         \
        if (kn_lt_e_ != CUBLAS_STATUS_SUCCESS)                                                    \
            return kn_cuda_fail(__FILE__, __LINE__, #call, kn_cublas_status_name(kn_lt_e_));     \
    } while (0)
/* The same, for functions that clean up: sets st and jumps. */
#define KN_CU_GOTO(st, call, label)                                                               \
    do {                                                                                          \
        cudaError_t kn_cu_e_ = (call);                                                            \
        if (kn_cu_e_ != cudaSuccess) {                                                            \
            (st) = kn_cuda_fail(__FILE__, __LINE__, #call, cudaGetErrorString(kn_cu_e_));        \
            goto label;                                                                           \
        }                                                                                         \
    } while (0)
#define KN_CUDNN_GOTO(st, call, label)                                                            \
    do {                                                                                          \
        cudnnStatus_t kn_dnn_e_ = (call);                                                         \
        if (kn_dnn_e_ != CUDNN_STATUS_SUCCESS) {                                                  \
            (st) = kn_cuda_fail(__FILE__, __LINE__, #call, cudnnGetErrorString(kn_dnn_e_));      \
            goto label;                                                                           \
        }                                                                                         \
    } while (0)
#define KN_CUBLAS_GOTO(st, call, label)                                                           \
    do {                                                                                          \
        cublasStatus_t kn_lt_e_ = (call);                                                         \
        if (kn_lt_e_ != CUBLAS_STATUS_SUCCESS) {                                                  \
            (st) = kn_cuda_fail(__FILE__, __LINE__, #call, kn_cublas_status_name(kn_lt_e_));     \
            goto label;                                                                           \
        }                                                                                         \
    } while (0)

/* The step whose kernel is being prepared or run on this thread (named in messages). */
void kn_cuda_set_node(const kn_node *n);
const kn_node *kn_cuda_current_node(void);

/* The session context of a kernel call; kernels run only inside a session. */
static inline kn_cuda_ctx *kn_cuda_ctx_of(const kn_kernel_args *a) { return (kn_cuda_ctx *)a->ctx; }
static inline cudaStream_t kn_cuda_stream(const kn_kernel_args *a) {
    return a->ctx ? ((kn_cuda_ctx *)a->ctx)->stream : (cudaStream_t)0;
}

/* Bumped whenever a kernel's tactic indices change meaning (2: padded-channel convolutions; 3: room
 * for precompiled cuDNN engines among mode A's tactics; 4: kiln's implicit GEMM as tactic 0 of
 * one-group NHWC f16/bf16 convolutions). */
#define KN_CUDA_TACTIC_NUMBERING 4

/* cudaMalloc with a status naming `what` (KILN_ERR_OUT_OF_MEMORY). */
kiln_status kn_cuda_malloc(void **p, size_t bytes, const char *what);

/* Makes the session's cuDNN workspace at least `bytes` (outside any capture; refuses while a
 * recorded graph could still use the old buffer). Any thread that prepares. */
kiln_status kn_cuda_reserve_dnn_ws(kn_cuda_ctx *c, size_t bytes);
/* Frees the shared cuDNN plans still held (cuda_conv.c), at the end of a session. */
void kn_dnn_shared_free_all(kn_cuda_ctx *c);
/* The most workspace a plan may ask for now: the current size while graphs use it. */
size_t kn_cuda_dnn_ws_limit(kn_cuda_ctx *c);
size_t kn_cuda_dnn_ws_limit_locked(const kn_cuda_ctx *c); /* the same, with c->lock held */
/* The cuDNN handle for building plans on this thread: a preparation thread's own, else the
 * session's (c may be NULL outside a session: then NULL). */
cudnnHandle_t kn_cuda_dnn_for_thread(kn_cuda_ctx *c);

/* ---- kernel table ------------------------------------------------------------------------- */
typedef struct kn_cuda_op {
    kn_kernel engine;   /* run == NULL: no kernel */
    kn_kernel fallback; /* run == NULL: the engine kernel serves */
    /* Whether this node (dtypes, attributes) is taken; NULL: always. */
    int (*supports)(const kn_graph *g, const kn_node *n);
} kn_cuda_op;

void kn_cuda_register_elementwise(kn_cuda_op *t);
void kn_cuda_register_nn(kn_cuda_op *t);
void kn_cuda_register_tensor(kn_cuda_op *t);
void kn_cuda_register_reduce(kn_cuda_op *t);
void kn_cuda_register_conv(kn_cuda_op *t);
void kn_cuda_register_gemm(kn_cuda_op *t);

/* ---- helpers for the op families ---------------------------------------------------------- */
/* dtype of a node's input/output value in the graph (INVALID when omitted or unknown). */
kiln_dtype kn_cuda_in_dtype(const kn_graph *g, const kn_node *n, int i);
kiln_dtype kn_cuda_out_dtype(const kn_graph *g, const kn_node *n, int i);
static inline int kn_cuda_is_fp(kiln_dtype t) { return t == KILN_F32 || t == KILN_F16 || t == KILN_BF16; }
static inline int kn_cuda_is_fp_or_f64(kiln_dtype t) { return kn_cuda_is_fp(t) || t == KILN_F64; }

/* Fills a knc_ew for output `out` and inputs (broadcast into out), coalescing dims. Inputs with
 * in[k] == NULL are absent. */
kiln_status kn_cuda_ew_setup(knc_ew *p, const kn_node *n, const kn_tensor *out,
                             const kn_tensor *const *in, int n_in);

/* The epilogue after a library call: y = act(y + scale * bias (broadcast) + residual), in place.
 * bias / residual may be NULL. */
kiln_status kn_cuda_epilogue(const kn_kernel_args *a, const kn_tensor *y, const kn_tensor *bias,
                             float scale, const kn_tensor *residual, int act, float act_alpha,
                             float act_beta);
/* Reads "kiln.act" and its parameters off a node. */
void kn_cuda_node_act(const kn_node *n, int *act, float *alpha, float *beta);

/* Device-to-device copy of a tensor's bytes on the session stream (no-op when src == dst). */
kiln_status kn_cuda_copy_tensor(const kn_kernel_args *a, void *dst, const void *src, size_t bytes);

/* The kernel of Identity, Dropout, Reshape, Flatten, Squeeze, Unsqueeze: a device copy. */
kiln_status kn_cuda_copy_run(const kn_kernel_args *a);
/* An Identity with kiln.to_layout: NCHW -> NHWC (1) or back (0), a transpose of 4-D data. */
kiln_status kn_cuda_layout_run(const kn_kernel_args *a);

/* Row-major contiguous strides of dims. */
void kn_cuda_strides(int rank, const int64_t *dims, int64_t *strides);

#endif
