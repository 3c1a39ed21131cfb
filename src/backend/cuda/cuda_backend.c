/* The CUDA backend: device memory, a stream per session, cuBLASLt and cuDNN handles with their
 * workspaces made up front, constants uploaded once per module, and a recorder that is CUDA
 * stream capture into a cudaGraph_t instantiated as a cudaGraphExec_t. */
#include "cuda_internal.h"

#include <pthread.h>

/* ---- errors --------------------------------------------------------------------------------- */

static _Thread_local const kn_node *kn_cuda_node_tls;

void kn_cuda_set_node(const kn_node *n) { kn_cuda_node_tls = n; }
const kn_node *kn_cuda_current_node(void) { return kn_cuda_node_tls; }

kiln_status kn_cuda_fail(const char *file, int line, const char *call, const char *err) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    const kn_node *n = kn_cuda_node_tls;
    if (n) {
        char lbl[160];
        return kn_error(KILN_ERR_DEVICE, "step %s: %s failed: %s (%s:%d)",
                        kn_node_label(n, lbl, sizeof lbl), call, err ? err : "?", base, line);
    }
    return kn_error(KILN_ERR_DEVICE, "%s failed: %s (%s:%d)", call, err ? err : "?", base, line);
}

const char *kn_cublas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
    }
}

/* ---- device discovery ----------------------------------------------------------------------- */

static pthread_once_t kn_cuda_probe_once = PTHREAD_ONCE_INIT;
static int kn_cuda_ndev;

static void kn_cuda_probe(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        n = 0;
        (void)cudaGetLastError(); /* no driver or no device: not an error for the process */
    }
    kn_cuda_ndev = n;
}

bool kiln_cuda_available(void) {
    pthread_once(&kn_cuda_probe_once, kn_cuda_probe);
    return kn_cuda_ndev > 0;
}

static kiln_status kn_cuda_use_device(int dev) {
    int cur = -1;
    KN_CU(cudaGetDevice(&cur));
    if (cur != dev) KN_CU(cudaSetDevice(dev));
    return KILN_OK;
}

static kiln_status kn_cuda_check_device(int dev) {
    if (!kiln_cuda_available()) return kn_error(KILN_ERR_DEVICE, "no CUDA device is usable in this process");
    if (dev < 0 || dev >= kn_cuda_ndev)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "CUDA device index %d is out of range (this machine has %d)",
                        dev, kn_cuda_ndev);
    return KILN_OK;
}

/* ---- kernel table ------------------------------------------------------------------------------ */

static kn_cuda_op kn_cuda_table[KN_OP_COUNT];
static pthread_once_t kn_cuda_table_once = PTHREAD_ONCE_INIT;

static void kn_cuda_table_init(void) {
    kn_cuda_register_elementwise(kn_cuda_table);
    kn_cuda_register_nn(kn_cuda_table);
    kn_cuda_register_tensor(kn_cuda_table);
    kn_cuda_register_reduce(kn_cuda_table);
    kn_cuda_register_conv(kn_cuda_table);
    kn_cuda_register_gemm(kn_cuda_table);
}

static const kn_cuda_op *kn_cuda_op_of(const kn_node *n) {
    pthread_once(&kn_cuda_table_once, kn_cuda_table_init);
    if (!n || (int)n->op <= 0 || n->op >= KN_OP_COUNT) return NULL;
    const kn_cuda_op *t = &kn_cuda_table[n->op];
    return t->engine.run ? t : NULL;
}

/* Nodes the layout pass marks NHWC (kiln.layout = 1): the ops whose kernels honour it (Conv and the
 * pools index NHWC; elementwise ops see the same layout on every side), on 4-D data. Layout changes
 * (Identity with kiln.to_layout) transpose 4-D data. */
