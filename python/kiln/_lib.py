"""ctypes bindings of include/kiln.h: the structs, every function's signature, and error checks.

The library is looked up in this order:
  1. $KILN_LIBRARY (a path to libkiln.so),
  2. libkiln.so next to this file (a copy bundled by `pip install ./python`),
  3. <repo>/build/libkiln.so, i.e. python/kiln/../../build (a source checkout),
  4. ctypes.util.find_library("kiln") (a system install).
A function that the loaded library lacks (a library older than this package) raises KilnError
when called, naming the function; the rest of the package keeps working.
"""

import ctypes
import ctypes.util
import os
import threading

KILN_MAX_RANK = 8

# enum kiln_status
KILN_OK = 0
STATUS_NAMES = (
    "KILN_OK",
    "KILN_ERR_INVALID_ARGUMENT",
    "KILN_ERR_NOT_FOUND",
    "KILN_ERR_PARSE",
    "KILN_ERR_UNSUPPORTED",
    "KILN_ERR_SHAPE",
    "KILN_ERR_DTYPE",
    "KILN_ERR_OUT_OF_MEMORY",
    "KILN_ERR_IO",
    "KILN_ERR_DEVICE",
    "KILN_ERR_VERSION",
    "KILN_ERR_CORRUPT",
    "KILN_ERR_INTERNAL",
)
(KILN_ERR_INVALID_ARGUMENT, KILN_ERR_NOT_FOUND, KILN_ERR_PARSE, KILN_ERR_UNSUPPORTED,
 KILN_ERR_SHAPE, KILN_ERR_DTYPE, KILN_ERR_OUT_OF_MEMORY, KILN_ERR_IO, KILN_ERR_DEVICE,
 KILN_ERR_VERSION, KILN_ERR_CORRUPT, KILN_ERR_INTERNAL) = range(1, 13)

# enum kiln_dtype
(KILN_DTYPE_INVALID, KILN_F32, KILN_F16, KILN_BF16, KILN_F64, KILN_I64, KILN_I32, KILN_I8,
 KILN_U8, KILN_BOOL) = range(10)

# enum kiln_device
KILN_DEVICE_AUTO, KILN_DEVICE_CPU, KILN_DEVICE_CUDA = range(3)

# enum kiln_attr_type
(KILN_ATTR_INT, KILN_ATTR_FLOAT, KILN_ATTR_STRING, KILN_ATTR_INTS, KILN_ATTR_FLOATS,
 KILN_ATTR_TENSOR) = range(1, 7)

# enum kiln_precision
KILN_PRECISION_FP32, KILN_PRECISION_TF32, KILN_PRECISION_FP16, KILN_PRECISION_BF16 = range(4)

# enum kiln_cudagraphs_mode
KILN_CUDAGRAPHS_DEFAULT = -1
KILN_CUDAGRAPHS_OFF, KILN_CUDAGRAPHS_PER_BLOCK, KILN_CUDAGRAPHS_WHOLE = range(3)

_Dims = ctypes.c_int64 * KILN_MAX_RANK
_c_enum = ctypes.c_int  # C enums with small non-negative (or -1) values are ints on x86-64


class KilnError(RuntimeError):
    """A kiln call failed. `status` is the kiln_status code, `status_name` its name, and the
    message is kiln_last_error(): what was wrong and where (node, input, expected vs got)."""

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = (STATUS_NAMES[self.status] if 0 <= self.status < len(STATUS_NAMES)
                            else "KILN_STATUS_%d" % self.status)
        self.message = message
        super().__init__("%s: %s" % (self.status_name, message))


class kiln_tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", _c_enum),
        ("rank", ctypes.c_int),
        ("dims", _Dims),
        ("device", _c_enum),
    ]


class kiln_attr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("type", _c_enum),
        ("i", ctypes.c_int64),
        ("f", ctypes.c_float),
        ("s", ctypes.c_char_p),
        ("ints", ctypes.POINTER(ctypes.c_int64)),
        ("floats", ctypes.POINTER(ctypes.c_float)),
        ("count", ctypes.c_int),
        ("tensor", ctypes.POINTER(kiln_tensor)),
    ]


class kiln_input_profile(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("rank", ctypes.c_int),
        ("min", _Dims),
        ("opt", _Dims),
        ("max", _Dims),
    ]


