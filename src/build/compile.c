/* kiln_compile: verify, optimize, partition, choose kernels, plan memory, build the backend's
 * module state. The result is immutable and shared by sessions. */
#include "module.h"

#include "runtime/runtime.h"

#include <ctype.h>
#include <stdlib.h>

void kiln_build_config_init(kiln_build_config *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->device = KILN_DEVICE_AUTO;
    c->precision = KILN_PRECISION_FP32;
    c->min_block_size = 5;
    c->optimize = true;
    c->time_tactics = true;
}

int kn_tactic_key_valid(const char *key) {
    size_t n = strlen(key);
    if (n == 0 || n >= KN_TACTIC_KEY_MAX || strcmp(key, "-") == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)key[i]) && !strchr(":=,._+-/", key[i])) return 0;
    return 1;
}

static kiln_status kn_pick_backend(const kiln_build_config *c, const kn_backend **out) {
    const kn_backend *cuda = kn_backend_cuda();
    switch (c->device) {
    case KILN_DEVICE_AUTO: *out = cuda ? cuda : kn_backend_cpu(); return KILN_OK;
    case KILN_DEVICE_CPU: *out = kn_backend_cpu(); return KILN_OK;
    case KILN_DEVICE_CUDA:
        if (!cuda)
            return kn_error(KILN_ERR_UNSUPPORTED, "device CUDA was requested but %s",
#ifdef KILN_HAVE_CUDA
                            "no usable CUDA device was found"
#else
                            "this kiln was built without the CUDA backend"
#endif
            );
        *out = cuda;
        return KILN_OK;
    }
    return kn_error(KILN_ERR_INVALID_ARGUMENT, "unknown device %d in the build config", (int)c->device);
}

/* Matches profiles to graph inputs and checks them (rank, min <= opt <= max, static dims). */
static kiln_status kn_resolve_profiles(kn_graph *g, const kiln_build_config *c, kiln_io_info *info) {
    for (int p = 0; p < c->num_profiles; p++) {
        const kiln_input_profile *pr = &c->profiles[p];
        if (!pr->name) return kn_error(KILN_ERR_INVALID_ARGUMENT, "profile %d has no input name", p);
        int found = 0;
        for (int k = 0; k < g->n_inputs; k++) found |= !strcmp(g->values[g->inputs[k]].name, pr->name);
        if (!found) {
            kn_strbuf sb = {0};
            for (int k = 0; k < g->n_inputs; k++) kn_sb_printf(&sb, "%s'%s'", k ? ", " : "", g->values[g->inputs[k]].name);
            kiln_status st = kn_error(KILN_ERR_NOT_FOUND, "profile for input '%s': the graph has no such input (inputs: %s)",
                                      pr->name, sb.data ? sb.data : "none");
            kn_sb_free(&sb);
            return st;
        }
    }
    for (int k = 0; k < g->n_inputs; k++) {
        kn_value *v = &g->values[g->inputs[k]];
        const kiln_input_profile *pr = NULL;
        for (int p = 0; p < c->num_profiles; p++)
            if (!strcmp(c->profiles[p].name, v->name)) pr = &c->profiles[p];
        kiln_io_info *io = &info[k];
        io->name = v->name;
        io->dtype = v->dtype;
        io->rank = v->rank;
        if (pr && pr->rank != v->rank)
            return kn_error(KILN_ERR_SHAPE, "profile for input '%s' has rank %d, the input has rank %d",
                            v->name, pr->rank, v->rank);
        for (int i = 0; i < v->rank; i++) {
            kn_dim d = v->dims[i];
            if (!pr) {
                if (d.sym >= 0 || d.v < 0)
                    return kn_error(KILN_ERR_SHAPE,
                                    "input '%s' has a dynamic dim %d%s%s%s: give a profile (min/opt/max) for it",
                                    v->name, i, d.sym >= 0 ? " ('" : "", d.sym >= 0 ? g->syms[d.sym].name : "",
                                    d.sym >= 0 ? "')" : "");
                io->min[i] = io->opt[i] = io->max[i] = d.v;
                continue;
            }
            int64_t mn = pr->min[i], op = pr->opt[i], mx = pr->max[i];
            if (mn < 0 || !(mn <= op && op <= mx))
                return kn_error(KILN_ERR_SHAPE, "profile for input '%s', dim %d: need 0 <= min <= opt <= max, got %lld/%lld/%lld",
                                v->name, i, (long long)mn, (long long)op, (long long)mx);
            if (d.sym < 0 && d.v >= 0 && (mn != d.v || mx != d.v))
                return kn_error(KILN_ERR_SHAPE, "profile for input '%s', dim %d: the model fixes it to %lld, profile gives %lld..%lld",
                                v->name, i, (long long)d.v, (long long)mn, (long long)mx);
            if (mx > INT32_MAX)
                return kn_error(KILN_ERR_SHAPE, "profile for input '%s', dim %d: max %lld is larger than %d",
                                v->name, i, (long long)mx, INT32_MAX);
            io->min[i] = mn;
            io->opt[i] = op;
            io->max[i] = mx;
            if (d.sym >= 0) { /* a symbol shared by inputs takes the tightest range */
                kn_symbol *s = &g->syms[d.sym];
                if (mn > s->min) s->min = mn;
                if (mx < s->max) s->max = mx;
            }
        }
    }
    /* element counts beyond 2^48 would overflow byte sizes downstream: refuse them here */
    for (int k = 0; k < g->n_inputs; k++) {
        double n = 1;
        for (int i = 0; i < info[k].rank; i++) n *= (double)info[k].max[i];
        if (n > 281474976710656.0)
            return kn_error(KILN_ERR_SHAPE, "input '%s': the profile's max shape has %.3g elements, more than 2^48",
                            info[k].name, n);
    }
    return KILN_OK;
}

