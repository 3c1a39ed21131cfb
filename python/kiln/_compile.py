"""kiln.Input and kiln.compile: the seed's torch_tensorrt.Input / torch_tensorrt.compile over kiln.

A torch.nn.Module is exported through torch.onnx.export (opset 17) to a temporary file, with a
dynamic axis for every dim whose Input range differs (min != max); the ONNX file is imported,
compiled for the profiles, and the result is a kiln.CompiledModule.
"""

import ctypes
import inspect
import os
import re
import sys
import tempfile
import warnings

from . import _dtypes as D
from . import _lib as L
from ._lib import KilnError, check, lib, take_string

ONNX_OPSET = 17  # Debian's torch 1.13 exports opset <= 17


class Input:
    """An input's shape range and element type, like torch_tensorrt.Input.

    Input(min_shape=, opt_shape=, max_shape=, dtype=, name=) gives a profile (opt_shape defaults
    to max_shape); Input(shape=, dtype=, name=) a static shape. dtype is a torch dtype, a NumPy
    dtype or a name ("float32", "f16"); default float32."""

    def __init__(self, shape=None, dtype=None, name=None, min_shape=None, opt_shape=None,
                 max_shape=None, **kwargs):
        unknown = set(kwargs) - {"format", "tensor_domain", "torch_tensor"}
        if unknown:
            raise TypeError("Input() got unexpected arguments: %s" % ", ".join(sorted(unknown)))
        if shape is not None:
            if min_shape is not None or opt_shape is not None or max_shape is not None:
                raise ValueError("Input: give either shape= or min_shape/opt_shape/max_shape, not both")
            min_shape = opt_shape = max_shape = shape
        if min_shape is None or max_shape is None:
            raise ValueError("Input: needs shape= or both min_shape= and max_shape=")
        if opt_shape is None:
            opt_shape = max_shape
        self.min_shape = _shape_tuple(min_shape, "min_shape")
        self.opt_shape = _shape_tuple(opt_shape, "opt_shape")
        self.max_shape = _shape_tuple(max_shape, "max_shape")
        if not (len(self.min_shape) == len(self.opt_shape) == len(self.max_shape)):
            raise ValueError("Input %s: min/opt/max shapes have different ranks: %s, %s, %s"
                             % (name or "", self.min_shape, self.opt_shape, self.max_shape))
        if len(self.min_shape) > L.KILN_MAX_RANK:
            raise ValueError("Input %s: rank %d exceeds kiln's maximum of %d"
                             % (name or "", len(self.min_shape), L.KILN_MAX_RANK))
        for i, (a, b, c) in enumerate(zip(self.min_shape, self.opt_shape, self.max_shape)):
            if not (0 <= a <= b <= c):
                raise ValueError("Input %s: dim %d needs 0 <= min <= opt <= max, got %d, %d, %d"
                                 % (name or "", i, a, b, c))
        self.kdtype = D.to_kiln(dtype if dtype is not None else "float32")
        self.dtype = dtype if dtype is not None else "float32"
        self.name = name

    @property
    def shape(self):
        """The static shape, or a dict of the range for a dynamic input."""
        if not self.is_dynamic():
            return self.min_shape
        return {"min_shape": self.min_shape, "opt_shape": self.opt_shape, "max_shape": self.max_shape}

    def is_dynamic(self):
        return self.min_shape != self.max_shape

    def dynamic_dims(self):
        return [i for i, (a, c) in enumerate(zip(self.min_shape, self.max_shape)) if a != c]

    def example_tensor(self, device="cpu"):
        """A random tensor at the opt shape, for tracing."""
        import torch
        tdtype = D.to_torch(self.kdtype)
        if tdtype.is_floating_point:
            return torch.randn(self.opt_shape, device=device).to(tdtype)
        if tdtype == torch.bool:
            return torch.zeros(self.opt_shape, dtype=tdtype, device=device)
        return torch.randint(0, 2, self.opt_shape, dtype=tdtype, device=device)

    @classmethod
    def from_tensor(cls, t, name=None):
        return cls(shape=tuple(t.shape), dtype=t.dtype, name=name)

    def __repr__(self):
        if self.is_dynamic():
            s = "min_shape=%s, opt_shape=%s, max_shape=%s" % (self.min_shape, self.opt_shape, self.max_shape)
        else:
            s = "shape=%s" % (self.min_shape,)
        return "kiln.Input(%s, dtype=%s, name=%r)" % (s, D.name(self.kdtype), self.name)


def _shape_tuple(shape, what):
    try:
        out = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError("Input %s must be a sequence of ints, got %r" % (what, shape)) from None
    return out


