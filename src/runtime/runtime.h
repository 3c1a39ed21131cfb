/* The runtime: sessions, shape instances and the CUDA-graph manager. Written once above the
 * backend interface and tested on both backends (DESIGN decision 3). */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include "build/module.h"

/* Everything prepared for one input-shape signature: concrete shapes, step arguments with
 * resolved pointers, kernel states, and the graphs recorded for it. Every instance of a session
 * uses the same arena addresses (one plan at the profile's max shape), so recording a shape costs
 * graph objects, not activations. */
typedef struct kn_instance {
    int64_t *sig;        /* dims of every input, concatenated */
    int sig_len;
    kn_shapes shapes;
    kn_tensor *vals;     /* per value, data resolved */
    kn_tensor *io;       /* per step: inputs then outputs */
    kn_kernel_args *args; /* per step */
    void **kstate;       /* per step */
    void **dev_host;     /* per value: a device copy of a host-known value read as data */
    void *whole;         /* graph of the whole module (WHOLE mode) */
    void **block;        /* per segment: graph of an engine block (PER_BLOCK mode) */
    int warm_whole, *warm_block;
    int failed_whole, *failed_block; /* capture failed: run eagerly from now on */
    uint64_t last_used;
} kn_instance;

struct kiln_session {
    const kiln_module *m;
    const kn_backend *be;
    void *ctx;
    char *arena;
    kn_instance **cache;
    int n_cache, cap_cache;
    int max_graphs;
    int warmup;
    kiln_cudagraphs_mode mode;
    kiln_cudagraphs_mode scope_stack[16];
    int scope_depth;
    kiln_cudagraphs_mode last_mode;
    uint64_t clock;
    kiln_counters counters;
    /* Graphs of evicted shapes, one per slot (whole module, then each segment): the next
     * recording for that slot tries to update one in place instead of instantiating anew. */
    void *spare_whole;
    void **spare_block;
    /* Instances skip the kernels' prepare (the tactic timer's session, which prepares each
     * tactic itself and runs nothing else). */
    int no_prepare;
    /* Provisional kernels at new shapes (kiln_session_set_provisional_kernels), and the one
     * background preparation in progress (src/runtime/prepare.c), or NULL. */
    int provisional;
    struct kn_prep_bg *bg;
};

/* The instance for these input dims (made and prepared on a miss, outside any capture). */
kiln_status kn_session_instance(kiln_session *s, const int64_t (*dims)[KILN_MAX_RANK], kn_instance **out);
/* Prepares every step of a new instance (kernels' prepare; src/runtime/prepare.c), concurrent
 * ones on helper threads where the backend binds them. */
kiln_status kn_prepare_steps(kiln_session *s, kn_instance *in);
/* Ends the session's background preparation: waits for it with `wait`, else only ends it when its
 * helpers are done. The steps it prepared swap their tuned states in (after the stream is idle),
 * the others keep their provisional ones; with discard every prepared state is released instead.
 * Returns the number swapped and their instance in *upgraded (NULL when none). */
int kn_prepare_background_end(kiln_session *s, int wait, int discard, kn_instance **upgraded);
/* Helper threads for that: KILN_PREPARE_THREADS, else the online CPUs up to 8. */
int kn_prepare_threads(void);
/* Runs every step eagerly (no graphs). */
kiln_status kn_instance_run_eager(kiln_session *s, kn_instance *in, int first, int count);
/* `reps` launches of one step recorded into a graph (for timing a step as a captured module runs
 * it: the host's launch cost stays out), or NULL and no error where the backend does not record or
 * the kernel cannot be captured. */
void *kn_record_launches(kiln_session *s, const kn_kernel *k, const kn_kernel_args *a, int reps);
/* Step i of this instance is a view whose output is its input's memory: it is not launched. */
int kn_step_noop(const kiln_module *m, const kn_instance *in, int i);

/* A per-step profile (src/runtime/profile.c): the device time of every step, median over runs;
 * a step whose kernel can be captured is timed as a recorded graph of `repeat` launches of it
 * (so host launch costs stay out, as in a graph replay), others as `repeat` eager launches. */
typedef struct kn_profile_entry {
    int step;
    double ms;   /* per launch */
    int graphed; /* timed from a recorded graph */
    int view;    /* a view: not launched, 0 ms */
} kn_profile_entry;

typedef struct kn_profile {
    int n;
    kn_profile_entry *e; /* step order */
    int runs, repeat;
    double sum_ms;
    double e2e_ms;  /* median latency of kiln_session_run + synchronize in the session's mode */
    int e2e_runs;
    kiln_cudagraphs_mode mode;
} kn_profile;

kiln_status kn_session_profile(kiln_session *s, const kiln_tensor *inputs, int n_inputs, int runs, kn_profile *out);
void kn_profile_free(kn_profile *p);

/* Times the tactics of every step that offers more than one, at the opt shape (src/build/tactics.c). */
kiln_status kn_time_tactics(kiln_module *m, const kiln_build_config *c);

#endif
