/* The partitioner: forced fallbacks (by op type and node name), min_block_size, require_full_
 * compilation, unsupported ops (through a backend that refuses one op), the order that keeps
 * independent branches from interleaving into needless breaks, the dry-run report as text and
 * JSON, and random graphs that must compute the same values however they are partitioned. */
#include "test_passes_util.h"

#include "resnet.h"

#include <math.h>

/* ---- the seed's graph-break model: relu((x + 2) * 0.5) --------------------------------------------- */

static kiln_graph *seed_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[3] = {2, 3, 4};
    kt_input(g, "x", 3, xd);
    kt_scalar(g, "two", 2.0f);
    kt_scalar(g, "half", 0.5f);
    kt_node(g, "Add", "add", "x", "two", "a");
    kt_node(g, "Mul", "mul", "a", "half", "m");
    kt_node(g, "Relu", "relu", "m", NULL, "y");
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

/* JSON well-formedness, enough to catch a broken report: balanced {} and [] outside strings,
 * no trailing commas before a closing bracket. */
static int json_balanced(const char *s) {
    int depth = 0, in_str = 0;
    char last = 0;
    for (; *s; s++) {
        char c = *s;
        if (in_str) {
            if (c == '\\' && s[1]) s++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') {
            if (last == ',' || --depth < 0) return 0;
        }
        if (c != ' ' && c != '\n') last = c;
    }
    return depth == 0 && !in_str;
}

static void test_seed_graph_break(void) {
    kiln_graph *g = seed_graph();
    float x[24];
    kt_fill_uniform(x, 24, -5, 5);
    float *ins[1] = {x};
    static const char *const forced[2] = {"Mul", "mul"}; /* by op type, by node name */
    for (int optimize = 0; optimize < 2; optimize++)
        for (int f = 0; f < 2; f++) {
            kt_opts o = {.optimize = optimize, .min_block_size = 1, .fallback = &forced[f], .n_fallback = 1};
            kiln_module *m = kt_compile(g, &o);
            if (!m) continue;
            KT_CHECK(kiln_module_num_segments(m) == 3 && kiln_module_num_engine_blocks(m) == 2,
                     "forcing '%s': engine, fallback, engine (got %d segments)", forced[f], kiln_module_num_segments(m));
            KT_CHECK(m->part.n_segments == 3 && m->part.segments[0].kind == KN_SEG_ENGINE &&
                         m->part.segments[1].kind == KN_SEG_FALLBACK && m->part.segments[2].kind == KN_SEG_ENGINE &&
                         m->part.segments[1].reason == KN_BREAK_FORCED,
                     "segment kinds and reason");
            float *out[1] = {0};
            int64_t on[1] = {0};
            if (kt_run(m, ins, NULL, out, on)) {
                int bad = on[0] != 24;
                for (int i = 0; !bad && i < 24; i++) bad = out[0][i] != fmaxf((x[i] + 2.0f) * 0.5f, 0.0f);
                KT_CHECK(!bad, "relu((x + 2) * 0.5) through a graph break");
            }
            free(out[0]);
            kiln_module_free(m);
        }
    /* the dry run says the same, with the reason, as text and as JSON */
    kiln_build_config c;
    kt_opts o = {.optimize = true, .min_block_size = 1, .fallback = &forced[0], .n_fallback = 1};
    kt_config(&c, &o);
    char *text = NULL, *json = NULL;
    KT_OK(kiln_dry_run(g, &c, false, &text));
    KT_OK(kiln_dry_run(g, &c, true, &json));
    if (text) {
        KT_CHECK(strstr(text, "partition: 3 segments, 2 engine blocks, 2 graph breaks") != NULL, "text summary: %s", text);
        KT_CHECK(strstr(text, "segment 1: fallback, 1 node") && strstr(text, "ops: Mul x1"), "text segment 1: %s", text);
        KT_CHECK(strstr(text, "graph break (forced): Mul 'mul': forced by the user") != NULL, "text reason: %s", text);
        KT_CHECK(strstr(text, "segment 0: engine block, 1 node") && strstr(text, "ops: Add x1"), "text segment 0: %s", text);
    }
    if (json) {
        KT_CHECK(json_balanced(json), "dry-run JSON is well formed: %s", json);
        KT_CHECK(strstr(json, "\"num_segments\": 3") && strstr(json, "\"graph_breaks\": 2"), "JSON counts: %s", json);
        KT_CHECK(strstr(json, "\"kind\": \"fallback\"") && strstr(json, "\"reason\": \"forced\"") &&
                     strstr(json, "{\"op\": \"Mul\", \"name\": \"mul\", \"reason\": \"forced\"}"),
                 "JSON segment and node reasons: %s", json);
    }
    kiln_free(text);
    kiln_free(json);
    kiln_graph_free(g);
}

