#include "ops.h"

void kn_ops_register_nn(kn_op_def *t) { (void)t; }