void kiln_module_free(kiln_module *m) {
    if (!m) return;
    if (m->backend && m->backend->module_free) m->backend->module_free(m, m->bstate);
    kn_partition_free(&m->part);
    for (int i = 0; i < m->n_fallback_ops; i++) kn_free(m->fallback_ops[i]);
    kn_free(m->fallback_ops);
    kn_free(m->inputs);
    kn_free(m->outputs);
    kn_free(m->host_node);
    kn_free(m->offset);
    kn_free(m->bytes);
    kn_free(m->const_ptr);
    kn_graph_destroy(m->graph);
    kn_free(m);
}

/* Shape passes at the profile's min, opt and max: output info and the host-node mask. */
static kiln_status kn_profile_shapes(kiln_module *m, kn_shapes sh[3]) {
    kn_graph *g = m->graph;
    int *order = kn_malloc((size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof(int));
    int64_t (*dims)[KILN_MAX_RANK] = kn_calloc((size_t)g->n_inputs + 1, sizeof *dims);
    kiln_status st = KILN_OK;
    if (!order || !dims) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); goto done; }
    for (int i = 0; i < g->n_nodes; i++) order[i] = i; /* compacted: already topological */
    static const char *const which[3] = {"min", "opt", "max"};
    for (int p = 0; p < 3; p++) {
        for (int k = 0; k < g->n_inputs; k++)
            for (int i = 0; i < m->inputs[k].rank; i++)
                dims[k][i] = p == 0 ? m->inputs[k].min[i] : p == 1 ? m->inputs[k].opt[i] : m->inputs[k].max[i];
        st = kn_shapes_infer(g, order, g->n_nodes, (const int64_t(*)[KILN_MAX_RANK])dims, &sh[p]);
        if (st != KILN_OK) {
            kn_error_context(st, "at the profile's %s shapes", which[p]);
            for (int q = 0; q < p; q++) kn_shapes_free(&sh[q]);
            goto done;
        }
    }
done:
    kn_free(order);
    kn_free(dims);
    return st;
}

/* Views (docs/DESIGN.md, "Views"): root[v] is the value whose memory v takes, v itself when v
 * has its own. A view step's output aliases its input when both live in the arena (a graph input
 * or a device step's output: constants and host-known values keep the copy), their bytes agree
 * at every shape of the profile, and the output is not a graph output that would alias a graph
 * input (the user may rewrite the input slot while still reading the output). Steps run in
 * topological order, so a chain of views resolves to its first non-view value. */
