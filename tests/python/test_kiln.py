"""The Python package against PyTorch: bindings, compile (ONNX path and nn.Module), profiles,
graph breaks, CUDA-graph controls, engine files, NumPy I/O. CPU tests run everywhere; GPU tests
run when torch and kiln both see a GPU and are skipped (visibly, with -rs) otherwise.

Run: PYTHONPATH=python /usr/bin/python3 -m pytest -rs tests/python
(KILN_LIBRARY=/path/to/libkiln.so picks a library other than build/libkiln.so.)
"""

import copy
import ctypes
import inspect
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

import kiln
from kiln import _lib as L
from kiln import _compile as C

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HEADER = os.path.join(REPO, "include", "kiln.h")

HAVE_GPU = torch.cuda.is_available() and kiln.cuda_available()
gpu = pytest.mark.skipif(not HAVE_GPU, reason="no GPU: torch.cuda.is_available()=%s, kiln.cuda_available()=%s"
                         % (torch.cuda.is_available(), kiln.cuda_available()))

RTOL = ATOL = 1e-3
# references in true fp32 (PyTorch may use TF32 on the GPU by default; kiln's default is fp32)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


def assert_matches(out, ref, rtol=RTOL, atol=ATOL):
    """max |out - ref| <= atol * max|ref| + rtol * |ref|, elementwise (tolerance relative to the
    output's scale), and same shape."""
    out = torch.as_tensor(np.asarray(out) if isinstance(out, np.ndarray) else out).detach().cpu().double()
    ref = torch.as_tensor(np.asarray(ref) if isinstance(ref, np.ndarray) else ref).detach().cpu().double()
    assert tuple(out.shape) == tuple(ref.shape), "shape %s, expected %s" % (tuple(out.shape), tuple(ref.shape))
    err = (out - ref).abs()
    scale = ref.abs().max().item() if ref.numel() else 0.0
    bound = atol * scale + rtol * ref.abs()
    assert bool((err <= bound).all()), "max abs err %.3g, output scale %.3g" % (err.max().item(), scale)
    assert scale > 0, "the reference is all zeros: the comparison would prove nothing"


@pytest.fixture(autouse=True)
def _seed_and_reset():
    torch.manual_seed(0)
    np.random.seed(0)
    yield
    kiln.runtime.set_cudagraphs_mode(False)


class SmallCNN(torch.nn.Module):
    """The op mix of ResNet at a small size: Conv, BatchNorm, ReLU, MaxPool, a residual Add,
    GlobalAveragePool, Flatten, Gemm."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)
        with torch.no_grad():  # non-trivial BatchNorm statistics
            for bn in (self.bn1, self.bn2):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        y = self.pool(torch.relu(self.bn1(self.conv1(x))))
        y = torch.relu(self.bn2(self.conv2(y)) + y)
        y = torch.nn.functional.adaptive_avg_pool2d(y, 1)
        return self.fc(torch.flatten(y, 1))


class SampleModel(torch.nn.Module):
    """The seed's graph-break example."""

    def forward(self, x):
        return torch.relu((x + 2) * 0.5)


class TwoInTwoOut(torch.nn.Module):
    def forward(self, a, b):
        return a + b, torch.relu(a) * b


def cnn_profile(name="x"):
    return kiln.Input(min_shape=(1, 3, 16, 16), opt_shape=(4, 3, 16, 16), max_shape=(8, 3, 16, 16),
                      dtype=torch.float, name=name)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(1)
    return SmallCNN().eval()


@pytest.fixture(scope="module")
def cnn_onnx(cnn, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("onnx") / "cnn.onnx")
    extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(cnn, (torch.randn(4, 3, 16, 16),), path, input_names=["images"],
                          output_names=["logits"], dynamic_axes={"images": {0: "batch"}}, opset_version=17,
                          **extra)
    return path


@pytest.fixture(scope="module")
def cnn_cpu(cnn):
    return kiln.compile(cnn, inputs=[cnn_profile()], device="cpu")


# ---- bindings ---------------------------------------------------------------------------------

