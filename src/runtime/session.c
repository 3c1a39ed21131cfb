/* Sessions: input checks against the profile, shape instances, I/O, and the CUDA-graph manager
 * (modes, a cache of recorded graphs keyed by input shapes with an LRU bound, warm-up, capture
 * failures that fall back to eager runs). Nothing here knows an op by name. */
#include "runtime.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_bool kn_global_graphs = false;

void kiln_set_cudagraphs_mode(bool enabled) { atomic_store(&kn_global_graphs, enabled); }
bool kiln_get_cudagraphs_mode(void) { return atomic_load(&kn_global_graphs); }

/* ---- instances ------------------------------------------------------------------------------ */

static void kn_instance_free_graphs(kiln_session *s, kn_instance *in) {
    const kiln_module *m = s->m;
    if (in->whole) s->be->graph_free(s->ctx, in->whole);
    in->whole = NULL;
    in->warm_whole = in->failed_whole = 0;
    for (int g = 0; g < m->part.n_segments; g++) {
        if (in->block && in->block[g]) s->be->graph_free(s->ctx, in->block[g]);
        if (in->block) in->block[g] = NULL;
        if (in->warm_block) in->warm_block[g] = 0;
        if (in->failed_block) in->failed_block[g] = 0;
    }
}

static void kn_instance_free(kiln_session *s, kn_instance *in) {
    if (!in) return;
    const kiln_module *m = s->m;
    kn_instance_free_graphs(s, in);
    /* the stream may still read buffers made for this instance */
    if (s->be->synchronize) s->be->synchronize(s->ctx);
    for (int i = 0; in->kstate && i < m->part.n_steps; i++)
        if (in->kstate[i] && m->part.steps[i].kernel->release) m->part.steps[i].kernel->release(in->kstate[i]);
    for (int v = 0; in->dev_host && v < m->graph->n_values; v++)
        if (in->dev_host[v]) s->be->free(s->ctx, in->dev_host[v]);
    kn_shapes_free(&in->shapes);
    kn_free(in->sig); kn_free(in->vals); kn_free(in->io); kn_free(in->args); kn_free(in->kstate);
    kn_free(in->dev_host); kn_free(in->block); kn_free(in->warm_block); kn_free(in->failed_block);
    kn_free(in);
}