static void kn_find_view_roots(const kiln_module *m, kn_shapes sh[3], const kn_mem_request *req, int *root) {
    const kn_graph *g = m->graph;
    for (int v = 0; v < g->n_values; v++) root[v] = v;
    for (int s = 0; s < m->part.n_steps; s++) {
        const kn_node *nd = &g->nodes[m->part.steps[s].node];
        if (!kn_node_is_view(g, nd)) continue;
        int x = nd->in[0], y = nd->out[0];
        if (!req[x].bytes || !req[y].bytes || root[y] != y) continue;
        int same = 1;
        for (int p = 0; p < 3; p++)
            same &= sh[p].vals[x].dtype == sh[p].vals[y].dtype &&
                    kn_tensor_bytes(&sh[p].vals[x]) == kn_tensor_bytes(&sh[p].vals[y]);
        int r = root[x];
        if (!same || ((g->values[r].flags & KN_VALUE_INPUT) && (g->values[y].flags & KN_VALUE_OUTPUT))) continue;
        root[y] = r;
    }
}

/* Offsets for every value that lives in the arena: graph inputs and outputs of device steps. */
static kiln_status kn_plan_memory(kiln_module *m, kn_shapes sh[3]) {
    kn_graph *g = m->graph;
    int n = g->n_values;
    kn_mem_request *req = kn_calloc((size_t)n + 1, sizeof *req);
    int *step_of_node = kn_malloc(((size_t)g->n_nodes + 1) * sizeof(int));
    m->offset = kn_malloc(((size_t)n + 1) * sizeof *m->offset);
    m->bytes = kn_calloc((size_t)n + 1, sizeof *m->bytes);
    if (!req || !step_of_node || !m->offset || !m->bytes) {
        kn_free(req); kn_free(step_of_node);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning memory");
    }
    for (int i = 0; i < g->n_nodes; i++) step_of_node[i] = -1;
    for (int s = 0; s < m->part.n_steps; s++) step_of_node[m->part.steps[s].node] = s;
    int end = m->part.n_steps; /* graph outputs live past the last step */
    for (int v = 0; v < n; v++) {
        const kn_value *val = &g->values[v];
        int placed = 0;
        if (val->constant) continue;
        if (val->flags & KN_VALUE_INPUT) { placed = 1; req[v].first = 0; }
        else if (val->producer >= 0 && step_of_node[val->producer] >= 0) { placed = 1; req[v].first = step_of_node[val->producer]; }
        if (!placed) continue;
        size_t bytes = 0;
        for (int p = 0; p < 3; p++) {
            size_t b = kn_tensor_bytes(&sh[p].vals[v]);
            if (b > bytes) bytes = b;
        }
        req[v].bytes = bytes ? bytes : 1;
        req[v].last = req[v].first;
        if (val->flags & KN_VALUE_OUTPUT) req[v].last = end;
        m->bytes[v] = bytes;
    }
    /* A range may run twice in one call (a warm-up, then the recording), so a value that enters
     * a segment from outside stays intact until the segment ends, and graph inputs until the end. */
    for (int i = 0; i < g->n_nodes; i++) {
        int s = step_of_node[i];
        if (s < 0) s = 0; /* host nodes read inputs' shapes only */
        const kn_segment *seg = m->part.n_steps ? &m->part.segments[m->part.steps[s].segment] : NULL;
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v < 0 || !req[v].bytes) continue;
            int last = s;
            if (g->values[v].flags & KN_VALUE_INPUT) last = end;
            else if (seg && req[v].first < seg->first) last = seg->first + seg->count - 1;
            if (last > req[v].last) req[v].last = last;
        }
    }
    int *root = kn_malloc(((size_t)n + 1) * sizeof *root);
    if (!root) {
        kn_free(req); kn_free(step_of_node);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning memory");
    }
    kn_find_view_roots(m, sh, req, root);
    /* an alias takes no memory of its own: its root lives until the last use of every alias */
    for (int v = 0; v < n; v++) {
        int r = root[v];
        if (r == v) continue;
        if (req[v].first < req[r].first) req[r].first = req[v].first;
        if (req[v].last > req[r].last) req[r].last = req[v].last;
        if (req[v].bytes > req[r].bytes) req[r].bytes = req[v].bytes;
        req[v].bytes = 0;
    }
    kiln_status st = kn_memory_plan(req, n, 256, m->offset, &m->arena_size, &m->peak_live);
    if (st == KILN_OK) {
        for (int v = 0; v < n; v++)
            if (root[v] != v) m->offset[v] = m->offset[root[v]];
        kn_mark_views(m);
    }
    kn_free(root);
    kn_free(req);
    kn_free(step_of_node);
    return st;
}