static int kn_cuda_layout_ok(const kn_graph *g, const kn_node *n) {
    const kn_value *x = n->n_in > 0 && n->in[0] >= 0 ? &g->values[n->in[0]] : NULL;
    if (!x || x->rank != 4) return 0;
    switch (n->op) {
    case KN_OP_MaxPool: return n->n_out < 2 || n->out[1] < 0;
    case KN_OP_Identity: {
        int64_t to = kn_attr_i(n, "kiln.to_layout", -1), pad = kn_attr_i(n, "kiln.pad_channels", 0);
        if (to != 0 && to != 1) return 0;
        if (!pad && !kn_node_attr(n, "kiln.to_dtype")) return 1;
        /* converting or padding: to NHWC, float types, to 4 or 8 channels (knc_to_nhwc_narrow) */
        kiln_dtype it = kn_cuda_in_dtype(g, n, 0), ot = kn_cuda_out_dtype(g, n, 0);
        int64_t c = x->dims[1].sym < 0 ? x->dims[1].v : -1, p = pad ? pad : c;
        return to == 1 && kn_cuda_is_fp(it) && kn_cuda_is_fp(ot) && c >= 1 && c <= p && (p == 4 || p == 8);
    }
    case KN_OP_Conv:
    case KN_OP_AveragePool:
    case KN_OP_GlobalAveragePool: return 1;
    case KN_OP_Add:
    case KN_OP_Sub:
    case KN_OP_Mul:
    case KN_OP_Div: {
        /* no broadcasting: both operands and the output have one shape */
        const kn_value *b = n->n_in == 2 && n->in[1] >= 0 ? &g->values[n->in[1]] : NULL;
        const kn_value *y = n->n_out > 0 && n->out[0] >= 0 ? &g->values[n->out[0]] : NULL;
        if (!b || !y || b->rank != 4 || y->rank != 4) return 0;
        for (int i = 0; i < 4; i++)
            if (x->dims[i].v != b->dims[i].v || x->dims[i].sym != b->dims[i].sym || x->dims[i].v != y->dims[i].v ||
                x->dims[i].sym != y->dims[i].sym)
                return 0;
        return 1;
    }
    default: return kn_layout_free_unary(n->op);
    }
}

static int kn_cuda_supports(const kn_graph *g, const kn_node *n) {
    const kn_cuda_op *t = kn_cuda_op_of(n);
    if (!t) return 0;
    if ((kn_attr_i(n, "kiln.layout", 0) != 0 || (n->op == KN_OP_Identity && kn_node_attr(n, "kiln.to_layout"))) &&
        !kn_cuda_layout_ok(g, n))
        return 0;
    return t->supports ? t->supports(g, n) : 1;
}

/* fp16/bf16 and tf32 convolutions run NHWC (cuDNN's NCHW tensor-core engines transpose
 * internally); plain fp32 stays NCHW. */
static int kn_cuda_prefers_nhwc(kiln_precision p) {
    return p == KILN_PRECISION_FP16 || p == KILN_PRECISION_BF16 || p == KILN_PRECISION_TF32;
}

/* A 3-channel image in NHWC f16/bf16 goes to 4 channels: cuDNN 9.19 has kernels for a first layer
 * on 4 channels and none on 3. ResNet's 7x7 stride-2 stem with bias and ReLU (H200, every engine
 * of the three heuristics lists timed in a graph, bench/NOTES.md section 14) measured 12.6 -> 8.4
 * us at batch 1 and 43.6 -> 30.6 us at batch 16; 402 us at batch 256 against section 9's 571 us
 * on 3 channels. Padding to 8 was slower than 4 at every batch. */
static int64_t kn_cuda_nhwc_pad_channels(kiln_precision p, int64_t c) {
    return (p == KILN_PRECISION_FP16 || p == KILN_PRECISION_BF16) && c > 0 && c < 4 ? 4 : c;
}

/* KilnAttention's kernel computes in fp32 on the CUDA cores. In fp32 builds it replaced two
 * cuBLAS fp32 products, the softmax and the copies around them at no loss (transformer, batch 1)
 * or 11 % faster (batch 16; H100, bench/NOTES.md section 11); against tensor-core products (fp16,
 * bf16, tf32) it lost at batch 1, so those builds keep the unfused form. */
