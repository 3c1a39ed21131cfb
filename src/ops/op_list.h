/* The op set: one X-macro list, so every table indexed by kn_op is locked to it. */
#ifndef KILN_OP_LIST_H
#define KILN_OP_LIST_H

#define KN_OP_LIST(X)                                                                             \
    X(Conv) X(ConvTranspose) X(BatchNormalization) X(InstanceNormalization)                       \
    X(LayerNormalization) X(Relu) X(LeakyRelu) X(PRelu) X(Elu) X(Selu) X(Clip) X(HardSigmoid)     \
    X(HardSwish) X(Sigmoid) X(Tanh) X(Erf) X(Gelu) X(Softplus) X(Mish) X(Softmax) X(LogSoftmax)   \
    X(MaxPool) X(AveragePool) X(GlobalAveragePool) X(GlobalMaxPool) X(Add) X(Sub) X(Mul) X(Div)   \
    X(Pow) X(Sqrt) X(Reciprocal) X(Neg) X(Abs) X(Exp) X(Log) X(Floor) X(Ceil) X(Min) X(Max)       \
    X(Sum) X(Mean) X(Equal) X(Less) X(Greater) X(Not) X(And) X(Where) X(Gemm) X(MatMul)           \
    X(Flatten) X(Reshape) X(Transpose) X(Concat) X(Split) X(Slice) X(Squeeze) X(Unsqueeze)        \
    X(Gather) X(Expand) X(Tile) X(Pad) X(Resize) X(Shape) X(Constant) X(ConstantOfShape)          \
    X(Range) X(Identity) X(Dropout) X(Cast) X(ReduceMean) X(ReduceSum) X(ReduceMax) X(ReduceMin)  \
    X(Mod) X(KilnAttention)

typedef enum kn_op {
    KN_OP_INVALID = 0,
#define KN_X_ENUM(name) KN_OP_##name,
    KN_OP_LIST(KN_X_ENUM)
#undef KN_X_ENUM
    KN_OP_COUNT
} kn_op;

const char *kn_op_name(kn_op op);
kn_op kn_op_from_name(const char *name); /* KN_OP_INVALID if not in the op set */
/* The same for a model's op (ONNX, the graph builder): kiln's internal fused forms are not in it. */
kn_op kn_op_from_model_name(const char *name);

#endif
