#include "cpu.h"

void kn_cpu_register_reduce(kn_kernel *t) { (void)t; }