static kiln_status kn_instance_create(kiln_session *s, const int64_t (*dims)[KILN_MAX_RANK], kn_instance **out) {
    const kiln_module *m = s->m;
    const kn_graph *g = m->graph;
    *out = NULL;
    double t_create = kn_now_ms();
    kn_instance *in = kn_calloc(1, sizeof *in);
    if (!in) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    kiln_status st = KILN_OK;
    int n_io = 0;
    for (int i = 0; i < m->part.n_steps; i++) {
        const kn_node *nd = &g->nodes[m->part.steps[i].node];
        n_io += nd->n_in + nd->n_out;
    }
    for (int k = 0; k < m->n_inputs; k++) in->sig_len += m->inputs[k].rank;
    int nseg = m->part.n_segments;
    in->sig = kn_malloc(((size_t)in->sig_len + 1) * sizeof *in->sig);
    in->vals = kn_calloc((size_t)g->n_values + 1, sizeof *in->vals);
    in->io = kn_calloc((size_t)n_io + 1, sizeof *in->io);
    in->args = kn_calloc((size_t)m->part.n_steps + 1, sizeof *in->args);
    in->kstate = kn_calloc((size_t)m->part.n_steps + 1, sizeof *in->kstate);
    in->dev_host = kn_calloc((size_t)g->n_values + 1, sizeof *in->dev_host);
    in->block = kn_calloc((size_t)nseg + 1, sizeof *in->block);
    in->warm_block = kn_calloc((size_t)nseg + 1, sizeof *in->warm_block);
    in->failed_block = kn_calloc((size_t)nseg + 1, sizeof *in->failed_block);
    if (!in->sig || !in->vals || !in->io || !in->args || !in->kstate || !in->dev_host || !in->block ||
        !in->warm_block || !in->failed_block) {
        st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a shape");
        goto fail;
    }
    for (int k = 0, j = 0; k < m->n_inputs; k++)
        for (int i = 0; i < m->inputs[k].rank; i++) in->sig[j++] = dims[k][i];

    int *order = kn_malloc(((size_t)g->n_nodes + 1) * sizeof(int));
    if (!order) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); goto fail; }
    for (int i = 0; i < g->n_nodes; i++) order[i] = i;
    st = kn_shapes_infer(g, order, g->n_nodes, dims, &in->shapes);
    kn_free(order);
    if (st != KILN_OK) goto fail;

    for (int v = 0; v < g->n_values; v++) {
        kn_tensor *t = &in->vals[v];
        *t = in->shapes.vals[v];
        t->data = NULL;
        if (m->offset[v] >= 0) {
            size_t need = kn_tensor_bytes(t);
            if (need > m->bytes[v]) {
                st = kn_error(KILN_ERR_SHAPE,
                              "value '%s' needs %zu bytes at these input shapes but the memory plan made at the "
                              "profile's max shape gives it %zu: its size does not grow monotonically with the inputs",
                              g->values[v].name, need, m->bytes[v]);
                goto fail;
            }
            t->data = s->arena + m->offset[v];
        } else if (g->values[v].constant) {
            t->data = m->const_ptr[v];
        }
    }
    /* host-known values read by device steps as data get a device copy of their own per shape */
    for (int i = 0; i < m->part.n_steps; i++) {
        const kn_node *nd = &g->nodes[m->part.steps[i].node];
        uint32_t host_mask = kn_op_get(nd->op)->host_inputs;
        for (int k = 0; k < nd->n_in; k++) {
            int v = nd->in[k];
            if (v < 0 || in->vals[v].data || (host_mask >> k & 1u)) continue;
            if (!in->vals[v].host) {
                st = kn_node_error(nd, KILN_ERR_INTERNAL, "input %d ('%s') has no memory", k, g->values[v].name);
                goto fail;
            }
            size_t bytes = kn_tensor_bytes(&in->vals[v]);
            KN_CHECK_GOTO(st, s->be->alloc(s->ctx, bytes ? bytes : 1, &in->dev_host[v]), fail);
            KN_CHECK_GOTO(st, s->be->copy_in(s->ctx, in->dev_host[v], in->vals[v].host, bytes, KILN_DEVICE_CPU), fail);
            in->vals[v].data = in->dev_host[v];
        }
    }
    kn_tensor *io = in->io;
    for (int i = 0; i < m->part.n_steps; i++) {
        const kn_step *step = &m->part.steps[i];
        const kn_node *nd = &g->nodes[step->node];
        kn_kernel_args *a = &in->args[i];
        a->node = nd;
        a->in = io;
        a->n_in = nd->n_in;
        for (int k = 0; k < nd->n_in; k++) {
            if (nd->in[k] >= 0) io[k] = in->vals[nd->in[k]];
            else memset(&io[k], 0, sizeof io[k]);
        }
        io += nd->n_in;
        a->out = io;
        a->n_out = nd->n_out;
        for (int k = 0; k < nd->n_out; k++) {
            if (nd->out[k] >= 0) io[k] = in->vals[nd->out[k]];
            else memset(&io[k], 0, sizeof io[k]);
        }
        io += nd->n_out;
        a->ctx = s->ctx;
        a->tactic = step->tactic;
        a->tactic_key = step->tactic_key[0] ? step->tactic_key : NULL;
    }
    double t_prep = kn_now_ms();
    KN_CHECK_GOTO(st, kn_prepare_steps(s, in), fail);
    KN_VERBOSE("session: shapes, pointers and host-known values of the new shape in %.2f ms, its preparation %.2f ms",
               t_prep - t_create, kn_now_ms() - t_prep);
    *out = in;
    return KILN_OK;
fail:
    kn_instance_free(s, in);
    return st;
}

/* Keeps g as the spare of its slot (freeing an older spare). */
static void kn_keep_spare(kiln_session *s, void **spare, void *g) {
    if (!g) return;
    if (*spare) s->be->graph_free(s->ctx, *spare);
    *spare = g;
}

static void kn_free_spares(kiln_session *s) {
    if (s->spare_whole) s->be->graph_free(s->ctx, s->spare_whole);
    s->spare_whole = NULL;
    for (int g = 0; s->spare_block && g < s->m->part.n_segments; g++) {
        if (s->spare_block[g]) s->be->graph_free(s->ctx, s->spare_block[g]);
        s->spare_block[g] = NULL;
    }
}

/* Hands the instance's graphs over as the spares of their slots, where the backend can refresh a
 * graph in place for the next recording (the instance keeps none). */