static void test_min_block_and_full_compilation(void) {
    kiln_graph *g = seed_graph();
    const char *mul[1] = {"Mul"};
    /* min_block_size 2: each one-node engine run falls back too */
    kt_opts o = {.optimize = true, .min_block_size = 2, .fallback = mul, .n_fallback = 1};
    kiln_module *m = kt_compile(g, &o);
    if (m) {
        KT_CHECK(kiln_module_num_segments(m) == 1 && kiln_module_num_engine_blocks(m) == 0,
                 "min_block_size 2: everything falls back (%d segments)", kiln_module_num_segments(m));
        KT_CHECK(m->part.n_segments == 1 && m->part.steps[0].reason == KN_BREAK_SMALL_BLOCK &&
                     m->part.steps[1].reason == KN_BREAK_FORCED && m->part.steps[2].reason == KN_BREAK_SMALL_BLOCK,
                 "per-step reasons");
    }
    kiln_module_free(m);
    kiln_build_config c;
    kt_config(&c, &o);
    char *text = NULL;
    KT_OK(kiln_dry_run(g, &c, false, &text));
    KT_CHECK(text && strstr(text, "Add 'add': an engine block of 1 model op, below min_block_size 2") &&
                 strstr(text, "Mul 'mul': forced by the user"),
             "the dry run explains each break: %s", text ? text : "");
    kiln_free(text);
    /* the default min_block_size (5) and no forcing: 3 supported nodes are too few for a block */
    kiln_build_config_init(&c);
    c.device = KILN_DEVICE_CPU;
    c.time_tactics = false;
    KT_CHECK(c.min_block_size == 5, "default min_block_size is 5");
    kiln_module *m5 = NULL;
    KT_OK(kiln_compile(g, &c, &m5));
    KT_CHECK(m5 && kiln_module_num_engine_blocks(m5) == 0, "3 nodes < 5: no engine block");
    kiln_module_free(m5);
    /* require_full_compilation: every supported node is compiled, however small the graph ... */
    c.require_full_compilation = true;
    m5 = NULL;
    KT_OK(kiln_compile(g, &c, &m5));
    KT_CHECK(m5 && kiln_module_num_segments(m5) == 1 && kiln_module_num_engine_blocks(m5) == 1,
             "require_full_compilation ignores min_block_size");
    kiln_module_free(m5);
    /* ... and a forced op is an error that names it */
    c.fallback_ops = mul;
    c.num_fallback_ops = 1;
    m5 = NULL;
    KT_FAILS(kiln_compile(g, &c, &m5), KILN_ERR_UNSUPPORTED,
             "require_full_compilation is set but the graph breaks: Mul 'mul': forced by the user");
    KT_CHECK(m5 == NULL, "no module");
    char *t2 = NULL;
    KT_FAILS(kiln_dry_run(g, &c, false, &t2), KILN_ERR_UNSUPPORTED, "require_full_compilation");
    kiln_graph_free(g);
}

