/* Private to the CPU backend's tensor kernels: the pieces split across files. */
#ifndef KILN_CPU_TENSOR_CPU_H
#define KILN_CPU_TENSOR_CPU_H

#include "cpu.h"

/* Copies one element of `esz` bytes (constant-size copies for the common sizes). */
static inline void kn_cpu_copy_bytes(char *dst, const char *src, size_t esz) {
    switch (esz) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, esz); break;
    }
}

/* Registers the Resize kernel (tensor_resize.c). */
void kn_cpu_register_resize(kn_kernel *table);

#endif