static void kn_instance_graphs_to_spares(kiln_session *s, kn_instance *in) {
    if (!s->be->graph_update) return;
    kn_keep_spare(s, &s->spare_whole, in->whole);
    in->whole = NULL;
    for (int g = 0; g < s->m->part.n_segments; g++) {
        kn_keep_spare(s, &s->spare_block[g], in->block[g]);
        in->block[g] = NULL;
    }
}

/* Ends background preparation (waiting for it with `wait`): an instance whose steps swapped to
 * their tuned kernels drops its graphs (as spares), so that its next run records them anew. */
static void kn_session_settle(kiln_session *s, int wait) {
    kn_instance *in = NULL;
    if (!s->bg || kn_prepare_background_end(s, wait, 0, &in) == 0 || !in) return;
    kn_instance_graphs_to_spares(s, in);
    kn_instance_free_graphs(s, in);
    s->counters.upgrades++;
}

static void kn_session_evict_lru(kiln_session *s) {
    int victim = 0;
    for (int i = 1; i < s->n_cache; i++)
        if (s->cache[i]->last_used < s->cache[victim]->last_used) victim = i;
    kn_instance *in = s->cache[victim];
    kn_instance_graphs_to_spares(s, in); /* they may be refreshed for the next shape */
    kn_instance_free(s, in);
    s->cache[victim] = s->cache[--s->n_cache];
    s->counters.evictions++;
}

kiln_status kn_session_instance(kiln_session *s, const int64_t (*dims)[KILN_MAX_RANK], kn_instance **out) {
    kn_session_settle(s, 0);
    for (int i = 0; i < s->n_cache; i++) {
        kn_instance *in = s->cache[i];
        int same = 1;
        for (int k = 0, j = 0; k < s->m->n_inputs && same; k++)
            for (int d = 0; d < s->m->inputs[k].rank && same; d++) same = in->sig[j++] == dims[k][d];
        if (same) {
            in->last_used = ++s->clock;
            *out = in;
            return KILN_OK;
        }
    }
    kn_session_settle(s, 1); /* one background preparation at a time: its helpers hold the workers */
    while (s->n_cache >= s->max_graphs && s->n_cache > 0) kn_session_evict_lru(s);
    KN_TRY(KN_GROW(s->cache, s->cap_cache, s->n_cache + 1));
    kn_instance *in;
    double t0 = kn_now_ms();
    KN_TRY(kn_instance_create(s, dims, &in));
    KN_VERBOSE("session: a new shape, %d steps prepared in %.2f ms", s->m->part.n_steps, kn_now_ms() - t0);
    in->last_used = ++s->clock;
    s->cache[s->n_cache++] = in;
    *out = in;
    return KILN_OK;
}

int kn_step_noop(const kiln_module *m, const kn_instance *in, int i) {
    const kn_kernel_args *a = &in->args[i];
    return m->part.steps[i].view && a->n_in > 0 && a->n_out > 0 && a->in[0].data == a->out[0].data;
}

/* A launch slower than this while recording is logged (-v): the first launch of a library kernel
 * at a shape may load its code or set it up (milliseconds), which a graph replay never repeats. */
#define KN_SLOW_LAUNCH_MS 0.25

static kiln_status kn_run_steps(kiln_session *s, kn_instance *in, int first, int count, int log_slow) {
    const kiln_module *m = s->m;
    for (int i = first; i < first + count; i++) {
        if (kn_step_noop(m, in, i)) continue; /* a view: nothing to launch, nothing to record */
        double t0 = log_slow ? kn_now_ms() : 0;
        kiln_status st = s->be->launch(s->ctx, m->part.steps[i].kernel, &in->args[i]);
        if (st != KILN_OK) return kn_error_context(st, "step %d", i);
        if (log_slow && kn_now_ms() - t0 > KN_SLOW_LAUNCH_MS)
            KN_VERBOSE("session: step %d (%s) took %.2f ms to record", i, m->part.steps[i].kernel->name, kn_now_ms() - t0);
    }
    return KILN_OK;
}

kiln_status kn_instance_run_eager(kiln_session *s, kn_instance *in, int first, int count) {
    return kn_run_steps(s, in, first, count, 0);
}

/* ---- graphs ----------------------------------------------------------------------------------- */