static kiln_status kn_choose_kernels(kiln_module *m, const kiln_build_config *c, int *rebuild) {
    kn_graph *g = m->graph;
    *rebuild = 0;
    for (int s = 0; s < m->part.n_steps; s++) {
        kn_step *step = &m->part.steps[s];
        kn_node *nd = &g->nodes[step->node];
        int engine = m->part.segments[step->segment].kind == KN_SEG_ENGINE;
        step->kernel = engine ? m->backend->engine_kernel(g, nd) : m->backend->fallback_kernel(g, nd);
        if (step->kernel) continue;
        char label[256];
        kn_node_label(nd, label, sizeof label);
        if (engine && !c->pass_through_build_failures) {
            KN_WARN("engine build failed for %s (no engine kernel); it falls back", label);
            nd->fallback = 2; /* a build failure, not the user's choice */
            *rebuild = 1;
            continue;
        }
        return kn_error(KILN_ERR_UNSUPPORTED, "%s: the %s backend has no %s kernel for it", label,
                        m->backend->name, engine ? "engine" : "fallback");
    }
    if (*rebuild) return KILN_OK;
    /* capturability per segment */
    for (int s = 0; s < m->part.n_steps; s++) {
        kn_step *step = &m->part.steps[s];
        if (step->kernel->capturable && !step->kernel->capturable(&g->nodes[step->node]))
            m->part.segments[step->segment].capturable = 0;
    }
    return KILN_OK;
}

/* Re-labels the steps whose node failed its engine build (fallback == 2). */
static void kn_mark_build_failures(kiln_module *m) {
    for (int s = 0; s < m->part.n_steps; s++)
        if (m->graph->nodes[m->part.steps[s].node].fallback == 2) m->part.steps[s].reason = KN_BREAK_BUILD_FAILED;
    for (int s = 0; s < m->part.n_segments; s++) {
        kn_segment *seg = &m->part.segments[s];
        if (seg->kind == KN_SEG_FALLBACK && m->part.steps[seg->first].reason == KN_BREAK_BUILD_FAILED)
            seg->reason = KN_BREAK_BUILD_FAILED;
    }
}