static int kn_cuda_fuses_attention(kiln_precision p) { return p == KILN_PRECISION_FP32; }

static const kn_kernel *kn_cuda_engine_kernel(const kn_graph *g, const kn_node *n) {
    if (!kn_cuda_supports(g, n)) return NULL;
    return &kn_cuda_op_of(n)->engine;
}

static const kn_kernel *kn_cuda_fallback_kernel(const kn_graph *g, const kn_node *n) {
    if (!kn_cuda_supports(g, n)) return NULL;
    const kn_cuda_op *t = kn_cuda_op_of(n);
    return t->fallback.run ? &t->fallback : &t->engine;
}

kiln_dtype kn_cuda_in_dtype(const kn_graph *g, const kn_node *n, int i) {
    if (i >= n->n_in || n->in[i] < 0) return KILN_DTYPE_INVALID;
    return g->values[n->in[i]].dtype;
}

kiln_dtype kn_cuda_out_dtype(const kn_graph *g, const kn_node *n, int i) {
    if (i >= n->n_out || n->out[i] < 0) return KILN_DTYPE_INVALID;
    return g->values[n->out[i]].dtype;
}

/* ---- module: constants in one device buffer ------------------------------------------------------ */

static void kn_cuda_module_free(struct kiln_module *m, void *mstate) {
    kn_cuda_module *ms = mstate;
    if (!ms) return;
    if (ms->consts) {
        int cur = -1;
        if (cudaGetDevice(&cur) == cudaSuccess && cur != ms->device) cudaSetDevice(ms->device);
        cudaFree(ms->consts);
        if (cur >= 0 && cur != ms->device) cudaSetDevice(cur);
    }
    kn_free(ms);
}

static kiln_status kn_cuda_module_init(struct kiln_module *m, void **mstate) {
    *mstate = NULL;
    KN_TRY(kn_cuda_check_device(m->device_index));
    KN_TRY(kn_cuda_use_device(m->device_index));
    kn_cuda_set_node(NULL);
    const kn_graph *g = m->graph;
    size_t total = 0;
    for (int v = 0; v < g->n_values; v++) {
        const kn_host_tensor *t = g->values[v].constant;
        if (!t) continue;
        total += ((size_t)kn_host_numel(t) * kiln_dtype_size(t->dtype) + 255) & ~(size_t)255;
    }
    kn_cuda_module *ms = kn_calloc(1, sizeof *ms);
    if (!ms) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for the CUDA module state");
    ms->device = m->device_index;
    ms->const_bytes = total;
    kiln_status st = KILN_OK;
    if (total) {
        cudaError_t e = cudaMalloc(&ms->consts, total);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            kn_free(ms);
            return kn_error(KILN_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of device memory for the module's constants: %s",
                            total, cudaGetErrorString(e));
        }
    }
    size_t off = 0;
    for (int v = 0; v < g->n_values; v++) {
        const kn_host_tensor *t = g->values[v].constant;
        if (!t) continue;
        size_t bytes = (size_t)kn_host_numel(t) * kiln_dtype_size(t->dtype);
        char *dst = (char *)ms->consts + off;
        if (bytes) KN_CU_GOTO(st, cudaMemcpy(dst, t->data, bytes, cudaMemcpyHostToDevice), fail);
        m->const_ptr[v] = dst;
        off += (bytes + 255) & ~(size_t)255;
    }
    /* cudaMemcpy from pageable memory may return before its DMA lands, and it runs on the legacy
     * stream, which sessions' non-blocking streams do not wait for: finish it here */
    if (total) KN_CU_GOTO(st, cudaDeviceSynchronize(), fail);
    *mstate = ms;
    return KILN_OK;
fail:
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].constant) m->const_ptr[v] = NULL;
    kn_cuda_module_free(m, ms);
    return kn_error_context(st, "uploading the module's constants");
}

/* ---- session context ------------------------------------------------------------------------- */