class kiln_build_config(ctypes.Structure):
    _fields_ = [
        ("device", _c_enum),
        ("device_index", ctypes.c_int),
        ("precision", _c_enum),
        ("profiles", ctypes.POINTER(kiln_input_profile)),
        ("num_profiles", ctypes.c_int),
        ("min_block_size", ctypes.c_int),
        ("fallback_ops", ctypes.POINTER(ctypes.c_char_p)),
        ("num_fallback_ops", ctypes.c_int),
        ("require_full_compilation", ctypes.c_bool),
        ("pass_through_build_failures", ctypes.c_bool),
        ("optimize", ctypes.c_bool),
        ("workspace_limit", ctypes.c_size_t),
        ("timing_cache", ctypes.c_char_p),
        ("time_tactics", ctypes.c_bool),
        ("verbose", ctypes.c_int),
        ("keep_nchw", ctypes.c_bool),
        ("avoid_runtime_compilation", ctypes.c_bool),
    ]


class kiln_io_info(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", _c_enum),
        ("rank", ctypes.c_int),
        ("min", _Dims),
        ("opt", _Dims),
        ("max", _Dims),
    ]


class kiln_counters(ctypes.Structure):
    _fields_ = [
        ("runs", ctypes.c_uint64),
        ("captures", ctypes.c_uint64),
        ("replays", ctypes.c_uint64),
        ("cache_hits", ctypes.c_uint64),
        ("updates", ctypes.c_uint64),
        ("evictions", ctypes.c_uint64),
        ("eager_fallbacks", ctypes.c_uint64),
        ("warmups", ctypes.c_uint64),
        ("provisional", ctypes.c_uint64),
        ("upgrades", ctypes.c_uint64),
    ]


_p = ctypes.c_void_p  # opaque kiln_graph*, kiln_module*, kiln_session*
_pp = ctypes.POINTER(ctypes.c_void_p)
_s = ctypes.c_char_p
_i = ctypes.c_int
_b = ctypes.c_bool
_st = _c_enum  # kiln_status
_ptensor = ctypes.POINTER(kiln_tensor)
_pi64 = ctypes.POINTER(ctypes.c_int64)
_pcharp = ctypes.POINTER(ctypes.c_char_p)  # char ** (strings kiln allocates) / const char *const *

# name: (restype, argtypes), in the order of include/kiln.h. Every KILN_API function is here;
# tests/python/test_kiln.py checks that against the header.
SIGNATURES = {
    "kiln_last_error": (_s, []),
    "kiln_status_name": (_s, [_st]),
    "kiln_version": (_s, []),
    "kiln_free": (None, [_p]),
    "kiln_set_log_level": (None, [_i]),
    "kiln_dtype_name": (_s, [_c_enum]),
    "kiln_dtype_size": (ctypes.c_size_t, [_c_enum]),
    "kiln_graph_create": (_st, [_pp]),
    "kiln_graph_free": (None, [_p]),
    "kiln_graph_add_input": (_st, [_p, _s, _c_enum, _i, _pi64, _pcharp]),
    "kiln_graph_add_initializer": (_st, [_p, _s, _c_enum, _i, _pi64, _p]),
    "kiln_graph_add_node": (_st, [_p, _s, _s, _i, _pcharp, _i, _pcharp, _i,
                                  ctypes.POINTER(kiln_attr)]),
    "kiln_graph_add_output": (_st, [_p, _s]),
    "kiln_graph_verify": (_st, [_p]),
    "kiln_graph_to_text": (_st, [_p, _pp]),
    "kiln_graph_num_nodes": (_i, [_p]),
    "kiln_graph_load_onnx": (_st, [_s, _pp]),
    "kiln_graph_load_onnx_memory": (_st, [_p, ctypes.c_size_t, _s, _pp]),
    "kiln_build_config_init": (None, [ctypes.POINTER(kiln_build_config)]),
    "kiln_compile": (_st, [_p, ctypes.POINTER(kiln_build_config), _pp]),
    "kiln_dry_run": (_st, [_p, ctypes.POINTER(kiln_build_config), _b, _pp]),
    "kiln_module_free": (None, [_p]),
    "kiln_module_save": (_st, [_p, _s]),
    "kiln_module_load": (_st, [_s, _pp]),
    "kiln_module_num_inputs": (_i, [_p]),
    "kiln_module_num_outputs": (_i, [_p]),
    "kiln_module_input_info": (_st, [_p, _i, ctypes.POINTER(kiln_io_info)]),
    "kiln_module_output_info": (_st, [_p, _i, ctypes.POINTER(kiln_io_info)]),
    "kiln_module_device": (_c_enum, [_p]),
    "kiln_module_report": (_st, [_p, _b, _pp]),
    "kiln_module_num_segments": (_i, [_p]),
    "kiln_module_num_engine_blocks": (_i, [_p]),
    "kiln_session_create": (_st, [_p, _pp]),
    "kiln_session_free": (None, [_p]),
    "kiln_session_run": (_st, [_p, _ptensor, _i, _ptensor, _i]),
    "kiln_session_input_slot": (_st, [_p, _i, _pp]),
    "kiln_session_set_stream": (_st, [_p, _p]),
    "kiln_session_synchronize": (_st, [_p]),
    "kiln_set_cudagraphs_mode": (None, [_b]),
    "kiln_get_cudagraphs_mode": (_b, []),
    "kiln_session_set_cudagraphs_mode": (_st, [_p, _c_enum]),
    "kiln_session_cudagraphs_mode": (_c_enum, [_p]),
    "kiln_session_begin_cudagraphs": (_st, [_p]),
    "kiln_session_end_cudagraphs": (_st, [_p]),
    "kiln_session_set_graph_cache_size": (_st, [_p, _i]),
    "kiln_session_set_warmup_runs": (_st, [_p, _i]),
    "kiln_session_reset_graphs": (_st, [_p]),
    "kiln_session_set_provisional_kernels": (_st, [_p, _b]),
    "kiln_session_finish_preparation": (_st, [_p]),
    "kiln_session_counters": (_st, [_p, ctypes.POINTER(kiln_counters)]),
    "kiln_session_profile": (_st, [_p, _ptensor, _i, _b, _pp]),
    "kiln_cuda_available": (_b, []),
}


