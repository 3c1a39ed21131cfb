#!/usr/bin/python3
"""Exports the model-test set to ONNX with PyTorch's reference outputs.

    /usr/bin/python3 tests/models/export_models.py OUT_DIR [name ...]

For each model: OUT_DIR/<name>.onnx (dynamic batch axis), and for batch 1 and 3 seeded inputs and
PyTorch's outputs as .npy files (<name>.x_b1.npy, <name>.y_b1.npy, ...). Weights are random with
torch.manual_seed(0) (weights=None: nothing is downloaded). Uses Debian's torch 1.13 and
torchvision 0.14. Writes OUT_DIR/<name>.done last, holding a hash of this script, so an
interrupted export, or one made by another version of the script, is redone.
"""
import hashlib
import os
import sys

import numpy as np
import torch
import torchvision

CNN_OPSET = 13
TRANSFORMER_OPSET = 17  # exported with LayerNormalization


class Encoder(torch.nn.Module):
    """A 2-layer transformer encoder, d_model 64, 4 heads, batch first, on [batch, 16, 64]."""

    def __init__(self):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def forward(self, x):
        return self.enc(x)


def calibrate_batchnorm(net, shape):
    """Random init leaves BatchNorm's running statistics at mean 0, variance 1, so activations
    shrink layer after layer (mobilenet_v2's logits come out near 1e-9). One training-mode pass on
    seeded data with momentum 1 sets them to real batch statistics, keeping activations near unit
    scale, so the comparison sees every layer."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.momentum = 1.0
    net.train()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        net(torch.rand((4,) + shape, generator=gen) * 2 - 1)


def build(name):
    torch.manual_seed(0)
    if name == "transformer":
        return Encoder(), (16, 64), TRANSFORMER_OPSET
    ctor = getattr(torchvision.models, name)
    net = ctor(weights=None)
    calibrate_batchnorm(net, (3, 224, 224))
    return net, (3, 224, 224), CNN_OPSET


MODELS = ["resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1", "densenet121", "efficientnet_b0",
          "transformer"]


def export(name, out):
    net, shape, opset = build(name)
    net.eval()
    gen = torch.Generator().manual_seed(1)
    xs = {b: torch.rand((b,) + shape, generator=gen) * 2 - 1 for b in (1, 3)}
    path = os.path.join(out, name + ".onnx")
    # grad stays enabled: under no_grad torch 1.13 runs TransformerEncoder through a fused fast path
    # that the exporter cannot write; the reference uses the same (exported) path
    torch.onnx.export(net, (xs[1],), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=opset,
                      do_constant_folding=True)
    for b, x in xs.items():
        y = net(x).detach()
        np.save(os.path.join(out, f"{name}.x_b{b}.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out, f"{name}.y_b{b}.npy"), y.numpy().astype(np.float32))
    with open(os.path.join(out, name + ".done"), "w") as f:
        f.write(script_hash())


def script_hash():
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def is_done(out, name):
    try:
        with open(os.path.join(out, name + ".done")) as f:
            return f.read().strip() == script_hash()
    except OSError:
        return False


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    names = sys.argv[2:] or MODELS
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    for name in names:
        if is_done(out, name):
            continue
        print(f"exporting {name}", file=sys.stderr)
        export(name, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
