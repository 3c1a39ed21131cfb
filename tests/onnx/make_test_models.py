#!/usr/bin/python3
"""Writes the small ONNX models and tensors that tests/unit/test_onnx_import.c reads.

Run with Debian's python (torch 1.13, onnx 1.12, numpy):  /usr/bin/python3 tests/onnx/make_test_models.py
The outputs are committed under tests/onnx/data/ (a few KB), so the unit test needs no Python.
Expected outputs come from PyTorch (cnn) or from numpy written out here (legacy opset forms), not
from kiln.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")


def save(model, name, ir_version=7):
    model.ir_version = ir_version
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def save_tensor(arr, name, tensor_name=""):
    t = numpy_helper.from_array(arr, tensor_name)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(t.SerializeToString())


def model(nodes, inputs, outputs, inits=(), opset=13, domain_opsets=(), value_info=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), value_info=list(value_info))
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domain_opsets]
    return helper.make_model(g, opset_imports=ops, producer_name="kiln-tests")


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


F = TensorProto.FLOAT


def cnn():
    """A small CNN exported by PyTorch with a dynamic batch, and PyTorch's output for batch 2."""
    import torch

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.c2 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 5)

        def forward(self, x):
            y = torch.relu(self.bn(self.c1(x)))
            y = torch.nn.functional.max_pool2d(y, 2)
            y = torch.relu(self.c2(y) + y)
            y = torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
            return torch.softmax(self.fc(y), dim=1)

    net = Net().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    path = os.path.join(OUT, "cnn.onnx")
    torch.onnx.export(net, (x,), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=13)
    with torch.no_grad():
        y = net(x).numpy()
    save_tensor(x.numpy(), "cnn_input.pb", "x")
    save_tensor(y, "cnn_output.pb", "y")


def softmax_2d(x, axis):
    """Softmax before opset 13: coerce to 2-D at axis, normalize rows."""
    shape = x.shape
    a = int(np.prod(shape[:axis]))
    m = x.reshape(a, -1)
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(shape)


def legacy9():
    """Opset-9 forms: Upsample with a scales input, Slice/Pad/Clip/ReduceMean/Squeeze/Unsqueeze/
    Split/ReduceSum attributes, Softmax coerced to 2-D, Dropout's ratio."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (1, 2, 4, 4)).astype(np.float32)
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Upsample", ["x", "scales"], ["u"], name="up", mode="nearest"),
        helper.make_node("Slice", ["u"], ["s"], name="slice", starts=[1, 1], ends=[7, 7], axes=[2, 3]),
        helper.make_node("Pad", ["s"], ["p"], name="pad", pads=[0, 0, 1, 1, 0, 0, 1, 1], value=0.5),
        helper.make_node("Clip", ["p"], ["c"], name="clip", min=-0.2, max=0.9),
        helper.make_node("ReduceMean", ["c"], ["r"], name="rmean", axes=[3], keepdims=1),
        helper.make_node("Squeeze", ["r"], ["q"], name="squeeze", axes=[3]),
        helper.make_node("Unsqueeze", ["q"], ["q2"], name="unsqueeze", axes=[0]),
        helper.make_node("Softmax", ["q2"], ["sm"], name="softmax", axis=2),
        helper.make_node("Split", ["sm"], ["a", "b"], name="split", axis=3, split=[3, 5]),
        helper.make_node("Dropout", ["a"], ["d"], name="dropout", ratio=0.3),
        helper.make_node("ReduceSum", ["b"], ["rs"], name="rsum", axes=[3], keepdims=0),
    ]
    m = model(nodes, [vi("x", F, [1, 2, 4, 4])], [vi("d", F, None), vi("rs", F, None)], [scales], opset=9)
    save(m, "legacy9.onnx", ir_version=4)
    u = x.repeat(2, axis=2).repeat(2, axis=3)
    s = u[:, :, 1:7, 1:7]
    p = np.pad(s, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=0.5)
    c = np.clip(p, -0.2, 0.9)
    r = c.mean(axis=3, keepdims=True)
    q2 = r.squeeze(3)[None]
    sm = softmax_2d(q2, 2)
    d, b = sm[..., :3], sm[..., 3:]
    save_tensor(x, "legacy9_input.pb", "x")
    save_tensor(np.ascontiguousarray(d), "legacy9_output_0.pb", "d")
    save_tensor(b.sum(axis=3), "legacy9_output_1.pb", "rs")


def legacy7():
    """Opset-7 forms: BatchNormalization with spatial, Upsample with a scales attribute, Softmax with
    its default axis 1 on a 4-D input; x is listed as an input and is also a graph input, W is an
    initializer that is also declared as a graph input (older exporters)."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (1, 2, 3, 3)).astype(np.float32)
    sc = np.array([1.5, 0.5], np.float32)
    bias = np.array([0.1, -0.2], np.float32)
    mean = np.array([0.05, -0.1], np.float32)
    var = np.array([0.9, 1.2], np.float32)
    w = rng.uniform(-1, 1, (1, 2, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(sc, "scale"), (bias, "bias"), (mean, "mean"), (var, "var"), (w, "W")]]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["bn"], name="bn",
                         epsilon=1e-3, spatial=1),
        helper.make_node("Mul", ["bn", "W"], ["bw"], name="mul"),
        helper.make_node("Upsample", ["bw"], ["u"], name="up", scales=[1.0, 1.0, 2.0, 2.0], mode="nearest"),
        helper.make_node("Softmax", ["u"], ["y"], name="softmax"),
    ]
    m = model(nodes, [vi("x", F, [1, 2, 3, 3]), vi("W", F, [1, 2, 1, 1])], [vi("y", F, [1, 2, 6, 6])], inits,
              opset=7)
    save(m, "legacy7.onnx", ir_version=3)
    bn = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-3) * sc[None, :, None, None] \
        + bias[None, :, None, None]
    u = (bn * w).repeat(2, axis=2).repeat(2, axis=3)
    save_tensor(x, "legacy7_input.pb", "x")
    save_tensor(softmax_2d(u, 1), "legacy7_output.pb", "y")