/* ---- the partitioner alone, with a backend that refuses Sigmoid ------------------------------------- */

static int no_sigmoid(const kn_graph *g, const kn_node *n) { return n->op != KN_OP_Sigmoid; }

/* ResNet-18 with the residual Adds forced out: the engine runs between them are 3 or 4 nodes
 * after fusion but 6 or 8 model ops (relu, conv+bn+relu, conv+bn, downsample conv+bn), so with
 * the default min_block_size 5 they stay engine blocks. */
static void test_min_block_counts_model_ops(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_resnet_build(18, 32, 3, &g));
    if (!g) return;
    kiln_build_config c;
    const char *add[1] = {"Add"};
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 32, 32}, .opt = {1, 3, 32, 32}, .max = {1, 3, 32, 32}};
    kt_opts o = {.optimize = true, .min_block_size = 5, .fallback = add, .n_fallback = 1, .profiles = &p, .n_profiles = 1};
    kt_config(&c, &o);
    char *text = NULL;
    KT_OK(kiln_dry_run(g, &c, false, &text));
    KT_CHECK(text && strstr(text, "partition: 16 segments, 8 engine blocks, 15 graph breaks"),
             "8 forced Adds between 8 engine blocks and the head: %s", text ? text : "");
    KT_CHECK(text && strstr(text, "segment 0: engine block, 4 nodes (9 model ops before fusion)") &&
                 strstr(text, "segment 2: engine block, 3 nodes (6 model ops before fusion)"),
             "engine blocks count their model ops: %s", text ? text : "");
    KT_CHECK(text && strstr(text, "Gemm 'fc': an engine block of 4 model ops, below min_block_size 5"),
             "the head (Relu, pool, Flatten, Gemm) is too small: %s", text ? text : "");
    kiln_free(text);
    kiln_graph_free(g);
}

/* x -> a1 -> a2 -> a3 --\
 *   \-> s1 -> s2 -------> add -> y, written interleaved: a1 s1 a2 s2 a3 add */
static kiln_graph *branch_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[2] = {3, 4};
    kt_input(g, "x", 2, xd);
    kt_node(g, "Relu", "a1", "x", NULL, "va1");
    kt_node(g, "Sigmoid", "s1", "x", NULL, "vs1");
    kt_node(g, "Relu", "a2", "va1", NULL, "va2");
    kt_node(g, "Sigmoid", "s2", "vs1", NULL, "vs2");
    kt_node(g, "Relu", "a3", "va2", NULL, "va3");
    kt_node(g, "Add", "add", "va3", "vs2", "y");
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