static void kn_cuda_session_free(void *ctx) {
    kn_cuda_ctx *c = ctx;
    if (!c) return;
    int cur = -1;
    if (cudaGetDevice(&cur) == cudaSuccess && cur != c->device) cudaSetDevice(c->device);
    if (c->own_stream) cudaStreamSynchronize(c->own_stream);
    if (c->stream && c->stream != c->own_stream) cudaStreamSynchronize(c->stream);
    kn_dnn_shared_free_all(c);
    for (int i = 0; i < c->n_kcache; i++) cudnnBackendDestroyDescriptor(c->kcache[i].cache);
    kn_free(c->kcache);
    for (int i = 0; i < KN_CUDA_PREP_WORKERS; i++)
        if (c->dnn_worker[i]) cudnnDestroy(c->dnn_worker[i]);
    if (c->dnn) cudnnDestroy(c->dnn);
    if (c->lt) cublasLtDestroy(c->lt);
    if (c->dnn_ws) cudaFree(c->dnn_ws);
    if (c->lt_ws) cudaFree(c->lt_ws);
    if (c->arena) cudaFree(c->arena);
    if (c->ev_start) cudaEventDestroy(c->ev_start);
    if (c->ev_stop) cudaEventDestroy(c->ev_stop);
    if (c->own_stream) cudaStreamDestroy(c->own_stream);
    (void)cudaGetLastError();
    if (cur >= 0 && cur != c->device) cudaSetDevice(cur);
    pthread_cond_destroy(&c->shared_ready);
    pthread_mutex_destroy(&c->lock);
    kn_free(c);
}

kiln_status kn_cuda_malloc(void **p, size_t bytes, const char *what) {
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        *p = NULL;
        (void)cudaGetLastError();
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of device memory for %s: %s", bytes,
                        what, cudaGetErrorString(e));
    }
    return KILN_OK;
}

static kiln_status kn_cuda_session_init(const struct kiln_module *m, size_t arena_bytes, void **out) {
    *out = NULL;
    KN_TRY(kn_cuda_check_device(m->device_index));
    KN_TRY(kn_cuda_use_device(m->device_index));
    kn_cuda_set_node(NULL);
    kn_cuda_ctx *c = kn_calloc(1, sizeof *c);
    if (!c) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory creating a CUDA session");
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        kn_free(c);
        return kn_error(KILN_ERR_INTERNAL, "cannot make the CUDA session's lock");
    }
    if (pthread_cond_init(&c->shared_ready, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        kn_free(c);
        return kn_error(KILN_ERR_INTERNAL, "cannot make the CUDA session's condition variable");
    }
    c->device = m->device_index;
    c->precision = m->precision;
    c->avoid_runtime_compilation = m->avoid_runtime_compilation;
    c->dnn_ws_cap = m->workspace_limit && m->workspace_limit < KN_CUDNN_WS_MAX ? m->workspace_limit : KN_CUDNN_WS_MAX;
    kiln_status st = KILN_OK;
    KN_CU_GOTO(st, cudaStreamCreateWithFlags(&c->own_stream, cudaStreamNonBlocking), fail);
    c->stream = c->own_stream;
    KN_CHECK_GOTO(st, kn_cuda_malloc(&c->arena, arena_bytes, "the activation arena"), fail);
    c->arena_bytes = arena_bytes;
    KN_CUBLAS_GOTO(st, cublasLtCreate(&c->lt), fail);
    KN_CHECK_GOTO(st, kn_cuda_malloc(&c->lt_ws, KN_CUBLASLT_WS_BYTES, "the cuBLASLt workspace"), fail);
    c->lt_ws_bytes = KN_CUBLASLT_WS_BYTES;
    KN_CUDNN_GOTO(st, cudnnCreate(&c->dnn), fail);
    KN_CUDNN_GOTO(st, cudnnSetStream(c->dnn, c->stream), fail);
    KN_CHECK_GOTO(st, kn_cuda_malloc(&c->dnn_ws, KN_CUDNN_WS_MIN, "the cuDNN workspace"), fail);
    c->dnn_ws_bytes = KN_CUDNN_WS_MIN;
    KN_CU_GOTO(st, cudaEventCreate(&c->ev_start), fail);
    KN_CU_GOTO(st, cudaEventCreate(&c->ev_stop), fail);
    *out = c;
    return KILN_OK;
fail:
    kn_cuda_session_free(c);
    return kn_error_context(st, "creating a CUDA session on device %d", m->device_index);
}

