"""kiln.CompiledModule: a compiled kiln module with one session, callable like a torch module.

Calling rules:
- torch CUDA tensors on a CUDA module run zero-copy by pointer on torch's current stream (when
  that is the legacy default stream, on a side stream that waits for it and that the current
  stream then waits for, as Torch-TensorRT does: CUDA graphs cannot be captured on the legacy
  stream). Outputs are new torch tensors on the same device, copied on that stream from kiln's
  output buffer, which is valid only until the session's next run.
- torch CPU tensors or NumPy arrays run on the CPU backend when the module was compiled for the
  CPU, and come back as the same kind. A CUDA module also takes them: torch CPU tensors are
  moved to the module's device and the outputs back; NumPy arrays are copied in by kiln and the
  outputs copied out through the CUDA runtime.
- A model with one output returns a tensor; with several, a tuple in the model's output order.
- A session is used by one thread at a time; the module serialises calls with a lock.
"""

import collections
import ctypes
import os
import sys
import threading

import numpy as np

from . import _dtypes as D
from . import _lib as L
from ._lib import KilnError, check, lib, take_string

IOInfo = collections.namedtuple("IOInfo", "name dtype min_shape opt_shape max_shape")

_COUNTER_FIELDS = [f for f, _ in L.kiln_counters._fields_]


class _CudaView:
    """A raw device pointer as __cuda_array_interface__ (version 2: no stream; the consumer
    reads it on the stream that produced it)."""

    def __init__(self, ptr, shape, typestr):
        self.__cuda_array_interface__ = {
            "shape": tuple(shape), "typestr": typestr, "data": (int(ptr), False),
            "version": 2, "strides": None,
        }


_cudart_handle = None


def _cudart():
    """The CUDA runtime that libkiln is linked against (found in this process's mappings)."""
    global _cudart_handle
    if _cudart_handle is None:
        path = None
        try:
            with open("/proc/self/maps") as f:
                for line in f:
                    if "libcudart" in line:
                        path = line.split()[-1]
                        break
        except OSError:
            pass
        if path is None:
            raise KilnError(L.KILN_ERR_UNSUPPORTED, "NumPy I/O with a CUDA module needs the CUDA "
                            "runtime that libkiln uses, and none is loaded; pass torch tensors")
        h = ctypes.CDLL(path)
        h.cudaMemcpy.restype = ctypes.c_int
        h.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _cudart_handle = h
    return _cudart_handle


def _numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


