/* Logging to stderr, filtered by a process-wide level. */
#include "base.h"

#include <stdlib.h>
#include <time.h>

int kn_log_level = 0;

void kiln_set_log_level(int level) { kn_log_level = level; }

void kn_log(int level, const char *fmt, ...) {
    if (level > kn_log_level) return;
    static const char *const tags[] = {"warning", "info", "verbose"};
    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr); /* one line at a time from the preparation threads */
    fprintf(stderr, "kiln %s: ", tags[level < 0 ? 0 : level > 2 ? 2 : level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

double kn_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int kn_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double kn_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, kn_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
