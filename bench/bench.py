#!/usr/bin/env python3
"""kiln against PyTorch on one GPU, in one run.

Exports torchvision resnet18, resnet50, mobilenet_v2, efficientnet_b0, a transformer encoder
(seeded random weights, dynamic batch) and the seed's graph-break model (seed_graph_break:
relu((x + 2) * 0.5), whose Mul kiln is told to run as a fallback op, as the seed's
torch_executed_ops does, so kiln runs engine block | fallback op | engine block) to ONNX, then for
each (model, precision, batch) row measures, on the same card and in the same run:
  PyTorch eager, eager + torch.cuda.CUDAGraph, torch.compile(mode="reduce-overhead") (selected
  rows: it compiles for minutes), and kiln with CUDA graphs off, per engine block and for the
  whole module (`kiln bench`, the C tool, so no Python overhead is counted for kiln).
Timing: CUDA events, median of many runs after warm-up; fp16 peers use channels_last and
cudnn.benchmark, as in PEERS.md. Writes bench/RESULTS.md (and a JSON of every number).

usage: python3 bench/bench.py --kiln build-gpu/kiln [--quick|--full] [--models a,b] [--out bench/RESULTS.md]
       python3 bench/bench.py --dry-run [--models a,b] --out /tmp/r.md   (no GPU: export, print the
       kiln commands, write the table and JSON with empty cells)
"""
import argparse
import datetime
import inspect
import re
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))

# (model, precision, batches, torch.compile batches)
FULL_MATRIX = [
    ("resnet18", "fp16", [1, 8, 16, 64, 256], [1, 16]),
    ("resnet18", "fp32", [1, 8, 16, 64, 256], [1]),
    ("resnet18", "tf32", [1, 8, 16, 64, 256], []),
    ("resnet50", "fp16", [1, 8, 16, 64, 256], [1]),
    ("resnet50", "fp32", [1, 16, 256], []),
    ("resnet50", "tf32", [1, 16, 256], []),
    ("mobilenet_v2", "fp16", [1, 8, 16, 64, 256], [1]),
    ("mobilenet_v2", "fp32", [1, 16, 256], []),
    ("efficientnet_b0", "fp16", [1, 16, 256], []),
    ("efficientnet_b0", "fp32", [1, 16], []),
    ("transformer", "fp16", [1, 16, 64], []),
    ("transformer", "fp32", [1, 16, 64], []),
    ("seed_graph_break", "fp32", [1, 8], []),
]
# The matrix bench/RESULTS.md is made from: every target row of issue 10 and a row or two of each
# model, sized for a short device lease (run it in parts with --models when a call is limited).
STANDARD_MATRIX = [
    ("resnet18", "fp16", [1, 8, 16, 256], [1, 16]),
    ("resnet18", "fp32", [1, 16], []),
    ("resnet18", "tf32", [1, 16], []),
    ("mobilenet_v2", "fp16", [1, 16], [1]),
    ("resnet50", "fp16", [1, 16, 256], [1]),
    ("resnet50", "fp32", [1], []),
    ("efficientnet_b0", "fp16", [1], []),
    ("transformer", "fp16", [1, 16], []),
    ("transformer", "fp32", [1], []),
    ("seed_graph_break", "fp32", [1], []),
]
QUICK_MATRIX = [
    ("resnet18", "fp16", [1, 8, 16, 256], [1, 16]),
    ("resnet18", "fp32", [1, 16], []),
    ("resnet18", "tf32", [1, 16], []),
    ("resnet50", "fp16", [1, 256], []),
    ("mobilenet_v2", "fp16", [1], []),
    ("transformer", "fp32", [1, 16], []),
    ("seed_graph_break", "fp32", [1], []),
]

# kiln build options per model beyond the precision (the graph break of the seed: Mul is forced
# out of the engine blocks, named as the seed's torch_executed_ops names it; min block size 1 so
# Add and Relu each stay an engine block of one op).
KILN_ARGS = {
    "seed_graph_break": ["--fallback-ops", "torch.ops.aten.mul.Tensor", "--min-block-size", "1"],
}


