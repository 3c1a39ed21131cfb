/* CPU reference kernels for the elementwise ops.
 *
 * Numbers: unary math on f32, f16 and bf16 computes in float (f16/bf16 converted on load and
 * store), on f64 in double; the math is written once for both (KN_UNARY_MATH). Broadcasting
 * ops load floats as double and round once on store, which for +, -, *, / is exactly the float
 * result (Pow and Mean are a little more accurate than float math). Integers compute in int64 with two's-complement wrap-around (no undefined behaviour on overflow) and
 * narrow by wrapping on store; bool is 0/1. Integer Div truncates toward zero like C; x / 0 gives
 * 0 and INT64_MIN / -1 gives INT64_MIN (ONNX leaves both undefined; we choose not to trap).
 * Mod: fmod = 1 is C's fmod (the sign of the dividend; floats exactly, NaN for x fmod 0), fmod = 0
 * (integers only) takes the sign of the divisor like Python's %; integer x mod 0 gives 0 in both
 * modes (as numpy does; ONNX leaves it undefined) and INT64_MIN mod -1 gives 0.
 *
 * Structure: one function per op class applies a per-element switch on the op (kn_unary_f/_d,
 * kn_binary_f, ...); every broadcasting op walks its output with one odometer (kn_ew_rows)
 * that hands contiguous rows of the last dim, with a per-input step of 0 or 1, to a row
 * function. Equal shapes and scalars take a single row with no odometer at all. */
#include "cpu.h"

#include <math.h>

#define KN_EW_MAX_IN 32

/* ---- element access --------------------------------------------------------------------------- */

static inline double kn_ldf(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_F32: return ((const float *)p)[i];
    case KILN_F64: return ((const double *)p)[i];
    default: return kn_load_f64(p, t, i);
    }
}

static inline void kn_stf(void *p, kiln_dtype t, int64_t i, double v) {
    switch (t) {
    case KILN_F32: ((float *)p)[i] = (float)v; break;
    case KILN_F64: ((double *)p)[i] = v; break;
    default: kn_store_f64(p, t, i, v); break; /* f16/bf16 via f32; ints truncate and saturate */
    }
}