def test_struct_sizes_match_header_by_hand():
    # x86-64 (LP64): pointers and size_t 8, int and enums 4, bool 1; int64_t dims[8] = 64 bytes.
    # kiln_tensor: data 8 | dtype 4 rank 4 | dims 64 | device 4 + 4 tail padding = 88
    assert ctypes.sizeof(L.kiln_tensor) == 88
    # kiln_attr: name 8 | type 4 +4 | i 8 | f 4 +4 | s 8 | ints 8 | floats 8 | count 4 +4 | tensor 8 = 72
    assert ctypes.sizeof(L.kiln_attr) == 72
    # kiln_input_profile: name 8 | rank 4 +4 | min 64 | opt 64 | max 64 = 208
    assert ctypes.sizeof(L.kiln_input_profile) == 208
    # kiln_build_config: device 4 device_index 4 | precision 4 +4 | profiles 8 | num_profiles 4
    # min_block_size 4 | fallback_ops 8 | num_fallback_ops 4, 3 bools 1+1+1, +1 | workspace_limit 8
    # | timing_cache 8 | time_tactics 1 +3, verbose 4 | keep_nchw 1, avoid_runtime_compilation 1 +6 = 80
    assert ctypes.sizeof(L.kiln_build_config) == 80
    assert L.kiln_build_config.workspace_limit.offset == 48
    assert L.kiln_build_config.verbose.offset == 68
    assert L.kiln_build_config.keep_nchw.offset == 72
    assert L.kiln_build_config.avoid_runtime_compilation.offset == 73
    # kiln_io_info: name 8 | dtype 4 rank 4 | min 64 | opt 64 | max 64 = 208
    assert ctypes.sizeof(L.kiln_io_info) == 208
    # kiln_counters: 10 uint64_t = 80
    assert ctypes.sizeof(L.kiln_counters) == 80


def test_struct_layout_matches_the_c_compiler(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to check the layout with")
    structs = [L.kiln_tensor, L.kiln_attr, L.kiln_input_profile, L.kiln_build_config, L.kiln_io_info,
               L.kiln_counters]
    lines = ['#include "kiln.h"', "#include <stdio.h>", "#include <stddef.h>", "int main(void) {"]
    expected = []
    for s in structs:
        lines.append('printf("%%zu\\n", sizeof(%s));' % s.__name__)
        expected.append(ctypes.sizeof(s))
        for f, _ in s._fields_:
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (s.__name__, f))
            expected.append(getattr(s, f).offset)
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-I", os.path.join(REPO, "include"), str(src), "-o", str(exe)], check=True)
    got = [int(x) for x in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]
    assert got == expected


def _header_functions():
    text = open(HEADER).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    decls = {}
    for m in re.finditer(r"KILN_API\s+([^;{]*?)\b(kiln_\w+)\s*\(([^)]*)\)\s*;", text, flags=re.S):
        params = m.group(3).strip()
        n = 0 if params in ("void", "") else params.count(",") + 1
        decls[m.group(2)] = n
    return decls


def test_every_header_function_is_declared_with_its_arity():
    decls = _header_functions()
    assert len(decls) > 40
    assert set(decls) == set(L.SIGNATURES), "header vs bindings: %s" % (set(decls) ^ set(L.SIGNATURES))
    for name, n in decls.items():
        assert len(L.SIGNATURES[name][1]) == n, name


def test_library_exports_every_function():
    assert L.lib().missing == [], "libkiln at %s lacks %s" % (L.lib().path, L.lib().missing)
    for name in L.SIGNATURES:
        assert getattr(L.lib(), name).argtypes is not None or not L.SIGNATURES[name][1], name


def _python(code, env_update, cwd=None):
    env = dict(os.environ)
    for k, v in env_update.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, cwd=cwd)


def test_library_lookup_order(tmp_path):
    pkg = os.path.join(REPO, "python")
    # an explicit $KILN_LIBRARY that is wrong is an error, not a cue to look elsewhere
    r = _python("import kiln; kiln.library_path()", {"KILN_LIBRARY": str(tmp_path / "nope.so"),
                                                     "PYTHONPATH": pkg})
    assert r.returncode != 0 and "KILN_LIBRARY" in r.stderr and "nope.so" in r.stderr
    r = _python("import kiln; print(kiln.library_path())", {"KILN_LIBRARY": L.lib().path, "PYTHONPATH": pkg})
    assert r.returncode == 0 and r.stdout.strip() == L.lib().path
    tree = os.path.join(REPO, "build", "libkiln.so")
    if os.path.exists(tree):  # without $KILN_LIBRARY the source tree's build is next
        r = _python("import kiln; print(kiln.library_path())", {"KILN_LIBRARY": None, "PYTHONPATH": pkg})
        assert r.returncode == 0, r.stderr
        assert os.path.realpath(r.stdout.strip()) == os.path.realpath(tree)