def upsample_linear_asym(x, scales):
    """ONNX Upsample/Resize-10 linear: out[i] samples in at i / scale (asymmetric), clamped."""
    y = x
    for axis, sc in enumerate(scales):
        if sc == 1:
            continue
        n_in = y.shape[axis]
        n_out = int(np.floor(n_in * sc))
        pos = np.arange(n_out) / sc
        i0 = np.minimum(np.floor(pos).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = (pos - i0).reshape([-1 if a == axis else 1 for a in range(y.ndim)])
        y = np.take(y, i0, axis=axis) * (1 - w) + np.take(y, i1, axis=axis) * w
    return y.astype(np.float32)


def legacy7b():
    """More opset-7 forms: Upsample linear, Pad reflect, Clip with only max, Squeeze without axes,
    Split without split, LogSoftmax with axis 0 on a 2-D input."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (1, 1, 3, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Upsample", ["x"], ["u"], name="up", scales=[1.0, 1.0, 2.0, 1.5], mode="linear"),
        helper.make_node("Pad", ["u"], ["p"], name="pad", pads=[0, 0, 1, 2, 0, 0, 1, 0], mode="reflect"),
        helper.make_node("Clip", ["p"], ["c"], name="clip", max=0.3),
        helper.make_node("Squeeze", ["c"], ["q"], name="squeeze"),
        helper.make_node("Split", ["q"], ["a", "b"], name="split", axis=1),
        helper.make_node("LogSoftmax", ["a"], ["y"], name="logsoftmax", axis=0),
    ]
    m = model(nodes, [vi("x", F, [1, 1, 3, 4])], [vi("y", F, None), vi("b", F, None)], opset=7)
    save(m, "legacy7b.onnx", ir_version=3)
    u = upsample_linear_asym(x, [1, 1, 2, 1.5])
    p = np.pad(u, ((0, 0), (0, 0), (1, 1), (2, 0)), mode="reflect")
    c = np.minimum(p, 0.3)
    q = c.squeeze()
    h = q.shape[1] // 2
    a, b = q[:, :h], q[:, h:]
    flat = a.reshape(1, -1).astype(np.float64)
    ls = (flat - flat.max() - np.log(np.exp(flat - flat.max()).sum())).reshape(a.shape)
    save_tensor(x, "legacy7b_input.pb", "x")
    save_tensor(ls.astype(np.float32), "legacy7b_output_0.pb", "y")
    save_tensor(np.ascontiguousarray(b), "legacy7b_output_1.pb", "b")


def legacy10_11():
    """Resize-10 (X, scales) nearest and linear; Resize-11 with empty roi and scales and a sizes
    input; Softmax-11 on its last axis (no rewrite needed)."""
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (1, 2, 2, 3)).astype(np.float32)
    sc = numpy_helper.from_array(np.array([1, 1, 2, 1.5], np.float32), "sc")
    nodes = [
        helper.make_node("Resize", ["x", "sc"], ["n"], name="rs_nearest", mode="nearest"),
        helper.make_node("Resize", ["x", "sc"], ["l"], name="rs_linear", mode="linear"),
        helper.make_node("Add", ["n", "l"], ["y"], name="add"),
    ]
    save(model(nodes, [vi("x", F, [1, 2, 2, 3])], [vi("y", F, [1, 2, 4, 4])], [sc], opset=10), "legacy10.onnx", 5)
    pos_h = (np.arange(4) / 2).astype(int)
    pos_w = np.floor(np.arange(4) / 1.5).astype(int)
    nearest = x[:, :, pos_h][:, :, :, pos_w]
    save_tensor(x, "legacy10_input.pb", "x")
    save_tensor(nearest + upsample_linear_asym(x, [1, 1, 2, 1.5]), "legacy10_output.pb", "y")

    roi = numpy_helper.from_array(np.zeros((0,), np.float32), "roi")
    scales = numpy_helper.from_array(np.zeros((0,), np.float32), "scales")
    sizes = numpy_helper.from_array(np.array([1, 2, 4, 6], np.int64), "sizes")
    nodes = [
        helper.make_node("Resize", ["x", "roi", "scales", "sizes"], ["r"], name="rs11", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Softmax", ["r"], ["y"], name="softmax", axis=3),
    ]
    save(model(nodes, [vi("x", F, [1, 2, 2, 3])], [vi("y", F, [1, 2, 4, 6])], [roi, scales, sizes], opset=11),
         "legacy11.onnx", 6)
    r = x.repeat(2, axis=2).repeat(2, axis=3)
    e = np.exp(r - r.max(axis=3, keepdims=True))
    save_tensor((e / e.sum(axis=3, keepdims=True)).astype(np.float32), "legacy11_output.pb", "y")


def external():
    """Initializers in an external file (with an offset), and two that try to leave the folder."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 4 - 1
    os.makedirs(os.path.join(OUT, "external"), exist_ok=True)
    with open(os.path.join(OUT, "external", "weights.bin"), "wb") as f:
        f.write(b"\0" * 16 + w.tobytes())

    def ext_model(location, offset=16, length=None):
        t = TensorProto()
        t.name = "W"
        t.data_type = F
        t.dims.extend([3, 4])
        t.data_location = TensorProto.EXTERNAL
        for k, v in [("location", location), ("offset", str(offset))] + ([("length", str(length))] if length else []):
            e = t.external_data.add()
            e.key, e.value = k, v
        return model([helper.make_node("Add", ["x", "W"], ["y"], name="add")], [vi("x", F, [3, 4])],
                     [vi("y", F, [3, 4])], [t])

    save(ext_model("weights.bin", 16, 48), "external/model.onnx")
    save(ext_model("../cnn.onnx"), "external/escape.onnx")
    save(ext_model("/etc/hostname"), "external/absolute.onnx")
    save(ext_model("weights.bin", 40), "external/short.onnx")


def constants():
    """Constant nodes in every value form kiln takes, each added to a graph input."""
    tv = numpy_helper.from_array(np.array([[1.5, -2.0]], np.float32), "tv")
    nodes = [
        helper.make_node("Constant", [], ["c_tensor"], value=tv),
        helper.make_node("Constant", [], ["c_float"], value_float=0.25),
        helper.make_node("Constant", [], ["c_floats"], value_floats=[1.0, 2.0]),
        helper.make_node("Constant", [], ["c_int"], value_int=7),
        helper.make_node("Constant", [], ["c_ints"], value_ints=[3, -4]),
        helper.make_node("Add", ["x", "c_tensor"], ["y0"], name="a0"),
        helper.make_node("Add", ["x", "c_float"], ["y1"], name="a1"),
        helper.make_node("Add", ["x", "c_floats"], ["y2"], name="a2"),
        helper.make_node("Add", ["i", "c_int"], ["y3"], name="a3"),
        helper.make_node("Add", ["i", "c_ints"], ["y4"], name="a4"),
    ]
    m = model(nodes, [vi("x", F, [3, 2]), vi("i", TensorProto.INT64, ["n", 2])],
              [vi(n, F, [3, 2]) for n in ["y0", "y1", "y2"]] + [vi(n, TensorProto.INT64, ["n", 2]) for n in ["y3", "y4"]])
    save(m, "constants.onnx")


def errors():
    relu = lambda i, o, n: helper.make_node("Relu", [i], [o], name=n)
    X = [vi("x", F, [2, 3])]
    Y = [vi("y", F, [2, 3])]
    k = numpy_helper.from_array(np.array([1], np.int64), "k")
    save(model([helper.make_node("TopK", ["x", "k"], ["t0", "i0"], name="topk_0"),
                helper.make_node("NonMaxSuppression", ["x", "x"], ["n"], name="nms_1"),
                relu("x", "r", "relu_2"),
                helper.make_node("TopK", ["r", "k"], ["t3", "i3"], name="topk_3"),
                helper.make_node("Add", ["t0", "t3"], ["y"], name="add")], X, Y, [k]),
         "err_unsupported_ops.onnx")
    save(model([helper.make_node("FusedGemm", ["x", "x"], ["y"], name="fg", domain="com.microsoft")], X, Y,
               domain_opsets=[("com.microsoft", 1)]), "err_domain.onnx")
    save(model([relu("x", "y", "r")], X, Y, opset=5), "err_opset5.onnx")
    save(model([relu("x", "y", "r")], X, Y, opset=30), "err_opset30.onnx")
    save(model([relu("x", "y", "r")], X, Y), "err_ir2.onnx", ir_version=2)
    conv = helper.make_node("Conv", ["x4", "w4"], ["y4"], name="conv_bad", kernel_shape=[1, 1])
    conv.attribute.append(helper.make_attribute("strides", 1.5))
    w4 = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w4")
    save(model([conv], [vi("x4", F, [1, 1, 4, 4])], [vi("y4", F, None)], [w4]), "err_attr_type.onnx")
    save(model([helper.make_node("Relu", ["x"], ["y"], name="r", alpha=1.0)], X, Y), "err_unknown_attr.onnx")
    save(model([helper.make_node("Add", ["x", "z"], ["y"], name="add_bad")], [vi("x", F, [2, 3]), vi("z", F, [4, 5])],
               [vi("y", F, None)]), "err_shapes.onnx")
    save(model([relu("x", "y", "relu_decl")], X, [vi("y", F, [2, 5])]), "err_declared.onnx")
    sp = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0], np.float32), "v"),
                                   numpy_helper.from_array(np.array([0], np.int64), "i"), [2, 3])
    save(model([helper.make_node("Constant", [], ["c"], name="sparse_c", sparse_value=sp),
                helper.make_node("Add", ["x", "c"], ["y"])], X, Y), "err_sparse_const.onnx")
    save(model([helper.make_node("Constant", [], ["c"], name="str_c", value_string="hello"),
                relu("x", "y", "r")], X, Y), "err_string_const.onnx")
    save(model([relu("nope", "y", "relu_undef")], X, Y), "err_undefined_input.onnx")
    save(model([relu("x", "y", "r1"), relu("x", "y", "r2")], X, Y), "err_dup_output.onnx")
    save(model([helper.make_node("Add", ["x", "b"], ["a"], name="cyc_a"),
                helper.make_node("Relu", ["a"], ["b"], name="cyc_b"), relu("a", "y", "r")], X, Y), "err_cycle.onnx")
    save(model([relu("t", "y", "second"), relu("x", "t", "first")], X, Y), "unsorted.onnx")
    save(model([relu("x", "y", "r")], [vi("x", TensorProto.UINT16, [2, 3])], Y), "err_input_type.onnx")
    bn_in = ["x4", "s1", "b1", "m1", "v1"]
    bn_inits = [numpy_helper.from_array(np.ones(1, np.float32), n) for n in bn_in[1:]]
    save(model([helper.make_node("BatchNormalization", bn_in, ["y4"], name="bn_spatial0", spatial=0)],
               [vi("x4", F, [1, 1, 4, 4])], [vi("y4", F, None)], bn_inits, opset=7), "err_bn_spatial.onnx", 3)
    save(model([helper.make_node("BatchNormalization", bn_in, ["y4", "mean", "var"], name="bn_stats"),
                helper.make_node("Add", ["mean", "var"], ["z"], name="use")],
               [vi("x4", F, [1, 1, 4, 4])], [vi("y4", F, None), vi("z", F, None)], bn_inits, opset=9),
         "err_bn_outputs.onnx", 4)