static void test_unsupported(void) {
    kiln_graph *graph = branch_graph();
    kn_graph *g = &graph->g;
    KT_OK(kn_graph_verify(g));
    KT_OK(kn_graph_compact(g));
    kn_backend be = *kn_backend_cpu();
    be.supports_op = no_sigmoid;
    kn_partition p;
    KT_OK(kn_partition_build(g, NULL, &be, 1, 0, &p));
    /* steps follow the compacted node order: a1 | s1 | a2 | s2 | a3 add */
    KT_CHECK(p.n_segments == 5, "5 segments, got %d", p.n_segments);
    if (p.n_segments == 5) {
        KT_CHECK(p.segments[4].kind == KN_SEG_ENGINE && p.segments[4].count == 2, "a3 and add form the last block");
        KT_CHECK(p.segments[1].kind == KN_SEG_FALLBACK && p.segments[1].count == 1 &&
                     p.segments[1].reason == KN_BREAK_UNSUPPORTED,
                 "a Sigmoid falls back as unsupported");
        KT_CHECK(strstr(p.segments[1].detail, "Sigmoid 's1': not supported by the engine") != NULL, "detail: %s",
                 p.segments[1].detail);
    }
    /* every step comes after the producers of its inputs */
    int ok = 1;
    for (int s = 0; s < p.n_steps && ok; s++) {
        const kn_node *n = &g->nodes[p.steps[s].node];
        for (int k = 0; k < n->n_in && ok; k++) {
            int prod = n->in[k] >= 0 ? g->values[n->in[k]].producer : -1;
            if (prod < 0) continue;
            int found = 0;
            for (int t = 0; t < s; t++) found |= p.steps[t].node == prod;
            ok = found;
        }
    }
    KT_CHECK(ok, "steps are in a topological order");
    kn_partition_free(&p);
    /* min_block_size 2 demotes the lone a1 and a2 */
    KT_OK(kn_partition_build(g, NULL, &be, 2, 0, &p));
    KT_CHECK(p.n_segments == 2 && p.n_steps == 6 && p.segments[0].count == 4 && p.segments[1].kind == KN_SEG_ENGINE,
             "min_block_size 2: 2 segments (got %d)", p.n_segments);
    kn_partition_free(&p);
    /* a node whose engine build failed (kiln_compile marks it fallback = 2) says so */
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, "a2") == 0) g->nodes[i].fallback = 2;
    KT_OK(kn_partition_build(g, NULL, &be, 1, 0, &p));
    int found = 0;
    for (int s = 0; s < p.n_segments; s++)
        found |= p.segments[s].kind == KN_SEG_FALLBACK && strstr(p.segments[s].detail, "Relu 'a2': its engine build failed") != NULL;
    for (int s = 0; s < p.n_steps; s++)
        if (strcmp(g->nodes[p.steps[s].node].name, "a2") == 0) found &= p.steps[s].reason == KN_BREAK_BUILD_FAILED;
    KT_CHECK(found, "a failed engine build is its own reason");
    kn_partition_free(&p);
    KT_FAILS(kn_partition_build(g, NULL, &be, 1, 1, &p), KILN_ERR_UNSUPPORTED, "Relu 'a2': its engine build failed");
    for (int i = 0; i < g->n_nodes; i++) g->nodes[i].fallback = 0;
    /* require_full_compilation with an unsupported op names it */
    KT_FAILS(kn_partition_build(g, NULL, &be, 1, 1, &p), KILN_ERR_UNSUPPORTED,
             "graph breaks: Sigmoid 's1': not supported by the engine");
    kiln_graph_free(graph);

    /* the same graph through kiln_compile, Sigmoid forced: 5 segments and the right values */
    kiln_graph *g2 = branch_graph();
    const char *sig[1] = {"Sigmoid"};
    kt_opts o = {.optimize = false, .fallback = sig, .n_fallback = 1};
    kiln_module *m = kt_compile(g2, &o);
    KT_CHECK(kiln_module_num_segments(m) == 5, "compiled: 5 segments, got %d", kiln_module_num_segments(m));
    float x[12];
    kt_fill_uniform(x, 12, -2, 2);
    float *ins[1] = {x};
    float *out[1] = {0};
    int64_t on[1];
    if (m && kt_run(m, ins, NULL, out, on)) {
        double worst = 0;
        for (int i = 0; i < 12; i++) {
            double want = fmax(x[i], 0) + 1.0 / (1.0 + exp(-1.0 / (1.0 + exp(-(double)x[i]))));
            worst = fmax(worst, fabs(out[0][i] - want));
        }
        KT_CHECK(worst < 1e-6, "values through the graph breaks (max error %g)", worst);
    }
    free(out[0]);
    kiln_module_free(m);
    kiln_graph_free(g2);
}

/* ---- random graphs ----------------------------------------------------------------------------------- */

enum { RG_C = 3, RG_H = 4, RG_W = 5, RG_N = RG_C * RG_H * RG_W };

/* A seeded random DAG over values of one shape (1, C, H, W): elementwise ops, convs (with BN,
 * bias Adds and activations for the passes to find), matmuls over the last dim. */
