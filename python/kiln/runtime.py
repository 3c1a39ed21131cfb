"""CUDA-graph controls, as in the seed's torch_tensorrt.runtime.

    with kiln.runtime.enable_cudagraphs(module) as cudagraphs_module:
        out = cudagraphs_module(x)          # recorded on the first call of a shape, then replayed

    kiln.runtime.set_cudagraphs_mode(True)  # every module: per engine block
    kiln.runtime.set_cudagraphs_mode(False)

Inside enable_cudagraphs the whole module is recorded as one graph when it has graph breaks
(engine blocks and fallback ops together), and each engine block is its own graph otherwise. On
leaving the block the module's previous mode comes back and the graphs recorded in it are freed.
A new input shape records a new graph; graphs are cached by input shapes (LRU, 8 by default).
On the CPU backend the same logic replays prepared kernel lists.
"""

import contextlib

from ._lib import lib
from ._module import CompiledModule


@contextlib.contextmanager
def enable_cudagraphs(module):
    """A `with` block in which `module` runs with CUDA graphs; yields the module to call."""
    if not isinstance(module, CompiledModule):
        raise TypeError("enable_cudagraphs takes a kiln.CompiledModule, got %r" % type(module))
    module._begin_cudagraphs()
    try:
        yield module
    finally:
        module._end_cudagraphs()


def set_cudagraphs_mode(enabled):
    """The global switch: on = per engine block for every module that follows it."""
    lib().kiln_set_cudagraphs_mode(bool(enabled))


def get_cudagraphs_mode():
    return bool(lib().kiln_get_cudagraphs_mode())


__all__ = ["enable_cudagraphs", "set_cudagraphs_mode", "get_cudagraphs_mode"]