static kiln_status kn_cuda_grow_dnn_ws(kn_cuda_ctx *c, size_t bytes) {
    if (bytes <= c->dnn_ws_bytes) return KILN_OK;
    if (kn_prepare_in_background())
        return kn_error(KILN_ERR_INTERNAL, "the cuDNN workspace (%zu bytes) cannot grow to %zu bytes in the background",
                        c->dnn_ws_bytes, bytes);
    if (c->recording || c->live_graphs > 0)
        return kn_error(KILN_ERR_INTERNAL,
                        "the cuDNN workspace (%zu bytes) cannot grow to %zu bytes while recorded graphs use it",
                        c->dnn_ws_bytes, bytes);
    KN_CU(cudaStreamSynchronize(c->stream));
    void *p = NULL;
    KN_TRY(kn_cuda_malloc(&p, bytes, "the cuDNN workspace"));
    cudaFree(c->dnn_ws);
    c->dnn_ws = p;
    c->dnn_ws_bytes = bytes;
    return KILN_OK;
}

kiln_status kn_cuda_reserve_dnn_ws(kn_cuda_ctx *c, size_t bytes) {
    pthread_mutex_lock(&c->lock);
    kiln_status st = kn_cuda_grow_dnn_ws(c, bytes);
    pthread_mutex_unlock(&c->lock);
    return st;
}

size_t kn_cuda_dnn_ws_limit_locked(const kn_cuda_ctx *c) {
    /* background preparation runs while the stream may use the workspace: it stays as it is */
    if (kn_prepare_in_background() || c->recording || c->live_graphs > 0)
        return c->dnn_ws_bytes < c->dnn_ws_cap ? c->dnn_ws_bytes : c->dnn_ws_cap;
    return c->dnn_ws_cap;
}

size_t kn_cuda_dnn_ws_limit(kn_cuda_ctx *c) {
    pthread_mutex_lock(&c->lock);
    size_t limit = kn_cuda_dnn_ws_limit_locked(c);
    pthread_mutex_unlock(&c->lock);
    return limit;
}

/* ---- preparation threads (backend.h worker_begin) ----------------------------------------------- */

static _Thread_local cudnnHandle_t kn_cuda_dnn_tls;

cudnnHandle_t kn_cuda_dnn_for_thread(kn_cuda_ctx *c) {
    if (!c) return NULL;
    return kn_cuda_dnn_tls ? kn_cuda_dnn_tls : c->dnn;
}