# ---- precisions ----------------------------------------------------------------------------

_PRECISION_NAMES = {
    "fp32": L.KILN_PRECISION_FP32, "f32": L.KILN_PRECISION_FP32, "float32": L.KILN_PRECISION_FP32,
    "float": L.KILN_PRECISION_FP32,
    "tf32": L.KILN_PRECISION_TF32,
    "fp16": L.KILN_PRECISION_FP16, "f16": L.KILN_PRECISION_FP16, "float16": L.KILN_PRECISION_FP16,
    "half": L.KILN_PRECISION_FP16,
    "bf16": L.KILN_PRECISION_BF16, "bfloat16": L.KILN_PRECISION_BF16,
}
# The lowest precision a set allows wins: kiln builds each engine in one precision.
_PRECISION_ORDER = [L.KILN_PRECISION_FP16, L.KILN_PRECISION_BF16, L.KILN_PRECISION_TF32,
                    L.KILN_PRECISION_FP32]


def precision_from(enabled_precisions):
    """kiln_precision from the seed's enabled_precisions: a set of torch dtypes or names
    ("fp32", "tf32", "fp16", "bf16"). The fastest allowed wins: fp16, bf16, tf32, fp32."""
    if enabled_precisions is None:
        return L.KILN_PRECISION_FP32
    if isinstance(enabled_precisions, (str, bytes)) or D.is_torch_dtype(enabled_precisions):
        enabled_precisions = {enabled_precisions}
    chosen = set()
    for p in enabled_precisions:
        key = str(p).lower().replace("torch.", "").replace("dtype.", "")
        if key not in _PRECISION_NAMES:
            raise ValueError("unknown precision %r; use torch.float, torch.half, torch.bfloat16 or "
                             "'fp32', 'tf32', 'fp16', 'bf16'" % (p,))
        chosen.add(_PRECISION_NAMES[key])
    if not chosen:
        raise ValueError("enabled_precisions is empty")
    for p in _PRECISION_ORDER:
        if p in chosen:
            return p
    return L.KILN_PRECISION_FP32


# ---- torch_executed_ops ----------------------------------------------------------------------

# aten op name (no namespace, no overload) -> the ONNX op types torch.onnx.export makes of it
ATEN_TO_ONNX = {
    "add": ["Add"], "add_": ["Add"],
    "sub": ["Sub"], "sub_": ["Sub"], "rsub": ["Sub"],
    "mul": ["Mul"], "mul_": ["Mul"],
    "div": ["Div"], "div_": ["Div"],
    "relu": ["Relu"], "relu_": ["Relu"],
    "sigmoid": ["Sigmoid"], "tanh": ["Tanh"],
    "convolution": ["Conv"], "_convolution": ["Conv"], "conv1d": ["Conv"], "conv2d": ["Conv"],
    "conv3d": ["Conv"], "conv_transpose2d": ["ConvTranspose"], "conv_transpose1d": ["ConvTranspose"],
    "addmm": ["Gemm"], "mm": ["MatMul"], "bmm": ["MatMul"], "matmul": ["MatMul"],
    "linear": ["Gemm", "MatMul"],
    "max_pool2d": ["MaxPool"], "max_pool2d_with_indices": ["MaxPool"], "max_pool1d": ["MaxPool"],
    "avg_pool2d": ["AveragePool"], "avg_pool1d": ["AveragePool"],
    "adaptive_avg_pool2d": ["GlobalAveragePool"], "_adaptive_avg_pool2d": ["GlobalAveragePool"],
    "adaptive_max_pool2d": ["GlobalMaxPool"],
    "batch_norm": ["BatchNormalization"], "native_batch_norm": ["BatchNormalization"],
    "_native_batch_norm_legit_no_training": ["BatchNormalization"],
    "instance_norm": ["InstanceNormalization"],
    "layer_norm": ["LayerNormalization"], "native_layer_norm": ["LayerNormalization"],
    "softmax": ["Softmax"], "_softmax": ["Softmax"], "log_softmax": ["LogSoftmax"],
    "_log_softmax": ["LogSoftmax"],
    "flatten": ["Flatten"], "view": ["Reshape"], "reshape": ["Reshape"], "_unsafe_view": ["Reshape"],
    "permute": ["Transpose"], "transpose": ["Transpose"], "t": ["Transpose"],
    "cat": ["Concat"], "concat": ["Concat"],
    "clamp": ["Clip"], "clip": ["Clip"], "hardtanh": ["Clip"], "hardtanh_": ["Clip"],
    "relu6": ["Clip"],
    "leaky_relu": ["LeakyRelu"], "prelu": ["PRelu"], "elu": ["Elu"], "selu": ["Selu"],
    "gelu": ["Gelu", "Erf"], "hardsigmoid": ["HardSigmoid"], "hardswish": ["HardSwish"],
    "softplus": ["Softplus"], "mish": ["Mish"],
    "exp": ["Exp"], "log": ["Log"], "sqrt": ["Sqrt"], "rsqrt": ["Sqrt", "Reciprocal"],
    "reciprocal": ["Reciprocal"], "neg": ["Neg"], "abs": ["Abs"], "pow": ["Pow"],
    "erf": ["Erf"], "floor": ["Floor"], "ceil": ["Ceil"],
    "minimum": ["Min"], "maximum": ["Max"],
    "mean": ["ReduceMean"], "sum": ["ReduceSum"], "amax": ["ReduceMax"], "amin": ["ReduceMin"],
    "eq": ["Equal"], "lt": ["Less"], "gt": ["Greater"], "logical_not": ["Not"],
    "logical_and": ["And"], "where": ["Where"],
    "squeeze": ["Squeeze"], "unsqueeze": ["Unsqueeze"], "expand": ["Expand"],
    "repeat": ["Tile"], "split": ["Split"], "split_with_sizes": ["Split"], "slice": ["Slice"],
    "index_select": ["Gather"], "select": ["Gather"], "embedding": ["Gather"],
    "constant_pad_nd": ["Pad"], "pad": ["Pad"],
    "upsample_nearest2d": ["Resize"], "upsample_bilinear2d": ["Resize"],
    "dropout": ["Dropout"], "clone": ["Identity"], "_to_copy": ["Cast"],
}


