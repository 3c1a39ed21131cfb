"""kiln: an ahead-of-time inference compiler and runtime, from Python.

The API mirrors Torch-TensorRT's (the tutorial kiln follows):

    import torch, kiln
    opt = kiln.compile(model, inputs=kiln.Input(min_shape=(1, 3, 224, 224),
                                                opt_shape=(8, 3, 224, 224),
                                                max_shape=(16, 3, 224, 224),
                                                dtype=torch.float, name="x"))
    with kiln.runtime.enable_cudagraphs(opt) as cudagraphs_module:
        out = cudagraphs_module(x)
    kiln.save(opt, "resnet18.kiln"); opt2 = kiln.load("resnet18.kiln")

Pure Python over libkiln.so through ctypes (see kiln._lib for where the library is looked up).
Errors from kiln raise kiln.KilnError with .status and kiln's message.
"""

from . import runtime
from ._compile import Input, compile, fallback_ops_from, precision_from
from ._lib import KilnError, lib as _lib_handle
from ._module import CompiledModule, IOInfo, load, save

__version__ = "0.1.0"


def library_path():
    """The path of the libkiln.so in use."""
    return _lib_handle().path


def library_version():
    """The version string of the loaded libkiln."""
    return _lib_handle().kiln_version().decode()


def cuda_available():
    """Whether the loaded libkiln has the CUDA backend and sees a usable GPU."""
    return bool(_lib_handle().kiln_cuda_available())


def set_log_level(level):
    """kiln's stderr log verbosity: 0 warnings, 1 info, 2 verbose."""
    _lib_handle().kiln_set_log_level(int(level))


__all__ = ["Input", "compile", "CompiledModule", "IOInfo", "KilnError", "load", "save", "runtime",
           "library_path", "library_version", "cuda_available", "set_log_level",
           "fallback_ops_from", "precision_from"]