static kiln_status kn_cuda_worker_begin(void *ctx, int worker) {
    kn_cuda_ctx *c = ctx;
    if (worker < 1 || worker > KN_CUDA_PREP_WORKERS)
        return kn_error(KILN_ERR_INTERNAL, "preparation thread %d of at most %d", worker, KN_CUDA_PREP_WORKERS);
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    kiln_status st = KILN_OK;
    /* made one at a time, as cuDNN asks of per-thread handles; kept for the session's next shapes */
    pthread_mutex_lock(&c->lock);
    int w = worker - 1;
    if (!c->dnn_worker[w]) {
        cudnnStatus_t e = cudnnCreate(&c->dnn_worker[w]);
        if (e != CUDNN_STATUS_SUCCESS) {
            c->dnn_worker[w] = NULL;
            st = kn_cuda_fail(__FILE__, __LINE__, "cudnnCreate", cudnnGetErrorString(e));
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (st == KILN_OK) kn_cuda_dnn_tls = c->dnn_worker[w];
    return st;
}

static void kn_cuda_worker_end(void *ctx) {
    (void)ctx;
    kn_cuda_dnn_tls = NULL;
    kn_cuda_set_node(NULL);
}

static void *kn_cuda_arena(void *ctx) { return ((kn_cuda_ctx *)ctx)->arena; }

static kiln_status kn_cuda_set_stream(void *ctx, void *stream) {
    kn_cuda_ctx *c = ctx;
    if (c->recording) return kn_error(KILN_ERR_INVALID_ARGUMENT, "cannot change the stream while recording a graph");
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    cudaStream_t s = stream ? (cudaStream_t)stream : c->own_stream;
    if (s != c->stream) {
        /* work queued on the old stream must finish before the new one reuses the arena */
        KN_CU(cudaStreamSynchronize(c->stream));
        KN_CUDNN(cudnnSetStream(c->dnn, s));
        c->stream = s;
    }
    return KILN_OK;
}

static kiln_status kn_cuda_synchronize(void *ctx) {
    kn_cuda_ctx *c = ctx;
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    KN_CU(cudaStreamSynchronize(c->stream));
    return KILN_OK;
}

static kiln_status kn_cuda_alloc(void *ctx, size_t bytes, void **ptr) {
    kn_cuda_ctx *c = ctx;
    *ptr = NULL;
    if (c->recording) return kn_error(KILN_ERR_INTERNAL, "device memory requested while recording a graph");
    KN_TRY(kn_cuda_use_device(c->device));
    return kn_cuda_malloc(ptr, bytes, "a per-shape buffer");
}

static void kn_cuda_free_mem(void *ctx, void *ptr) {
    if (!ptr) return;
    kn_cuda_ctx *c = ctx;
    if (c) (void)kn_cuda_use_device(c->device);
    cudaFree(ptr);
}

static kiln_status kn_cuda_copy_in(void *ctx, void *dst, const void *src, size_t bytes, kiln_device where) {
    kn_cuda_ctx *c = ctx;
    if (!bytes || dst == src) return KILN_OK;
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    KN_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, c->stream));
    return KILN_OK;
}

static kiln_status kn_cuda_copy_out(void *ctx, void *dst, kiln_device where, const void *src, size_t bytes) {
    kn_cuda_ctx *c = ctx;
    if (!bytes || dst == src) return KILN_OK;
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    KN_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, c->stream));
    /* a host destination is ready when the call returns, as on the CPU backend */
    if (where != KILN_DEVICE_CUDA && !c->recording) KN_CU(cudaStreamSynchronize(c->stream));
    return KILN_OK;
}

/* ---- launch and recorder -------------------------------------------------------------------------- */

static void kn_cuda_record_fail(kn_cuda_ctx *c, kiln_status st) {
    if (c->record_status != KILN_OK) return; /* keep the first failure */
    c->record_status = st;
    snprintf(c->record_msg, sizeof c->record_msg, "%s", kiln_last_error());
}

static kiln_status kn_cuda_launch(void *ctx, const kn_kernel *k, const kn_kernel_args *a) {
    kn_cuda_ctx *c = ctx;
    c->last_node = a->node;
    kn_cuda_set_node(a->node);
    if (c->recording) {
        if (c->record_status != KILN_OK) return c->record_status; /* the capture is already lost */
        if (k->capturable && !k->capturable(a->node)) {
            kiln_status st = kn_node_error(a->node, KILN_ERR_UNSUPPORTED,
                                           "this step cannot be captured into a CUDA graph (kernel %s)", k->name);
            kn_cuda_record_fail(c, st);
            return st;
        }
    }
    kiln_status st = k->run(a);
    if (st != KILN_OK && c->recording) kn_cuda_record_fail(c, st);
    return st;
}

typedef struct kn_cuda_graph {
    cudaGraph_t graph;
    cudaGraphExec_t exec; /* NULL until the first launch */
    char last_step[160];  /* for messages */
} kn_cuda_graph;

static kiln_status kn_cuda_graph_instantiate(kn_cuda_graph *g) {
    if (g->exec) return KILN_OK;
    cudaError_t e = cudaGraphInstantiate(&g->exec, g->graph, 0);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        g->exec = NULL;
        return kn_error(KILN_ERR_DEVICE, "cudaGraphInstantiate failed: %s (graph recorded through step %s)",
                        cudaGetErrorString(e), g->last_step);
    }
    return KILN_OK;
}

