/* The memory planner: on seeded random lifetimes and sizes, no two values whose lifetimes meet
 * overlap in the arena, every offset is aligned, the arena covers every value, and the arena is
 * at least the peak of simultaneously live bytes, which the planner reports exactly (checked
 * against a brute-force count written here). Also ResNet-18's plan against its report. */
#include "testlib.h"

#include "build/module.h"
#include "resnet.h"

#include <stdlib.h>

static size_t round_up(size_t b, size_t a) { return (b + a - 1) / a * a; }

static void random_case(int n, int steps, size_t align) {
    kn_mem_request *req = calloc((size_t)n, sizeof *req);
    int64_t *off = calloc((size_t)n, sizeof *off);
    for (int i = 0; i < n; i++) {
        int a = (int)(kt_rand_u64() % (uint64_t)steps), b = (int)(kt_rand_u64() % (uint64_t)steps);
        req[i].first = a < b ? a : b;
        req[i].last = a < b ? b : a;
        /* a few values are not placed (bytes 0), as constants are not */
        req[i].bytes = kt_rand_u64() % 7 == 0 ? 0 : 1 + (size_t)(kt_rand_u64() % 100000);
    }
    size_t arena = 0, peak = 0;
    KT_OK(kn_memory_plan(req, n, align, off, &arena, &peak));
    int overlaps = 0, misplaced = 0;
    for (int i = 0; i < n; i++) {
        if (!req[i].bytes) {
            misplaced += off[i] != -1;
            continue;
        }
        misplaced += off[i] < 0 || off[i] % (int64_t)align != 0 || (size_t)off[i] + req[i].bytes > arena;
        for (int j = i + 1; j < n; j++) {
            if (!req[j].bytes || req[i].last < req[j].first || req[j].last < req[i].first) continue;
            int64_t ei = off[i] + (int64_t)req[i].bytes, ej = off[j] + (int64_t)req[j].bytes;
            overlaps += off[i] < ej && off[j] < ei;
        }
    }
    size_t want_peak = 0;
    for (int s = 0; s < steps; s++) {
        size_t live = 0;
        for (int i = 0; i < n; i++)
            if (req[i].bytes && req[i].first <= s && s <= req[i].last) live += round_up(req[i].bytes, align);
        if (live > want_peak) want_peak = live;
    }
    KT_CHECK(overlaps == 0, "n=%d: %d pairs of live values overlap", n, overlaps);
    KT_CHECK(misplaced == 0, "n=%d: %d values misplaced (unaligned, outside the arena, or placed with 0 bytes)", n, misplaced);
    KT_CHECK(peak == want_peak, "n=%d: reported peak %zu, brute force %zu", n, peak, want_peak);
    KT_CHECK(arena >= peak, "n=%d: arena %zu below the peak %zu", n, arena, peak);
    /* never worse than no reuse at all, and with reuse whenever lifetimes leave room for it: then
     * the peak is below the sum, and greedy-by-size stays within 1.5x of that peak here */
    size_t total = 0;
    for (int i = 0; i < n; i++) total += round_up(req[i].bytes, align);
    KT_CHECK(arena <= total, "n=%d: arena %zu above the sum of all values %zu", n, arena, total);
    KT_CHECK(arena <= peak + peak / 2 || arena == total, "n=%d: arena %zu far above the peak %zu", n, arena, peak);
    free(req);
    free(off);
}

int main(void) {
    kt_seed(3);
    for (int r = 0; r < 200; r++) random_case(1 + (int)(kt_rand_u64() % 120), 1 + (int)(kt_rand_u64() % 60), r % 2 ? 256 : 64);
    size_t arena = 1, peak = 1;
    KT_OK(kn_memory_plan(NULL, 0, 256, NULL, &arena, &peak));
    KT_CHECK(arena == 0 && peak == 0, "an empty plan is empty");

    /* a real model: the report states the arena next to the peak, and the arena is not below it */
    kiln_graph *g = NULL;
    KT_OK(kiln_resnet_build(18, 64, 0, &g));
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 64, 64}, .opt = {2, 3, 64, 64}, .max = {4, 3, 64, 64}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    if (m) {
        KT_CHECK(m->arena_size >= m->peak_live && m->peak_live > 0, "ResNet-18: arena %zu, peak %zu", m->arena_size, m->peak_live);
        char *text = NULL;
        KT_OK(kiln_module_report(m, false, &text));
        KT_CHECK(text && strstr(text, "memory plan: arena") && strstr(text, "peak live"), "the report states arena and peak");
        kiln_free(text);
    }
    kiln_module_free(m);
    kiln_graph_free(g);
    return kt_finish();
}