void *kn_record_launches(kiln_session *s, const kn_kernel *k, const kn_kernel_args *a, int reps) {
    if (!s->be->record_begin || !s->be->graph_launch) return NULL;
    if (k->capturable && !k->capturable(a->node)) return NULL;
    if (s->be->record_begin(s->ctx) != KILN_OK) {
        kn_clear_error();
        return NULL;
    }
    kiln_status st = KILN_OK;
    for (int r = 0; r < reps && st == KILN_OK; r++) st = s->be->launch(s->ctx, k, a);
    void *g = NULL;
    kiln_status end = s->be->record_end(s->ctx, &g);
    if (st != KILN_OK || end != KILN_OK) {
        if (g) s->be->graph_free(s->ctx, g);
        kn_clear_error();
        return NULL;
    }
    return g;
}

/* Records steps [first, first+count) into *graph. On failure the stream stays usable. A spare
 * graph of the same slot is updated in place when the backend can (cudaGraphExecUpdate), which
 * saves the instantiation. */
static kiln_status kn_record(kiln_session *s, kn_instance *in, int first, int count, void **spare, void **graph) {
    *graph = NULL;
    double t0 = kn_now_ms();
    KN_TRY(s->be->record_begin(s->ctx));
    kiln_status st = kn_run_steps(s, in, first, count, 1);
    void *g = NULL;
    kiln_status end = s->be->record_end(s->ctx, &g);
    if (st != KILN_OK) {
        if (g) s->be->graph_free(s->ctx, g);
        return st;
    }
    if (end != KILN_OK) return end;
    s->counters.captures++;
    double t_rec = kn_now_ms();
    const char *how = "instantiated";
    if (*spare && s->be->graph_update) {
        int updated = 0;
        kiln_status us = s->be->graph_update(s->ctx, *spare, g, &updated);
        if (us != KILN_OK) {
            s->be->graph_free(s->ctx, g);
            return us;
        }
        if (updated) {
            s->be->graph_free(s->ctx, g);
            g = *spare;
            s->counters.updates++;
            how = "instantiated, then a spare graph updated in its place";
        } else {
            s->be->graph_free(s->ctx, *spare);
        }
        *spare = NULL;
    }
    KN_VERBOSE("session: steps %d..%d recorded and %s in %.2f ms (+%.2f ms)", first, first + count - 1, how, t_rec - t0,
               kn_now_ms() - t_rec);
    *graph = g;
    return KILN_OK;
}

/* Runs a range through its graph slot: replay, or warm up, record and replay, or run eagerly
 * when capture failed before. */
static kiln_status kn_run_graphed(kiln_session *s, kn_instance *in, int first, int count, void **slot,
                                  void **spare, int *warm, int *failed, const char *what, int *replayed) {
    if (*slot) {
        s->counters.cache_hits++;
        *replayed = 1;
        return s->be->graph_launch(s->ctx, *slot);
    }
    if (*failed) return kn_instance_run_eager(s, in, first, count);
    /* warm-up before the session's first capture: lazy library initialisation happens here */
    while (s->counters.captures == 0 && *warm < s->warmup) {
        KN_TRY(kn_instance_run_eager(s, in, first, count));
        (*warm)++;
        s->counters.warmups++;
    }
    void *g = NULL;
    kiln_status st = kn_record(s, in, first, count, spare, &g);
    if (st != KILN_OK) {
        if (st == KILN_ERR_OUT_OF_MEMORY) return st;
        KN_WARN("recording %s failed, running it without graphs from now on: %s", what, kiln_last_error());
        kn_clear_error();
        *failed = 1;
        s->counters.eager_fallbacks++;
        return kn_instance_run_eager(s, in, first, count);
    }
    *slot = g;
    *replayed = 1;
    double t0 = kn_now_ms();
    st = s->be->graph_launch(s->ctx, g);
    KN_VERBOSE("session: the first launch of %s (instantiation where deferred) in %.2f ms", what, kn_now_ms() - t0);
    return st;
}

static kiln_cudagraphs_mode kn_effective_mode(const kiln_session *s) {
    if (s->mode != KILN_CUDAGRAPHS_DEFAULT) return s->mode;
    return kiln_get_cudagraphs_mode() ? KILN_CUDAGRAPHS_PER_BLOCK : KILN_CUDAGRAPHS_OFF;
}

