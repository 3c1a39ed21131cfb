/* The op table: names, lookups and the one-time registration of every family. */
#include "ops.h"

#include <pthread.h>

static const char *const kn_op_names[] = {
    "invalid",
#define KN_X_NAME(name) #name,
    KN_OP_LIST(KN_X_NAME)
#undef KN_X_NAME
};
_Static_assert(sizeof kn_op_names / sizeof kn_op_names[0] == KN_OP_COUNT,
               "every op needs a name");

const char *kn_op_name(kn_op op) {
    if ((int)op <= 0 || op >= KN_OP_COUNT) return "invalid";
    return kn_op_names[op];
}

kn_op kn_op_from_name(const char *name) {
    if (!name) return KN_OP_INVALID;
    for (int i = 1; i < KN_OP_COUNT; i++)
        if (strcmp(kn_op_names[i], name) == 0) return (kn_op)i;
    return KN_OP_INVALID;
}

kn_op kn_op_from_model_name(const char *name) {
    kn_op op = kn_op_from_name(name);
    const kn_op_def *d = kn_op_get(op);
    return d && (d->flags & KN_OPF_INTERNAL) ? KN_OP_INVALID : op;
}

static kn_op_def kn_op_table[KN_OP_COUNT];
static pthread_once_t kn_op_once = PTHREAD_ONCE_INIT;

static void kn_ops_init(void) {
    for (int i = 1; i < KN_OP_COUNT; i++) kn_op_table[i].name = kn_op_names[i];
    kn_ops_register_elementwise(kn_op_table);
    kn_ops_register_nn(kn_op_table);
    kn_ops_register_tensor(kn_op_table);
    kn_ops_register_reduce(kn_op_table);
    kn_ops_register_attention(kn_op_table);
}

const kn_op_def *kn_op_get(kn_op op) {
    pthread_once(&kn_op_once, kn_ops_init);
    if ((int)op <= 0 || op >= KN_OP_COUNT) return NULL;
    return &kn_op_table[op];
}
