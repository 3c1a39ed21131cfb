"""
Torch Export with Cudagraphs, on kiln
=====================================

Torch-TensorRT's tutorial "Torch Export with Cudagraphs" (seed/000_c276e1d057523f11.txt), every
step, written against kiln. Differences from the seed, on purpose:
- ResNet-18 has seeded random weights (torchvision, weights=None) instead of downloaded ones;
- every output is checked against PyTorch's and the script fails if one does not match. The
  tolerance (fp32): max |kiln - torch| <= 1e-3 * max|torch| + 1e-3 * |torch|, elementwise, i.e.
  rtol 1e-3 and atol 1e-3 relative to the output's scale;
- `--device cpu` runs the same steps on kiln's CPU backend with smaller batches (profile 1..4,
  opt 2, 224x224) so that CI on two cores stays quick. There kiln's "CUDA graphs" are its CPU
  recorder: prepared kernel lists replayed without dispatch, under the same graph manager.

Run: PYTHONPATH=python python3 examples/torch_export_cudagraphs.py [--device cuda|cpu]
"""

import argparse
import sys

# Imports and Model Definition
# ^^^^^^^^^^^^^^^^^^^^^^^^^^^^
import torch
import torchvision.models as models

import kiln

parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
args = parser.parse_args()
device = args.device
if device == "cuda" and not (torch.cuda.is_available() and kiln.cuda_available()):
    sys.exit("--device cuda needs a GPU that both torch and kiln can use "
             "(torch: %s, kiln: %s); use --device cpu"
             % (torch.cuda.is_available(), kiln.cuda_available()))

# PyTorch's own convolutions and matrix products may use TF32 on the GPU by default; the
# reference here is true fp32, like kiln's default precision.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False

# Batch sizes of the seed on the GPU; smaller ones on the CPU.
if device == "cuda":
    MIN, OPT, MAX, NEW_1, NEW_2 = 1, 8, 16, 8, 4
else:
    MIN, OPT, MAX, NEW_1, NEW_2 = 1, 2, 4, 2, 1

RTOL = ATOL = 1e-3
checked = []


def check(name, out, ref):
    """Asserts that a kiln output matches PyTorch's within the documented tolerance."""
    assert isinstance(out, torch.Tensor), "%s: kiln returned %r" % (name, type(out))
    assert out.shape == ref.shape, "%s: shape %s, PyTorch has %s" % (name, tuple(out.shape), tuple(ref.shape))
    assert out.device == ref.device, "%s: on %s, PyTorch's on %s" % (name, out.device, ref.device)
    out, ref = out.double(), ref.double()
    err = (out - ref).abs()
    scale = ref.abs().max().item()
    bound = ATOL * scale + RTOL * ref.abs()
    worst = (err - bound).max().item()
    assert worst <= 0, ("%s: max |kiln - torch| = %.3g exceeds the tolerance (scale %.3g) by %.3g"
                        % (name, err.max().item(), scale, worst))
    checked.append(name)
    print("  %-40s matches PyTorch (max abs err %.2e, output scale %.2e)" % (name, err.max().item(), scale))


# Compilation with `kiln.compile` Using Default Settings
# ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

# We begin by defining and initializing a model (seeded random weights, nothing downloaded)
torch.manual_seed(0)
try:
    model = models.resnet18(weights=None)
except TypeError:  # torchvision older than 0.13
    model = models.resnet18(pretrained=False)
model = model.eval().to(device)

# Define sample inputs
inputs = torch.randn((MAX, 3, 224, 224)).to(device)

# Next, we compile the model using kiln.compile. `ir="dynamo"` is accepted for compatibility with
# the seed and ignored: kiln exports the module to ONNX and compiles it ahead of time.
opt = kiln.compile(
    model,
    ir="dynamo",
    inputs=kiln.Input(
        min_shape=(MIN, 3, 224, 224),
        opt_shape=(OPT, 3, 224, 224),
        max_shape=(MAX, 3, 224, 224),
        dtype=torch.float,
        name="x",
    ),
    device=device,
)
print("compiled ResNet-18 for %s: %d segment(s), %d engine block(s)"
      % (device, opt.num_segments, opt.num_engine_blocks))