def fallback_ops_from(torch_executed_ops):
    """The kiln fallback list from the seed's torch_executed_ops: torch op names
    ("torch.ops.aten.mul.Tensor", "aten.mul", or the OpOverload object itself), ONNX op types
    ("Mul") or node names, which kiln takes as they are."""
    if not torch_executed_ops:
        return []
    if isinstance(torch_executed_ops, (str, bytes)):
        torch_executed_ops = [torch_executed_ops]
    out = []
    for op in torch_executed_ops:
        if not isinstance(op, str):
            op = str(op)  # torch.ops.aten.mul.Tensor -> "aten.mul.Tensor"
        m = re.fullmatch(r"(?:torch\.ops\.)?aten(?:::|\.)([A-Za-z0-9_]+)(?:\.[A-Za-z0-9_]+)?", op)
        if m:
            base = m.group(1)
            if base not in ATEN_TO_ONNX:
                raise ValueError("torch_executed_ops: kiln does not know which ONNX op torch exports "
                                 "for %r; give the ONNX op type (e.g. 'Mul') or the node name" % op)
            types = ATEN_TO_ONNX[base]
        elif op.startswith("torch."):
            raise ValueError("torch_executed_ops: %r is not a torch.ops.aten op name" % op)
        else:
            types = [op]
        for t in types:
            if t not in out:
                out.append(t)
    return out


# ---- devices ---------------------------------------------------------------------------------

def _device_from(device):
    """(kiln_device, index) from "cuda", "cuda:1", "cpu", a torch.device, or None (auto)."""
    if device is None:
        # CUDA when kiln sees a GPU and, where torch is in use, torch sees one too (torch is not
        # imported for this: a NumPy-only program asks kiln alone)
        if not lib().kiln_cuda_available():
            return L.KILN_DEVICE_CPU, 0
        torch = sys.modules.get("torch")
        if torch is None:
            return L.KILN_DEVICE_CUDA, 0
        if torch.cuda.is_available():
            return L.KILN_DEVICE_CUDA, torch.cuda.current_device()
        return L.KILN_DEVICE_CPU, 0
    s = str(device).lower()
    kind, _, idx = s.partition(":")
    index = int(idx) if idx else 0
    if kind == "cpu":
        return L.KILN_DEVICE_CPU, 0
    if kind in ("cuda", "gpu"):
        if not idx:
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available():
                index = torch.cuda.current_device()
        return L.KILN_DEVICE_CUDA, index
    if kind == "auto":
        return _device_from(None)
    raise ValueError("device must be 'cuda', 'cuda:N', 'cpu' or None, got %r" % (device,))


# ---- graphs ----------------------------------------------------------------------------------