class CompiledModule:
    """A compiled kiln module and its session. Call it like the torch module it came from."""

    def __init__(self, module_ptr, device_index=0):
        self._m = module_ptr if isinstance(module_ptr, ctypes.c_void_p) else ctypes.c_void_p(module_ptr)
        self._s = ctypes.c_void_p()
        self._lib = lib()
        self._lock = threading.RLock()
        self._last_stream = None  # the torch stream the session was last set to
        self._side_stream = None
        self._scopes = 0
        try:
            check(self._lib.kiln_session_create(self._m, ctypes.byref(self._s)))
        except BaseException:
            self._lib.kiln_module_free(self._m)
            self._m = ctypes.c_void_p()
            raise
        self._kdevice = self._lib.kiln_module_device(self._m)
        self.device_index = int(device_index)
        self.inputs = [self._io_info(i, True) for i in range(self._lib.kiln_module_num_inputs(self._m))]
        self.outputs = [self._io_info(i, False) for i in range(self._lib.kiln_module_num_outputs(self._m))]

    # ---- description -----------------------------------------------------------------------

    def _io_info(self, index, is_input):
        info = L.kiln_io_info()
        fn = self._lib.kiln_module_input_info if is_input else self._lib.kiln_module_output_info
        check(fn(self._m, index, ctypes.byref(info)))
        r = info.rank
        return IOInfo(info.name.decode() if info.name else "", D.name(info.dtype), tuple(info.min[:r]),
                      tuple(info.opt[:r]), tuple(info.max[:r]))

    @property
    def device(self):
        """"cuda" or "cpu": where the module runs."""
        return "cuda" if self._kdevice == L.KILN_DEVICE_CUDA else "cpu"

    @property
    def num_segments(self):
        """Segments of the partition: engine blocks and fallback runs (graph breaks + 1)."""
        return self._lib.kiln_module_num_segments(self._m)

    @property
    def num_engine_blocks(self):
        return self._lib.kiln_module_num_engine_blocks(self._m)

    def report(self, json=False):
        """Segments, chosen tactics and the memory plan, as text (or JSON text)."""
        out = ctypes.c_void_p()
        check(self._lib.kiln_module_report(self._m, bool(json), ctypes.byref(out)))
        return take_string(out.value)

    def counters(self):
        """The session's counters: runs, captures, replays, cache_hits, updates, evictions,
        eager_fallbacks, warmups, provisional (shapes started on provisional kernels) and upgrades
        (shapes swapped to their tuned kernels after that)."""
        c = L.kiln_counters()
        check(self._lib.kiln_session_counters(self._s, ctypes.byref(c)))
        return {f: int(getattr(c, f)) for f in _COUNTER_FIELDS}

    # ---- CUDA graphs -----------------------------------------------------------------------

    _MODES = {"default": L.KILN_CUDAGRAPHS_DEFAULT, "off": L.KILN_CUDAGRAPHS_OFF,
              "per_block": L.KILN_CUDAGRAPHS_PER_BLOCK, "whole": L.KILN_CUDAGRAPHS_WHOLE}

    @property
    def cudagraphs_mode(self):
        """The mode the next call uses: "off", "per_block" or "whole"."""
        m = self._lib.kiln_session_cudagraphs_mode(self._s)
        return {v: k for k, v in self._MODES.items()}.get(m, str(m))

    @cudagraphs_mode.setter
    def cudagraphs_mode(self, mode):
        """This module's own mode: "off", "per_block", "whole", or "default" (the global switch)."""
        if mode not in self._MODES:
            raise ValueError("cudagraphs_mode must be one of %s" % ", ".join(self._MODES))
        check(self._lib.kiln_session_set_cudagraphs_mode(self._s, self._MODES[mode]))

    def set_graph_cache_size(self, max_graphs):
        check(self._lib.kiln_session_set_graph_cache_size(self._s, int(max_graphs)))

    def set_warmup_runs(self, runs):
        check(self._lib.kiln_session_set_warmup_runs(self._s, int(runs)))

    def set_provisional_kernels(self, enabled):
        """At a new input shape, run kiln's own convolutions while cuDNN's plans are prepared in the
        background, and swap the tuned kernels in at the first call after that (results agree
        within the precision's tolerance, not bit for bit). Off by default."""
        check(self._lib.kiln_session_set_provisional_kernels(self._s, bool(enabled)))

    def finish_preparation(self):
        """Waits for background preparation (provisional kernels); the next call swaps the tuned
        kernels in."""
        check(self._lib.kiln_session_finish_preparation(self._s))

    def reset_graphs(self):
        check(self._lib.kiln_session_reset_graphs(self._s))

    def _begin_cudagraphs(self):
        with self._lock:
            check(self._lib.kiln_session_begin_cudagraphs(self._s))
            self._scopes += 1

    def _end_cudagraphs(self):
        with self._lock:
            check(self._lib.kiln_session_end_cudagraphs(self._s))
            self._scopes -= 1

    # ---- files -----------------------------------------------------------------------------

    def save(self, path):
        """Writes the engine file (versioned, checksummed; loading never re-times tactics)."""
        check(self._lib.kiln_module_save(self._m, os.fsencode(path)))

    # ---- running ---------------------------------------------------------------------------

    def _ordered(self, args, kwargs):
        if kwargs:
            names = [i.name for i in self.inputs]
            unknown = set(kwargs) - set(names)
            if unknown:
                raise TypeError("unknown input name(s) %s; the module's inputs are %s"
                                % (", ".join(sorted(unknown)), ", ".join(names)))
            args = list(args)
            for name in names[len(args):]:
                if name not in kwargs:
                    raise TypeError("missing input '%s'" % name)
                args.append(kwargs[name])
            if len(args) != len(names):
                raise TypeError("input given both by position and by name")
        if len(args) != len(self.inputs):
            raise TypeError("the module takes %d input%s (%s), %d given"
                            % (len(self.inputs), "" if len(self.inputs) == 1 else "s",
                               ", ".join(i.name for i in self.inputs), len(args)))
        return list(args)

    def __call__(self, *args, **kwargs):
        args = self._ordered(args, kwargs)
        if not self._m:
            raise ValueError("this module was closed")
        if args and all(D.is_torch_tensor(a) for a in args):
            outs = self._run_torch(args)
        elif any(D.is_torch_tensor(a) for a in args):
            raise TypeError("mix of torch tensors and other inputs; pass all inputs as one kind")
        else:
            outs = self._run_numpy([np.asarray(a) for a in args])
        return outs[0] if len(outs) == 1 else tuple(outs)

    forward = __call__

    def _run(self, tensors):
        """kiln_session_run with runtime-owned outputs (data NULL: dims and pointer filled)."""
        n_in, n_out = len(tensors), len(self.outputs)
        ins = (L.kiln_tensor * max(1, n_in))()
        for k, (ptr, kdtype, shape, kdev) in enumerate(tensors):
            t = ins[k]
            t.data = ptr
            t.dtype = kdtype
            t.rank = len(shape)
            if t.rank > L.KILN_MAX_RANK:
                raise ValueError("input '%s' has %d dims; kiln takes at most %d"
                                 % (self.inputs[k].name, t.rank, L.KILN_MAX_RANK))
            for i, d in enumerate(shape):
                t.dims[i] = d
            t.device = kdev
        outs = (L.kiln_tensor * max(1, n_out))()
        check(self._lib.kiln_session_run(self._s, ins, n_in, outs, n_out))
        return [outs[k] for k in range(n_out)]

    @staticmethod
    def _kdtype_of(x):
        try:
            return D.to_kiln(x.dtype)
        except (TypeError, ValueError):
            return L.KILN_DTYPE_INVALID  # kiln names the input and the expected type

    def _host_array(self, o):
        """A NumPy copy of a host output."""
        shape = tuple(o.dims[:o.rank])
        holder = D.numpy_holder(o.dtype)
        n = _numel(shape)
        if n == 0:
            return np.empty(shape, dtype=holder)
        buf = (ctypes.c_char * (n * holder.itemsize)).from_address(o.data)
        return np.frombuffer(buf, dtype=holder).reshape(shape).copy()

    # NumPy (and anything array-like) in, NumPy out.
    def _run_numpy(self, arrays):
        arrays = [np.ascontiguousarray(a) for a in arrays]
        specs = [(a.ctypes.data, self._kdtype_of(a), a.shape, L.KILN_DEVICE_CPU) for a in arrays]
        with self._lock:
            outs = self._run(specs)
            results = []
            synced = False
            for o in outs:
                if o.device == L.KILN_DEVICE_CUDA:
                    if not synced:
                        check(self._lib.kiln_session_synchronize(self._s))
                        synced = True
                    shape = tuple(o.dims[:o.rank])
                    arr = np.empty(shape, dtype=D.numpy_holder(o.dtype))
                    if arr.nbytes:
                        rc = _cudart().cudaMemcpy(arr.ctypes.data, o.data, arr.nbytes, 2)
                        if rc != 0:
                            raise KilnError(L.KILN_ERR_DEVICE, "cudaMemcpy of output %d failed with "
                                            "CUDA error %d" % (len(results), rc))
                    results.append(arr)
                else:
                    results.append(self._host_array(o))
        return results

    def _torch_from_host(self, o):
        import torch
        arr = self._host_array(o)
        if o.dtype == L.KILN_BF16:
            return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(arr)

    def _run_torch(self, tensors):
        import torch
        out_device = tensors[0].device
        if self._kdevice != L.KILN_DEVICE_CUDA:
            cpu = [t.detach().to("cpu").contiguous() for t in tensors]
            specs = [(t.data_ptr(), self._kdtype_of(t), tuple(t.shape), L.KILN_DEVICE_CPU) for t in cpu]
            with self._lock:
                outs = self._run(specs)
                results = [self._torch_from_host(o) for o in outs]
            if out_device.type != "cpu":
                results = [r.to(out_device) for r in results]
            return results

        dev = torch.device("cuda", self.device_index)
        with self._lock, torch.cuda.device(dev):
            moved = [t.detach().to(dev).contiguous() for t in tensors]
            cur = torch.cuda.current_stream(dev)
            run_stream = cur
            if cur.cuda_stream == 0:
                # the legacy default stream cannot be captured: run on a side stream ordered
                # after it and before the caller's next work on it
                if self._side_stream is None:
                    self._side_stream = torch.cuda.Stream(dev)
                run_stream = self._side_stream
                run_stream.wait_stream(cur)
            if self._last_stream is None or self._last_stream.cuda_stream != run_stream.cuda_stream:
                if self._last_stream is not None:
                    # kiln's buffers were last used on the old stream
                    run_stream.wait_stream(self._last_stream)
                check(self._lib.kiln_session_set_stream(self._s, ctypes.c_void_p(run_stream.cuda_stream)))
                self._last_stream = run_stream
            specs = [(t.data_ptr(), self._kdtype_of(t), tuple(t.shape), L.KILN_DEVICE_CUDA) for t in moved]
            outs = self._run(specs)
            results = []
            with torch.cuda.stream(run_stream):
                for o in outs:
                    shape = tuple(o.dims[:o.rank])
                    if o.device == L.KILN_DEVICE_CPU:  # a value kiln knows on the host
                        results.append(self._torch_from_host(o).to(dev, non_blocking=False))
                        continue
                    tdtype = D.to_torch(o.dtype)
                    if _numel(shape) == 0:
                        results.append(torch.empty(shape, dtype=tdtype, device=dev))
                        continue
                    view = torch.as_tensor(_CudaView(o.data, shape, D.typestr(o.dtype)), device=dev)
                    r = view.clone()  # kiln's buffer is valid until the next run
                    if o.dtype == L.KILN_BF16:
                        r = r.view(torch.bfloat16)
                    results.append(r)
            if run_stream is not cur:
                cur.wait_stream(run_stream)
                for t in moved:
                    t.record_stream(run_stream)
                for r in results:
                    r.record_stream(cur)
        if out_device != dev:
            results = [r.to(out_device) for r in results]
        return results

    # ---- lifetime --------------------------------------------------------------------------

    def close(self):
        """Frees the session and the module now (also done when the object is collected)."""
        lb = getattr(self, "_lib", None)
        if lb is None:
            return
        if getattr(self, "_s", None):
            lb.kiln_session_free(self._s)
            self._s = ctypes.c_void_p()
        if getattr(self, "_m", None):
            lb.kiln_module_free(self._m)
            self._m = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        ins = ", ".join("%s: %s %s..%s" % (i.name, i.dtype, list(i.min_shape), list(i.max_shape))
                        for i in self.inputs)
        return ("kiln.CompiledModule(device=%s, inputs=[%s], outputs=%d, segments=%d)"
                % (self.device, ins, len(self.outputs), self.num_segments if self._m else 0))


def load(path, device_index=None):
    """Loads an engine file written by kiln.save / CompiledModule.save."""
    m = ctypes.c_void_p()
    check(lib().kiln_module_load(os.fsencode(path), ctypes.byref(m)))
    if device_index is None:
        device_index = 0
        torch = sys.modules.get("torch")
        if torch is not None and lib().kiln_module_device(m) == L.KILN_DEVICE_CUDA:
            device_index = torch.cuda.current_device()
    return CompiledModule(m, device_index=device_index)


def save(module, path):
    """Writes `module`'s engine file (the seed's torch_tensorrt.save)."""
    if not isinstance(module, CompiledModule):
        raise TypeError("kiln.save takes a kiln.CompiledModule, got %r" % type(module))
    module.save(path)
