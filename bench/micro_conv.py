#!/usr/bin/env python3
"""Times single convolutions with different activations through `kiln bench --profile` (fp16,
NHWC inside the engine block), to find which conv/epilogue forms are slow on a GPU.
usage: python3 bench/micro_conv.py --kiln build-cuda/kiln [--batch 16]"""
import argparse
import os
import subprocess
import tempfile

import torch

CASES = [  # name, (cin, cout, k, groups, stride), activation, spatial[, extra kiln options]
    ("pw24-144 relu6", (24, 144, 1, 1, 1), torch.nn.ReLU6, 56),
    ("pw24-144 relu6, Clip not fused", (24, 144, 1, 1, 1), torch.nn.ReLU6, 56, ["--fallback-ops", "Clip"]),
    ("pw24-144 hardswish", (24, 144, 1, 1, 1), torch.nn.Hardswish, 56),
    ("pw24-144 relu", (24, 144, 1, 1, 1), torch.nn.ReLU, 56),
    ("pw24-144 none", (24, 144, 1, 1, 1), None, 56),
    ("dw144 relu6", (144, 144, 3, 144, 1), torch.nn.ReLU6, 56),
    ("dw144 relu", (144, 144, 3, 144, 1), torch.nn.ReLU, 56),
    ("dw144 none", (144, 144, 3, 144, 1), None, 56),
    ("pw144-24 none", (144, 24, 1, 1, 1), None, 56),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    work = tempfile.mkdtemp()
    for name, (cin, cout, k, g, s), act, hw, *extra in CASES:
        layers = [torch.nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=True)]
        if act:
            layers.append(act())
        m = torch.nn.Sequential(*layers).eval()
        path = os.path.join(work, name.replace(" ", "_").replace(",", "") + ".onnx")
        torch.onnx.export(m, (torch.randn(args.batch, cin, hw, hw),), path, input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False)
        cmd = [args.kiln, "bench", path, "--shapes", f"x:{args.batch}x{cin}x{hw}x{hw}", "--fp16", "--device", "cuda",
               "--cudagraphs", "whole", "--duration-s", "0.3", "--profile", "--min-block-size", "1"] + (extra[0] if extra else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        steps = [l for l in p.stdout.splitlines() if "cudnn" in l or "cuda." in l or "cpu." in l]
        print(f"== {name} (rc {p.returncode})")
        for l in steps:
            print("  " + l.strip())
        if p.returncode:
            print(p.stderr[-600:])


if __name__ == "__main__":
    main()