def test_pip_install_bundles_the_library(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "python"), src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    env = dict(os.environ, KILN_LIBRARY=L.lib().path)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
                        "--quiet", "--target", str(target), str(src)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    bundled = target / "kiln" / "libkiln.so"
    assert bundled.exists()
    r = _python("import kiln; print(kiln.library_path()); print(kiln.library_version())",
                {"KILN_LIBRARY": None, "PYTHONPATH": str(target)}, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == str(bundled)


def test_errors_are_kiln_errors_with_status_and_message():
    g = ctypes.c_void_p()
    L.check(L.lib().kiln_graph_create(ctypes.byref(g)))
    try:
        with pytest.raises(kiln.KilnError) as e:
            L.check(L.lib().kiln_graph_add_output(g, b"missing_value"))
        assert e.value.status != 0 and e.value.status_name.startswith("KILN_ERR_")
        assert "missing_value" in e.value.message
    finally:
        L.lib().kiln_graph_free(g)


def _builder_graph():
    """y = relu(x) + x with a dynamic batch, through the C builder API."""
    lb = L.lib()
    g = ctypes.c_void_p()
    L.check(lb.kiln_graph_create(ctypes.byref(g)))
    dims = (ctypes.c_int64 * 2)(-1, 8)
    names = (ctypes.c_char_p * 2)(b"batch", None)
    L.check(lb.kiln_graph_add_input(g, b"x", L.KILN_F32, 2, dims, names))

    def strs(*s):
        return (ctypes.c_char_p * len(s))(*[x.encode() for x in s])

    alpha = L.kiln_attr(name=b"alpha", type=L.KILN_ATTR_FLOAT, f=0.0)
    L.check(lb.kiln_graph_add_node(g, b"LeakyRelu", b"relu", 1, strs("x"), 1, strs("r"), 1, ctypes.byref(alpha)))
    L.check(lb.kiln_graph_add_node(g, b"Add", b"add", 2, strs("r", "x"), 1, strs("y"), 0, None))
    L.check(lb.kiln_graph_add_output(g, b"y"))
    L.check(lb.kiln_graph_verify(g))
    return C._Graph(g)


def test_runtime_through_the_builder_api():
    """CompiledModule over a graph made with the C builder: runs, profile errors, graph scope."""
    with _builder_graph() as g:
        assert g.input_names() == ["x"]
        m = C._compile_graph(g, [kiln.Input(min_shape=(1, 8), opt_shape=(4, 8), max_shape=(16, 8), name="x")],
                             L.KILN_DEVICE_CPU, 0, L.KILN_PRECISION_FP32, 1, [], False, False, 0, None, False, True)
    mod = kiln.CompiledModule(m)
    assert mod.device == "cpu" and mod.num_segments == 1
    assert mod.inputs[0] == kiln.IOInfo("x", "f32", (1, 8), (4, 8), (16, 8))
    x = np.random.randn(3, 8).astype(np.float32)
    y = mod(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_array_equal(y, np.maximum(x, 0) + x)
    xt = torch.randn(16, 8)
    torch.testing.assert_close(mod(xt), torch.relu(xt) + xt, rtol=0, atol=0)
    with pytest.raises(kiln.KilnError) as e:
        mod(np.zeros((17, 8), np.float32))
    assert e.value.status == L.KILN_ERR_SHAPE and "'x'" in str(e.value) and "[1, 16]" in str(e.value)
    with kiln.runtime.enable_cudagraphs(mod) as cm:
        assert cm is mod and mod.cudagraphs_mode == "per_block"
        np.testing.assert_array_equal(cm(x), np.maximum(x, 0) + x)
        np.testing.assert_array_equal(cm(x), np.maximum(x, 0) + x)
    assert mod.cudagraphs_mode == "off"
    c = mod.counters()
    assert c["captures"] == 1 and c["replays"] == 2 and c["cache_hits"] == 1 and c["runs"] == 4


# ---- pure-Python option handling -------------------------------------------------------------

def test_torch_executed_ops_names():
    f = kiln.fallback_ops_from
    assert f({"torch.ops.aten.mul.Tensor"}) == ["Mul"]
    assert f([torch.ops.aten.mul.Tensor]) == ["Mul"]  # the OpOverload object itself
    assert f(["aten::conv2d", "torch.ops.aten.addmm.default"]) == ["Conv", "Gemm"]
    assert f(["torch.ops.aten.linear.default"]) == ["Gemm", "MatMul"]
    assert f(["torch.ops.aten.adaptive_avg_pool2d.default"]) == ["GlobalAveragePool"]
    assert f(["torch.ops.aten.hardtanh.default", "torch.ops.aten.clamp.default"]) == ["Clip"]
    assert f(["Mul", "layer1.0.conv1"]) == ["Mul", "layer1.0.conv1"]  # ONNX types / node names
    assert f(None) == [] and f("Relu") == ["Relu"]
    with pytest.raises(ValueError, match="no_such_op"):
        f({"torch.ops.aten.no_such_op.default"})


def test_enabled_precisions():
    p = kiln.precision_from
    assert p(None) == L.KILN_PRECISION_FP32
    assert p({torch.float}) == L.KILN_PRECISION_FP32
    assert p({torch.float, torch.half}) == L.KILN_PRECISION_FP16
    assert p({torch.bfloat16}) == L.KILN_PRECISION_BF16
    assert p({"fp32", "tf32"}) == L.KILN_PRECISION_TF32
    assert p("fp16") == L.KILN_PRECISION_FP16
    with pytest.raises(ValueError, match="int3"):
        p({"int3"})


def test_input_validation():
    i = kiln.Input(shape=(2, 3), dtype=np.float32, name="a")
    assert not i.is_dynamic() and i.shape == (2, 3) and i.kdtype == L.KILN_F32
    d = kiln.Input(min_shape=(1, 3), opt_shape=(2, 3), max_shape=(4, 3), dtype=torch.half)
    assert d.is_dynamic() and d.dynamic_dims() == [0] and d.kdtype == L.KILN_F16
    with pytest.raises(ValueError, match="min <= opt <= max"):
        kiln.Input(min_shape=(4, 3), opt_shape=(2, 3), max_shape=(8, 3))
    with pytest.raises(ValueError, match="ranks"):
        kiln.Input(min_shape=(1, 3), opt_shape=(2, 3), max_shape=(4, 3, 1))
    with pytest.raises(ValueError):
        kiln.Input(shape=(2,), min_shape=(1,), max_shape=(3,))
    with pytest.raises(TypeError):
        kiln.Input(shape=(2,), colour="red")


def test_compile_argument_errors(cnn):
    with pytest.raises(TypeError, match="workspace"):
        kiln.compile(cnn, inputs=[cnn_profile()], workspace=1)
    with pytest.raises(ValueError, match="inputs"):
        kiln.compile(cnn, device="cpu")
    with pytest.raises(TypeError):
        kiln.compile(42, inputs=[cnn_profile()])
    with pytest.raises(ValueError, match="device"):
        kiln.compile(cnn, inputs=[cnn_profile()], device="tpu")


# ---- compile and run (CPU) ---------------------------------------------------------------------

def test_compile_from_onnx_path(cnn, cnn_onnx):
    # an unnamed Input takes the ONNX graph's input name ("images")
    prof = kiln.Input(min_shape=(1, 3, 16, 16), opt_shape=(2, 3, 16, 16), max_shape=(4, 3, 16, 16))
    opt = kiln.compile(cnn_onnx, inputs=[prof], device="cpu", ir="dynamo")
    assert opt.device == "cpu"
    assert [i.name for i in opt.inputs] == ["images"] and [o.name for o in opt.outputs] == ["logits"]
    assert opt.inputs[0].min_shape == (1, 3, 16, 16) and opt.inputs[0].max_shape == (4, 3, 16, 16)
    for b in (1, 3, 4):
        x = torch.randn(b, 3, 16, 16)
        with torch.no_grad():
            assert_matches(opt(x), cnn(x))
    assert "segment" in opt.report()


def test_compile_from_onnx_path_with_example_tensor(cnn, cnn_onnx):
    x = torch.randn(2, 3, 16, 16)
    opt = kiln.compile(cnn_onnx, inputs=[x], device="cpu")
    assert opt.inputs[0].min_shape == opt.inputs[0].max_shape == (2, 3, 16, 16)
    with torch.no_grad():
        assert_matches(opt(x), cnn(x))


def test_default_device_and_profile_errors(cnn_onnx):
    x = torch.randn(2, 3, 16, 16)
    auto = kiln.compile(cnn_onnx, inputs=[x])
    assert auto.device == ("cuda" if HAVE_GPU else "cpu")
    # a profile for an input the model lacks is named in the error
    with pytest.raises(kiln.KilnError) as e:
        kiln.compile(cnn_onnx, inputs=[kiln.Input(shape=(2, 3, 16, 16), name="nope")], device="cpu")
    assert e.value.status == L.KILN_ERR_NOT_FOUND and "nope" in e.value.message and "images" in e.value.message
    # a dynamic model compiled without a profile: kiln says which dim needs one
    with pytest.raises(kiln.KilnError) as e:
        kiln.compile(cnn_onnx, device="cpu")
    assert e.value.status == L.KILN_ERR_SHAPE and "images" in e.value.message


def test_bad_onnx_path_raises_kiln_error(tmp_path):
    path = str(tmp_path / "no_such_model.onnx")
    with pytest.raises(kiln.KilnError) as e:
        kiln.compile(path, device="cpu")
    assert "no_such_model.onnx" in e.value.message
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x08\x07 this is not protobuf \xff\xff\xff")
    with pytest.raises(kiln.KilnError) as e:
        kiln.compile(str(bad), device="cpu")
    assert e.value.status in (L.KILN_ERR_PARSE, L.KILN_ERR_CORRUPT, L.KILN_ERR_UNSUPPORTED)


def test_compile_nn_module_dynamic_batch(cnn, cnn_cpu):
    assert cnn_cpu.inputs[0].name == "x"
    assert cnn_cpu.inputs[0].min_shape == (1, 3, 16, 16) and cnn_cpu.inputs[0].max_shape == (8, 3, 16, 16)
    assert cnn_cpu.outputs[0].max_shape == (8, 5)
    for b in (1, 3, 8, 4):
        x = torch.randn(b, 3, 16, 16)
        out = cnn_cpu(x)
        assert isinstance(out, torch.Tensor) and out.device.type == "cpu" and out.dtype == torch.float32
        with torch.no_grad():
            assert_matches(out, cnn(x))
    assert cnn_cpu.num_segments == 1


def test_out_of_profile_shape_names_the_input(cnn_cpu):
    with pytest.raises(kiln.KilnError) as e:
        cnn_cpu(torch.randn(9, 3, 16, 16))
    assert e.value.status == L.KILN_ERR_SHAPE
    assert "'x'" in e.value.message and "9" in e.value.message and "[1, 8]" in e.value.message
    with pytest.raises(kiln.KilnError) as e:
        cnn_cpu(torch.randn(2, 3, 17, 16))
    assert "'x'" in e.value.message
    with pytest.raises(kiln.KilnError) as e:
        cnn_cpu(torch.randn(2, 3, 16, 16, dtype=torch.float64))
    assert e.value.status == L.KILN_ERR_DTYPE and "'x'" in e.value.message
    with pytest.raises(TypeError, match="1 input"):
        cnn_cpu(torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16))
    x = torch.randn(2, 3, 16, 16)  # the module stays usable
    assert cnn_cpu(x).shape == (2, 5)


def test_numpy_io(cnn, cnn_cpu):
    x = np.random.randn(3, 3, 16, 16).astype(np.float32)
    out = cnn_cpu(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (3, 5)
    with torch.no_grad():
        assert_matches(out, cnn(torch.from_numpy(x)))
    # non-contiguous input arrays are made contiguous, by name too
    xt = np.asfortranarray(x)
    np.testing.assert_array_equal(cnn_cpu(x=xt), out)


def test_multiple_inputs_and_outputs():
    m = TwoInTwoOut().eval()
    b = torch.randn(1, 6)  # given as an example tensor: static, broadcast over a's batch
    opt = kiln.compile(m, inputs=[kiln.Input(min_shape=(1, 6), opt_shape=(2, 6), max_shape=(4, 6)), b],
                       device="cpu", min_block_size=1)
    assert [i.name for i in opt.inputs] == ["input_0", "input_1"]
    assert opt.inputs[1].min_shape == opt.inputs[1].max_shape == (1, 6)
    assert len(opt.outputs) == 2
    for batch in (1, 3, 4):
        a = torch.randn(batch, 6)
        s, p = opt(a, b)
        assert_matches(s, a + b)
        assert_matches(p, torch.relu(a) * b)
        s2, p2 = opt(input_1=b, input_0=a)
        assert torch.equal(s, s2) and torch.equal(p, p2)


def test_graph_breaks_with_torch_executed_ops():
    model = SampleModel().eval()
    x = torch.randn((1, 3, 224, 224))
    opt = kiln.compile(model, ir="dynamo", inputs=[x], min_block_size=1, pass_through_build_failures=True,
                       torch_executed_ops={"torch.ops.aten.mul.Tensor"}, device="cpu")
    assert opt.num_segments == 3, opt.report()
    assert opt.num_engine_blocks == 2, opt.report()
    assert_matches(opt(x), model(x), rtol=0, atol=1e-6)
    with kiln.runtime.enable_cudagraphs(opt) as cm:
        assert opt.cudagraphs_mode == "whole"
        assert_matches(cm(x), model(x), rtol=0, atol=1e-6)
        y = torch.randn((1, 3, 224, 224))
        assert_matches(cm(y), model(y), rtol=0, atol=1e-6)
    c = opt.counters()
    assert c["captures"] == 1 and c["replays"] == 2 and c["runs"] == 3
    # without forced fallbacks the three ops make one engine block
    whole = kiln.compile(model, inputs=[x], min_block_size=1, device="cpu")
    assert whole.num_segments == 1
    assert_matches(whole(x), model(x), rtol=0, atol=1e-6)
    # the default min_block_size (5) leaves a 1-op block to run as fallback ops: still right
    small = kiln.compile(model, inputs=[x], torch_executed_ops=["Mul"], device="cpu")
    assert_matches(small(x), model(x), rtol=0, atol=1e-6)


def test_enable_cudagraphs_context_records_and_replays(cnn, cnn_cpu):
    cnn_cpu.reset_graphs()
    before = cnn_cpu.counters()
    xs = [torch.randn(b, 3, 16, 16) for b in (4, 4, 2, 4)]
    with kiln.runtime.enable_cudagraphs(cnn_cpu) as cm:
        assert cm.cudagraphs_mode == "per_block"  # no graph breaks
        outs = [cm(x) for x in xs]
    after = cnn_cpu.counters()
    assert cnn_cpu.cudagraphs_mode == "off"
    assert after["captures"] - before["captures"] == 2  # shapes 4 and 2
    assert after["replays"] - before["replays"] == 4
    assert after["cache_hits"] - before["cache_hits"] == 2
    with torch.no_grad():
        for x, o in zip(xs, outs):
            assert_matches(o, cnn(x))
    # scopes nest and restore
    with kiln.runtime.enable_cudagraphs(cnn_cpu):
        with kiln.runtime.enable_cudagraphs(cnn_cpu):
            pass
        assert cnn_cpu.cudagraphs_mode == "per_block"
    assert cnn_cpu.cudagraphs_mode == "off"


def test_set_and_get_cudagraphs_mode(cnn, cnn_cpu):
    assert kiln.runtime.get_cudagraphs_mode() is False
    kiln.runtime.set_cudagraphs_mode(True)
    assert kiln.runtime.get_cudagraphs_mode() is True
    assert cnn_cpu.cudagraphs_mode == "per_block"
    before = cnn_cpu.counters()
    x = torch.randn(5, 3, 16, 16)
    out1, out2 = cnn_cpu(x), cnn_cpu(x)
    after = cnn_cpu.counters()
    assert after["captures"] - before["captures"] == 1 and after["replays"] - before["replays"] == 2
    kiln.runtime.set_cudagraphs_mode(False)
    assert kiln.runtime.get_cudagraphs_mode() is False and cnn_cpu.cudagraphs_mode == "off"
    out3 = cnn_cpu(x)
    assert cnn_cpu.counters()["replays"] == after["replays"]
    with torch.no_grad():
        ref = cnn(x)
    for o in (out1, out2, out3):
        assert_matches(o, ref)
    # a module's own mode overrides the global switch
    cnn_cpu.cudagraphs_mode = "whole"
    assert cnn_cpu.cudagraphs_mode == "whole"
    cnn_cpu.cudagraphs_mode = "default"
    assert cnn_cpu.cudagraphs_mode == "off"
    with pytest.raises(ValueError):
        cnn_cpu.cudagraphs_mode = "sometimes"


def test_save_load_round_trip(cnn, cnn_cpu, tmp_path):
    path = str(tmp_path / "cnn.kiln")
    kiln.save(cnn_cpu, path)
    assert os.path.getsize(path) > 0
    loaded = kiln.load(path)
    assert loaded.device == "cpu"
    assert loaded.inputs == cnn_cpu.inputs and loaded.outputs == cnn_cpu.outputs
    assert loaded.num_segments == cnn_cpu.num_segments
    assert loaded.counters()["runs"] == 0
    for b in (1, 6):
        x = torch.randn(b, 3, 16, 16)
        assert torch.equal(loaded(x), cnn_cpu(x))
        with torch.no_grad():
            assert_matches(loaded(x), cnn(x))
    with kiln.runtime.enable_cudagraphs(loaded) as cm:
        cm(x)
        cm(x)
    assert loaded.counters()["replays"] == 2
    # a damaged file is refused with a reason
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.kiln"
    bad.write_bytes(bytes(data))
    with pytest.raises(kiln.KilnError) as e:
        kiln.load(str(bad))
    assert e.value.status in (L.KILN_ERR_CORRUPT, L.KILN_ERR_PARSE, L.KILN_ERR_VERSION)
    with pytest.raises(kiln.KilnError):
        kiln.load(str(tmp_path / "missing.kiln"))


def test_workspace_size_reaches_the_engine(cnn, tmp_path):
    # Torch-TensorRT's workspace_size: kept in the module (the JSON report shows it) and in its
    # engine file; the CPU backend has no library workspaces, so it only has to come back
    import json
    m = kiln.compile(cnn, inputs=[cnn_profile()], device="cpu", workspace_size=48 << 20)
    assert json.loads(m.report(json=True))["workspace_limit_bytes"] == 48 << 20
    path = str(tmp_path / "ws.kiln")
    kiln.save(m, path)
    assert json.loads(kiln.load(path).report(json=True))["workspace_limit_bytes"] == 48 << 20
    default = kiln.compile(cnn, inputs=[cnn_profile()], device="cpu")
    assert json.loads(default.report(json=True))["workspace_limit_bytes"] == 0


def test_module_description(cnn_cpu):
    assert "x" in repr(cnn_cpu)
    assert set(cnn_cpu.counters()) == {"runs", "captures", "replays", "cache_hits", "updates", "evictions",
                                       "eager_fallbacks", "warmups", "provisional", "upgrades"}
    import json
    json.loads(cnn_cpu.report(json=True))


def test_provisional_kernels_on_the_cpu(cnn, cnn_cpu):
    """The switch is accepted everywhere; the CPU backend has no slow preparation to hide, so a
    new shape does not start on provisional kernels and the results are the tuned ones."""
    cnn_cpu.set_provisional_kernels(True)
    try:
        before = cnn_cpu.counters()
        x = torch.randn(5, 3, 16, 16)
        out = cnn_cpu(x)
        cnn_cpu.finish_preparation()
        after = cnn_cpu.counters()
        assert after["provisional"] == before["provisional"] and after["upgrades"] == before["upgrades"]
        with torch.no_grad():
            assert_matches(out, cnn(x))
    finally:
        cnn_cpu.set_provisional_kernels(False)


# ---- GPU -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cnn_cuda(cnn):
    if not HAVE_GPU:
        pytest.skip("no GPU")
    return copy.deepcopy(cnn).cuda()


@pytest.fixture(scope="module")
def cnn_gpu(cnn_cuda):
    return kiln.compile(cnn_cuda, inputs=[cnn_profile()], device="cuda")


@gpu
def test_gpu_zero_copy_on_the_current_stream(cnn_cuda, cnn_gpu):
    cnn = cnn_cuda
    assert cnn_gpu.device == "cuda"
    x = torch.randn(4, 3, 16, 16, device="cuda")
    out = cnn_gpu(x)  # legacy default stream: kiln runs on a side stream ordered with it
    assert out.is_cuda and out.shape == (4, 5)
    with torch.no_grad():
        assert_matches(out, cnn(x))
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        x2 = torch.randn(7, 3, 16, 16, device="cuda")
        out2 = cnn_gpu(x2)
        with torch.no_grad():
            ref2 = cnn(x2)
    torch.cuda.synchronize()
    assert_matches(out2, ref2)
    # ordering: the input is written after a long spin on the caller's stream; kiln must wait
    # for it (on a non-default stream, and on the legacy default stream through the side stream)
    for stream in (torch.cuda.Stream(), torch.cuda.default_stream()):
        x3 = torch.zeros(6, 3, 16, 16, device="cuda")
        fresh = torch.randn(6, 3, 16, 16, device="cuda")
        torch.cuda.synchronize()
        with torch.cuda.stream(stream):
            torch.cuda._sleep(100_000_000)
            x3.copy_(fresh)
            out3 = cnn_gpu(x3)
            out3_plus = out3 + 0  # used on the caller's stream right away
        torch.cuda.synchronize()
        with torch.no_grad():
            assert_matches(out3_plus, cnn(fresh))
    # torch CPU tensors and NumPy arrays also go through a CUDA module
    xc = torch.randn(2, 3, 16, 16)
    oc = cnn_gpu(xc)
    assert oc.device.type == "cpu"
    with torch.no_grad():
        assert_matches(oc, cnn(xc.cuda()))
    on = cnn_gpu(xc.numpy())
    assert isinstance(on, np.ndarray)
    assert_matches(on, oc)


@gpu
def test_gpu_cudagraphs_rerecord_on_new_shapes(cnn_cuda, cnn_gpu):
    cnn = cnn_cuda
    before = cnn_gpu.counters()
    xs = [torch.randn(b, 3, 16, 16, device="cuda") for b in (8, 4, 8)]
    with kiln.runtime.enable_cudagraphs(cnn_gpu) as cm:
        outs = [cm(x) for x in xs]
    after = cnn_gpu.counters()
    assert after["captures"] - before["captures"] == 2
    assert after["replays"] - before["replays"] == 3
    with torch.no_grad():
        for x, o in zip(xs, outs):
            assert_matches(o, cnn(x))


@gpu
def test_gpu_graph_breaks_whole_module_graph():
    model = SampleModel().eval().cuda()
    x = torch.randn((1, 3, 224, 224), device="cuda")
    opt = kiln.compile(model, ir="dynamo", inputs=[x], min_block_size=1, pass_through_build_failures=True,
                       torch_executed_ops={"torch.ops.aten.mul.Tensor"})
    assert opt.device == "cuda" and opt.num_segments == 3
    with kiln.runtime.enable_cudagraphs(opt) as cm:
        assert opt.cudagraphs_mode == "whole"
        for _ in range(3):
            assert_matches(cm(x), model(x), rtol=0, atol=1e-6)
    c = opt.counters()
    assert c["captures"] == 1 and c["replays"] == 3 and c["eager_fallbacks"] == 0


@gpu
def test_gpu_save_load(cnn_gpu, tmp_path):
    path = str(tmp_path / "cnn_gpu.kiln")
    kiln.save(cnn_gpu, path)
    loaded = kiln.load(path)
    assert loaded.device == "cuda"
    x = torch.randn(3, 3, 16, 16, device="cuda")
    assert_matches(loaded(x), cnn_gpu(x), rtol=0, atol=1e-6)


@gpu
def test_gpu_fp16_precision(cnn_cuda):
    opt = kiln.compile(cnn_cuda, inputs=[cnn_profile()], enabled_precisions={torch.float, torch.half})
    assert opt.device == "cuda" and "fp16" in opt.report()
    x = torch.randn(4, 3, 16, 16, device="cuda")
    out = opt(x)
    assert out.dtype == torch.float32  # fp32 I/O, fp16 inside engine blocks
    with torch.no_grad():
        assert_matches(out, cnn_cuda(x), rtol=3e-2, atol=3e-2)


@gpu
def test_gpu_resnet50_fp16_matches_torch_fp32():
    """Issue 5's check: torchvision's ResNet-50 compiled for fp16 on the GPU against PyTorch's fp32
    on the same GPU, within 1e-2 of the output scale."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval().cuda()
    # ImageNet-like statistics in the batch norms, so the logits are not all alike
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    prof = kiln.Input(min_shape=(1, 3, 224, 224), opt_shape=(4, 3, 224, 224), max_shape=(8, 3, 224, 224))
    opt = kiln.compile(model, inputs=[prof], enabled_precisions={torch.float, torch.half})
    assert opt.device == "cuda" and "fp16" in opt.report()
    x = torch.randn(4, 3, 224, 224, device="cuda")
    with torch.no_grad():  # true fp32 reference: TF32 is off for the module (above)
        ref = model(x)
        out = opt(x)
    err = (out.float() - ref).abs().max().item() / ref.abs().max().item()
    print(f"ResNet-50 fp16 (kiln, cuda) vs fp32 (PyTorch, cuda): max error {err:.3e} of the output scale")
    assert err <= 1e-2
    # provisional kernels at a new batch, with whole-module graphs: the first run on kiln's own
    # convolutions, the run after the background preparation on the tuned ones; both against PyTorch
    opt.set_provisional_kernels(True)
    x3 = torch.randn(3, 3, 224, 224, device="cuda")
    with torch.no_grad():
        ref3 = model(x3)
    before = opt.counters()
    with kiln.runtime.enable_cudagraphs(opt) as cm:
        with torch.no_grad():
            first = cm(x3).float().clone()
            mid = opt.counters()
            opt.finish_preparation()
            second = cm(x3).float().clone()
    after = opt.counters()
    assert mid["provisional"] - before["provisional"] == 1, "batch 3 did not start on provisional kernels: %s" % mid
    assert after["upgrades"] - before["upgrades"] == 1 and after["captures"] - mid["captures"] == 1, after
    for name, o in (("provisional", first), ("tuned", second)):
        e = (o - ref3).abs().max().item() / ref3.abs().max().item()
        print(f"ResNet-50 fp16 at batch 3, {name} kernels: max error {e:.3e} of the output scale")
        assert e <= 1e-2