def tensors():
    def typed(name, dtype, dims, **fields):
        t = TensorProto()
        t.name = name
        t.data_type = dtype
        t.dims.extend(dims)
        for k, v in fields.items():
            getattr(t, k).extend(v)
        return t

    f16 = np.array([1.0, -2.5, 65504.0], np.float16)
    ts = {
        "t_f16_int32data.pb": typed("h", TensorProto.FLOAT16, [3], int32_data=[int(b) for b in f16.view(np.uint16)]),
        "t_bool_int32data.pb": typed("b", TensorProto.BOOL, [2, 2], int32_data=[1, 0, 0, 1]),
        "t_i8_int32data.pb": typed("c", TensorProto.INT8, [3], int32_data=[-128, 5, 127]),
        "t_i64_int64data.pb": typed("l", TensorProto.INT64, [2], int64_data=[-(2 ** 40), 3]),
        "t_f64_doubledata.pb": typed("d", TensorProto.DOUBLE, [2], double_data=[0.1, -3.0]),
        "t_f32_floatdata.pb": typed("f", TensorProto.FLOAT, [1, 2], float_data=[0.5, 1.25]),
        "t_scalar.pb": typed("s", TensorProto.FLOAT, [], float_data=[42.0]),
        "t_bad_count.pb": typed("bad", TensorProto.FLOAT, [3], float_data=[1.0, 2.0]),
        "t_u16.pb": typed("u", TensorProto.UINT16, [1], int32_data=[3]),
    }
    for name, t in ts.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(t.SerializeToString())
    save_tensor(np.array([[1.0, 2.0, 3.0]], np.float32), "t_f32_raw.pb", "r")
    bf = TensorProto()
    bf.name, bf.data_type = "bf", TensorProto.BFLOAT16
    bf.dims.extend([2])
    bf.raw_data = np.array([0x3f80, 0xc040], np.uint16).tobytes()  # 1.0, -3.0
    with open(os.path.join(OUT, "t_bf16_raw.pb"), "wb") as f:
        f.write(bf.SerializeToString())