static inline int64_t kn_ldi(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_I64: return ((const int64_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return (int64_t)kn_load_f64(p, t, i); /* not reached: float inputs take kn_ldf */
    }
}

static inline void kn_sti(void *p, kiln_dtype t, int64_t i, int64_t v) {
    switch (t) {
    case KILN_I64: ((int64_t *)p)[i] = v; break;
    case KILN_I32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
    case KILN_I8: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; break;
    case KILN_U8: ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v; break;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: kn_stf(p, t, i, (double)v); break;
    }
}

/* A float to an integer type without undefined behaviour: truncation toward zero, NaN -> 0,
 * out of the type's range saturates (ONNX leaves that case undefined). */
static inline int64_t kn_f2i(double v, kiln_dtype t) {
    double lo = t == KILN_I32 ? INT32_MIN : t == KILN_I8 ? INT8_MIN : t == KILN_U8 ? 0 : -9.2233720368547758e18;
    double hi = t == KILN_I32 ? INT32_MAX : t == KILN_I8 ? INT8_MAX : t == KILN_U8 ? UINT8_MAX : 9.2233720368547758e18;
    if (isnan(v)) return 0;
    if (v <= lo) return t == KILN_I64 ? INT64_MIN : (int64_t)lo;
    if (v >= hi) return t == KILN_I64 ? INT64_MAX : (int64_t)hi;
    return (int64_t)v;
}

/* Backend memory of an input, or its host copy when only that is set (host evaluation). */
static inline const void *kn_ptr(const kn_tensor *t) { return t->data ? t->data : t->host; }

/* ---- per-element math ---------------------------------------------------------------------------- */

typedef struct kn_ew_params {
    double alpha, beta, gamma;
    int gelu_tanh;
    double lo, hi;    /* Clip, float */
    int64_t ilo, ihi; /* Clip, integer */
} kn_ew_params;

static void kn_ew_params_init(const kn_kernel_args *a, kn_ew_params *p) {
    const kn_node *n = a->node;
    memset(p, 0, sizeof *p);
    switch (n->op) {
    case KN_OP_LeakyRelu: p->alpha = kn_attr_f(n, "alpha", 0.01f); break;
    case KN_OP_Elu: p->alpha = kn_attr_f(n, "alpha", 1.0f); break;
    case KN_OP_Selu:
        p->alpha = kn_attr_f(n, "alpha", 1.67326319217681884765625f);
        p->gamma = kn_attr_f(n, "gamma", 1.05070102214813232421875f);
        break;
    case KN_OP_HardSigmoid:
        p->alpha = kn_attr_f(n, "alpha", 0.2f);
        p->beta = kn_attr_f(n, "beta", 0.5f);
        break;
    case KN_OP_Gelu: p->gelu_tanh = strcmp(kn_attr_s(n, "approximate", "none"), "tanh") == 0; break;
    case KN_OP_Clip: {
        /* inputs (opset >= 11) win over the opset-6 attributes */
        p->lo = kn_attr_f(n, "min", -INFINITY);
        p->hi = kn_attr_f(n, "max", INFINITY);
        p->ilo = INT64_MIN;
        p->ihi = INT64_MAX;
        for (int k = 1; k < a->n_in && k < 3; k++) {
            const kn_tensor *t = &a->in[k];
            if (!kn_tensor_present(t)) continue;
            double *f = k == 1 ? &p->lo : &p->hi;
            int64_t *i = k == 1 ? &p->ilo : &p->ihi;
            if (kn_dtype_is_float(t->dtype)) *f = kn_ldf(kn_ptr(t), t->dtype, 0);
            else *i = kn_ldi(kn_ptr(t), t->dtype, 0);
        }
        break;
    }
    default: break;
    }
}

/* The unary math, written once for a float type T whose <math.h> functions end in S ("f" for
 * float, nothing for double): f32/f16/bf16 compute in float, f64 in double. */
#define KN_UNARY_MATH(T, S)                                                                       \
    switch (op) {                                                                                 \
    case KN_OP_Relu: return x < 0 ? (T)0 : x;                                                     \
    case KN_OP_LeakyRelu: return x < 0 ? (T)p->alpha * x : x;                                     \
    case KN_OP_Elu: return x < 0 ? (T)p->alpha * expm1##S(x) : x;                                 \
    case KN_OP_Selu: return x <= 0 ? (T)(p->gamma * p->alpha) * expm1##S(x) : (T)p->gamma * x;   \
    case KN_OP_HardSigmoid: return fmax##S(0, fmin##S(1, (T)p->alpha * x + (T)p->beta));         \
    case KN_OP_HardSwish: return x * fmax##S(0, fmin##S(1, x / 6 + (T)0.5));                      \
    case KN_OP_Sigmoid: return x >= 0 ? 1 / (1 + exp##S(-x)) : exp##S(x) / (1 + exp##S(x));       \
    case KN_OP_Tanh: return tanh##S(x);                                                           \
    case KN_OP_Erf: return erf##S(x);                                                             \
    case KN_OP_Gelu:                                                                              \
        return p->gelu_tanh                                                                       \
                   ? (T)0.5 * x * (1 + tanh##S((T)0.79788456080286535588 * (x + (T)0.044715 * x * x * x))) \
                   : (T)0.5 * x * (1 + erf##S(x * (T)0.70710678118654752440));                    \
    case KN_OP_Softplus: return x > 0 ? x + log1p##S(exp##S(-x)) : log1p##S(exp##S(x));           \
    case KN_OP_Mish: {                                                                            \
        T sp = x > 0 ? x + log1p##S(exp##S(-x)) : log1p##S(exp##S(x));                            \
        return x * tanh##S(sp);                                                                   \
    }                                                                                             \
    case KN_OP_Sqrt: return sqrt##S(x);                                                           \
    case KN_OP_Reciprocal: return 1 / x;                                                          \
    case KN_OP_Neg: return -x;                                                                    \
    case KN_OP_Abs: return fabs##S(x);                                                            \
    case KN_OP_Exp: return exp##S(x);                                                             \
    case KN_OP_Log: return log##S(x);                                                             \
    case KN_OP_Floor: return floor##S(x);                                                         \
    case KN_OP_Ceil: return ceil##S(x);                                                           \
    case KN_OP_Clip: /* min > max gives max, as ONNX says; NaN stays NaN */                       \
        x = x < (T)p->lo ? (T)p->lo : x;                                                          \
        return x > (T)p->hi ? (T)p->hi : x;                                                       \
    default: return x;                                                                            \
    }

static float kn_unary_f(kn_op op, float x, const kn_ew_params *p) { KN_UNARY_MATH(float, f) }
static double kn_unary_d(kn_op op, double x, const kn_ew_params *p) { KN_UNARY_MATH(double, ) }

static int64_t kn_unary_i(kn_op op, int64_t x, const kn_ew_params *p) {
    switch (op) {
    case KN_OP_Relu: return x < 0 ? 0 : x;
    case KN_OP_Neg: return (int64_t)(0 - (uint64_t)x);
    case KN_OP_Abs: return x < 0 ? (int64_t)(0 - (uint64_t)x) : x;
    case KN_OP_Not: return !x;
    case KN_OP_Clip: x = x < p->ilo ? p->ilo : x; return x > p->ihi ? p->ihi : x;
    default: return x;
    }
}

/* Both operands' NaN propagates through Min and Max, as numpy's minimum/maximum do. */
static inline double kn_fmin_nan(double a, double b) { return isnan(a) || isnan(b) ? NAN : a < b ? a : b; }
static inline double kn_fmax_nan(double a, double b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }

static double kn_binary_f(kn_op op, double a, double b) {
    switch (op) {
    case KN_OP_Add: case KN_OP_Sum: case KN_OP_Mean: return a + b;
    case KN_OP_Sub: return a - b;
    case KN_OP_Mul: return a * b;
    case KN_OP_Div: return a / b;
    case KN_OP_Pow: return pow(a, b);
    case KN_OP_Min: return kn_fmin_nan(a, b);
    case KN_OP_Max: return kn_fmax_nan(a, b);
    case KN_OP_PRelu: return a < 0 ? a * b : a;
    case KN_OP_Equal: return a == b;
    case KN_OP_Less: return a < b;
    case KN_OP_Greater: return a > b;
    default: return 0;
    }
}

/* Integer power by squaring, wrapping; negative exponents give 1/a^-b truncated (0 unless |a|=1). */
static int64_t kn_ipow(int64_t a, int64_t b) {
    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
    uint64_t r = 1, x = (uint64_t)a;
    for (; b; b >>= 1, x *= x)
        if (b & 1) r *= x;
    return (int64_t)r;
}

static int64_t kn_binary_i(kn_op op, int64_t a, int64_t b) {
    switch (op) {
    case KN_OP_Add: case KN_OP_Sum: case KN_OP_Mean: return (int64_t)((uint64_t)a + (uint64_t)b);
    case KN_OP_Sub: return (int64_t)((uint64_t)a - (uint64_t)b);
    case KN_OP_Mul: return (int64_t)((uint64_t)a * (uint64_t)b);
    case KN_OP_Div: return b == 0 ? 0 : (a == INT64_MIN && b == -1) ? INT64_MIN : a / b;
    case KN_OP_Pow: return kn_ipow(a, b);
    case KN_OP_Min: return a < b ? a : b;
    case KN_OP_Max: return a > b ? a : b;
    case KN_OP_PRelu: return a < 0 ? (int64_t)((uint64_t)a * (uint64_t)b) : a;
    case KN_OP_Equal: return a == b;
    case KN_OP_Less: return a < b;
    case KN_OP_Greater: return a > b;
    case KN_OP_And: return a && b;
    default: return 0;
    }
}

/* Integer Mod: C's remainder (fmod = 1) or, for fmod = 0, moved to the divisor's sign. */
static int64_t kn_mod_i(int64_t a, int64_t b, int fmod_c) {
    if (b == 0 || b == -1) return 0; /* x mod 0: our choice; x mod -1 is 0 (and INT64_MIN % -1 traps in C) */
    int64_t r = a % b;
    if (!fmod_c && r != 0 && (r < 0) != (b < 0)) r += b;
    return r;
}

/* ---- the broadcasting walk --------------------------------------------------------------------- */

typedef struct kn_ew_ctx {
    kn_op op;
    int n_in;
    const kn_tensor *in[KN_EW_MAX_IN];
    const kn_tensor *out;
    int fmode;        /* compute in double (some input is float) rather than int64 */
    int fmod_c;       /* Mod's attribute fmod: 1 C's fmod, 0 the divisor's sign */
    int act;          /* fused epilogue activation (kiln.act) on float results */
    float act_alpha, act_beta;
} kn_ew_ctx;

/* A row: n output elements from out offset o; input k at off[k] advancing by step[k] (0 or 1). */
typedef void (*kn_row_fn)(const kn_ew_ctx *c, int64_t o, const int64_t *off, const int64_t *step, int64_t n);

static void kn_ew_rows(const kn_ew_ctx *c, kn_row_fn row) {
    const kn_tensor *y = c->out;
    int64_t total = kn_tensor_numel(y), off[KN_EW_MAX_IN] = {0}, step[KN_EW_MAX_IN];
    if (total == 0) return;
    int flat = 1;
    for (int k = 0; k < c->n_in; k++) {
        int64_t m = kn_tensor_numel(c->in[k]);
        flat &= m == total || m == 1;
        step[k] = m == 1 ? 0 : 1;
    }
    if (flat) { /* equal shapes and scalars: one row */
        row(c, 0, off, step, total);
        return;
    }
    int r = y->rank;
    int64_t st[KN_EW_MAX_IN][KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0}, inner = y->dims[r - 1];
    for (int k = 0; k < c->n_in; k++) {
        kn_cpu_broadcast_strides(c->in[k], y, st[k]);
        step[k] = st[k][r - 1];
    }
    for (int64_t o = 0; o < total; o += inner) {
        row(c, o, off, step, inner);
        for (int d = r - 2; d >= 0; d--) { /* odometer over the outer dims */
            for (int k = 0; k < c->n_in; k++) off[k] += st[k][d];
            if (++idx[d] < y->dims[d]) break;
            for (int k = 0; k < c->n_in; k++) off[k] -= st[k][d] * y->dims[d];
            idx[d] = 0;
        }
    }
}

static void kn_ew_ctx_init(kn_ew_ctx *c, const kn_kernel_args *a, int n_in) {
    memset(c, 0, sizeof *c);
    c->op = a->node->op;
    c->n_in = n_in;
    for (int k = 0; k < n_in; k++) {
        c->in[k] = &a->in[k];
        c->fmode |= kn_dtype_is_float(a->in[k].dtype);
    }
    c->out = &a->out[0];
    c->act = (int)kn_attr_i(a->node, "kiln.act", KN_ACT_NONE);
    c->act_alpha = kn_attr_f(a->node, "kiln.act_alpha", 0);
    c->act_beta = kn_attr_f(a->node, "kiln.act_beta", 0);
}

/* f32 Add/Sub/Mul/Div/Min/Max with no epilogue: plain float loops (the double path's result). */
static int kn_row_f32_fast(const kn_ew_ctx *c, int64_t o, const int64_t *off, const int64_t *step, int64_t n) {
    if (c->act || c->in[0]->dtype != KILN_F32 || c->in[1]->dtype != KILN_F32) return 0;
    const float *x = (const float *)kn_ptr(c->in[0]) + off[0], *z = (const float *)kn_ptr(c->in[1]) + off[1];
    float *y = (float *)c->out->data + o;
    int64_t sx = step[0], sz = step[1];
    switch (c->op) {
    case KN_OP_Add: for (int64_t i = 0; i < n; i++) y[i] = x[i * sx] + z[i * sz]; return 1;
    case KN_OP_Sub: for (int64_t i = 0; i < n; i++) y[i] = x[i * sx] - z[i * sz]; return 1;
    case KN_OP_Mul: for (int64_t i = 0; i < n; i++) y[i] = x[i * sx] * z[i * sz]; return 1;
    case KN_OP_Div: for (int64_t i = 0; i < n; i++) y[i] = x[i * sx] / z[i * sz]; return 1;
    case KN_OP_Min: case KN_OP_Max:
        for (int64_t i = 0; i < n; i++) {
            float a = x[i * sx], b = z[i * sz];
            y[i] = a != a || b != b ? NAN : (c->op == KN_OP_Min) == (a < b) ? a : b;
        }
        return 1;
    default: return 0;
    }
}

/* Binary ops and the variadic ones (Min, Max, Sum, Mean): a left fold over the inputs. */
static void kn_row_fold(const kn_ew_ctx *c, int64_t o, const int64_t *off, const int64_t *step, int64_t n) {
    if (c->n_in == 2 && kn_row_f32_fast(c, o, off, step, n)) return;
    const kn_tensor *y = c->out;
    for (int64_t i = 0; i < n; i++) {
        if (c->fmode) {
            double v = kn_ldf(kn_ptr(c->in[0]), c->in[0]->dtype, off[0] + i * step[0]);
            for (int k = 1; k < c->n_in; k++)
                v = kn_binary_f(c->op, v, kn_ldf(kn_ptr(c->in[k]), c->in[k]->dtype, off[k] + i * step[k]));
            if (c->op == KN_OP_Mean) v /= c->n_in;
            if (c->act) v = kn_cpu_act(c->act, (float)v, c->act_alpha, c->act_beta);
            kn_stf(y->data, y->dtype, o + i, v);
        } else {
            int64_t v = kn_ldi(kn_ptr(c->in[0]), c->in[0]->dtype, off[0] + i * step[0]);
            for (int k = 1; k < c->n_in; k++)
                v = kn_binary_i(c->op, v, kn_ldi(kn_ptr(c->in[k]), c->in[k]->dtype, off[k] + i * step[k]));
            if (c->op == KN_OP_Mean) v /= c->n_in;
            kn_sti(y->data, y->dtype, o + i, v);
        }
    }
}

static void kn_row_mod(const kn_ew_ctx *c, int64_t o, const int64_t *off, const int64_t *step, int64_t n) {
    const kn_tensor *a = c->in[0], *b = c->in[1], *y = c->out;
    const void *ap = kn_ptr(a), *bp = kn_ptr(b);
    for (int64_t i = 0; i < n; i++) {
        if (c->fmode) /* float: fmod = 1 only (the shape function refuses 0) */
            kn_stf(y->data, y->dtype, o + i,
                   fmod(kn_ldf(ap, a->dtype, off[0] + i * step[0]), kn_ldf(bp, b->dtype, off[1] + i * step[1])));
        else
            kn_sti(y->data, y->dtype, o + i,
                   kn_mod_i(kn_ldi(ap, a->dtype, off[0] + i * step[0]), kn_ldi(bp, b->dtype, off[1] + i * step[1]),
                            c->fmod_c));
    }
}

static void kn_row_where(const kn_ew_ctx *c, int64_t o, const int64_t *off, const int64_t *step, int64_t n) {
    size_t es = kiln_dtype_size(c->out->dtype);
    const uint8_t *cond = kn_ptr(c->in[0]);
    const char *x = kn_ptr(c->in[1]), *z = kn_ptr(c->in[2]);
    char *y = (char *)c->out->data + o * (int64_t)es;
    for (int64_t i = 0; i < n; i++) {
        const char *src = cond[off[0] + i * step[0]] ? x + (off[1] + i * step[1]) * (int64_t)es
                                                      : z + (off[2] + i * step[2]) * (int64_t)es;
        memcpy(y + i * (int64_t)es, src, es);
    }
}

/* ---- kernels --------------------------------------------------------------------------------------- */

static kiln_status kn_cpu_unary(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    kn_op op = a->node->op;
    kn_ew_params p;
    kn_ew_params_init(a, &p);
    int64_t n = kn_tensor_numel(y);
    const void *xp = kn_ptr(x);
    if (x->dtype == KILN_F64)
        for (int64_t i = 0; i < n; i++) ((double *)y->data)[i] = kn_unary_d(op, ((const double *)xp)[i], &p);
    else if (kn_dtype_is_float(x->dtype))
        for (int64_t i = 0; i < n; i++) kn_cpu_st(y->data, y->dtype, i, kn_unary_f(op, kn_cpu_ld(xp, x->dtype, i), &p));
    else
        for (int64_t i = 0; i < n; i++) kn_sti(y->data, y->dtype, i, kn_unary_i(op, kn_ldi(xp, x->dtype, i), &p));
    return KILN_OK;
}

static kiln_status kn_cpu_fold(const kn_kernel_args *a) {
    if (a->n_in > KN_EW_MAX_IN)
        return kn_node_error(a->node, KILN_ERR_UNSUPPORTED, "has %d inputs; the CPU kernel takes at most %d",
                             a->n_in, KN_EW_MAX_IN);
    kn_ew_ctx c;
    kn_ew_ctx_init(&c, a, a->n_in);
    kn_ew_rows(&c, kn_row_fold);
    return KILN_OK;
}

static kiln_status kn_cpu_mod(const kn_kernel_args *a) {
    kn_ew_ctx c;
    kn_ew_ctx_init(&c, a, 2);
    c.fmod_c = kn_attr_i(a->node, "fmod", 0) != 0;
    if (c.fmode && !c.fmod_c)
        return kn_node_error(a->node, KILN_ERR_INVALID_ARGUMENT, "fmod = 0 (integer mod) on %s inputs; ONNX needs "
                             "fmod = 1 for floating-point types", kiln_dtype_name(a->in[0].dtype));
    kn_ew_rows(&c, kn_row_mod);
    return KILN_OK;
}

static kiln_status kn_cpu_where(const kn_kernel_args *a) {
    kn_ew_ctx c;
    kn_ew_ctx_init(&c, a, 3);
    kn_ew_rows(&c, kn_row_where);
    return KILN_OK;
}

static kiln_status kn_cpu_cast(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int64_t n = kn_tensor_numel(y);
    const void *xp = kn_ptr(x);
    if (x->dtype == y->dtype) {
        if (xp != y->data && n) memmove(y->data, xp, (size_t)n * kiln_dtype_size(y->dtype));
    } else if (kn_dtype_is_float(x->dtype)) {
        for (int64_t i = 0; i < n; i++) {
            double v = kn_ldf(xp, x->dtype, i);
            if (kn_dtype_is_int(y->dtype)) kn_sti(y->data, y->dtype, i, kn_f2i(v, y->dtype));
            else kn_stf(y->data, y->dtype, i, v); /* floats; bool: v != 0 (NaN is true) */
        }
    } else {
        for (int64_t i = 0; i < n; i++) kn_sti(y->data, y->dtype, i, kn_ldi(xp, x->dtype, i));
    }
    return KILN_OK;
}

/* Identity and inference Dropout: a copy (none when the planner aliased the buffers); the
 * Dropout mask is all true. */
static kiln_status kn_cpu_copy(const kn_kernel_args *a) {
    const void *xp = kn_ptr(&a->in[0]);
    size_t bytes = kn_tensor_bytes(&a->out[0]);
    if (xp != a->out[0].data && bytes) memmove(a->out[0].data, xp, bytes);
    if (a->n_out > 1 && a->out[1].data) memset(a->out[1].data, 1, kn_tensor_bytes(&a->out[1]));
    return KILN_OK;
}

void kn_cpu_register_elementwise(kn_kernel *t) {
    static const kn_op unary[] = {
        KN_OP_Relu, KN_OP_LeakyRelu, KN_OP_Elu, KN_OP_Selu, KN_OP_Clip, KN_OP_HardSigmoid,
        KN_OP_HardSwish, KN_OP_Sigmoid, KN_OP_Tanh, KN_OP_Erf, KN_OP_Gelu, KN_OP_Softplus,
        KN_OP_Mish, KN_OP_Sqrt, KN_OP_Reciprocal, KN_OP_Neg, KN_OP_Abs, KN_OP_Exp, KN_OP_Log,
        KN_OP_Floor, KN_OP_Ceil, KN_OP_Not,
    };
    static const kn_op fold[] = {
        KN_OP_PRelu, KN_OP_Add, KN_OP_Sub, KN_OP_Mul, KN_OP_Div, KN_OP_Pow, KN_OP_Min, KN_OP_Max,
        KN_OP_Sum, KN_OP_Mean, KN_OP_Equal, KN_OP_Less, KN_OP_Greater, KN_OP_And,
    };
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
        t[unary[i]] = (kn_kernel){.name = "cpu.unary", .run = kn_cpu_unary};
    for (size_t i = 0; i < sizeof fold / sizeof fold[0]; i++)
        t[fold[i]] = (kn_kernel){.name = "cpu.broadcast", .run = kn_cpu_fold};
    t[KN_OP_Mod] = (kn_kernel){.name = "cpu.mod", .run = kn_cpu_mod};
    t[KN_OP_Where] = (kn_kernel){.name = "cpu.where", .run = kn_cpu_where};
    t[KN_OP_Cast] = (kn_kernel){.name = "cpu.cast", .run = kn_cpu_cast};
    t[KN_OP_Identity] = (kn_kernel){.name = "cpu.copy", .run = kn_cpu_copy};
    t[KN_OP_Dropout] = (kn_kernel){.name = "cpu.copy", .run = kn_cpu_copy};
}
