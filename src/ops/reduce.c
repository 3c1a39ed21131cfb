#include "ops.h"

void kn_ops_register_reduce(kn_op_def *t) { (void)t; }
