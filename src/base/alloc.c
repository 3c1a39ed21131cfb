/* Allocation wrappers: NULL on failure, never abort; and the growable-array helper. */
#include "base.h"

#include <stdlib.h>

void *kn_malloc(size_t size) { return malloc(size ? size : 1); }
void *kn_calloc(size_t count, size_t size) { return calloc(count ? count : 1, size ? size : 1); }
void *kn_realloc(void *ptr, size_t size) { return realloc(ptr, size ? size : 1); }
void kn_free(void *ptr) { free(ptr); }

char *kn_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *kn_aligned_alloc(size_t size) {
    size = (size + 63) & ~(size_t)63;
    return aligned_alloc(64, size ? size : 64);
}
void kn_aligned_free(void *ptr) { free(ptr); }

kiln_status kn_grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return KILN_OK;
    int ncap = *cap ? *cap : 8;
    while (ncap < need) ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory growing an array");
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return KILN_OK;
}