static kiln_graph *random_graph(int n_nodes, char names[][16], int *n_named) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {1, RG_C, RG_H, RG_W};
    kt_input(g, "x0", 4, xd);
    kt_input(g, "x1", 4, xd);
    char vals[64][16];
    int nv = 2;
    strcpy(vals[0], "x0");
    strcpy(vals[1], "x1");
    *n_named = 0;
    for (int i = 0; i < n_nodes; i++) {
        char node[16], out[16], aux[32];
        snprintf(node, sizeof node, "n%d", i);
        snprintf(out, sizeof out, "v%d", i);
        /* recent values are likelier inputs: chains with branches */
        int a = nv - 1 - (int)(kt_rand_u64() % (uint64_t)(nv < 3 ? nv : 3));
        int b = (int)(kt_rand_u64() % (uint64_t)nv);
        int kind = (int)(kt_rand_u64() % 12);
        switch (kind) {
        case 0: kt_node(g, "Relu", node, vals[a], NULL, out); break;
        case 1: kt_node(g, "Sigmoid", node, vals[a], NULL, out); break;
        case 2: kt_node(g, "Tanh", node, vals[a], NULL, out); break;
        case 3: kt_node(g, "Add", node, vals[a], vals[b], out); break;
        case 4: kt_node(g, "Mul", node, vals[a], vals[b], out); break;
        case 5: kt_node(g, "Sub", node, vals[a], vals[b], out); break;
        case 6: case 7: kt_conv(g, node, vals[a], out, RG_C, RG_C, kind == 6 ? 3 : 1, (int)(kt_rand_u64() & 1)); break;
        case 8: {
            snprintf(aux, sizeof aux, "%s.w", node);
            int64_t wd[2] = {RG_W, RG_W};
            kt_const(g, aux, 2, wd, -0.5f, 0.5f);
            kt_node(g, "MatMul", node, vals[a], aux, out);
            break;
        }
        case 9: kt_bn(g, node, vals[a], out, RG_C); break;
        case 10: {
            snprintf(aux, sizeof aux, "%s.b", node);
            int64_t bd[4] = {1, RG_C, 1, 1};
            kt_const(g, aux, 4, bd, -1, 1);
            kt_node(g, "Add", node, vals[a], aux, out);
            break;
        }
        case 11: {
            snprintf(aux, sizeof aux, "%s.s", node);
            kt_scalar(g, aux, 0.5f);
            kt_node(g, "Mul", node, vals[a], aux, out);
            break;
        }
        }
        strcpy(vals[nv++], out);
        strcpy(names[(*n_named)++], node);
    }
    KT_OK(kiln_graph_add_output(g, vals[nv - 1]));
    /* sometimes a second output from the middle, which pins its value */
    if (kt_rand_u64() & 1) {
        int k = 2 + (int)(kt_rand_u64() % (uint64_t)(nv - 3));
        if (kiln_graph_add_output(g, vals[k]) != KILN_OK) { kt_failed++; }
    }
    return g;
}

/* m against ref; m runs eagerly, or through recorded graphs (per block, whole module: three runs,
 * so a warm-up, a recording and a replay all happen) */
static int outputs_match(const kiln_module *ref, const kiln_module *m, float *const *ins, double tol, const char *what,
                         kiln_cudagraphs_mode mode) {
    float *a[2] = {0}, *b[2] = {0};
    int64_t na[2] = {0}, nb[2] = {0};
    int ok = 0;
    if (kt_run(ref, ins, NULL, a, na) && kt_run_mode(m, ins, NULL, b, nb, NULL, mode, 3)) {
        ok = 1;
        for (int k = 0; k < kiln_module_num_outputs(ref); k++) {
            double err = na[k] == nb[k] ? kt_max_rel_err(b[k], a[k], na[k]) : INFINITY;
            KT_CHECK(err <= tol, "%s: output %d differs by %g", what, k, err);
            ok &= err <= tol;
        }
    }
    for (int k = 0; k < 2; k++) { free(a[k]); free(b[k]); }
    return ok;
}

