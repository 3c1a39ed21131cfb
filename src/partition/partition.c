/* The partitioner: device nodes in topological order are split into engine blocks and fallback
 * segments. A node falls back when the user forced it (by op type or node name, the seed's
 * torch_executed_ops), when the engine does not take it, or when its block is smaller than
 * min_block_size. Fallback segments run op by op with plain kernels on the same device and in
 * planned memory (DESIGN decision 2). */
#include "build/module.h"

const char *kn_break_reason_name(kn_break_reason r) {
    switch (r) {
    case KN_BREAK_NONE: return "none";
    case KN_BREAK_FORCED: return "forced";
    case KN_BREAK_UNSUPPORTED: return "unsupported";
    case KN_BREAK_SMALL_BLOCK: return "below_min_block_size";
    case KN_BREAK_BUILD_FAILED: return "build_failed";
    }
    return "?";
}

void kn_partition_mark_forced(kn_graph *g, char *const *ops, int n_ops) {
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        for (int k = 0; k < n_ops; k++)
            if (!strcmp(ops[k], kn_op_name(n->op)) || (n->name && !strcmp(ops[k], n->name)))
                n->fallback = 1;
    }
}

void kn_partition_free(kn_partition *p) {
    kn_free(p->steps);
    kn_free(p->segments);
    memset(p, 0, sizeof *p);
}

static kiln_status kn_add_segment(kn_partition *p, int *cap, kn_segment_kind kind, int first) {
    KN_TRY(KN_GROW(p->segments, *cap, p->n_segments + 1));
    kn_segment *s = &p->segments[p->n_segments++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->first = first;
    s->capturable = 1;
    return KILN_OK;
}

/* The model ops a node stands for: passes that fuse nodes record how many in "kiln.nodes", so
 * that min_block_size counts the user's ops, as in the model, not what fusion left of them. */
static int kn_model_ops(const kn_node *n) {
    int64_t k = kn_attr_i(n, "kiln.nodes", 1);
    return k < 1 ? 1 : k > 1000000 ? 1000000 : (int)k;
}

kiln_status kn_partition_build(const kn_graph *g, const uint8_t *host_node, const kn_backend *be,
                               int min_block_size, int require_full_compilation, kn_partition *out) {
    memset(out, 0, sizeof *out);
    kn_step *steps = kn_calloc((size_t)g->n_nodes + 1, sizeof *steps);
    if (!steps) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory partitioning");
    /* steps follow the node order of the compacted graph (engine files rely on it) */
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        if (nd->dead || (host_node && host_node[i])) continue;
        kn_step *s = &steps[n++];
        s->node = i;
        if (nd->fallback == 2) s->reason = KN_BREAK_BUILD_FAILED; /* marked by kiln_compile's kernel choice */
        else if (nd->fallback) s->reason = KN_BREAK_FORCED;
        else if (!be->supports_op(g, nd)) s->reason = KN_BREAK_UNSUPPORTED;
        else s->reason = KN_BREAK_NONE;
    }
    /* with require_full_compilation every supported node is compiled, however small its block */
    if (require_full_compilation) min_block_size = 1;
    /* engine runs of fewer than min_block_size model ops fall back */
    for (int i = 0; i < n;) {
        if (steps[i].reason != KN_BREAK_NONE) { i++; continue; }
        int j = i, ops = 0;
        while (j < n && steps[j].reason == KN_BREAK_NONE) ops += kn_model_ops(&g->nodes[steps[j++].node]);
        if (ops < min_block_size)
            for (int k = i; k < j; k++) steps[k].reason = KN_BREAK_SMALL_BLOCK;
        i = j;
    }
    out->steps = steps;
    out->n_steps = n;
    int cap = 0;
    kiln_status st = KILN_OK;
    for (int i = 0; i < n && st == KILN_OK; i++) {
        kn_segment_kind kind = steps[i].reason == KN_BREAK_NONE ? KN_SEG_ENGINE : KN_SEG_FALLBACK;
        if (!out->n_segments || out->segments[out->n_segments - 1].kind != kind)
            st = kn_add_segment(out, &cap, kind, i);
        if (st != KILN_OK) break;
        kn_segment *seg = &out->segments[out->n_segments - 1];
        seg->count++;
        steps[i].segment = out->n_segments - 1;
        if (kind == KN_SEG_FALLBACK && seg->reason == KN_BREAK_NONE) seg->reason = steps[i].reason;
    }
    if (st != KILN_OK) {
        kn_partition_free(out);
        return st;
    }
    /* a readable reason per fallback segment: each run of steps with one reason, with its nodes */
    for (int s = 0; s < out->n_segments; s++) {
        kn_segment *seg = &out->segments[s];
        if (seg->kind != KN_SEG_FALLBACK) continue;
        size_t len = 0, cap_d = sizeof seg->detail;
        for (int k = seg->first; k < seg->first + seg->count && len < cap_d - 1;) {
            int j = k;
            while (j < seg->first + seg->count && steps[j].reason == steps[k].reason) j++;
            for (int q = k; q < j && len < cap_d - 1; q++) {
                const kn_node *nd = &g->nodes[steps[q].node];
                len += (size_t)snprintf(seg->detail + len, cap_d - len, "%s%s '%s'", q > k ? ", " : k > seg->first ? "; " : "",
                                        kn_op_name(nd->op), nd->name);
            }
            if (len >= cap_d - 1) break;
            if (steps[k].reason == KN_BREAK_SMALL_BLOCK) {
                int ops = 0;
                for (int q = k; q < j; q++) ops += kn_model_ops(&g->nodes[steps[q].node]);
                len += (size_t)snprintf(seg->detail + len, cap_d - len,
                                        ": an engine block of %d model op%s, below min_block_size %d", ops,
                                        ops == 1 ? "" : "s", min_block_size);
            } else
                len += (size_t)snprintf(seg->detail + len, cap_d - len, ": %s",
                                        steps[k].reason == KN_BREAK_FORCED        ? "forced by the user"
                                        : steps[k].reason == KN_BREAK_BUILD_FAILED ? "its engine build failed"
                                                                                   : "not supported by the engine");
            k = j;
        }
    }
    if (require_full_compilation) {
        for (int s = 0; s < out->n_segments; s++)
            if (out->segments[s].kind == KN_SEG_FALLBACK) {
                st = kn_error(KILN_ERR_UNSUPPORTED,
                              "require_full_compilation is set but the graph breaks: %s",
                              out->segments[s].detail);
                kn_partition_free(out);
                return st;
            }
    }
    return KILN_OK;
}