/* Everything up to the partition: shared by kiln_compile and kiln_dry_run. */
static kiln_status kn_front_end(const kiln_graph *graph, const kiln_build_config *c, kiln_module **out) {
    *out = NULL;
    KN_ARG_CHECK(graph, "graph");
    KN_ARG_CHECK(c, "config");
    KN_ARG_CHECK(c->num_profiles >= 0 && (c->num_profiles == 0 || c->profiles), "profiles");
    KN_ARG_CHECK(c->num_fallback_ops >= 0 && (c->num_fallback_ops == 0 || c->fallback_ops), "fallback_ops");
    KN_ARG_CHECK(c->min_block_size >= 0, "min_block_size");
    if ((int)c->precision < 0 || c->precision > KILN_PRECISION_BF16)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "unknown precision %d in the build config", (int)c->precision);
    double t0 = kn_now_ms();
    kiln_module *m = kn_calloc(1, sizeof *m);
    if (!m) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    kiln_status st;
    KN_CHECK_GOTO(st, kn_pick_backend(c, &m->backend), fail);
    m->device = m->backend->device;
    m->device_index = c->device_index;
    m->precision = c->precision;
    m->min_block_size = c->min_block_size;
    m->require_full_compilation = c->require_full_compilation;
    m->avoid_runtime_compilation = c->avoid_runtime_compilation;
    m->workspace_limit = c->workspace_limit;
    m->pass_through_build_failures = c->pass_through_build_failures;
    if (c->num_fallback_ops) {
        m->fallback_ops = kn_calloc((size_t)c->num_fallback_ops, sizeof(char *));
        if (!m->fallback_ops) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); goto fail; }
        for (int i = 0; i < c->num_fallback_ops; i++) {
            if (!c->fallback_ops[i]) { st = kn_error(KILN_ERR_INVALID_ARGUMENT, "fallback op %d is NULL", i); goto fail; }
            m->fallback_ops[i] = kn_strdup(c->fallback_ops[i]);
            if (!m->fallback_ops[i]) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); goto fail; }
            m->n_fallback_ops++;
        }
    }
    KN_CHECK_GOTO(st, kn_graph_clone(&graph->g, &m->graph), fail);
    kn_graph *g = m->graph;
    KN_CHECK_GOTO(st, kn_graph_verify(g), fail);
    m->n_inputs = g->n_inputs;
    m->n_outputs = g->n_outputs;
    m->inputs = kn_calloc((size_t)g->n_inputs + 1, sizeof *m->inputs);
    m->outputs = kn_calloc((size_t)g->n_outputs + 1, sizeof *m->outputs);
    if (!m->inputs || !m->outputs) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); goto fail; }
    KN_CHECK_GOTO(st, kn_resolve_profiles(g, c, m->inputs), fail);
    KN_CHECK_GOTO(st, kn_graph_infer_static(g), fail);
    kn_partition_mark_forced(g, m->fallback_ops, m->n_fallback_ops);
    kn_pass_options po = {.precision = c->precision, .verbose = c->verbose, .backend = m->backend};
    if (c->optimize) KN_CHECK_GOTO(st, kn_passes_run(g, &po), fail);
    KN_CHECK_GOTO(st, kn_lower_precision(g, c->precision), fail);
    /* the layout pass rewrites f16/bf16 activations (f32 ones only in tf32), so it runs after the lowering */
    if (c->optimize && !c->keep_nchw) {
        int changed = 0;
        KN_CHECK_GOTO(st, kn_pass_layout_nhwc(g, &po, &changed), fail);
    }
    KN_CHECK_GOTO(st, kn_graph_compact(g), fail);
    /* inputs' names may have moved with value storage: refresh */
    for (int k = 0; k < g->n_inputs; k++) m->inputs[k].name = g->values[g->inputs[k]].name;

    kn_shapes sh[3];
    KN_CHECK_GOTO(st, kn_profile_shapes(m, sh), fail);
    m->host_node = sh[1].host_node;
    sh[1].host_node = NULL;
    for (int k = 0; k < g->n_outputs; k++) {
        kiln_io_info *io = &m->outputs[k];
        int v = g->outputs[k];
        io->name = g->values[v].name;
        io->dtype = sh[1].vals[v].dtype;
        io->rank = sh[1].vals[v].rank;
        for (int i = 0; i < io->rank; i++) {
            io->min[i] = sh[0].vals[v].dims[i];
            io->opt[i] = sh[1].vals[v].dims[i];
            io->max[i] = sh[2].vals[v].dims[i];
        }
    }
    for (int attempt = 0;; attempt++) {
        st = kn_partition_build(g, m->host_node, m->backend, c->min_block_size, c->require_full_compilation, &m->part);
        if (st != KILN_OK) break;
        int rebuild = 0;
        st = kn_choose_kernels(m, c, &rebuild);
        if (st != KILN_OK || !rebuild) break;
        kn_partition_free(&m->part);
        if (attempt > 2) { st = kn_error(KILN_ERR_INTERNAL, "partitioning did not settle"); break; }
    }
    if (st == KILN_OK) {
        kn_mark_build_failures(m);
        st = kn_plan_memory(m, sh);
    }
    for (int p = 0; p < 3; p++) kn_shapes_free(&sh[p]);
    if (st != KILN_OK) goto fail;
    m->build_ms = kn_now_ms() - t0;
    *out = m;
    return KILN_OK;
fail:
    kiln_module_free(m);
    return st;
}