/* Partition invariants: forced nodes are in fallback segments, engine blocks are long enough,
 * segments alternate. */
static void check_partition(const kiln_module *m, int min_block, const char *what) {
    const kn_partition *p = &m->part;
    int bad = 0;
    for (int s = 0; s < p->n_steps; s++) {
        const kn_node *n = &m->graph->nodes[p->steps[s].node];
        const kn_segment *seg = &p->segments[p->steps[s].segment];
        if (n->fallback == 1 && seg->kind != KN_SEG_FALLBACK) bad++;
        if (seg->kind == KN_SEG_FALLBACK && p->steps[s].reason == KN_BREAK_NONE) bad++;
    }
    for (int s = 0; s < p->n_segments; s++) {
        if (p->segments[s].kind == KN_SEG_ENGINE && p->segments[s].count < min_block) bad++;
        if (s > 0 && p->segments[s].kind == p->segments[s - 1].kind) bad++;
    }
    KT_CHECK(bad == 0, "%s: %d partition invariants broken", what, bad);
}

static void test_random_graphs(void) {
    static const char *const op_types[] = {"Relu", "Sigmoid", "Add", "Mul", "Conv", "MatMul", "BatchNormalization", "Tanh"};
    int graphs = 24, total_segments = 0;
    for (int gi = 0; gi < graphs; gi++) {
        char names[64][16];
        int n_named;
        int n_nodes = 6 + (int)(kt_rand_u64() % 14);
        kiln_graph *g = random_graph(n_nodes, names, &n_named);
        float x0[RG_N], x1[RG_N];
        kt_fill_uniform(x0, RG_N, -1, 1);
        kt_fill_uniform(x1, RG_N, -1, 1);
        float *ins[2] = {x0, x1};
        kt_opts base = {.optimize = false, .min_block_size = 1};
        kiln_module *ref = kt_compile(g, &base);
        if (!ref) { kiln_graph_free(g); continue; }
        KT_CHECK(kiln_module_num_segments(ref) == 1, "graph %d unpartitioned: one segment", gi);
        for (int variant = 0; variant < 4; variant++) {
            const char *forced[6];
            int nf = 0, nforce = (int)(kt_rand_u64() % 4);
            for (int k = 0; k < nforce; k++)
                forced[nf++] = (kt_rand_u64() & 1) ? op_types[kt_rand_u64() % 8] : names[kt_rand_u64() % (uint64_t)n_named];
            kt_opts o = {.optimize = variant & 1, .min_block_size = 1 + (int)(kt_rand_u64() % 3), .fallback = forced,
                         .n_fallback = nf};
            kiln_module *m = kt_compile(g, &o);
            if (!m) continue;
            char what[64];
            snprintf(what, sizeof what, "graph %d variant %d (%d forced, min block %d, %s)", gi, variant, nf,
                     o.min_block_size, o.optimize ? "optimized" : "plain");
            static const kiln_cudagraphs_mode modes[3] = {KILN_CUDAGRAPHS_OFF, KILN_CUDAGRAPHS_PER_BLOCK,
                                                          KILN_CUDAGRAPHS_WHOLE};
            outputs_match(ref, m, ins, 1e-4, what, modes[(gi + variant) % 3]);
            check_partition(m, o.min_block_size, what);
            total_segments += kiln_module_num_segments(m);
            kiln_module_free(m);
        }
        kiln_module_free(ref);
        kiln_graph_free(g);
    }
    KT_CHECK(total_segments > graphs * 4, "the random cases do break graphs (%d segments in %d modules)",
             total_segments, graphs * 4);
}

int main(void) {
    kt_seed(11);
    test_seed_graph_break();
    test_min_block_and_full_compilation();
    test_unsupported();
    test_min_block_counts_model_ops();
    test_random_graphs();
    return kt_finish();
}
