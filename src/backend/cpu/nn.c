/* CPU reference kernels of the nn ops: registration and the BLAS helpers they share. The
 * kernels live in nn_conv.c (Conv, ConvTranspose), nn_gemm.c (Gemm, MatMul), nn_pool.c (pools)
 * and nn_norm.c (BatchNormalization, InstanceNormalization, LayerNormalization). */
#include "nn_kernels.h"

#include <cblas.h>
#include <limits.h>

kiln_status kn_nn_blas_fits(const kn_node *n, int64_t m, int64_t nn, int64_t k) {
    if (m > INT_MAX || nn > INT_MAX || k > INT_MAX)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                             "a matrix product of %lld x %lld x %lld is too large for the BLAS int type",
                             (long long)m, (long long)nn, (long long)k);
    return KILN_OK;
}

void kn_nn_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                 int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* no products: C = beta * C */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)(lda > 0 ? lda : 1), b,
                (blasint)(ldb > 0 ? ldb : 1), beta, c, (blasint)(ldc > 0 ? ldc : 1));
}

void kn_cpu_register_nn(kn_kernel *t) {
    kn_cpu_register_nn_conv(t);
    kn_cpu_register_nn_gemm(t);
    kn_cpu_register_nn_pool(t);
    kn_cpu_register_nn_norm(t);
}
