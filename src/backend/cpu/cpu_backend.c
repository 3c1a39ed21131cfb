/* The CPU backend: memory is host memory, the "stream" is the calling thread, and the recorder
 * stores each launch as a prepared call that replays with no dispatch, checks or allocation. */
#include "cpu.h"

#include "build/module.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

static kn_kernel kn_cpu_table[KN_OP_COUNT];
static pthread_once_t kn_cpu_once = PTHREAD_ONCE_INIT;

static void kn_cpu_init(void) {
    kn_cpu_register_elementwise(kn_cpu_table);
    kn_cpu_register_nn(kn_cpu_table);
    kn_cpu_register_tensor(kn_cpu_table);
    kn_cpu_register_reduce(kn_cpu_table);
    kn_cpu_register_attention(kn_cpu_table);
}

const kn_kernel *kn_cpu_kernel(kn_op op) {
    pthread_once(&kn_cpu_once, kn_cpu_init);
    if ((int)op <= 0 || op >= KN_OP_COUNT) return NULL;
    return &kn_cpu_table[op];
}

kiln_status kn_cpu_eval_node(const kn_node *n, const kn_tensor *in, int n_in, kn_tensor *out, int n_out) {
    const kn_kernel *k = kn_cpu_kernel(n->op);
    if (!k || !k->run) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "the CPU backend has no kernel for this op");
    kn_kernel_args a = {.node = n, .in = in, .n_in = n_in, .out = out, .n_out = n_out};
    void *state = NULL;
    if (k->prepare) KN_TRY(k->prepare(&a, &state));
    a.state = state;
    kiln_status st = k->run(&a);
    if (k->release && state) k->release(state);
    return st;
}

void kn_cpu_broadcast_strides(const kn_tensor *in, const kn_tensor *out, int64_t *strides) {
    int off = out->rank - in->rank;
    int64_t s = 1;
    for (int i = out->rank - 1; i >= 0; i--) {
        int j = i - off;
        if (j < 0 || in->dims[j] == 1) {
            strides[i] = 0;
        } else {
            strides[i] = s;
        }
        if (j >= 0) s *= in->dims[j];
    }
}

float kn_cpu_act(int act, float x, float alpha, float beta) {
    switch (act) {
    case KN_ACT_RELU: return x > 0 ? x : 0;
    case KN_ACT_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
    case KN_ACT_CLIP: return x < alpha ? alpha : x > beta ? beta : x;
    case KN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case KN_ACT_HARDSWISH: { float t = x + 3; t = t < 0 ? 0 : t > 6 ? 6 : t; return x * t / 6; }
    case KN_ACT_SILU: return x / (1.0f + expf(-x));
    case KN_ACT_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case KN_ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case KN_ACT_LEAKY_RELU: return x >= 0 ? x : alpha * x;
    default: return x;
    }
}

kiln_status kn_cpu_scratch_new(size_t bytes, void **state) {
    kn_cpu_scratch *s = kn_calloc(1, sizeof *s);
    if (!s) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for kernel scratch");
    s->bytes = bytes;
    s->data = kn_aligned_alloc(bytes ? bytes : 64);
    if (!s->data) {
        kn_free(s);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for %zu bytes of kernel scratch", bytes);
    }
    *state = s;
    return KILN_OK;
}

void kn_cpu_scratch_free(void *state) {
    kn_cpu_scratch *s = state;
    if (!s) return;
    kn_aligned_free(s->data);
    kn_free(s);
}

/* ---- session context and recorder ------------------------------------------------------------- */

typedef struct kn_cpu_call {
    kiln_status (*run)(const kn_kernel_args *a);
    const kn_kernel_args *args;
} kn_cpu_call;

typedef struct kn_cpu_graph {
    int n, cap;
    kn_cpu_call *calls;
} kn_cpu_graph;

typedef struct kn_cpu_ctx {
    void *arena;
    kn_cpu_graph *recording; /* non-NULL between record_begin and record_end */
    kiln_status record_status;
} kn_cpu_ctx;

static int kn_cpu_supports(const kn_graph *g, const kn_node *n) {
    const kn_kernel *k = kn_cpu_kernel(n->op);
    return k && k->run != NULL;
}

static const kn_kernel *kn_cpu_kernel_for(const kn_graph *g, const kn_node *n) {
    const kn_kernel *k = kn_cpu_kernel(n->op);
    return k && k->run ? k : NULL;
}

static kiln_status kn_cpu_module_init(struct kiln_module *m, void **mstate) {
    /* constants are used where they are: the graph's host tensors */
    for (int v = 0; v < m->graph->n_values; v++)
        if (m->graph->values[v].constant) m->const_ptr[v] = m->graph->values[v].constant->data;
    *mstate = NULL;
    return KILN_OK;
}

static void kn_cpu_module_free(struct kiln_module *m, void *mstate) {}

static kiln_status kn_cpu_session_init(const struct kiln_module *m, size_t arena_bytes, void **out) {
    kn_cpu_ctx *c = kn_calloc(1, sizeof *c);
    if (!c) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory creating a session");
    c->arena = kn_aligned_alloc(arena_bytes ? arena_bytes : 64);
    if (!c->arena) {
        kn_free(c);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "cannot allocate the %zu-byte activation arena", arena_bytes);
    }
    *out = c;
    return KILN_OK;
}

static void kn_cpu_session_free(void *ctx) {
    kn_cpu_ctx *c = ctx;
    if (!c) return;
    kn_aligned_free(c->arena);
    kn_free(c);
}