static int kn_module_capturable(const kiln_module *m) {
    for (int g = 0; g < m->part.n_segments; g++)
        if (!m->part.segments[g].capturable) return 0;
    return 1;
}

static kiln_status kn_execute(kiln_session *s, kn_instance *in) {
    const kiln_module *m = s->m;
    kiln_cudagraphs_mode mode = kn_effective_mode(s);
    int replayed = 0, failed_before = in->failed_whole;
    kiln_status st = KILN_OK;
    if (mode == KILN_CUDAGRAPHS_WHOLE && !kn_module_capturable(m)) {
        if (!in->failed_whole)
            KN_WARN("the module has steps that cannot be captured: whole-module graphs drop to per-block graphs");
        in->failed_whole = 1;
        mode = KILN_CUDAGRAPHS_PER_BLOCK;
    }
    if (mode == KILN_CUDAGRAPHS_OFF) {
        st = kn_instance_run_eager(s, in, 0, m->part.n_steps);
    } else if (mode == KILN_CUDAGRAPHS_WHOLE) {
        st = kn_run_graphed(s, in, 0, m->part.n_steps, &in->whole, &s->spare_whole, &in->warm_whole, &in->failed_whole,
                            "the whole module", &replayed);
        if (in->failed_whole && failed_before) s->counters.eager_fallbacks++;
    } else {
        int fell_back = 0;
        for (int g = 0; g < m->part.n_segments && st == KILN_OK; g++) {
            const kn_segment *seg = &m->part.segments[g];
            if (seg->kind != KN_SEG_ENGINE || !seg->capturable) {
                st = kn_instance_run_eager(s, in, seg->first, seg->count);
                continue;
            }
            int was_failed = in->failed_block[g];
            char what[64];
            snprintf(what, sizeof what, "engine block %d", g);
            st = kn_run_graphed(s, in, seg->first, seg->count, &in->block[g], &s->spare_block[g], &in->warm_block[g],
                                &in->failed_block[g], what, &replayed);
            fell_back |= was_failed;
        }
        if (fell_back) s->counters.eager_fallbacks++;
    }
    if (st == KILN_OK && replayed) s->counters.replays++;
    return st;
}

/* ---- public API ------------------------------------------------------------------------------- */

kiln_status kiln_session_create(const kiln_module *m, kiln_session **out) {
    KN_ARG_CHECK(out, "out");
    *out = NULL;
    KN_ARG_CHECK(m, "module");
    if (!m->backend || !m->offset)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "the module is not built (a dry run makes no module)");
    kiln_session *s = kn_calloc(1, sizeof *s);
    if (!s) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory creating a session");
    s->m = m;
    s->be = m->backend;
    s->max_graphs = 8;
    s->warmup = 1;
    s->mode = KILN_CUDAGRAPHS_DEFAULT;
    s->spare_block = kn_calloc((size_t)m->part.n_segments + 1, sizeof *s->spare_block);
    if (!s->spare_block) {
        kn_free(s);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory creating a session");
    }
    kiln_status st = s->be->session_init(m, m->arena_size, &s->ctx);
    if (st != KILN_OK) {
        kn_free(s->spare_block);
        kn_free(s);
        return st;
    }
    s->arena = s->be->arena(s->ctx);
    *out = s;
    return KILN_OK;
}

void kiln_session_free(kiln_session *s) {
    if (!s) return;
    kn_prepare_background_end(s, 1, 1, NULL);
    for (int i = 0; i < s->n_cache; i++) kn_instance_free(s, s->cache[i]);
    kn_free(s->cache);
    kn_free_spares(s);
    kn_free(s->spare_block);
    s->be->session_free(s->ctx);
    kn_free(s);
}

