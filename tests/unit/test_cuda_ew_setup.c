/* How the CUDA backend lays out an elementwise launch (kn_cuda_ew_setup): dims of size 1 are
 * dropped and neighbours contiguous for every operand merged, so that contiguous operands become
 * rank 1 and a per-channel bias of NHWC data rank 2 ([N*H*W, C]), the forms the vector kernels
 * take. This is host code: it runs in CI without a GPU. (A merge compared against the kept dim's
 * original stride once left every 4-D operand at rank 3, and every elementwise op and conv
 * epilogue on the slow indexed path, with correct results: only this test sees it.) */
#include "testlib.h"

#ifdef KILN_HAVE_CUDA
#include "backend/cuda/cuda_internal.h"

#include <string.h>

static kn_tensor tensor(int rank, const int64_t *dims) {
    kn_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F16;
    t.rank = rank;
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    t.data = (void *)(uintptr_t)256;
    return t;
}

int main(void) {
    kn_node node;
    memset(&node, 0, sizeof node);
    node.name = "ew";
    const int64_t d4[4] = {16, 56, 56, 144}, c1[1] = {144}, d4b[4] = {16, 1, 56, 56}, c4[4] = {1, 144, 1, 1};
    knc_ew p;

    /* contiguous operands of one shape: rank 1 */
    kn_tensor y = tensor(4, d4), x = tensor(4, d4);
    const kn_tensor *in1[2] = {&x, &x};
    KT_OK(kn_cuda_ew_setup(&p, &node, &y, in1, 2));
    KT_CHECK(p.rank == 1 && p.dims[0] == 16 * 56 * 56 * 144, "same-shape operands: rank %d, dims[0] %lld", p.rank,
             (long long)p.dims[0]);
    KT_CHECK(p.strides[0][0] == 1 && p.strides[1][0] == 1, "contiguous strides");

    /* NHWC data with a per-channel bias over the last dim: [N*H*W, C], the bias a row */
    kn_tensor b = tensor(1, c1);
    const kn_tensor *in2[3] = {&x, &b, NULL};
    KT_OK(kn_cuda_ew_setup(&p, &node, &y, in2, 3));
    KT_CHECK(p.rank == 2 && p.dims[0] == 16 * 56 * 56 && p.dims[1] == 144, "bias over C: rank %d, dims %lld x %lld",
             p.rank, (long long)p.dims[0], (long long)p.dims[1]);
    KT_CHECK(p.strides[0][0] == 144 && p.strides[0][1] == 1 && p.strides[1][0] == 0 && p.strides[1][1] == 1,
             "bias over C: strides");

    /* a dim of size 1 in the middle is dropped before merging */
    kn_tensor y1 = tensor(4, d4b), x1 = tensor(4, d4b);
    const kn_tensor *in3[1] = {&x1};
    KT_OK(kn_cuda_ew_setup(&p, &node, &y1, in3, 1));
    KT_CHECK(p.rank == 1 && p.dims[0] == 16 * 56 * 56, "size-1 dim: rank %d", p.rank);

    /* NCHW with a [1, C, 1, 1] operand: [N, C, H*W], nothing more to merge */
    const int64_t d4n[4] = {16, 144, 56, 56};
    kn_tensor yn = tensor(4, d4n), xn = tensor(4, d4n), cn = tensor(4, c4);
    const kn_tensor *in4[2] = {&xn, &cn};
    KT_OK(kn_cuda_ew_setup(&p, &node, &yn, in4, 2));
    KT_CHECK(p.rank == 3 && p.dims[0] == 16 && p.dims[1] == 144 && p.dims[2] == 56 * 56, "NCHW channel operand: rank %d",
             p.rank);
    KT_CHECK(p.strides[1][0] == 0 && p.strides[1][1] == 1 && p.strides[1][2] == 0, "channel operand strides");
    return kt_finish();
}
#else
int main(void) {
    printf("SKIP: built without the CUDA backend\n");
    return kt_finish();
}
#endif
