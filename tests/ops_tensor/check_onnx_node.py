#!/usr/bin/python3
"""Runs the ONNX backend node tests of the tensor ops (Reshape, Slice, Gather, Resize, ...) through
libkiln on the CPU and compares with the expected outputs.

Each single-node model is rebuilt through kiln's C builder API (ctypes): graph inputs that feed a
host input of the op (a shape, axes, pads, scales, ...) become initializers holding the test
data, as an exporter's constants would be; the others stay inputs. The module is compiled for the
CPU and run once per test data set.

Usage: check_onnx_node.py LIBKILN_SO NODE_TEST_DIR [pattern ...]
Prints one line per test (ok / FAIL / skip with the reason) and a summary; the exit status is 1
when any test failed. Tests that kiln refuses on purpose (cubic, antialias) are listed as skips
when the error is KILN_ERR_UNSUPPORTED.
"""
import ctypes as C
import fnmatch
import glob
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as e:  # a machine without Debian's python3-onnx: say so and skip
    print(f"SKIP: {e}")
    sys.exit(77)

MAX_RANK = 8

# kiln.h enums
F32, F16, BF16, F64, I64, I32, I8, U8, BOOL = range(1, 10)
ONNX_TO_KILN = {1: F32, 2: U8, 3: I8, 6: I32, 7: I64, 9: BOOL, 10: F16, 11: F64, 16: BF16}
NP_OF = {F32: np.float32, F16: np.float16, F64: np.float64, I64: np.int64, I32: np.int32, I8: np.int8,
         U8: np.uint8, BOOL: np.bool_}
ATTR_INT, ATTR_FLOAT, ATTR_STRING, ATTR_INTS, ATTR_FLOATS, ATTR_TENSOR = range(1, 7)
DEVICE_CPU = 1
STATUS_UNSUPPORTED = 4

# inputs each op reads on the host (src/ops: host_inputs)
HOST_INPUTS = {
    "Reshape": {1}, "Split": {1}, "Slice": {1, 2, 3, 4}, "Squeeze": {1}, "Unsqueeze": {1},
    "Expand": {1}, "Tile": {1}, "Pad": {1, 2, 3}, "Resize": {1, 2, 3}, "ConstantOfShape": {0},
    "Range": {0, 1, 2},
}

DEFAULT_PATTERNS = [
    "test_flatten_*", "test_reshape_*", "test_transpose_*", "test_concat_*", "test_split_*",
    "test_slice*", "test_squeeze*", "test_unsqueeze*", "test_gather_[0-9]*", "test_gather_2d*",
    "test_gather_negative*", "test_expand_*", "test_tile*", "test_constant", "test_constant_pad*",
    "test_edge_pad", "test_reflect_pad", "test_wrap_pad", "test_resize_*", "test_shape*",
    "test_constantofshape_*", "test_range_*",
]
EXCLUDE = ["*_expanded", "test_split_to_sequence*", "*_bfloat16_*"]


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("rank", C.c_int),
                ("dims", C.c_int64 * MAX_RANK), ("device", C.c_int)]


class Attr(C.Structure):
    _fields_ = [("name", C.c_char_p), ("type", C.c_int), ("i", C.c_int64), ("f", C.c_float),
                ("s", C.c_char_p), ("ints", C.POINTER(C.c_int64)), ("floats", C.POINTER(C.c_float)),
                ("count", C.c_int), ("tensor", C.POINTER(Tensor))]


class Profile(C.Structure):
    _fields_ = [("name", C.c_char_p), ("rank", C.c_int), ("min", C.c_int64 * MAX_RANK),
                ("opt", C.c_int64 * MAX_RANK), ("max", C.c_int64 * MAX_RANK)]


class BuildConfig(C.Structure):
    _fields_ = [("device", C.c_int), ("device_index", C.c_int), ("precision", C.c_int),
                ("profiles", C.POINTER(Profile)), ("num_profiles", C.c_int), ("min_block_size", C.c_int),
                ("fallback_ops", C.c_void_p), ("num_fallback_ops", C.c_int),
                ("require_full_compilation", C.c_bool), ("pass_through_build_failures", C.c_bool),
                ("optimize", C.c_bool), ("workspace_limit", C.c_size_t), ("timing_cache", C.c_char_p),
                ("time_tactics", C.c_bool), ("verbose", C.c_int)]