class _Graph:
    def __init__(self, ptr):
        self.ptr = ptr

    @classmethod
    def load_onnx(cls, path):
        g = ctypes.c_void_p()
        check(lib().kiln_graph_load_onnx(os.fsencode(path), ctypes.byref(g)))
        return cls(g)

    def text(self):
        out = ctypes.c_void_p()
        check(lib().kiln_graph_to_text(self.ptr, ctypes.byref(out)))
        return take_string(out.value)

    def input_names(self):
        """The graph inputs in order, read from the text dump's "  input  NAME: type" lines."""
        names = []
        for line in self.text().splitlines():
            if line.startswith("  input  "):
                names.append(line[len("  input  "):].rpartition(": ")[0])
        return names

    def free(self):
        if self.ptr:
            lib().kiln_graph_free(self.ptr)
            self.ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()


def _is_module(model):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _normalize_inputs(inputs):
    """A list of Input and/or example tensors (or arrays) from what compile() was given."""
    if inputs is None:
        return []
    if isinstance(inputs, Input) or D.is_torch_tensor(inputs) or hasattr(inputs, "__array_interface__"):
        return [inputs]
    return list(inputs)


def _as_input(spec, default_name):
    if isinstance(spec, Input):
        return spec if spec.name else Input(min_shape=spec.min_shape, opt_shape=spec.opt_shape,
                                            max_shape=spec.max_shape, dtype=spec.dtype,
                                            name=default_name)
    if D.is_torch_tensor(spec):
        return Input.from_tensor(spec, name=default_name)
    if hasattr(spec, "shape") and hasattr(spec, "dtype"):
        return Input(shape=tuple(spec.shape), dtype=spec.dtype, name=default_name)
    raise TypeError("inputs must be kiln.Input objects or example tensors, got %r" % type(spec))


def _export(model, specs, path):
    """torch.onnx.export of `model` with the example tensors and dynamic axes of `specs`."""
    import torch
    params = list(model.parameters()) + list(model.buffers())
    device = params[0].device if params else torch.device("cpu")
    args = []
    for spec, inp in specs:
        if D.is_torch_tensor(spec):
            args.append(spec.to(device))
        else:
            args.append(inp.example_tensor(device))
    names = [inp.name for _, inp in specs]
    dynamic_axes = {}
    for _, inp in specs:
        dyn = inp.dynamic_dims()
        if dyn:
            dynamic_axes[inp.name] = {i: "%s_dim%d" % (inp.name, i) for i in dyn}
    with torch.no_grad():
        example_out = model(*args)
    n_out = len(example_out) if isinstance(example_out, (tuple, list)) else 1
    out_names = ["output"] if n_out == 1 else ["output_%d" % i for i in range(n_out)]
    # output dims follow the inputs' dynamic dims through the exporter's shape inference
    extra = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        # torch >= 2.9 defaults to the dynamo exporter; kiln's path is the TorchScript one, which
        # takes dynamic_axes and opset 17 as Debian's torch 1.13 does
        extra["dynamo"] = False
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # kiln chooses the TorchScript exporter on purpose; its deprecation notice is noise here
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
            warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(model, tuple(args), path, input_names=names, output_names=out_names,
                              dynamic_axes=dynamic_axes or None, opset_version=ONNX_OPSET,
                              do_constant_folding=True, **extra)
    finally:
        model.train(was_training)


def _compile_graph(graph, inputs_by_name, device, device_index, precision, min_block_size, fallback,
                   require_full_compilation, pass_through_build_failures, workspace_size,
                   timing_cache_path, debug, optimize, avoid_runtime_compilation=False):
    cfg = L.kiln_build_config()
    lib().kiln_build_config_init(ctypes.byref(cfg))
    cfg.device = device
    cfg.device_index = device_index
    cfg.precision = precision
    cfg.min_block_size = int(min_block_size)
    cfg.require_full_compilation = bool(require_full_compilation)
    cfg.pass_through_build_failures = bool(pass_through_build_failures)
    cfg.optimize = bool(optimize)
    cfg.avoid_runtime_compilation = bool(avoid_runtime_compilation)
    cfg.verbose = int(bool(debug))
    if workspace_size:
        if int(workspace_size) < 0:
            raise ValueError("workspace_size must be >= 0 bytes, got %r" % (workspace_size,))
        cfg.workspace_limit = int(workspace_size)
    keep = []  # the byte strings cfg points at live until kiln_compile returns
    if timing_cache_path:
        keep.append(os.fsencode(timing_cache_path))
        cfg.timing_cache = keep[-1]
    profiles = (L.kiln_input_profile * max(1, len(inputs_by_name)))()
    for k, inp in enumerate(inputs_by_name):
        p = profiles[k]
        keep.append(inp.name.encode())
        p.name = keep[-1]
        p.rank = len(inp.min_shape)
        for i in range(p.rank):
            p.min[i], p.opt[i], p.max[i] = inp.min_shape[i], inp.opt_shape[i], inp.max_shape[i]
    cfg.profiles = profiles
    cfg.num_profiles = len(inputs_by_name)
    fb = (ctypes.c_char_p * max(1, len(fallback)))(*[f.encode() for f in fallback])
    cfg.fallback_ops = fb
    cfg.num_fallback_ops = len(fallback)
    m = ctypes.c_void_p()
    check(lib().kiln_compile(graph.ptr, ctypes.byref(cfg), ctypes.byref(m)))
    return m