kiln_status kiln_compile(const kiln_graph *graph, const kiln_build_config *c, kiln_module **out) {
    KN_ARG_CHECK(out, "out");
    double t0 = kn_now_ms();
    kiln_module *m;
    KN_TRY(kn_front_end(graph, c, &m));
    m->const_ptr = kn_calloc((size_t)m->graph->n_values + 1, sizeof(void *));
    kiln_status st = m->const_ptr ? KILN_OK : kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    if (st == KILN_OK) st = m->backend->module_init(m, &m->bstate);
    if (st == KILN_OK && c->time_tactics) st = kn_time_tactics(m, c);
    if (st != KILN_OK) {
        kiln_module_free(m);
        return st;
    }
    m->build_ms = kn_now_ms() - t0;
    if (c->verbose) KN_INFO("built in %.1f ms: %d steps, %d segments, arena %.2f MiB (peak live %.2f MiB)",
                            m->build_ms, m->part.n_steps, m->part.n_segments,
                            (double)m->arena_size / 1048576.0, (double)m->peak_live / 1048576.0);
    *out = m;
    return KILN_OK;
}

kiln_status kiln_dry_run(const kiln_graph *graph, const kiln_build_config *c, bool json, char **out) {
    KN_ARG_CHECK(out, "out");
    *out = NULL;
    kiln_module *m;
    KN_TRY(kn_front_end(graph, c, &m));
    kn_strbuf sb = {0};
    kn_partition_report(m->graph, &m->part, json, &sb);
    kiln_module_free(m);
    return kn_sb_finish(&sb, out);
}

/* ---- accessors ------------------------------------------------------------------------------ */

int kiln_module_num_inputs(const kiln_module *m) { return m ? m->n_inputs : 0; }
int kiln_module_num_outputs(const kiln_module *m) { return m ? m->n_outputs : 0; }
kiln_device kiln_module_device(const kiln_module *m) { return m ? m->device : KILN_DEVICE_AUTO; }
int kiln_module_num_segments(const kiln_module *m) { return m ? m->part.n_segments : 0; }
int kiln_module_num_engine_blocks(const kiln_module *m) {
    int n = 0;
    for (int s = 0; m && s < m->part.n_segments; s++) n += m->part.segments[s].kind == KN_SEG_ENGINE;
    return n;
}

kiln_status kiln_module_input_info(const kiln_module *m, int index, kiln_io_info *info) {
    KN_ARG_CHECK(m && info, "module/info");
    if (index < 0 || index >= m->n_inputs)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "input index %d is outside 0..%d", index, m->n_inputs - 1);
    *info = m->inputs[index];
    return KILN_OK;
}

kiln_status kiln_module_output_info(const kiln_module *m, int index, kiln_io_info *info) {
    KN_ARG_CHECK(m && info, "module/info");
    if (index < 0 || index >= m->n_outputs)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "output index %d is outside 0..%d", index, m->n_outputs - 1);
    *info = m->outputs[index];
    return KILN_OK;
}

static const char *kn_precision_name(kiln_precision p) {
    static const char *const names[] = {"fp32", "tf32", "fp16", "bf16"};
    return (int)p >= 0 && p <= KILN_PRECISION_BF16 ? names[p] : "?";
}

static void kn_io_report(const kiln_io_info *io, const char *what, int json, int first, kn_strbuf *sb) {
    char a[128], b[128], c[128];
    kn_dims_str(io->rank, io->min, a, sizeof a);
    kn_dims_str(io->rank, io->opt, b, sizeof b);
    kn_dims_str(io->rank, io->max, c, sizeof c);
    if (json) {
        kn_sb_printf(sb, "%s{\"name\": ", first ? "" : ", ");
        kn_sb_json_str(sb, io->name);
        kn_sb_printf(sb, ", \"dtype\": \"%s\", \"min\": \"%s\", \"opt\": \"%s\", \"max\": \"%s\"}",
                     kiln_dtype_name(io->dtype), a, b, c);
    } else {
        kn_sb_printf(sb, "  %s %s: %s min %s opt %s max %s\n", what, io->name, kiln_dtype_name(io->dtype), a, b, c);
    }
}