def candidate_paths():
    """The places the library is looked for, in order (entries may not exist)."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    env = os.environ.get("KILN_LIBRARY")
    if env:
        out.append(("$KILN_LIBRARY", env))
    out.append(("bundled", os.path.join(here, "libkiln.so")))
    out.append(("source tree", os.path.normpath(os.path.join(here, "..", "..", "build", "libkiln.so"))))
    found = ctypes.util.find_library("kiln")
    if found:
        out.append(("find_library", found))
    return out


def _missing(name, path):
    def fn(*args):
        raise KilnError(KILN_ERR_UNSUPPORTED,
                        "the kiln library at %s has no function %s (it is older than this package; "
                        "rebuild it)" % (path, name))
    fn.missing = True
    fn.__name__ = name
    return fn


class _Library:
    """The loaded libkiln with every function of kiln.h bound as an attribute."""

    def __init__(self):
        self.path = None
        self.cdll = None
        self.missing = []
        env = os.environ.get("KILN_LIBRARY")
        tried = []
        for where, path in candidate_paths():
            if where == "$KILN_LIBRARY" or os.path.sep in path:
                if not os.path.exists(path):
                    tried.append("%s (%s: no such file)" % (path, where))
                    if where == "$KILN_LIBRARY":
                        # an explicit choice that is wrong is an error, not a cue to look elsewhere
                        raise OSError("KILN_LIBRARY=%s: no such file" % env)
                    continue
            try:
                self.cdll = ctypes.CDLL(path)
            except OSError as e:
                if where == "$KILN_LIBRARY":
                    raise OSError("KILN_LIBRARY=%s cannot be loaded: %s" % (env, e)) from e
                tried.append("%s (%s: %s)" % (path, where, e))
                continue
            self.path = path
            break
        if self.cdll is None:
            raise OSError("libkiln.so was not found; build it (cmake -S . -B build && make -C build) "
                          "or set KILN_LIBRARY. Tried: " + "; ".join(tried))
        for name, (restype, argtypes) in SIGNATURES.items():
            try:
                fn = getattr(self.cdll, name)
            except AttributeError:
                self.missing.append(name)
                setattr(self, name, _missing(name, self.path))
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)


_lock = threading.Lock()
_instance = None


def lib():
    """The loaded library (loaded on first use)."""
    global _instance
    if _instance is None:
        with _lock:
            if _instance is None:
                _instance = _Library()
    return _instance


def last_error():
    msg = lib().kiln_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def check(status, context=None):
    """Raises KilnError for a failed status, with kiln_last_error() as the message."""
    if status != KILN_OK:
        msg = last_error() or "(kiln gave no message)"
        if context:
            msg = "%s: %s" % (context, msg)
        raise KilnError(status, msg)


def take_string(ptr):
    """A char* that kiln allocated, as str; frees it."""
    if not ptr:
        return ""
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        lib().kiln_free(ptr)