class Encoder(torch.nn.Module):
    """A 2-layer TransformerEncoder on [batch, 128, 256] sequences."""

    def __init__(self):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(d_model=256, nhead=8, dim_feedforward=1024, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def forward(self, x):
        return self.enc(x)


class SampleModel(torch.nn.Module):
    """The seed's graph-break model (examples/torch_export_cudagraphs.py), on [batch, 3, 224, 224]."""

    def forward(self, x):
        return torch.relu((x + 2) * 0.5)


def make_model(name):
    torch.manual_seed(0)
    if name == "transformer":
        return Encoder().eval(), (128, 256)
    if name == "seed_graph_break":
        return SampleModel().eval(), (3, 224, 224)
    ctor = getattr(torchvision.models, name)
    return ctor(weights=None).eval(), (3, 224, 224)


def export(name, model, item_shape, path):
    x = torch.randn(2, *item_shape)
    # the TorchScript exporter; torch before 2.5 has no `dynamo` argument (and no other exporter)
    extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, **extra)


def set_precision_flags(prec):
    tf32 = prec == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def time_fn(fn, warmup=10, iters=100, max_s=3.0):
    """Median ms of fn() by CUDA events, after warm-up; fewer iterations if one run is slow."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.time()
    fn()
    torch.cuda.synchronize()
    one = max(time.time() - t0, 1e-6)
    iters = max(10, min(iters, int(max_s / one)))
    times = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def peers(model, item_shape, prec, batch, with_compile):
    dev = torch.device("cuda")
    dtype = torch.float16 if prec == "fp16" else torch.float32
    m = model.to(dev, dtype)
    x = torch.randn(batch, *item_shape, device=dev, dtype=dtype)
    if prec == "fp16" and len(item_shape) == 3:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    out = {}
    with torch.inference_mode():
        out["eager"] = time_fn(lambda: m(x))
        # eager + CUDA graph: capture once on a side stream, replay
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                m(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            y = m(x)
        out["eager_graph"] = time_fn(g.replay)
        del g, y
        if with_compile:
            try:
                cm = torch.compile(m, mode="reduce-overhead")
                for _ in range(3):
                    cm(x)
                out["compile_ro"] = time_fn(lambda: cm(x))
            except Exception as e:  # a peer that fails is reported, not fatal
                out["compile_ro_error"] = str(e)[:200]
    return out


def kiln_cmd(kiln, name, onnx_path, prec, batch, item_shape, cache, duration, js, device="cuda"):
    shape = "x".join(str(d) for d in (batch, *item_shape))
    return [kiln, "bench", onnx_path, "--shapes", f"x:{shape}", f"--{prec}", "--device", device,
            "--cudagraphs", "all", "--duration-s", str(duration), "--timing-cache", cache, "--json", js,
            *KILN_ARGS.get(name, [])]


def kiln_bench(kiln, name, onnx_path, prec, batch, item_shape, cache, duration, device="cuda"):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        js = f.name
    cmd = kiln_cmd(kiln, name, onnx_path, prec, batch, item_shape, cache, duration, js, device)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip()[-400:], "cmd": " ".join(cmd)}
    with open(js) as f:
        data = json.load(f)
    os.unlink(js)
    res = {"cmd": " ".join(cmd), "wall_s": wall}
    # "device cuda, 3 segments (2 engine blocks); ..." on the first lines of the report
    m = re.search(r"(\d+) segments? \((\d+) engine blocks?\)", p.stdout)
    if m:
        res["segments"], res["engine_blocks"] = int(m.group(1)), int(m.group(2))
    for r in data.get("runs", []):
        res[r["cudagraphs"]] = r["latency_ms"]["median"]
        res.setdefault("captures", {})[r["cudagraphs"]] = r.get("counters", {}).get("captures")
        res.setdefault("first_run_ms", {})[r["cudagraphs"]] = r.get("first_run_ms")
    return res


# Rows for the first run at a new shape (issue 10: within 3 ms for ResNet-50): each engine is built
# for batch MIN..MAX with opt = the run batch, runs at that batch, then at batch + 1 in the same session.
NEW_SHAPE_ROWS = [
    ("resnet50", "fp16", 1, 8, []),
    ("resnet50", "fp16", 1, 8, ["--avoid-runtime-compilation"]),
    ("resnet50", "fp16", 1, 8, ["--provisional-kernels"]),
    ("resnet50", "fp16", 1, 8, ["--avoid-runtime-compilation", "--provisional-kernels"]),
    ("resnet18", "fp16", 1, 16, []),
    ("resnet18", "fp16", 1, 16, ["--avoid-runtime-compilation"]),
    ("resnet18", "fp16", 1, 16, ["--provisional-kernels"]),
    ("transformer", "fp32", 1, 4, []),
]


def kiln_new_shape(kiln, onnx_path, prec, batch, max_batch, item_shape, cache, extra, device="cuda"):
    dims = lambda b: "x".join(str(d) for d in (b, *item_shape))
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        js = f.name
    cmd = [kiln, "bench", onnx_path, "--min", f"x:{dims(1)}", "--opt", f"x:{dims(batch)}", "--max", f"x:{dims(max_batch)}",
           "--shapes", f"x:{dims(batch)}", f"--{prec}", "--device", device, "--cudagraphs", "all", "--duration-s", "0.2",
           "--timing-cache", cache, "--json", js, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip()[-400:], "cmd": " ".join(cmd)}
    with open(js) as f:
        data = json.load(f)
    os.unlink(js)
    res = {"cmd": " ".join(cmd)}
    for r in data.get("runs", []):
        res.setdefault("first_run_ms", {})[r["cudagraphs"]] = r.get("first_run_ms")
        res.setdefault("new_shape_ms", {})[r["cudagraphs"]] = r.get("new_shape_ms")
        # --provisional-kernels: when the tuned kernels were ready, and the run that swapped them in
        res.setdefault("new_shape_ready_ms", {})[r["cudagraphs"]] = r.get("new_shape_ready_ms")
        res.setdefault("new_shape_swap_ms", {})[r["cudagraphs"]] = r.get("new_shape_swap_ms")
        res.setdefault("latency_ms", {})[r["cudagraphs"]] = r["latency_ms"]["median"]
        res["new_shape_batch"] = r.get("new_shape_batch")
    return res


def versions():
    if not torch.cuda.is_available():  # --dry-run, or kiln on the CPU
        return {"card": "no GPU", "sms": 0, "torch": torch.__version__, "cuda": torch.version.cuda,
                "cudnn": None, "python": platform.python_version(), "driver": "?"}
    props = torch.cuda.get_device_properties(0)
    v = {
        "card": props.name,
        "sms": props.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": platform.python_version(),
    }
    try:
        v["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                     capture_output=True, text=True).stdout.strip()
    except OSError:
        v["driver"] = "?"
    return v


def fmt(x):
    return "" if x is None else f"{x:.3f}"


def write_results(path, rows, ver, cmdline):
    lines = [
        "# kiln vs PyTorch: results",
        "",
        f"Produced by `{cmdline}` on {datetime.date.today()}.",
        f"Card: {ver['card']} ({ver['sms']} SMs), driver {ver['driver']}, CUDA {ver['cuda']}, "
        f"cuDNN {ver['cudnn']}, PyTorch {ver['torch']}.",
        "",
        "Latency in ms per batch, median of many runs (CUDA events for PyTorch, `kiln bench` for kiln:",
        "session run + synchronize, inputs in a runtime slot). Random weights (seed 0), random inputs.",
        "`ratio` = kiln with graphs / best peer (below 1: kiln is faster).",
        "A model cell with `N seg / M blk` ran in kiln as N segments of which M engine blocks (the",
        "others fallback ops between them): seed_graph_break is the seed's relu((x + 2) * 0.5) with Mul",
        "forced out (`--fallback-ops torch.ops.aten.mul.Tensor --min-block-size 1`), so `kiln block`",
        "replays two graphs around an eager fallback op and `kiln whole` one graph over all three.",
        "That model is three elementwise kernels (tens of us): its row measures launch and graph",
        "overheads, and kiln's host-clock run + synchronize carries a few us that CUDA events around a",
        "peer's launches do not, so its ratio says more about overhead than about kernels.",
        "",
        "| model | prec | batch | eager | eager + CUDA graph | torch.compile r-o | kiln off | kiln block | kiln whole | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r.get("new_shape"):
            continue
        p, k = r["peers"], r["kiln"]
        peer_ms = [v for v in p.values() if isinstance(v, float)]
        best_peer = min(peer_ms) if peer_ms else None
        kg = min([k[m] for m in ("block", "whole") if isinstance(k.get(m), float)] or [float("nan")])
        ratio = kg / best_peer if best_peer else float("nan")
        if "error" in k:
            kcells = f"error: {k['error'][:120]} | | "
        else:
            kcells = f"{fmt(k.get('off'))} | {fmt(k.get('block'))} | {fmt(k.get('whole'))}"
        rcell = "–" if ratio != ratio else f"{ratio:.2f}"  # NaN when kiln or the peers did not run
        model = r["model"]
        if r["model"] in KILN_ARGS and "segments" in k:
            model += f" ({k['segments']} seg / {k['engine_blocks']} blk)"
        lines.append(f"| {model} | {r['prec']} | {r['batch']} | {fmt(p.get('eager'))} | "
                     f"{fmt(p.get('eager_graph'))} | {fmt(p.get('compile_ro'))} | {kcells} | {rcell} |")
    lines += ["", "First run at the batch in a fresh session (kiln whole: the steps' per-shape preparation",
              "with cuDNN plan finalization, warm-up, record, instantiate and launch; the engine is already",
              "built), in ms:", "", "| model | prec | batch | kiln off | kiln whole |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        fr = r["kiln"].get("first_run_ms") or {}
        if fr and not r.get("new_shape"):
            lines.append(f"| {r['model']} | {r['prec']} | {r['batch']} | {fmt(fr.get('off'))} | {fmt(fr.get('whole'))} |")
    shape_rows = [r for r in rows if r.get("new_shape")]
    if shape_rows:
        lines += ["", "First run at a new shape in a warm session (`new_shape_ms` of `kiln bench`: an engine built for",
                  "batch 1..max with opt = batch, timed at the batch, then one run at batch + 1 in the same session:",
                  "the steps' per-shape preparation, record, instantiate and launch), in ms; a fresh session's",
                  "first run at the batch for comparison. With `--provisional-kernels` the new shape's first run",
                  "uses kiln's own convolutions while cuDNN's plans are prepared in the background; \"ready\" is",
                  "when they were (from the start of that run) and \"swap\" the next run, which swaps them in and",
                  "records the shape again (whole-module graphs):", "",
                  "| model | prec | flags | batch -> new | kiln off | kiln block | kiln whole | ready whole | swap whole "
                  "| fresh session whole | latency whole |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in shape_rows:
            k = r["kiln"]
            flags = " ".join(r.get("flags") or []) or "-"
            if "error" in k:
                lines.append(f"| {r['model']} | {r['prec']} | {flags} | {r['batch']} | error: {k['error'][:120]} | | | | | | |")
                continue
            ns, fr, lat = k.get("new_shape_ms") or {}, k.get("first_run_ms") or {}, k.get("latency_ms") or {}
            ready, swap = k.get("new_shape_ready_ms") or {}, k.get("new_shape_swap_ms") or {}
            lines.append(f"| {r['model']} | {r['prec']} | {flags} | {r['batch']} -> {k.get('new_shape_batch')} | "
                         f"{fmt(ns.get('off'))} | {fmt(ns.get('block'))} | {fmt(ns.get('whole'))} | "
                         f"{fmt(ready.get('whole'))} | {fmt(swap.get('whole'))} | {fmt(fr.get('whole'))} | "
                         f"{fmt(lat.get('whole'))} |")
    lines.append("")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", help="path of the kiln tool built with CUDA")
    ap.add_argument("--quick", action="store_true", help="a smaller matrix for a short device lease")
    ap.add_argument("--full", action="store_true", help="every model at batch 1, 8, 16, 64, 256 in each precision")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--duration", type=float, default=0.5, help="seconds per kiln mode")
    ap.add_argument("--models", default="", help="comma list to restrict the matrix")
    ap.add_argument("--precisions", default="", help="comma list to restrict the matrix (fp16,fp32,tf32)")
    ap.add_argument("--compile-rows", type=int, default=-1,
                    help="measure torch.compile on at most this many rows (it compiles for about a minute each)")
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU needed: export the models, print the kiln commands, write the table and "
                         "JSON with empty cells (checks the script, not the numbers)")
    ap.add_argument("--kiln-device", default="cuda",
                    help="where kiln runs (cpu: to check the script on a machine without a GPU; the "
                         "PyTorch peers are skipped when torch sees no GPU)")
    args = ap.parse_args()
    if not args.dry_run and not args.kiln:
        ap.error("--kiln is required (unless --dry-run)")
    matrix = QUICK_MATRIX if args.quick else FULL_MATRIX if args.full else STANDARD_MATRIX
    keep_models = set(args.models.split(",")) if args.models else set()
    keep_precs = set(args.precisions.split(",")) if args.precisions else set()
    if args.models:
        keep = set(args.models.split(","))
        known = {m[0] for m in FULL_MATRIX + STANDARD_MATRIX + QUICK_MATRIX}
        if keep - known:
            ap.error(f"unknown model(s) {', '.join(sorted(keep - known))}; known: {', '.join(sorted(known))}")
        matrix = [m for m in matrix if m[0] in keep]
    if args.precisions:
        keep = set(args.precisions.split(","))
        matrix = [m for m in matrix if m[1] in keep]
    compile_left = args.compile_rows if args.compile_rows >= 0 else 10**9
    work = tempfile.mkdtemp(prefix="kiln-bench-")
    cache = os.path.join(work, "timing.cache")
    ver = versions()
    print(f"card: {ver['card']}, torch {ver['torch']}, cuDNN {ver['cudnn']}", flush=True)
    rows = []
    exported = {}
    for name, prec, batches, compile_batches in matrix:
        model, item_shape = make_model(name)
        if name not in exported:
            path = os.path.join(work, f"{name}.onnx")
            export(name, model, item_shape, path)
            exported[name] = path
        set_precision_flags(prec)
        for b in batches:
            with_compile = b in compile_batches and compile_left > 0
            if args.dry_run:
                cmd = kiln_cmd(args.kiln or "kiln", name, exported[name], prec, b, item_shape, cache,
                               args.duration, os.path.join(work, "run.json"), args.kiln_device)
                row = {"model": name, "prec": prec, "batch": b, "peers": {}, "kiln": {"cmd": " ".join(cmd)},
                       "dry_run": True}
                rows.append(row)
                print(json.dumps(row), flush=True)
                continue
            compile_left -= with_compile
            p = peers(model, item_shape, prec, b, with_compile) if torch.cuda.is_available() else {}
            model = model.float().to("cpu")
            k = kiln_bench(args.kiln, name, exported[name], prec, b, item_shape, cache, args.duration,
                           args.kiln_device)
            row = {"model": name, "prec": prec, "batch": b, "peers": p, "kiln": k}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for name, prec, b, max_b, extra in NEW_SHAPE_ROWS:
        if args.full or (args.models and name not in keep_models) or (args.precisions and prec not in keep_precs):
            continue
        item_shape = make_model(name)[1]
        if name not in exported:
            exported[name] = os.path.join(work, f"{name}.onnx")
            export(name, make_model(name)[0], item_shape, exported[name])
        if args.dry_run:
            continue
        k = kiln_new_shape(args.kiln, exported[name], prec, b, max_b, item_shape, cache, extra, args.kiln_device)
        row = {"model": name, "prec": prec, "batch": b, "new_shape": True, "flags": extra, "peers": {}, "kiln": k}
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_results(args.out, rows, ver, "python3 bench/bench.py " + " ".join(sys.argv[1:]))
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"versions": ver, "rows": rows}, f, indent=1)
    print(open(args.out).read())


if __name__ == "__main__":
    main()
