#!/usr/bin/python3
"""Writes the small ONNX models the CLI tests use into OUT_DIR (run by the cli.models ctest fixture).

seed_graph_break.onnx  y = relu((x + 2) * 0.5), x float [1,3,224,224]: the issue's dry-run check
add_relu.onnx          y = relu(x + b), x float [batch, 8] (a dynamic batch), b an [8] initializer
two_io.onnx            sum = a + b and "relu:0" = relu(a), a and b float [2, 3]: several inputs and
                       outputs, and an output name that is not a file name
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def save(model, path):
    onnx.checker.check_model(model)
    onnx.save(model, path)


def seed_graph_break():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 224, 224])
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    half = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")
    nodes = [
        helper.make_node("Add", ["x", "two"], ["a"], name="add"),
        helper.make_node("Mul", ["a", "half"], ["m"], name="mul"),
        helper.make_node("Relu", ["m"], ["y"], name="relu"),
    ]
    g = helper.make_graph(nodes, "seed_graph_break", [x], [y], initializer=[two, half])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def add_relu():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])
    rng = np.random.default_rng(5)
    b = numpy_helper.from_array(rng.uniform(-0.5, 0.5, size=8).astype(np.float32), "b")
    nodes = [
        helper.make_node("Add", ["x", "b"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
    ]
    g = helper.make_graph(nodes, "add_relu", [x], [y], initializer=[b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def two_io():
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])
    s = helper.make_tensor_value_info("sum", TensorProto.FLOAT, [2, 3])
    r = helper.make_tensor_value_info("relu:0", TensorProto.FLOAT, [2, 3])
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
        helper.make_node("Relu", ["a"], ["relu:0"], name="relu"),
    ]
    g = helper.make_graph(nodes, "two_io", [a, b], [s, r])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def main():
    if len(sys.argv) != 2:
        print("usage: make_models.py OUT_DIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, make in [("seed_graph_break", seed_graph_break), ("add_relu", add_relu), ("two_io", two_io)]:
        path = os.path.join(out, name + ".onnx")
        save(make(), path)
        print("wrote", path)
    with open(os.path.join(out, "not_onnx.onnx"), "w") as f:
        f.write("this is not a protobuf\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