def fuzz_regressions():
    """Inputs shaped like what fuzz_onnx found (see git log): each must be refused or imported
    cleanly, never crash."""
    F = TensorProto.FLOAT
    # an old-opset Softmax whose output has no name, on an axis that needs the Flatten rewrite
    sm = helper.make_node("Softmax", ["x"], [""], name="sm_nameless", axis=1)
    relu = helper.make_node("Relu", ["x"], ["y"], name="relu")
    save(model([sm, relu], [vi("x", F, [2, 3, 4])], [vi("y", F, [2, 3, 4])], opset=11),
         "fuzz_softmax_nameless.onnx")
    # an opset-11 Squeeze with no inputs: arity is checked before the axes attribute is upgraded
    sq = helper.make_node("Squeeze", [], ["y"], name="sq_empty", axes=[0])
    save(model([sq], [vi("x", F, [1, 3])], [vi("y", F, [3])], opset=11), "fuzz_squeeze_noinputs.onnx")
    # an empty string attribute
    pad = helper.make_node("Pad", ["x"], ["y"], name="pad_empty_mode", mode="", pads=[0, 1, 0, 1])
    save(model([pad], [vi("x", F, [1, 3])], [vi("y", F, [1, 5])], opset=10), "fuzz_empty_string_attr.onnx")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    cnn()
    legacy9()
    legacy7()
    legacy7b()
    legacy10_11()
    external()
    constants()
    fuzz_regressions()
    errors()
    tensors()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes)", file=sys.stderr)