kiln_status kiln_module_report(const kiln_module *m, bool json, char **out) {
    KN_ARG_CHECK(m && out, "module/out");
    kn_strbuf sb = {0};
    const kn_graph *g = m->graph;
    if (json) {
        kn_sb_printf(&sb, "{\"device\": \"%s\", \"precision\": \"%s\", \"build_ms\": %.3f, \"arena_bytes\": %zu, \"peak_live_bytes\": %zu, \"workspace_limit_bytes\": %zu, \"inputs\": [",
                     m->backend->name, kn_precision_name(m->precision), m->build_ms, m->arena_size, m->peak_live, m->workspace_limit);
        for (int k = 0; k < m->n_inputs; k++) kn_io_report(&m->inputs[k], "input", 1, k == 0, &sb);
        kn_sb_puts(&sb, "], \"outputs\": [");
        for (int k = 0; k < m->n_outputs; k++) kn_io_report(&m->outputs[k], "output", 1, k == 0, &sb);
        kn_sb_puts(&sb, "], \"steps\": [");
        for (int s = 0; s < m->part.n_steps; s++) {
            const kn_step *st = &m->part.steps[s];
            const kn_node *nd = &g->nodes[st->node];
            kn_sb_printf(&sb, "%s\n  {\"op\": \"%s\", \"name\": ", s ? "," : "", kn_op_name(nd->op));
            kn_sb_json_str(&sb, nd->name);
            kn_sb_printf(&sb, ", \"segment\": %d, \"kernel\": \"%s\", \"tactic\": %d, \"tactic_ms\": %.4f, \"view\": %s",
                         st->segment, st->kernel ? st->kernel->name : "-", st->tactic, st->tactic_ms,
                         st->view ? "true" : "false");
            if (st->tactic_key[0]) kn_sb_printf(&sb, ", \"tactic_key\": \"%s\"", st->tactic_key); /* printable, no quotes */
            kn_sb_puts(&sb, "}");
        }
        kn_sb_puts(&sb, "],\n\"partition\": ");
        kn_partition_report(g, &m->part, 1, &sb);
        kn_sb_puts(&sb, "}\n");
        return kn_sb_finish(&sb, out);
    }
    kn_sb_printf(&sb, "module: device %s, precision %s, built in %.1f ms\n", m->backend->name,
                 kn_precision_name(m->precision), m->build_ms);
    for (int k = 0; k < m->n_inputs; k++) kn_io_report(&m->inputs[k], "input ", 0, 0, &sb);
    for (int k = 0; k < m->n_outputs; k++) kn_io_report(&m->outputs[k], "output", 0, 0, &sb);
    kn_partition_report(g, &m->part, 0, &sb);
    int n_views = 0;
    for (int s = 0; s < m->part.n_steps; s++) n_views += m->part.steps[s].view;
    kn_sb_printf(&sb, "memory plan: arena %.3f MiB, peak live %.3f MiB (%.1f%% over the lower bound), %d view%s\n",
                 (double)m->arena_size / 1048576.0, (double)m->peak_live / 1048576.0,
                 m->peak_live ? 100.0 * ((double)m->arena_size / (double)m->peak_live - 1.0) : 0.0, n_views,
                 n_views == 1 ? "" : "s");
    kn_sb_puts(&sb, "steps:\n");
    for (int s = 0; s < m->part.n_steps; s++) {
        const kn_step *st = &m->part.steps[s];
        const kn_node *nd = &g->nodes[st->node];
        kn_sb_printf(&sb, "  %4d [seg %d] %-20s %-32s %s", s, st->segment, kn_op_name(nd->op), nd->name,
                     st->view ? "view" : st->kernel ? st->kernel->name : "-");
        if (st->view) kn_sb_printf(&sb, " (aliases '%s': no work)", g->values[nd->in[0]].name);
        else if (st->tactic_ms > 0) kn_sb_printf(&sb, " tactic %d (%.4f ms)", st->tactic, st->tactic_ms);
        if (!st->view && st->tactic_key[0]) kn_sb_printf(&sb, " %s", st->tactic_key);
        kn_sb_puts(&sb, "\n");
    }
    return kn_sb_finish(&sb, out);
}
