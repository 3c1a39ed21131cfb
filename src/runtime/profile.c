/* Per-step profiles: where a run's device time goes, step by step. Each step is timed on its own
 * (its inputs are whatever the last full run left in the arena, so the numbers are those of real
 * data), as a recorded graph of several launches of the step when its kernel can be captured:
 * that keeps the host's launch cost out, as a graph replay does, and gives the time a step costs
 * inside a captured module. The backend's device timer (CUDA events) measures it; without one
 * the host clock around synchronize calls does. The end-to-end latency of the session's own mode
 * is measured in the same call, so the report can set the sum of the steps against it. */
#include "runtime.h"

#include <stdlib.h>

#define KN_PROF_REPEAT 10   /* launches of a step per timed graph */
#define KN_PROF_E2E_RUNS 50 /* timed end-to-end runs */

static kiln_status kn_prof_begin(kiln_session *s, double *t0) {
    *t0 = 0;
    if (s->be->timer_begin) return s->be->timer_begin(s->ctx);
    KN_TRY(s->be->synchronize(s->ctx));
    *t0 = kn_now_ms();
    return KILN_OK;
}

static kiln_status kn_prof_end(kiln_session *s, double t0, double *ms) {
    if (s->be->timer_end) return s->be->timer_end(s->ctx, ms);
    KN_TRY(s->be->synchronize(s->ctx));
    *ms = kn_now_ms() - t0;
    return KILN_OK;
}

static kiln_status kn_prof_step(kiln_session *s, kn_instance *in, int i, int runs, double *t, kn_profile_entry *e) {
    const kn_kernel *k = s->m->part.steps[i].kernel;
    e->step = i;
    if (kn_step_noop(s->m, in, i)) { /* a view: the run launches nothing for it */
        e->view = 1;
        e->ms = 0;
        return KILN_OK;
    }
    void *g = kn_record_launches(s, k, &in->args[i], KN_PROF_REPEAT);
    kiln_status st = KILN_OK;
    e->graphed = g != NULL;
    /* one untimed round first: instantiation, caches */
    if (g) st = s->be->graph_launch(s->ctx, g);
    else st = s->be->launch(s->ctx, k, &in->args[i]);
    for (int r = 0; r < runs && st == KILN_OK; r++) {
        double t0, ms = 0;
        st = kn_prof_begin(s, &t0);
        if (g) {
            if (st == KILN_OK) st = s->be->graph_launch(s->ctx, g);
        } else {
            for (int j = 0; j < KN_PROF_REPEAT && st == KILN_OK; j++) st = s->be->launch(s->ctx, k, &in->args[i]);
        }
        if (st == KILN_OK) st = kn_prof_end(s, t0, &ms);
        t[r] = ms / KN_PROF_REPEAT;
    }
    if (st == KILN_OK) st = s->be->synchronize(s->ctx);
    if (g) s->be->graph_free(s->ctx, g);
    if (st != KILN_OK) return kn_error_context(st, "profiling step %d", i);
    e->ms = kn_median(t, runs);
    return KILN_OK;
}

void kn_profile_free(kn_profile *p) {
    if (!p) return;
    kn_free(p->e);
    memset(p, 0, sizeof *p);
}

kiln_status kn_session_profile(kiln_session *s, const kiln_tensor *inputs, int n_inputs, int runs, kn_profile *out) {
    memset(out, 0, sizeof *out);
    KN_ARG_CHECK(s, "session");
    const kiln_module *m = s->m;
    if (runs < 1) runs = 1;
    int n_out = m->n_outputs;
    kiln_tensor *outs = kn_calloc((size_t)n_out + 1, sizeof *outs);
    double *t = kn_malloc(((size_t)(runs > KN_PROF_E2E_RUNS ? runs : KN_PROF_E2E_RUNS) + 1) * sizeof *t);
    out->e = kn_calloc((size_t)m->part.n_steps + 1, sizeof *out->e);
    kiln_status st = KILN_OK;
    if (!outs || !t || !out->e) {
        st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for a profile");
        goto done;
    }
    out->runs = runs;
    out->repeat = KN_PROF_REPEAT;
    out->mode = kiln_session_cudagraphs_mode(s);
    /* end to end first: this also checks the inputs, prepares the shape and records graphs */
    for (int r = -3; r < KN_PROF_E2E_RUNS && st == KILN_OK; r++) {
        memset(outs, 0, ((size_t)n_out + 1) * sizeof *outs);
        double t0 = kn_now_ms();
        st = kiln_session_run(s, inputs, n_inputs, outs, n_out);
        if (st == KILN_OK) st = s->be->synchronize(s->ctx);
        if (r >= 0) t[r] = kn_now_ms() - t0;
        /* provisional kernels: what is profiled is the tuned ones */
        if (st == KILN_OK && r == -3) st = kiln_session_finish_preparation(s);
    }
    if (st != KILN_OK) goto done;
    out->e2e_runs = KN_PROF_E2E_RUNS;
    out->e2e_ms = kn_median(t, KN_PROF_E2E_RUNS);
    int64_t dims[64][KILN_MAX_RANK];
    if (m->n_inputs > 64) {
        st = kn_error(KILN_ERR_UNSUPPORTED, "more than 64 inputs");
        goto done;
    }
    for (int k = 0; k < m->n_inputs; k++) memcpy(dims[k], inputs[k].dims, sizeof dims[k]);
    kn_instance *in = NULL;
    KN_CHECK_GOTO(st, kn_session_instance(s, (const int64_t(*)[KILN_MAX_RANK])dims, &in), done);
    for (int i = 0; i < m->part.n_steps && st == KILN_OK; i++) {
        st = kn_prof_step(s, in, i, runs, t, &out->e[i]);
        if (st == KILN_OK) {
            out->sum_ms += out->e[i].ms;
            out->n++;
        }
    }
done:
    kn_free(outs);
    kn_free(t);
    if (st != KILN_OK) kn_profile_free(out);
    return st;
}