class Kiln:
    def __init__(self, path):
        lib = C.CDLL(path)
        lib.kiln_last_error.restype = C.c_char_p
        self.lib = lib

    def check(self, st, what):
        if st != 0:
            raise KilnError(st, "%s: %s" % (what, self.lib.kiln_last_error().decode()))


class KilnError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


def as_kiln_tensor(arr):
    """A kiln_tensor view of a contiguous numpy array (the array must outlive the view)."""
    dt = {np.dtype(v): k for k, v in NP_OF.items()}[arr.dtype]
    t = Tensor()
    t.data = arr.ctypes.data if arr.size else None
    t.dtype = dt
    t.rank = arr.ndim
    for i, d in enumerate(arr.shape):
        t.dims[i] = d
    t.device = DEVICE_CPU
    return t


def make_attrs(node, keep):
    attrs = (Attr * max(1, len(node.attribute)))()
    for k, a in enumerate(node.attribute):
        x = attrs[k]
        x.name = a.name.encode()
        if a.type == onnx.AttributeProto.INT:
            x.type, x.i = ATTR_INT, a.i
        elif a.type == onnx.AttributeProto.FLOAT:
            x.type, x.f = ATTR_FLOAT, a.f
        elif a.type == onnx.AttributeProto.STRING:
            x.type, x.s = ATTR_STRING, a.s
        elif a.type == onnx.AttributeProto.INTS:
            v = (C.c_int64 * max(1, len(a.ints)))(*a.ints)
            keep.append(v)
            x.type, x.ints, x.count = ATTR_INTS, C.cast(v, C.POINTER(C.c_int64)), len(a.ints)
        elif a.type == onnx.AttributeProto.FLOATS:
            v = (C.c_float * max(1, len(a.floats)))(*a.floats)
            keep.append(v)
            x.type, x.floats, x.count = ATTR_FLOATS, C.cast(v, C.POINTER(C.c_float)), len(a.floats)
        elif a.type == onnx.AttributeProto.TENSOR:
            arr = np.ascontiguousarray(numpy_helper.to_array(a.t))
            t = as_kiln_tensor(arr)
            keep.extend([arr, t])
            x.type, x.tensor = ATTR_TENSOR, C.pointer(t)
        else:
            raise KilnError(STATUS_UNSUPPORTED, "attribute %s of type %d" % (a.name, a.type))
    return attrs, len(node.attribute)


def run_test(k, test_dir):
    model = onnx.load(os.path.join(test_dir, "model.onnx"))
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    host = set()
    for node in g.node:
        for j in HOST_INPUTS.get(node.op_type, ()):
            if j < len(node.input) and node.input[j]:
                host.add(node.input[j])
    sets = sorted(glob.glob(os.path.join(test_dir, "test_data_set_*")))
    results = []
    for ds in sets:
        ins = []
        for j, _ in enumerate(inputs):
            p = os.path.join(ds, "input_%d.pb" % j)
            tp = onnx.TensorProto()
            with open(p, "rb") as f:
                tp.ParseFromString(f.read())
            ins.append(np.ascontiguousarray(numpy_helper.to_array(tp)))
        outs = []
        for j, _ in enumerate(g.output):
            tp = onnx.TensorProto()
            with open(os.path.join(ds, "output_%d.pb" % j), "rb") as f:
                tp.ParseFromString(f.read())
            outs.append(numpy_helper.to_array(tp))
        results.append(run_once(k, g, inputs, ins, host, outs))
    return results