static void *kn_cpu_arena(void *ctx) { return ((kn_cpu_ctx *)ctx)->arena; }
static kiln_status kn_cpu_set_stream(void *ctx, void *stream) {
    if (stream) return kn_error(KILN_ERR_INVALID_ARGUMENT, "the CPU backend has no streams");
    return KILN_OK;
}
static kiln_status kn_cpu_sync(void *ctx) { return KILN_OK; }

static kiln_status kn_cpu_alloc(void *ctx, size_t bytes, void **ptr) {
    *ptr = kn_aligned_alloc(bytes ? bytes : 64);
    if (!*ptr) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory (%zu bytes)", bytes);
    return KILN_OK;
}
static void kn_cpu_free(void *ctx, void *ptr) { kn_aligned_free(ptr); }

static kiln_status kn_cpu_copy_in(void *ctx, void *dst, const void *src, size_t bytes, kiln_device where) {
    if (where == KILN_DEVICE_CUDA)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "a CPU module got an input in CUDA memory");
    if (dst != src && bytes) memmove(dst, src, bytes);
    return KILN_OK;
}
static kiln_status kn_cpu_copy_out(void *ctx, void *dst, kiln_device where, const void *src, size_t bytes) {
    if (where == KILN_DEVICE_CUDA)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "a CPU module cannot write an output to CUDA memory");
    if (dst != src && bytes) memmove(dst, src, bytes);
    return KILN_OK;
}

static kiln_status kn_cpu_launch(void *ctx, const kn_kernel *k, const kn_kernel_args *a) {
    kn_cpu_ctx *c = ctx;
    if (!c->recording) return k->run(a);
    kn_cpu_graph *gr = c->recording;
    if (k->capturable && !k->capturable(a->node)) {
        c->record_status = kn_node_error(a->node, KILN_ERR_UNSUPPORTED, "this step cannot be recorded");
        return c->record_status;
    }
    kiln_status st = KN_GROW(gr->calls, gr->cap, gr->n + 1);
    if (st != KILN_OK) { c->record_status = st; return st; }
    gr->calls[gr->n++] = (kn_cpu_call){k->run, a};
    return KILN_OK;
}

static kiln_status kn_cpu_record_begin(void *ctx) {
    kn_cpu_ctx *c = ctx;
    if (c->recording) return kn_error(KILN_ERR_INTERNAL, "a recording is already in progress");
    c->recording = kn_calloc(1, sizeof *c->recording);
    if (!c->recording) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory recording");
    c->record_status = KILN_OK;
    return KILN_OK;
}

static void kn_cpu_graph_free(void *ctx, void *graph) {
    kn_cpu_graph *g = graph;
    if (!g) return;
    kn_free(g->calls);
    kn_free(g);
}

static kiln_status kn_cpu_record_end(void *ctx, void **graph) {
    kn_cpu_ctx *c = ctx;
    *graph = NULL;
    kn_cpu_graph *g = c->recording;
    c->recording = NULL;
    if (!g) return kn_error(KILN_ERR_INTERNAL, "no recording in progress");
    if (c->record_status != KILN_OK) {
        kn_cpu_graph_free(ctx, g);
        return c->record_status;
    }
    *graph = g;
    return KILN_OK;
}

static kiln_status kn_cpu_graph_launch(void *ctx, void *graph) {
    const kn_cpu_graph *g = graph;
    for (int i = 0; i < g->n; i++) {
        kiln_status st = g->calls[i].run(g->calls[i].args);
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

static kiln_status kn_cpu_graph_update(void *ctx, void *graph, void *fresh, int *updated) {
    /* same topology: swap the call list in place, as cudaGraphExecUpdate keeps the exec */
    kn_cpu_graph *g = graph, *f = fresh;
    *updated = 0;
    if (g->n != f->n) return KILN_OK;
    for (int i = 0; i < g->n; i++)
        if (g->calls[i].run != f->calls[i].run) return KILN_OK;
    memcpy(g->calls, f->calls, (size_t)g->n * sizeof *g->calls);
    *updated = 1;
    return KILN_OK;
}

static const kn_backend kn_cpu_backend = {
    .name = "cpu",
    .device = KILN_DEVICE_CPU,
    .supports_op = kn_cpu_supports,
    .engine_kernel = kn_cpu_kernel_for,
    .fallback_kernel = kn_cpu_kernel_for,
    .module_init = kn_cpu_module_init,
    .module_free = kn_cpu_module_free,
    .session_init = kn_cpu_session_init,
    .session_free = kn_cpu_session_free,
    .arena = kn_cpu_arena,
    .set_stream = kn_cpu_set_stream,
    .synchronize = kn_cpu_sync,
    .alloc = kn_cpu_alloc,
    .free = kn_cpu_free,
    .copy_in = kn_cpu_copy_in,
    .copy_out = kn_cpu_copy_out,
    .launch = kn_cpu_launch,
    .record_begin = kn_cpu_record_begin,
    .record_end = kn_cpu_record_end,
    .graph_update = kn_cpu_graph_update,
    .graph_launch = kn_cpu_graph_launch,
    .graph_free = kn_cpu_graph_free,
};

const kn_backend *kn_backend_cpu(void) { return &kn_cpu_backend; }

#ifndef KILN_HAVE_CUDA
const kn_backend *kn_backend_cuda(void) { return NULL; }
bool kiln_cuda_available(void) { return false; }
#endif
