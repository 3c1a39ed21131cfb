#include "testlib.h"

#include <string.h>

int kt_passed, kt_failed;
static uint64_t kt_state = 0x9e3779b97f4a7c15ull;

void kt_check_fails(kiln_status got, kiln_status want, const char *needle, const char *expr,
                    const char *file, int line) {
    const char *msg = kiln_last_error();
    if (got == want && (!needle || strstr(msg, needle))) {
        kt_passed++;
        return;
    }
    kt_failed++;
    fprintf(stderr, "FAIL %s:%d: %s -> %s (wanted %s) message \"%s\" (wanted to contain \"%s\")\n",
            file, line, expr, kiln_status_name(got), kiln_status_name(want), msg,
            needle ? needle : "");
}

void kt_seed(uint64_t seed) { kt_state = seed * 0x9e3779b97f4a7c15ull + 1; }

uint64_t kt_rand_u64(void) { /* splitmix64 */
    uint64_t z = (kt_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float kt_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((kt_rand_u64() >> 40) * (1.0 / 16777216.0));
}

void kt_fill_uniform(float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = kt_uniform(lo, hi);
}

double kt_max_tol_ratio(const float *a, const double *b, int64_t n, double rtol, double atol) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (isnan(a[i]) != isnan(b[i])) r = INFINITY;
        if (isnan(a[i]) && isnan(b[i])) r = 0;
        if (r > worst || isnan(r)) worst = isnan(r) ? INFINITY : r;
    }
    return worst;
}

double kt_max_rel_err(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num || isnan(d)) num = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 0 ? den : 1);
}

int kt_finish(void) {
    printf("%d passed, %d failed\n", kt_passed, kt_failed);
    return kt_failed ? 1 : 0;
}