def compile(model, inputs=None, *, ir=None, arg_inputs=None, min_block_size=5,
            torch_executed_ops=None, pass_through_build_failures=False, enabled_precisions=None,
            device=None, require_full_compilation=False, workspace_size=0, timing_cache_path=None,
            debug=False, optimize=True, avoid_runtime_compilation=False, **kwargs):
    """Compiles `model` (an ONNX file path or a torch.nn.Module) into a kiln.CompiledModule.

    inputs: kiln.Input objects (a profile or a static shape each) or example tensors/arrays, in
    the model's input order; one Input may be given bare. min_block_size: engine blocks smaller
    than this fall back. torch_executed_ops: ops forced out of engine blocks (torch op names as in
    the seed, "torch.ops.aten.mul.Tensor", or ONNX op types, "Mul"). pass_through_build_failures:
    a failed engine build is an error instead of a fallback. enabled_precisions: torch dtypes or
    "fp32"/"tf32"/"fp16"/"bf16"; the fastest allowed is used. device: "cuda", "cuda:N", "cpu" or
    None (CUDA when torch and kiln both see a GPU). avoid_runtime_compilation: no library kernels
    compiled or set up per shape (cuDNN runtime fusion, engines that pick a kernel per shape), so a
    new shape takes milliseconds, at some cost in speed. workspace_size: the most workspace bytes one
    cuDNN plan may use (0: kiln's limit, 1 GiB); faster engines that need more are not considered.
    `ir` is accepted for seed compatibility and ignored (kiln always compiles ahead of time)."""
    from ._module import CompiledModule

    if kwargs:
        raise TypeError("kiln.compile() got unexpected arguments: %s" % ", ".join(sorted(kwargs)))
    del ir  # the seed's ir="dynamo": kiln has one path
    if arg_inputs is not None:
        if inputs is not None:
            raise ValueError("give inputs= or arg_inputs=, not both")
        inputs = arg_inputs
    specs = _normalize_inputs(inputs)
    kdev, index = _device_from(device)
    precision = precision_from(enabled_precisions)
    fallback = fallback_ops_from(torch_executed_ops)

    tmpdir = None
    try:
        if _is_module(model):
            if not specs:
                raise ValueError("compiling a torch.nn.Module needs inputs= (kiln.Input or example tensors)")
            default_names = ["x"] if len(specs) == 1 else ["input_%d" % i for i in range(len(specs))]
            pairs = [(s, _as_input(s, n)) for s, n in zip(specs, default_names)]
            tmpdir = tempfile.mkdtemp(prefix="kiln-export-")
            path = os.path.join(tmpdir, "model.onnx")
            _export(model, pairs, path)
            graph = _Graph.load_onnx(path)
            named = [inp for _, inp in pairs]
        elif isinstance(model, (str, bytes, os.PathLike)):
            graph = _Graph.load_onnx(model)
            named = []
            if specs:
                graph_names = None
                for k, s in enumerate(specs):
                    if isinstance(s, Input) and s.name:
                        named.append(s)
                        continue
                    if graph_names is None:
                        graph_names = graph.input_names()
                    if k >= len(graph_names):
                        graph.free()
                        raise ValueError("inputs has %d entries but the model has %d inputs (%s)"
                                         % (len(specs), len(graph_names), ", ".join(graph_names)))
                    named.append(_as_input(s, graph_names[k]))
        else:
            raise TypeError("kiln.compile takes an ONNX file path or a torch.nn.Module, got %r" % type(model))
        with graph:
            m = _compile_graph(graph, named, kdev, index, precision, min_block_size, fallback,
                               require_full_compilation, pass_through_build_failures,
                               workspace_size, timing_cache_path, debug, optimize, avoid_runtime_compilation)
    finally:
        if tmpdir:
            import shutil
            shutil.rmtree(tmpdir, ignore_errors=True)
    return CompiledModule(m, device_index=index)


__all__ = ["Input", "compile", "KilnError", "precision_from", "fallback_ops_from"]