def run_once(k, g, inputs, ins, host, outs):
    lib = k.lib
    keep = []
    graph = C.c_void_p()
    k.check(lib.kiln_graph_create(C.byref(graph)), "graph_create")
    module = C.c_void_p()
    sess = C.c_void_p()
    try:
        for init in g.initializer:
            arr = np.ascontiguousarray(numpy_helper.to_array(init))
            dims = (C.c_int64 * MAX_RANK)(*arr.shape)
            k.check(lib.kiln_graph_add_initializer(graph, init.name.encode(), as_kiln_tensor(arr).dtype, arr.ndim, dims,
                                                   C.c_void_p(arr.ctypes.data)), "initializer " + init.name)
            keep.append(arr)
        run_inputs = []
        for vi, arr in zip(inputs, ins):
            dims = (C.c_int64 * MAX_RANK)(*arr.shape)
            if arr.dtype not in [np.dtype(v) for v in NP_OF.values()]:
                raise KilnError(STATUS_UNSUPPORTED, "input dtype %s" % arr.dtype)
            dt = as_kiln_tensor(arr).dtype
            if vi.name in host:
                k.check(lib.kiln_graph_add_initializer(graph, vi.name.encode(), dt, arr.ndim, dims,
                                                       C.c_void_p(arr.ctypes.data) if arr.size else None),
                        "initializer " + vi.name)
            else:
                k.check(lib.kiln_graph_add_input(graph, vi.name.encode(), dt, arr.ndim, dims, None), "input " + vi.name)
                run_inputs.append(arr)
        for node in g.node:
            attrs, na = make_attrs(node, keep)
            cin = (C.c_char_p * max(1, len(node.input)))(*[s.encode() for s in node.input])
            cout = (C.c_char_p * max(1, len(node.output)))(*[s.encode() for s in node.output])
            k.check(lib.kiln_graph_add_node(graph, node.op_type.encode(), (node.name or node.op_type).encode(),
                                            len(node.input), cin, len(node.output), cout, na, attrs), "node")
        for o in g.output:
            k.check(lib.kiln_graph_add_output(graph, o.name.encode()), "output " + o.name)
        cfg = BuildConfig()
        lib.kiln_build_config_init(C.byref(cfg))
        cfg.device = DEVICE_CPU
        cfg.min_block_size = 1
        k.check(lib.kiln_compile(graph, C.byref(cfg), C.byref(module)), "compile")
        k.check(lib.kiln_session_create(module, C.byref(sess)), "session")
        tin = (Tensor * max(1, len(run_inputs)))(*[as_kiln_tensor(a) for a in run_inputs])
        tout = (Tensor * len(outs))()
        for t in tout:
            t.device = DEVICE_CPU
        k.check(lib.kiln_session_run(sess, tin, len(run_inputs), tout, len(outs)), "run")
        problems = []
        for j, want in enumerate(outs):
            t = tout[j]
            shape = tuple(t.dims[i] for i in range(t.rank))
            if shape != want.shape:
                problems.append("output %d shape %s, expected %s" % (j, shape, want.shape))
                continue
            dt = NP_OF[t.dtype]
            n = int(np.prod(shape)) if shape else 1
            buf = (C.c_char * (n * np.dtype(dt).itemsize)).from_address(t.data) if n else b""
            got = np.frombuffer(bytes(buf), dtype=dt).reshape(shape)
            if got.dtype != want.dtype:
                problems.append("output %d dtype %s, expected %s" % (j, got.dtype, want.dtype))
                continue
            if want.dtype.kind == "f":
                tol = 1e-3 if want.dtype == np.float16 else 1e-5
                ok = np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol, equal_nan=True)
            else:
                ok = np.array_equal(got, want)
            if not ok:
                problems.append("output %d differs: got %s expected %s" % (j, got.ravel()[:8], want.ravel()[:8]))
        return problems
    finally:
        if sess:
            lib.kiln_session_free(sess)
        if module:
            lib.kiln_module_free(module)
        lib.kiln_graph_free(graph)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    k = Kiln(sys.argv[1])
    root = sys.argv[2]
    pats = sys.argv[3:] or DEFAULT_PATTERNS
    names = sorted(n for n in os.listdir(root)
                   if any(fnmatch.fnmatch(n, p) for p in pats) and not any(fnmatch.fnmatch(n, e) for e in EXCLUDE))
    n_ok = n_fail = n_skip = 0
    for name in names:
        try:
            res = run_test(k, os.path.join(root, name))
            bad = [p for r in res for p in r]
            if bad:
                n_fail += 1
                print("FAIL %s: %s" % (name, "; ".join(bad)))
            else:
                n_ok += 1
                print("ok   %s" % name)
        except KilnError as e:
            if e.status == STATUS_UNSUPPORTED:
                n_skip += 1
                print("skip %s: %s" % (name, e))
            else:
                n_fail += 1
                print("FAIL %s: %s" % (name, e))
    print("%d passed, %d failed, %d skipped (unsupported)" % (n_ok, n_fail, n_skip))
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