/* ---- the public report -------------------------------------------------------------------------- */

static int cmp_entry_desc(const void *a, const void *b) {
    const kn_profile_entry *x = a, *y = b;
    if (x->ms != y->ms) return x->ms < y->ms ? 1 : -1;
    return x->step - y->step;
}

static const char *kn_mode_name(kiln_cudagraphs_mode m) {
    switch (m) {
    case KILN_CUDAGRAPHS_OFF: return "off";
    case KILN_CUDAGRAPHS_PER_BLOCK: return "block";
    case KILN_CUDAGRAPHS_WHOLE: return "whole";
    default: return "default";
    }
}

kiln_status kiln_session_profile(kiln_session *s, const kiln_tensor *inputs, int num_inputs, bool json, char **report) {
    KN_ARG_CHECK(report, "report");
    *report = NULL;
    KN_ARG_CHECK(s, "session");
    kn_profile p;
    KN_TRY(kn_session_profile(s, inputs, num_inputs, 5, &p));
    const kiln_module *m = s->m;
    const kn_graph *g = m->graph;
    kn_profile_entry *order = kn_malloc(((size_t)p.n + 1) * sizeof *order);
    if (!order) {
        kn_profile_free(&p);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for a profile");
    }
    if (p.n) memcpy(order, p.e, (size_t)p.n * sizeof *order);
    qsort(order, (size_t)p.n, sizeof *order, cmp_entry_desc);
    kn_strbuf sb = {0};
    const char *dev = m->device == KILN_DEVICE_CUDA ? "cuda" : "cpu";
    if (json) {
        kn_sb_printf(&sb, "{\"device\": \"%s\", \"runs\": %d, \"repeat\": %d, \"steps\": [", dev, p.runs, p.repeat);
        for (int r = 0; r < p.n; r++) {
            const kn_profile_entry *e = &order[r];
            const kn_step *st = &m->part.steps[e->step];
            const kn_node *nd = &g->nodes[st->node];
            kn_sb_printf(&sb, "%s\n  {\"step\": %d, \"op\": \"%s\", \"node\": ", r ? "," : "", e->step, kn_op_name(nd->op));
            kn_sb_json_str(&sb, nd->name ? nd->name : "");
            kn_sb_printf(&sb, ", \"kernel\": ");
            kn_sb_json_str(&sb, st->kernel->name);
            kn_sb_printf(&sb, ", \"tactic\": %d, \"segment\": %d, \"ms\": %.9f, \"share\": %.6f, \"graphed\": %s, \"view\": %s}",
                         st->tactic, st->segment, e->ms, p.sum_ms > 0 ? e->ms / p.sum_ms : 0, e->graphed ? "true" : "false",
                         e->view ? "true" : "false");
        }
        kn_sb_printf(&sb, "\n], \"sum_ms\": %.6f, \"end_to_end_ms\": %.6f, \"end_to_end_runs\": %d, \"cudagraphs\": \"%s\"}\n",
                     p.sum_ms, p.e2e_ms, p.e2e_runs, kn_mode_name(p.mode));
    } else {
        kn_sb_printf(&sb,
                     "profile (%s): %d steps; device time per launch in microseconds, median of %d runs, each run %d launches of the "
                     "step (from a recorded graph where it can be captured: no host launch cost)\n",
                     dev, p.n, p.runs, p.repeat);
        kn_sb_printf(&sb, "%11s %7s %5s  %-18s %-22s %6s  %s\n", "us", "share", "step", "op", "kernel", "tactic", "node");
        for (int r = 0; r < p.n; r++) {
            const kn_profile_entry *e = &order[r];
            const kn_step *st = &m->part.steps[e->step];
            const kn_node *nd = &g->nodes[st->node];
            kn_sb_printf(&sb, "%11.3f %6.1f%% %5d  %-18s %-22s %6d  %s%s\n", 1e3 * e->ms,
                         p.sum_ms > 0 ? 100.0 * e->ms / p.sum_ms : 0.0, e->step, kn_op_name(nd->op),
                         e->view ? "view" : st->kernel->name, st->tactic, nd->name ? nd->name : "",
                         e->view ? " (aliases its input: no launch)" : e->graphed ? "" : " (eager)");
        }
        kn_sb_printf(&sb,
                     "sum of steps: %.4f ms; end to end (kiln_session_run + synchronize, cudagraphs %s, median of %d): "
                     "%.4f ms; the steps are %.1f%% of it\n",
                     p.sum_ms, kn_mode_name(p.mode), p.e2e_runs, p.e2e_ms, p.e2e_ms > 0 ? 100.0 * p.sum_ms / p.e2e_ms : 0.0);
    }
    kn_free(order);
    kn_profile_free(&p);
    return kn_sb_finish(&sb, report);
}