static kiln_status kn_check_inputs(const kiln_session *s, const kiln_tensor *inputs, int n,
                                   int64_t (*dims)[KILN_MAX_RANK]) {
    const kiln_module *m = s->m;
    if (n != m->n_inputs)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "the module has %d input%s, %d given", m->n_inputs,
                        m->n_inputs == 1 ? "" : "s", n);
    if (n && !inputs) return kn_error(KILN_ERR_INVALID_ARGUMENT, "inputs is NULL");
    for (int k = 0; k < n; k++) {
        const kiln_tensor *t = &inputs[k];
        const kiln_io_info *io = &m->inputs[k];
        if (t->dtype != io->dtype)
            return kn_error(KILN_ERR_DTYPE, "input '%s' has element type %s, the module expects %s", io->name,
                            kiln_dtype_name(t->dtype), kiln_dtype_name(io->dtype));
        if (t->rank != io->rank)
            return kn_error(KILN_ERR_SHAPE, "input '%s' has %d dims, the module expects %d", io->name, t->rank, io->rank);
        for (int i = 0; i < io->rank; i++) {
            if (t->dims[i] < io->min[i] || t->dims[i] > io->max[i]) {
                if (io->min[i] == io->max[i])
                    return kn_error(KILN_ERR_SHAPE, "input '%s': dim %d is %lld, the module fixes it to %lld",
                                    io->name, i, (long long)t->dims[i], (long long)io->min[i]);
                return kn_error(KILN_ERR_SHAPE, "input '%s': dim %d is %lld, the profile allows [%lld, %lld]",
                                io->name, i, (long long)t->dims[i], (long long)io->min[i], (long long)io->max[i]);
            }
            dims[k][i] = t->dims[i];
        }
        if (!t->data && kn_numel(t->rank, t->dims) > 0)
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "input '%s' has no data", io->name);
        if (t->device != KILN_DEVICE_CPU && t->device != KILN_DEVICE_CUDA)
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "input '%s' has device %d; use KILN_DEVICE_CPU or KILN_DEVICE_CUDA",
                            io->name, (int)t->device);
    }
    return KILN_OK;
}

kiln_status kiln_session_run(kiln_session *s, const kiln_tensor *inputs, int num_inputs, kiln_tensor *outputs,
                             int num_outputs) {
    KN_ARG_CHECK(s, "session");
    const kiln_module *m = s->m;
    const kn_graph *g = m->graph;
    if (num_outputs != m->n_outputs)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "the module has %d output%s, %d given", m->n_outputs,
                        m->n_outputs == 1 ? "" : "s", num_outputs);
    if (num_outputs && !outputs) return kn_error(KILN_ERR_INVALID_ARGUMENT, "outputs is NULL");
    int64_t dims[64][KILN_MAX_RANK];
    if (m->n_inputs > 64) return kn_error(KILN_ERR_UNSUPPORTED, "more than 64 inputs");
    KN_TRY(kn_check_inputs(s, inputs, num_inputs, dims));
    kn_instance *in;
    KN_TRY(kn_session_instance(s, (const int64_t(*)[KILN_MAX_RANK])dims, &in));
    for (int k = 0; k < m->n_inputs; k++) {
        int v = g->inputs[k];
        if (m->offset[v] < 0) continue;
        void *slot = s->arena + m->offset[v];
        if (inputs[k].data == slot) continue; /* the caller wrote the slot itself */
        KN_TRY(s->be->copy_in(s->ctx, slot, inputs[k].data, kn_tensor_bytes(&in->vals[v]), inputs[k].device));
    }
    KN_TRY(kn_execute(s, in));
    int host_out = 0;
    for (int k = 0; k < m->n_outputs; k++) {
        int v = g->outputs[k];
        const kn_tensor *t = &in->vals[v];
        kiln_tensor *o = &outputs[k];
        size_t bytes = kn_tensor_bytes(t);
        const void *src = m->offset[v] >= 0 ? (const void *)(s->arena + m->offset[v]) : NULL;
        kiln_device src_where = m->device;
        if (!src) { /* a value known on the host (shape arithmetic or a constant) */
            src = t->host;
            src_where = KILN_DEVICE_CPU;
        }
        o->dtype = t->dtype;
        o->rank = t->rank;
        memcpy(o->dims, t->dims, sizeof o->dims);
        if (!o->data) {
            o->data = (void *)src;
            o->device = src_where;
            continue;
        }
        if (o->device != KILN_DEVICE_CPU && o->device != KILN_DEVICE_CUDA)
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "output '%s' has device %d; use KILN_DEVICE_CPU or KILN_DEVICE_CUDA",
                            g->values[v].name, (int)o->device);
        if (src_where == KILN_DEVICE_CPU && o->device == KILN_DEVICE_CPU) memcpy(o->data, src, bytes);
        else if (src_where == KILN_DEVICE_CPU) KN_TRY(s->be->copy_in(s->ctx, o->data, src, bytes, KILN_DEVICE_CPU));
        else KN_TRY(s->be->copy_out(s->ctx, o->data, o->device, src, bytes));
        host_out |= o->device == KILN_DEVICE_CPU;
    }
    /* results in host memory are complete on return; device results follow the stream's order */
    if (host_out && m->device != KILN_DEVICE_CPU) KN_TRY(s->be->synchronize(s->ctx));
    s->counters.runs++;
    return KILN_OK;
}