static kiln_status kn_cuda_record_begin(void *ctx) {
    kn_cuda_ctx *c = ctx;
    if (c->recording) return kn_error(KILN_ERR_INTERNAL, "a recording is already in progress");
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    KN_CU(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    c->recording = 1;
    c->record_status = KILN_OK;
    c->record_msg[0] = 0;
    c->last_node = NULL;
    return KILN_OK;
}

static kiln_status kn_cuda_record_end(void *ctx, void **graph) {
    kn_cuda_ctx *c = ctx;
    *graph = NULL;
    if (!c->recording) return kn_error(KILN_ERR_INTERNAL, "no recording in progress");
    c->recording = 0;
    kn_cuda_set_node(NULL);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    char step[160] = "(before the first step)";
    if (c->last_node) kn_node_label(c->last_node, step, sizeof step);
    if (c->record_status != KILN_OK || e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        /* clear the sticky capture error and make sure the stream is out of capture mode */
        (void)cudaGetLastError();
        enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
        if (cudaStreamIsCapturing(c->stream, &cs) == cudaSuccess && cs != cudaStreamCaptureStatusNone) {
            cudaGraph_t junk = NULL;
            if (cudaStreamEndCapture(c->stream, &junk) == cudaSuccess && junk) cudaGraphDestroy(junk);
            (void)cudaGetLastError();
        }
        if (c->record_status != KILN_OK)
            return kn_error(c->record_status, "recording a CUDA graph failed at step %s: %s", step, c->record_msg);
        return kn_error(KILN_ERR_DEVICE,
                        "recording a CUDA graph failed: cudaStreamEndCapture: %s (the capture broke at or before "
                        "step %s, the last one launched)",
                        cudaGetErrorString(e), step);
    }
    if (!g) return kn_error(KILN_ERR_INTERNAL, "stream capture produced no graph");
    kn_cuda_graph *r = kn_calloc(1, sizeof *r);
    if (!r) {
        cudaGraphDestroy(g);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for a recorded graph");
    }
    /* instantiated at the first launch: a recording that only refreshes an existing graph
     * (graph_update) never pays for an instantiation */
    r->graph = g;
    snprintf(r->last_step, sizeof r->last_step, "%s", step);
    c->live_graphs++;
    *graph = r;
    return KILN_OK;
}

static kiln_status kn_cuda_graph_update(void *ctx, void *graph, void *fresh, int *updated) {
    kn_cuda_ctx *c = ctx;
    kn_cuda_graph *g = graph, *f = fresh;
    *updated = 0;
    KN_TRY(kn_cuda_use_device(c->device));
    if (!g->exec) return KILN_OK; /* never launched: nothing to refresh, the caller keeps `fresh` */
    cudaGraphExecUpdateResultInfo info;
    memset(&info, 0, sizeof info);
    cudaError_t e = cudaGraphExecUpdate(g->exec, f->graph, &info);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* a topology change: the caller keeps the fresh recording */
        KN_VERBOSE("cuda: cudaGraphExecUpdate refused the new recording (%s, result %d): it is instantiated instead",
                   cudaGetErrorString(e), (int)info.result);
        return KILN_OK;
    }
    /* g's exec now runs f's topology: keep the matching cudaGraph_t with it */
    cudaGraph_t t = g->graph;
    g->graph = f->graph;
    f->graph = t;
    *updated = 1;
    return KILN_OK;
}

static kiln_status kn_cuda_graph_launch(void *ctx, void *graph) {
    kn_cuda_ctx *c = ctx;
    kn_cuda_graph *g = graph;
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    KN_TRY(kn_cuda_graph_instantiate(g));
    KN_CU(cudaGraphLaunch(g->exec, c->stream));
    return KILN_OK;
}

