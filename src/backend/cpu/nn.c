#include "cpu.h"

void kn_cpu_register_nn(kn_kernel *t) { (void)t; }
