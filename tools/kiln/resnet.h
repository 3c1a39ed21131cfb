/* ResNet (torchvision's layout: conv/bn/relu stem, max pool, four stages of basic blocks with
 * 1x1 downsample shortcuts, global average pool, fully connected) built with kiln's public graph
 * builder API and seeded random weights. Used by `kiln demo` and by the tests, so that both
 * exercise a real network without a model file. Node names follow torchvision ("layer2.0.conv1",
 * "layer2.0.downsample.0", "fc"); the input is "input" (N x 3 x H x W, f32) and the output
 * "logits" (N x num_classes). */
#ifndef KILN_TOOLS_RESNET_H
#define KILN_TOOLS_RESNET_H

#include "kiln.h"

typedef struct kiln_resnet_options {
    int64_t batch;         /* > 0: a fixed batch; <= 0: a symbolic dim named "batch" */
    int64_t height, width; /* input image (224 x 224) */
    int base_width;        /* channels of the first stage (64); stages double it */
    int blocks[4];         /* basic blocks per stage ({2, 2, 2, 2}: ResNet-18; {3, 4, 6, 3}: ResNet-34) */
    int num_classes;       /* 1000 */
    uint64_t seed;         /* the same seed gives the same weights */
} kiln_resnet_options;

/* ResNet-18 for ImageNet: batch 1, 224 x 224, width 64, 1000 classes, seed 1. */
void kiln_resnet_options_init(kiln_resnet_options *opt);
/* Builds the graph; *out is NULL on failure. Options out of range give KILN_ERR_INVALID_ARGUMENT;
 * a failing builder call gives its status, with kiln_last_error() saying why. */
kiln_status kiln_resnet_build(const kiln_resnet_options *opt, kiln_graph **out);

#endif