static void kn_cuda_graph_free(void *ctx, void *graph) {
    kn_cuda_ctx *c = ctx;
    kn_cuda_graph *g = graph;
    if (!g) return;
    if (c) (void)kn_cuda_use_device(c->device);
    if (g->exec) cudaGraphExecDestroy(g->exec);
    if (g->graph) cudaGraphDestroy(g->graph);
    kn_free(g);
    if (c && c->live_graphs > 0) c->live_graphs--;
}

/* ---- device timer (profiles) ---------------------------------------------------------------------- */

static kiln_status kn_cuda_timer_begin(void *ctx) {
    kn_cuda_ctx *c = ctx;
    if (c->recording) return kn_error(KILN_ERR_INTERNAL, "the device timer cannot run while a graph is recorded");
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    KN_CU(cudaEventRecord(c->ev_start, c->stream));
    return KILN_OK;
}

static kiln_status kn_cuda_timer_end(void *ctx, double *ms) {
    kn_cuda_ctx *c = ctx;
    *ms = 0;
    KN_TRY(kn_cuda_use_device(c->device));
    kn_cuda_set_node(NULL);
    KN_CU(cudaEventRecord(c->ev_stop, c->stream));
    KN_CU(cudaEventSynchronize(c->ev_stop));
    float f = 0;
    KN_CU(cudaEventElapsedTime(&f, c->ev_start, c->ev_stop));
    *ms = f;
    return KILN_OK;
}

/* ---- helpers shared by the families -------------------------------------------------------------- */

void kn_cuda_strides(int rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

kiln_status kn_cuda_copy_tensor(const kn_kernel_args *a, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return KILN_OK;
    KN_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, kn_cuda_stream(a)));
    return KILN_OK;
}

static void kn_cuda_describe(void *ctx, char *buf, size_t cap) {
    kn_cuda_ctx *c = ctx;
    int dev = c ? c->device : 0, drv = 0, rt = 0;
    struct cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess) (void)cudaGetLastError();
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    int lt = (int)cublasLtGetVersion();
    /* "tactics N" numbers the meaning of tactic indices: engines and timing caches made under
     * another numbering are refused (tuned engines) or not matched (cache keys) */
    snprintf(buf, cap, "%s sm_%d%d cudnn %zu cublasLt %d runtime %d driver %d tactics %d",
             prop.name[0] ? prop.name : "cuda", prop.major, prop.minor, (size_t)cudnnGetVersion(), lt, rt, drv,
             KN_CUDA_TACTIC_NUMBERING);
}

static const kn_backend kn_cuda_backend = {
    .name = "cuda",
    .device = KILN_DEVICE_CUDA,
    .supports_op = kn_cuda_supports,
    .engine_kernel = kn_cuda_engine_kernel,
    .fallback_kernel = kn_cuda_fallback_kernel,
    .prefers_nhwc = kn_cuda_prefers_nhwc,
    .nhwc_pad_channels = kn_cuda_nhwc_pad_channels,
    .fuses_attention = kn_cuda_fuses_attention,
    .module_init = kn_cuda_module_init,
    .module_free = kn_cuda_module_free,
    .session_init = kn_cuda_session_init,
    .session_free = kn_cuda_session_free,
    .arena = kn_cuda_arena,
    .set_stream = kn_cuda_set_stream,
    .synchronize = kn_cuda_synchronize,
    .worker_begin = kn_cuda_worker_begin,
    .worker_end = kn_cuda_worker_end,
    .alloc = kn_cuda_alloc,
    .free = kn_cuda_free_mem,
    .copy_in = kn_cuda_copy_in,
    .copy_out = kn_cuda_copy_out,
    .launch = kn_cuda_launch,
    .record_begin = kn_cuda_record_begin,
    .record_end = kn_cuda_record_end,
    .graph_update = kn_cuda_graph_update,
    .graph_launch = kn_cuda_graph_launch,
    .graph_free = kn_cuda_graph_free,
    .timer_begin = kn_cuda_timer_begin,
    .timer_end = kn_cuda_timer_end,
    .describe = kn_cuda_describe,
};

const kn_backend *kn_backend_cuda(void) { return kiln_cuda_available() ? &kn_cuda_backend : NULL; }