with torch.no_grad():
    ref = model(inputs)

# Inference using the Cudagraphs Integration
# ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

# We can enable the cudagraphs API with a context manager
with kiln.runtime.enable_cudagraphs(opt) as cudagraphs_module:
    out_trt = cudagraphs_module(inputs)
    check("enable_cudagraphs, batch %d" % MAX, out_trt, ref)
    c = opt.counters()
    assert c["captures"] >= 1 and c["replays"] >= 1, "no graph was recorded and replayed: %s" % c

# Alternatively, we can set the cudagraphs mode for the session
kiln.runtime.set_cudagraphs_mode(True)
assert kiln.runtime.get_cudagraphs_mode()
out_trt = opt(inputs)
check("set_cudagraphs_mode(True)", out_trt, ref)
out_trt = opt(inputs)  # replayed
check("set_cudagraphs_mode(True), replay", out_trt, ref)

# We can also turn off cudagraphs mode and perform inference as normal
kiln.runtime.set_cudagraphs_mode(False)
assert not kiln.runtime.get_cudagraphs_mode()
out_trt = opt(inputs)
check("set_cudagraphs_mode(False)", out_trt, ref)

# If we provide new input shapes, cudagraphs will re-record the graph
inputs_2 = torch.randn((NEW_1, 3, 224, 224)).to(device)
inputs_3 = torch.randn((NEW_2, 3, 224, 224)).to(device)

before = opt.counters()
with kiln.runtime.enable_cudagraphs(opt) as cudagraphs_module:
    out_trt_2 = cudagraphs_module(inputs_2)
    out_trt_3 = cudagraphs_module(inputs_3)
after = opt.counters()
with torch.no_grad():
    check("new shape, batch %d" % NEW_1, out_trt_2, model(inputs_2))
    check("new shape, batch %d" % NEW_2, out_trt_3, model(inputs_3))
assert after["captures"] - before["captures"] == 2, \
    "two new shapes should record two graphs: %s -> %s" % (before, after)
print("re-recorded for new shapes: %d captures, %d replays in this session"
      % (after["captures"], after["replays"]))

# Cuda graphs with module that contains graph breaks
# --------------------------------------------------
# A graph break runs as a plain per-op kernel on the same device, in the same planned memory, so
# inside enable_cudagraphs kiln records the whole module (engine blocks and fallback ops) as one
# graph, after a warm-up run.


class SampleModel(torch.nn.Module):
    def forward(self, x):
        return torch.relu((x + 2) * 0.5)


model = SampleModel().eval().to(device)
input = torch.randn((1, 3, 224, 224)).to(device)

# The 'torch_executed_ops' compiler option is used in this example to intentionally introduce
# graph breaks within the module: Mul runs as a fallback op between two engine blocks.
opt_with_graph_break = kiln.compile(
    model,
    ir="dynamo",
    inputs=[input],
    min_block_size=1,
    pass_through_build_failures=True,
    torch_executed_ops={"torch.ops.aten.mul.Tensor"},
    device=device,
)
assert opt_with_graph_break.num_segments == 3, (
    "Add | Mul (forced out) | Relu should make 3 segments, got %d:\n%s"
    % (opt_with_graph_break.num_segments, opt_with_graph_break.report()))

# If module has graph breaks, whole submodules are recorded and replayed by cuda graphs
with kiln.runtime.enable_cudagraphs(opt_with_graph_break) as cudagraphs_module:
    assert opt_with_graph_break.cudagraphs_mode == "whole"
    out = cudagraphs_module(input)
    check("graph breaks, whole-module graph", out, model(input))
    out = cudagraphs_module(input)
    check("graph breaks, whole-module replay", out, model(input))
c = opt_with_graph_break.counters()
assert c["captures"] == 1 and c["replays"] == 2, "whole-module graph: %s" % c

print("all %d outputs match PyTorch (%s, rtol %g, atol %g relative to the output scale)"
      % (len(checked), device, RTOL, ATOL))
