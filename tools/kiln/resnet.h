/* ResNet-18/34/50 built through kiln's graph builder API with seeded random weights: the model
 * of `kiln demo`, and a test model that needs no files. Input "x" is f32 [batch, 3, H, W] with a
 * symbolic batch; output "logits" is [batch, 1000]. */
#ifndef KILN_RESNET_H
#define KILN_RESNET_H

#include "kiln.h"

#include <stdint.h>

/* depth is 18, 34 or 50. spatial is H = W (224 for the classic model). */
kiln_status kiln_resnet_build(int depth, int64_t spatial, uint64_t seed, kiln_graph **out);

#endif
