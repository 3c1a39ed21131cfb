/* A small test harness: checks count failures instead of aborting, so one run reports them all.
 * Each test program ends with kt_finish(), which prints "N passed, N failed" and sets the exit
 * code. Random data comes from a seeded generator (never zeros). */
#ifndef KILN_TESTLIB_H
#define KILN_TESTLIB_H

#include "kiln.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

extern int kt_passed, kt_failed;

#define KT_CHECK(cond, ...)                                                                       \
    do {                                                                                          \
        if (cond) {                                                                               \
            kt_passed++;                                                                          \
        } else {                                                                                  \
            kt_failed++;                                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fputc('\n', stderr);                                                                  \
        }                                                                                         \
    } while (0)

/* Checks that a kiln call succeeds; prints kiln_last_error() when it does not. */
#define KT_OK(expr)                                                                               \
    do {                                                                                          \
        kiln_status kt_s_ = (expr);                                                               \
        KT_CHECK(kt_s_ == KILN_OK, "%s -> %s: %s", #expr, kiln_status_name(kt_s_),                \
                 kiln_last_error());                                                              \
    } while (0)

/* Checks that a kiln call fails with `code` and that the message contains `needle`. */
#define KT_FAILS(expr, code, needle) kt_check_fails((expr), (code), (needle), #expr, __FILE__, __LINE__)

void kt_check_fails(kiln_status got, kiln_status want, const char *needle, const char *expr,
                    const char *file, int line);

/* Deterministic random numbers. */
void kt_seed(uint64_t seed);
uint64_t kt_rand_u64(void);
float kt_uniform(float lo, float hi);
void kt_fill_uniform(float *x, int64_t n, float lo, float hi);

/* Max of |a-b| / (atol + rtol*|b|) over n elements: <= 1 means within tolerance. */
double kt_max_tol_ratio(const float *a, const double *b, int64_t n, double rtol, double atol);
double kt_max_rel_err(const float *a, const float *b, int64_t n);

/* Prints the summary line and returns the process exit code. */
int kt_finish(void);

#endif
