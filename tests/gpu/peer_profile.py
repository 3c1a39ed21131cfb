"""The PyTorch peer's kernels for a benchmark row, to set against `kiln bench --profile`.

    python3 tests/gpu/peer_profile.py MODEL:BATCH[:PREC] ...     e.g. transformer:1:fp32 resnet18:1

Runs the peer the way bench/bench.py measures it (inference_mode, the same precision flags and
memory format), then torch.profiler over ITERS calls; prints per call: each kernel's name, count
and mean time in us, ordered by total time, and the sum. Kernel times only: launch gaps are what
the CUDA-graph rows of the benchmark take away, so they are left out here.
"""
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import bench  # noqa: E402

ITERS = 20


def profile_row(model_name, batch, prec):
    model, item_shape = bench.make_model(model_name)
    bench.set_precision_flags(prec)
    dtype = torch.float16 if prec == "fp16" else torch.float32
    m = model.to("cuda", dtype)
    x = torch.randn(batch, *item_shape, device="cuda", dtype=dtype)
    if prec == "fp16" and len(item_shape) == 3:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(10):
            m(x)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(ITERS):
                m(x)
            torch.cuda.synchronize()
    stats = collections.defaultdict(lambda: [0, 0.0])
    for ev in prof.events():
        if ev.device_type != torch.autograd.DeviceType.CUDA:
            continue
        s = stats[ev.name]
        s[0] += 1
        s[1] += ev.device_time
    total = sum(v[1] for v in stats.values()) / ITERS
    print(f"== peer {model_name} batch {batch} {prec}: {total:.1f} us of GPU work per call, "
          f"{sum(v[0] for v in stats.values()) / ITERS:.0f} kernels and copies per call")
    for name, (n, t) in sorted(stats.items(), key=lambda kv: -kv[1][1]):
        print(f"{n / ITERS:5.1f}x {t / n:8.2f} us  {t / ITERS:8.2f} us/call  {name[:110]}")


def main():
    for row in sys.argv[1:]:
        parts = row.split(":")
        profile_row(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "fp16")


if __name__ == "__main__":
    main()