kiln_status kiln_session_input_slot(kiln_session *s, int index, void **slot) {
    KN_ARG_CHECK(s && slot, "session/slot");
    if (index < 0 || index >= s->m->n_inputs)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "input index %d is outside 0..%d", index, s->m->n_inputs - 1);
    int64_t off = s->m->offset[s->m->graph->inputs[index]];
    *slot = off >= 0 ? s->arena + off : NULL;
    return KILN_OK;
}

kiln_status kiln_session_set_stream(kiln_session *s, void *stream) {
    KN_ARG_CHECK(s, "session");
    return s->be->set_stream(s->ctx, stream);
}

kiln_status kiln_session_synchronize(kiln_session *s) {
    KN_ARG_CHECK(s, "session");
    return s->be->synchronize(s->ctx);
}

kiln_status kiln_session_set_cudagraphs_mode(kiln_session *s, kiln_cudagraphs_mode mode) {
    KN_ARG_CHECK(s, "session");
    if (mode < KILN_CUDAGRAPHS_DEFAULT || mode > KILN_CUDAGRAPHS_WHOLE)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "unknown CUDA-graphs mode %d", (int)mode);
    s->mode = mode;
    return KILN_OK;
}

kiln_cudagraphs_mode kiln_session_cudagraphs_mode(const kiln_session *s) {
    return s ? kn_effective_mode(s) : KILN_CUDAGRAPHS_OFF;
}

kiln_status kiln_session_reset_graphs(kiln_session *s) {
    KN_ARG_CHECK(s, "session");
    for (int i = 0; i < s->n_cache; i++) kn_instance_free_graphs(s, s->cache[i]);
    kn_free_spares(s);
    return KILN_OK;
}

kiln_status kiln_session_begin_cudagraphs(kiln_session *s) {
    KN_ARG_CHECK(s, "session");
    if (s->scope_depth >= (int)(sizeof s->scope_stack / sizeof s->scope_stack[0]))
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "CUDA-graph scopes nest too deeply");
    s->scope_stack[s->scope_depth++] = s->mode;
    s->mode = s->m->part.n_segments > 1 ? KILN_CUDAGRAPHS_WHOLE : KILN_CUDAGRAPHS_PER_BLOCK;
    return KILN_OK;
}

kiln_status kiln_session_end_cudagraphs(kiln_session *s) {
    KN_ARG_CHECK(s, "session");
    if (s->scope_depth == 0)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_session_end_cudagraphs without a matching begin");
    s->mode = s->scope_stack[--s->scope_depth];
    return kiln_session_reset_graphs(s);
}

kiln_status kiln_session_set_graph_cache_size(kiln_session *s, int max_graphs) {
    KN_ARG_CHECK(s, "session");
    if (max_graphs < 1) return kn_error(KILN_ERR_INVALID_ARGUMENT, "the graph cache needs room for at least 1 shape, got %d", max_graphs);
    s->max_graphs = max_graphs;
    if (s->n_cache > s->max_graphs) kn_session_settle(s, 1);
    while (s->n_cache > s->max_graphs) kn_session_evict_lru(s);
    return KILN_OK;
}

kiln_status kiln_session_set_warmup_runs(kiln_session *s, int runs) {
    KN_ARG_CHECK(s, "session");
    if (runs < 0) return kn_error(KILN_ERR_INVALID_ARGUMENT, "warm-up runs must be >= 0, got %d", runs);
    s->warmup = runs;
    return KILN_OK;
}

kiln_status kiln_session_set_provisional_kernels(kiln_session *s, bool enabled) {
    KN_ARG_CHECK(s, "session");
    s->provisional = enabled;
    return KILN_OK;
}

kiln_status kiln_session_finish_preparation(kiln_session *s) {
    KN_ARG_CHECK(s, "session");
    kn_session_settle(s, 1);
    return KILN_OK;
}

kiln_status kiln_session_counters(const kiln_session *s, kiln_counters *out) {
    KN_ARG_CHECK(s && out, "session/out");
    *out = s->counters;
    return KILN_OK;
}
