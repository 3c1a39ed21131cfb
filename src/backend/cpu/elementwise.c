/* CPU reference kernels for the elementwise ops. */
#include "cpu.h"

static kiln_status kn_cpu_relu(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int64_t n = kn_tensor_numel(y);
    for (int64_t i = 0; i < n; i++) {
        float v = kn_cpu_ld(x->data, x->dtype, i);
        kn_cpu_st(y->data, y->dtype, i, v > 0 ? v : 0);
    }
    return KILN_OK;
}

static kiln_status kn_cpu_add(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *z = &a->in[1], *y = &a->out[0];
    int64_t sx[KILN_MAX_RANK], sz[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0};
    kn_cpu_broadcast_strides(x, y, sx);
    kn_cpu_broadcast_strides(z, y, sz);
    int64_t n = kn_tensor_numel(y), ox = 0, oz = 0;
    for (int64_t i = 0; i < n; i++) {
        if (kn_dtype_is_float(y->dtype) && y->dtype != KILN_F64)
            kn_cpu_st(y->data, y->dtype, i, kn_cpu_ld(x->data, x->dtype, ox) + kn_cpu_ld(z->data, z->dtype, oz));
        else if (y->dtype == KILN_I64)
            ((int64_t *)y->data)[i] = ((const int64_t *)x->data)[ox] + ((const int64_t *)z->data)[oz];
        else
            kn_store_f64(y->data, y->dtype, i, kn_load_f64(x->data, x->dtype, ox) + kn_load_f64(z->data, z->dtype, oz));
        for (int d = y->rank - 1; d >= 0; d--) { /* odometer over the output index */
            ox += sx[d]; oz += sz[d];
            if (++idx[d] < y->dims[d]) break;
            ox -= sx[d] * y->dims[d]; oz -= sz[d] * y->dims[d];
            idx[d] = 0;
        }
    }
    return KILN_OK;
}

void kn_cpu_register_elementwise(kn_kernel *t) {
    t[KN_OP_Relu] = (kn_kernel){.name = "cpu.relu", .run = kn_cpu_relu};
    t[KN_OP_Add] = (kn_kernel){.name = "cpu.add", .run = kn_cpu_add};
}
