#include "ops.h"

void kn_ops_register_tensor(kn_op_def *t) { (void)t; }