void kn_partition_report(const kn_graph *g, const kn_partition *p, int json, kn_strbuf *sb) {
    int engines = 0;
    for (int s = 0; s < p->n_segments; s++) engines += p->segments[s].kind == KN_SEG_ENGINE;
    if (json) {
        kn_sb_printf(sb, "{\"num_segments\": %d, \"num_engine_blocks\": %d, \"graph_breaks\": %d, \"segments\": [",
                     p->n_segments, engines, p->n_segments > 0 ? p->n_segments - 1 : 0);
        for (int s = 0; s < p->n_segments; s++) {
            const kn_segment *seg = &p->segments[s];
            int ops = 0;
            for (int k = seg->first; k < seg->first + seg->count; k++) ops += kn_model_ops(&g->nodes[p->steps[k].node]);
            kn_sb_printf(sb, "%s\n  {\"index\": %d, \"kind\": \"%s\", \"num_nodes\": %d, \"num_model_ops\": %d, \"capturable\": %s, ",
                         s ? "," : "", s, seg->kind == KN_SEG_ENGINE ? "engine" : "fallback", seg->count, ops,
                         seg->capturable ? "true" : "false");
            if (seg->kind == KN_SEG_FALLBACK) {
                kn_sb_printf(sb, "\"reason\": \"%s\", \"detail\": ", kn_break_reason_name(seg->reason));
                kn_sb_json_str(sb, seg->detail);
                kn_sb_puts(sb, ", ");
            }
            kn_sb_puts(sb, "\"nodes\": [");
            for (int k = seg->first; k < seg->first + seg->count; k++) {
                const kn_node *nd = &g->nodes[p->steps[k].node];
                kn_sb_printf(sb, "%s{\"op\": \"%s\", \"name\": ", k > seg->first ? ", " : "", kn_op_name(nd->op));
                kn_sb_json_str(sb, nd->name);
                if (p->steps[k].reason != KN_BREAK_NONE)
                    kn_sb_printf(sb, ", \"reason\": \"%s\"", kn_break_reason_name(p->steps[k].reason));
                kn_sb_puts(sb, "}");
            }
            kn_sb_puts(sb, "]}");
        }
        kn_sb_puts(sb, "\n]}\n");
        return;
    }
    kn_sb_printf(sb, "partition: %d segment%s, %d engine block%s, %d graph break%s\n", p->n_segments,
                 p->n_segments == 1 ? "" : "s", engines, engines == 1 ? "" : "s",
                 p->n_segments > 1 ? p->n_segments - 1 : 0, p->n_segments == 2 ? "" : "s");
    for (int s = 0; s < p->n_segments; s++) {
        const kn_segment *seg = &p->segments[s];
        int ops = 0;
        for (int k = seg->first; k < seg->first + seg->count; k++) ops += kn_model_ops(&g->nodes[p->steps[k].node]);
        kn_sb_printf(sb, "  segment %d: %s, %d node%s", s, seg->kind == KN_SEG_ENGINE ? "engine block" : "fallback",
                     seg->count, seg->count == 1 ? "" : "s");
        if (ops != seg->count) kn_sb_printf(sb, " (%d model ops before fusion)", ops);
        kn_sb_printf(sb, "%s\n", seg->capturable ? "" : " (not capturable)");
        /* op histogram keeps long blocks readable */
        int counts[KN_OP_COUNT] = {0};
        for (int k = seg->first; k < seg->first + seg->count; k++) counts[g->nodes[p->steps[k].node].op]++;
        kn_sb_puts(sb, "    ops:");
        for (int o = 1; o < KN_OP_COUNT; o++)
            if (counts[o]) kn_sb_printf(sb, " %s x%d", kn_op_name((kn_op)o), counts[o]);
        kn_sb_puts(sb, "\n");
        if (seg->kind == KN_SEG_FALLBACK)
            kn_sb_printf(sb, "    graph break (%s): %s\n", kn_break_reason_name(seg->reason), seg->detail);
    }
}
