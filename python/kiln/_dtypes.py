"""Element types: kiln_dtype <-> torch dtype <-> NumPy dtype <-> names.

torch is imported only when a torch object is in play, so the package works with NumPy alone.
"""

import sys

import numpy as np

from . import _lib as L

# kiln dtype -> (name, NumPy dtype used to hold the bytes, torch dtype attribute name)
# bf16 has no NumPy type: it travels as uint16 bits and is viewed as torch.bfloat16.
_TABLE = {
    L.KILN_F32: ("f32", np.float32, "float32"),
    L.KILN_F16: ("f16", np.float16, "float16"),
    L.KILN_BF16: ("bf16", np.uint16, "bfloat16"),
    L.KILN_F64: ("f64", np.float64, "float64"),
    L.KILN_I64: ("i64", np.int64, "int64"),
    L.KILN_I32: ("i32", np.int32, "int32"),
    L.KILN_I8: ("i8", np.int8, "int8"),
    L.KILN_U8: ("u8", np.uint8, "uint8"),
    L.KILN_BOOL: ("bool", np.bool_, "bool"),
}

_NAMES = {
    "f32": L.KILN_F32, "float": L.KILN_F32, "float32": L.KILN_F32, "fp32": L.KILN_F32,
    "f16": L.KILN_F16, "half": L.KILN_F16, "float16": L.KILN_F16, "fp16": L.KILN_F16,
    "bf16": L.KILN_BF16, "bfloat16": L.KILN_BF16,
    "f64": L.KILN_F64, "double": L.KILN_F64, "float64": L.KILN_F64,
    "i64": L.KILN_I64, "int64": L.KILN_I64, "long": L.KILN_I64,
    "i32": L.KILN_I32, "int32": L.KILN_I32, "int": L.KILN_I32,
    "i8": L.KILN_I8, "int8": L.KILN_I8,
    "u8": L.KILN_U8, "uint8": L.KILN_U8,
    "bool": L.KILN_BOOL,
}


def _torch():
    return sys.modules.get("torch")


def is_torch_dtype(obj):
    torch = _torch()
    return torch is not None and isinstance(obj, torch.dtype)


def is_torch_tensor(obj):
    torch = _torch()
    return torch is not None and isinstance(obj, torch.Tensor)


def to_kiln(dtype):
    """A kiln_dtype from a torch dtype, a NumPy dtype (or type), a name ("f32", "float16"), or a
    kiln_dtype int."""
    if isinstance(dtype, bool):
        raise TypeError("not a dtype: %r" % (dtype,))
    if isinstance(dtype, int):
        if dtype in _TABLE:
            return dtype
        raise ValueError("unknown kiln dtype %d" % dtype)
    if is_torch_dtype(dtype):
        name = str(dtype).replace("torch.", "")
        if name in _NAMES:
            return _NAMES[name]
        raise ValueError("kiln does not take torch dtype %s" % dtype)
    if isinstance(dtype, str):
        key = dtype.lower().replace("torch.", "")
        if key in _NAMES:
            return _NAMES[key]
        raise ValueError("unknown dtype name %r" % dtype)
    try:
        npd = np.dtype(dtype)
    except TypeError:
        raise TypeError("not a dtype: %r" % (dtype,)) from None
    for k, (_, holder, _) in _TABLE.items():
        if k != L.KILN_BF16 and npd == np.dtype(holder):
            return k
    raise ValueError("kiln does not take NumPy dtype %s" % npd)


def name(kdtype):
    return _TABLE[kdtype][0] if kdtype in _TABLE else "invalid"


def numpy_holder(kdtype):
    """The NumPy dtype whose bytes hold this kiln dtype (uint16 for bf16)."""
    return np.dtype(_TABLE[kdtype][1])


def to_torch(kdtype):
    import torch
    return getattr(torch, _TABLE[kdtype][2])


def torch_holder(kdtype):
    """The torch dtype whose bytes hold this kiln dtype on the way in from NumPy or a raw
    pointer: torch has no uint16, so bf16 travels as int16 and is viewed as bfloat16 after."""
    import torch
    return torch.int16 if kdtype == L.KILN_BF16 else to_torch(kdtype)


def typestr(kdtype):
    """__cuda_array_interface__ typestr (bf16 as 2-byte ints, viewed as bfloat16 afterwards)."""
    return "<i2" if kdtype == L.KILN_BF16 else numpy_holder(kdtype).str
