#include "cpu.h"

void kn_cpu_register_tensor(kn_kernel *t) { (void)t; }
