#!/usr/bin/python3
"""Scripted tests of the `kiln` command-line tool (registered in tests.cmake, label "cli").

usage: cli_test.py --kiln PATH --models DIR --work DIR CASE

Each case runs the tool and checks exit codes, messages and results; results are compared with
NumPy computations of the same models (the models come from make_models.py). The script prints
"N passed, N failed" and exits non-zero on any failure.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

PASSED = 0
FAILED = 0
ARGS = None


def check(cond, what, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL: %s%s" % (what, ("\n  " + detail.replace("\n", "\n  ")) if detail else ""), file=sys.stderr)
    return cond


def kiln(*args, timeout=300):
    cmd = [ARGS.kiln] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ARGS.work)
    return p.returncode, p.stdout, p.stderr


def show(rc, out, err):
    return "rc=%d\nstdout: %s\nstderr: %s" % (rc, out[-3000:], err[-3000:])


def model(name):
    return os.path.join(ARGS.models, name + ".onnx")


def expect(args, rc_want, needle=None, stream="err", what=None):
    rc, out, err = kiln(*args)
    what = what or "kiln " + " ".join(str(a) for a in args)
    ok = check(rc == rc_want, "%s: exit %d" % (what, rc_want), show(rc, out, err))
    if needle is not None:
        text = err if stream == "err" else out
        check(needle in text, "%s: %s mentions %r" % (what, "stderr" if stream == "err" else "stdout", needle),
              show(rc, out, err))
    return ok, out, err


def onnx_initializer(path, name):
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    for t in m.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    raise KeyError(name)


# ---- cases that need no model import ----------------------------------------------------------

def case_help():
    rc, out, err = kiln("--help")
    check(rc == 0, "kiln --help exits 0", show(rc, out, err))
    for cmd in ["demo", "build", "run", "bench", "inspect", "conformance"]:
        check(re.search(r"^\s+%s\s" % cmd, out, re.M) is not None, "kiln --help lists %s" % cmd, out)
        rc, out2, err2 = kiln(cmd, "--help")
        check(rc == 0, "kiln %s --help exits 0" % cmd, show(rc, out2, err2))
        check(out2.startswith("usage: kiln %s" % cmd), "kiln %s --help starts with its usage line" % cmd, out2)
        rc, out3, _ = kiln(cmd, "-h")
        check(rc == 0 and out3 == out2, "kiln %s -h is --help" % cmd)
    for cmd, words in [("build", ["--dry-run", "--fallback-ops", "--min-block-size", "--require-full-compilation",
                                  "--pass-through-build-failures", "--timing-cache", "--fp16", "--bf16", "--tf32",
                                  "--device", "--workspace-mib", "-o"]),
                       ("run", ["--input", "--output-dir", "--shapes", "--cudagraphs", "--seed"]),
                       ("bench", ["--warmup-ms", "--duration-s", "--iterations", "--json", "all", "p99", "enqueue"]),
                       ("inspect", ["--json", "--graph", "memory plan"])]:
        _, out, _ = kiln(cmd, "--help")
        for w in words:
            check(w in out, "kiln %s --help mentions %s" % (cmd, w), out)
    rc, out, err = kiln()
    check(rc == 2 and "usage: kiln COMMAND" in err, "kiln without a command: usage on stderr, exit 2", show(rc, out, err))
    expect(["frobnicate"], 2, "unknown command 'frobnicate'")
    rc, out, err = kiln("--version")
    check(rc == 0 and out.startswith("kiln "), "kiln --version", show(rc, out, err))


def case_bad_flags():
    m = model("add_relu")
    for cmd in ["build", "run", "bench", "inspect"]:
        expect([cmd, m, "--bogus"], 2, "unknown flag '--bogus'")
        expect([cmd, m, "--device", "tpu"], 2, "--device 'tpu': expected cpu, cuda, cuda:N or auto")
        expect([cmd, m, "--min-block-size"], 2, "--min-block-size needs a value")
        expect([cmd, m, "--min-block-size", "lots"], 2, "expected an integer >= 0")
        expect([cmd, m, "--fp16", "--bf16"], 2, "--fp16 and --bf16 contradict each other")
        expect([cmd, m, "--fallback-ops", "torch.ops.aten.frobnicate.default"], 2,
               "unknown torch op 'torch.ops.aten.frobnicate.default'")
        expect([cmd, m, "--fallback-ops", "Mul,,Add"], 2, "empty entry")
        expect([cmd, m, m], 2, "more than one model given")
        expect([cmd], 2, "no model given")
        expect([cmd, m, "--fp16=yes"], 2, "--fp16 takes no value")
    for cmd in ["run", "bench"]:
        expect([cmd, m, "--cudagraphs", "sometimes"], 2, "--cudagraphs 'sometimes'")
        expect([cmd, m, "--input", "=x.npy"], 2, "expected NAME=FILE.npy")
        expect([cmd, m, "--seed", "-4"], 2, "--seed '-4'")
    expect(["run", m, "--cudagraphs", "all"], 2, "expected off, block or whole")
    expect(["bench", m, "--iterations", "0"], 2, "--iterations '0': expected an integer >= 1")
    expect(["bench", m, "--duration-s", "soon"], 2, "--duration-s 'soon'")
    expect(["bench", m, "--warmup-ms", "-1"], 2, "--warmup-ms '-1'")
    expect(["build", m, "--json"], 2, "--json goes with --dry-run")
    expect(["build", m, "--dry-run", "-o", "x.kiln"], 2, "--dry-run builds nothing")
    expect(["build", "m.kiln", "-o", "y.kiln"], 2, "already compiled")
    expect(["inspect", "m.kiln", "--graph"], 2, "--graph shows an imported ONNX graph")
    expect(["run", "m.kiln", "--fp16"], 2, "--fp16 applies to .onnx models")
    expect(["build", m, "--workspace-mib", "0"], 2, "--workspace-mib '0': expected a whole number of MiB")
    expect(["build", m, "--workspace-mib", "lots"], 2, "--workspace-mib 'lots'")
    expect(["run", "m.kiln", "--workspace-mib", "64"], 2, "--workspace-mib applies to .onnx models")


def case_bad_shapes():
    m = model("add_relu")
    cases = [("x:8xAx3", "'A' in '8xAx3' is not a digit"),
             ("8x3", "'8x3' has no input name"),
             ("x:", "input 'x' has no dims after ':'"),
             ("x:-1x8", "negative dim"),
             ("x:8x-3", "negative dim"),
             ("x:8xx3", "empty dim"),
             (":8x3", "empty input name"),
             ("x:1x2x3x4x5x6x7x8x9", "more than 8 dims"),
             ("x:2x8,x:4x8", "input 'x' is given twice"),
             ("x:2x8,", "empty entry")]
    for cmd in ["build", "run", "bench", "inspect"]:
        for flag in ["--shapes", "--min", "--opt", "--max"]:
            for text, needle in cases:
                expect([cmd, m, flag, text], 2, needle, what="kiln %s %s %s" % (cmd, flag, text))
    # profiles that contradict themselves are usage errors too (found before the model loads)
    expect(["build", m, "--min", "x:4x8", "--opt", "x:2x8", "--max", "x:16x8"], 2, "need min <= opt <= max")
    expect(["build", m, "--min", "x:4x8", "--max", "x:16x8x1"], 2, "--min has 2 dims but --max has 3")
    expect(["build", m, "--shapes", "x:4x8", "--max", "x:16x8"], 2, "given by --shapes and by --min/--opt/--max")


def case_load_errors():
    expect(["build", "does_not_exist.onnx", "--dry-run"], 1, "kiln build: loading does_not_exist.onnx:")
    expect(["inspect", "does_not_exist.onnx"], 1, "kiln inspect: loading does_not_exist.onnx:")
    expect(["run", "does_not_exist.kiln"], 1, "kiln run: loading does_not_exist.kiln:")
    expect(["build", model("not_onnx"), "--dry-run"], 1, "loading %s:" % model("not_onnx"))
    expect(["bench", model("not_onnx"), "--shapes", "x:1x8"], 1, "kiln bench: loading")


# ---- cases that import ONNX ----------------------------------------------------------------------

def segments_of(text):
    return re.findall(r"^\s*segment (\d+): (engine block|fallback)", text, re.M)


def case_dry_run():
    m = model("seed_graph_break")
    ok, out, err = expect(["build", m, "--dry-run", "--fallback-ops", "Mul", "--min-block-size", "1"], 0)
    check("3 segments" in out, "the seed graph breaks into 3 segments", out + err)
    check(segments_of(out) == [("0", "engine block"), ("1", "fallback"), ("2", "engine block")],
          "segments: engine block, fallback, engine block", out)
    check(re.search(r"graph break \(forced\): Mul 'mul'", out) is not None, "the break names Mul 'mul' and why", out)
    check("Add" in out and "Relu" in out, "the engine blocks list Add and Relu", out)
    # torch op names map to the same partition; node names work too
    for ops in ["torch.ops.aten.mul.Tensor", "aten::mul", "mul"]:
        ok, out2, err2 = expect(["build", m, "--dry-run", "--fallback-ops", ops, "--min-block-size", "1"], 0)
        check(out2 == out, "--fallback-ops %s gives the same partition as Mul" % ops, out2 + err2)
    # without a forced op: one engine block; with the default min block size: one fallback segment
    ok, out, err = expect(["build", m, "--dry-run", "--min-block-size", "1"], 0)
    check(segments_of(out) == [("0", "engine block")], "no forced op: one engine block", out + err)
    ok, out, err = expect(["build", m, "--dry-run"], 0)
    check(segments_of(out) == [("0", "fallback")] and "below_min_block_size" in out,
          "3 ops under the default min block size 5 fall back, saying why", out + err)
    # a name that matches nothing warns
    ok, out, err = expect(["build", m, "--dry-run", "--fallback-ops", "no_such_node", "--min-block-size", "1"], 0)
    check("--fallback-ops 'no_such_node' matches no op type or node name" in err, "unmatched fallback name warns", err)
    # a graph break with --require-full-compilation is a failure of the work: exit 1
    expect(["build", m, "--dry-run", "--fallback-ops", "Mul", "--min-block-size", "1", "--require-full-compilation"],
           1, "require_full_compilation")
    # a dynamic input without a profile: exit 1 with the library's message
    expect(["build", model("add_relu"), "--dry-run"], 1, "dynamic dim")


def case_dry_run_json():
    m = model("seed_graph_break")
    ok, out, err = expect(["build", m, "--dry-run", "--json", "--fallback-ops", "torch.ops.aten.mul.Tensor",
                           "--min-block-size", "1"], 0)
    try:
        j = json.loads(out)
    except ValueError as e:
        check(False, "dry-run --json prints JSON", "%s\n%s" % (e, out))
        return
    check(j.get("num_segments") == 3 and j.get("graph_breaks") == 2 and j.get("num_engine_blocks") == 2,
          "JSON counts: 3 segments, 2 breaks, 2 engine blocks", out)
    segs = j.get("segments", [])
    kinds = [s.get("kind") for s in segs]
    check(kinds == ["engine", "fallback", "engine"], "JSON segment kinds", out)
    if len(segs) == 3:
        check(segs[1].get("reason") == "forced" and "Mul 'mul'" in segs[1].get("detail", ""),
              "JSON fallback reason and detail", out)
        check([n["op"] for n in segs[1].get("nodes", [])] == ["Mul"], "JSON fallback segment holds Mul", out)
        check([n["op"] for n in segs[0]["nodes"]] == ["Add"] and [n["op"] for n in segs[2]["nodes"]] == ["Relu"],
              "JSON engine blocks hold Add and Relu", out)


def case_run_cpu():
    m = model("add_relu")
    b = onnx_initializer(m, "b")
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, size=(5, 8)).astype(np.float32)
    np.save(os.path.join(ARGS.work, "x.npy"), x)
    ref = np.maximum(x + b, 0)
    for mode in ["off", "block", "whole"]:
        outdir = "out_" + mode
        ok, out, err = expect(["run", m, "--input", "x=x.npy", "--device", "cpu", "--output-dir", outdir,
                               "--cudagraphs", mode], 0)
        path = os.path.join(ARGS.work, outdir, "y.npy")
        if not check(os.path.exists(path), "run writes y.npy (%s)" % mode, out + err):
            continue
        y = np.load(path)
        check(y.dtype == np.float32 and y.shape == (5, 8), "y.npy is float32 5x8", str((y.dtype, y.shape)))
        check(np.allclose(y, ref, rtol=1e-6, atol=1e-6), "y = relu(x + b) (%s)" % mode,
              "max err %g" % float(np.max(np.abs(y - ref))))
        check("output 'y': f32 5x8" in out, "run prints the output's name and shape", out)
        check(re.search(r"min [-0-9.e]+\s+max [-0-9.e]+\s+mean", out) is not None, "run prints statistics", out)
    # the unnamed form works for a one-input model
    ok, out, err = expect(["run", m, "--input", "x.npy", "--device", "cpu", "--output-dir", "out_unnamed"], 0)
    if os.path.exists(os.path.join(ARGS.work, "out_unnamed", "y.npy")):
        check(np.allclose(np.load(os.path.join(ARGS.work, "out_unnamed", "y.npy")), ref, atol=1e-6),
              "unnamed --input gives the same result")
    # random inputs: seeded, reproducible, and different for another seed
    outs = []
    for seed, d in [(3, "r1"), (3, "r2"), (4, "r3")]:
        ok, out, err = expect(["run", m, "--shapes", "x:6x8", "--device", "cpu", "--seed", seed, "--output-dir", d], 0)
        p = os.path.join(ARGS.work, d, "y.npy")
        outs.append(np.load(p) if os.path.exists(p) else None)
    if all(o is not None for o in outs):
        check(outs[0].shape == (6, 8), "random run at --shapes x:6x8", str(outs[0].shape))
        check(np.array_equal(outs[0], outs[1]), "the same seed gives the same outputs")
        check(not np.array_equal(outs[0], outs[2]), "another seed gives other outputs")
        check(np.all(outs[0] >= 0) and np.any(outs[0] > 0), "relu outputs are >= 0 and not all zero")
    # two inputs, two outputs, an output name that is no file name
    m2 = model("two_io")
    a = rng.uniform(-1, 1, size=(2, 3)).astype(np.float32)
    bb = rng.uniform(-1, 1, size=(2, 3)).astype(np.float32)
    np.save(os.path.join(ARGS.work, "a.npy"), a)
    np.save(os.path.join(ARGS.work, "b.npy"), bb)
    ok, out, err = expect(["run", m2, "-i", "a=a.npy", "--input", "b=b.npy", "--device", "cpu", "--output-dir", "o2"], 0)
    ps, pr = os.path.join(ARGS.work, "o2", "sum.npy"), os.path.join(ARGS.work, "o2", "relu_0.npy")
    if check(os.path.exists(ps) and os.path.exists(pr), "two outputs written (relu:0 -> relu_0.npy)", out + err):
        check(np.allclose(np.load(ps), a + bb, atol=1e-6), "sum = a + b")
        check(np.allclose(np.load(pr), np.maximum(a, 0), atol=1e-6), "relu:0 = relu(a)")


def case_run_errors():
    m = model("add_relu")
    np.save(os.path.join(ARGS.work, "x64.npy"), np.ones((2, 8), dtype=np.float64))
    np.save(os.path.join(ARGS.work, "x.npy"), np.ones((2, 8), dtype=np.float32))
    expect(["run", m, "--device", "cpu"], 2, "input 'x' has dynamic dims (batchx8): give its shape with --shapes x:")
    expect(["run", m, "--input", "x=x64.npy", "--device", "cpu"], 1, "holds f64 (<f8), the model expects f32")
    expect(["run", m, "--input", "nope=x.npy", "--shapes", "x:2x8", "--device", "cpu"], 2, "the model has no input 'nope'")
    expect(["run", m, "--input", "x=x.npy", "--shapes", "x:3x8", "--device", "cpu"], 2,
           "--shapes gives 3x8 but x.npy holds 2x8")
    expect(["run", m, "--input", "x=missing.npy", "--device", "cpu"], 1, "missing.npy")
    expect(["run", m, "--shapes", "x:2x8x1", "--device", "cpu"], 1, "compiling")
    expect(["run", model("two_io"), "--input", "a.npy", "--device", "cpu"], 2, "name the input")
    # a shape outside the profile of a compiled-for-a-range module
    expect(["run", m, "--min", "x:1x8", "--max", "x:4x8", "--shapes", "x:8x8", "--device", "cpu"], 2,
           "outside the profile")


def case_bench_cpu():
    m = model("add_relu")
    ok, out, err = expect(["bench", m, "--shapes", "x:4x8", "--device", "cpu", "--warmup-ms", "5", "--duration-s", "0.05",
                           "--iterations", "20", "--cudagraphs", "all", "--json", "bench.json", "--min-block-size", "1"], 0)
    check("Throughput:" in out and "percentile(99%)" in out and "Enqueue Time" in out, "trtexec-style lines", out)
    check("=== comparison ===" in out, "--cudagraphs all prints a comparison table", out)
    path = os.path.join(ARGS.work, "bench.json")
    if not check(os.path.exists(path), "bench --json writes the file", out + err):
        return
    j = json.load(open(path))
    runs = j.get("runs", [])
    check([r.get("cudagraphs") for r in runs] == ["off", "block", "whole"], "JSON runs off, block, whole", str(runs)[:500])
    check(j.get("batch") == 4 and j.get("inputs", [{}])[0].get("shape") == [4, 8], "JSON batch and input shape", str(j)[:500])
    for r in runs:
        mode = r.get("cudagraphs")
        lat, enq, c = r["latency_ms"], r["enqueue_ms"], r["counters"]
        check(r["iterations"] >= 20, "%s: at least 20 iterations" % mode, str(r))
        check(all(isinstance(v, (int, float)) for v in list(lat.values()) + list(enq.values())), "%s: numbers" % mode)
        check(0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"],
              "%s: latency percentiles are ordered" % mode, str(lat))
        check(lat["min"] <= lat["mean"] <= lat["max"], "%s: mean within min..max" % mode, str(lat))
        check(r["throughput_qps"] > 0 and abs(r["throughput_items_per_s"] - 4 * r["throughput_qps"]) < 1e-3 * r["throughput_items_per_s"] + 1e-6,
              "%s: items/s = batch x qps" % mode, str(r))
        check(abs(r["throughput_qps"] * r["total_s"] - r["iterations"]) < 1e-3 * r["iterations"] + 1e-6,
              "%s: qps = iterations / time" % mode, str(r))
        check(c["runs"] == r["iterations"] + r["warmup_runs"], "%s: every run counted" % mode, str(r))
        check(r["enqueue_bound"] is False, "%s: no enqueue-bound verdict on the CPU" % mode, str(r))
        if mode == "off":
            check(c["captures"] == 0 and c["replays"] == 0, "off: no graphs", str(c))
        else:
            check(c["captures"] == 1, "%s: one shape, one capture" % mode, str(c))
            check(c["replays"] == c["runs"] and c["cache_hits"] == c["runs"] - 1, "%s: every run replays" % mode, str(c))
    # provisional kernels: accepted and recorded; the CPU backend has none, so no shape starts on
    # them and no background timings are reported
    ok, out, err = expect(["bench", m, "--shapes", "x:4x8", "--min", "x:1x8", "--max", "x:8x8", "--device", "cpu",
                           "--warmup-ms", "0", "--duration-s", "0", "--iterations", "3", "--provisional-kernels",
                           "--json", "bench_prov.json"], 0)
    j = json.load(open(os.path.join(ARGS.work, "bench_prov.json")))
    r = j["runs"][0]
    check(j.get("provisional_kernels") is True and r["counters"]["provisional"] == 0 and "new_shape_ms" in r
          and "new_shape_ready_ms" not in r and "tuned kernels prepared" not in out,
          "--provisional-kernels on the CPU: recorded, nothing provisional, no background timings", str(j)[:800] + out)
    # per-block graphs on a module whose ops all fall back (2 ops < min block size 5): said plainly
    ok, out, err = expect(["bench", m, "--shapes", "x:4x8", "--device", "cpu", "--warmup-ms", "0", "--duration-s", "0",
                           "--iterations", "3", "--cudagraphs", "block"], 0)
    check("no graph was recorded" in out and "has none" in out, "block mode without engine blocks says so", out)
    # single mode, defaults to off; a .npy input works too
    np.save(os.path.join(ARGS.work, "x.npy"), np.ones((3, 8), dtype=np.float32))
    ok, out, err = expect(["bench", m, "--input", "x=x.npy", "--device", "cpu", "--warmup-ms", "0", "--duration-s", "0",
                           "--iterations", "5"], 0)
    check("=== cudagraphs off ===" in out and "x:3x8" in out and "comparison" not in out, "single-mode bench", out)


def case_inspect_cpu():
    m = model("add_relu")
    ok, out, err = expect(["inspect", m, "--shapes", "x:4x8", "--device", "cpu", "--min-block-size", "1"], 0)
    for w in ["input  x: f32 min 4x8 opt 4x8 max 4x8", "output y", "partition: 1 segment", "memory plan: arena",
              "peak live", "steps:"]:
        check(w in out, "inspect shows %r" % w, out + err)
    ok, out, err = expect(["inspect", m, "--min", "x:1x8", "--opt", "x:4x8", "--max", "x:16x8", "--device", "cpu",
                           "--json", "--graph"], 0)
    try:
        j = json.loads(out)
    except ValueError as e:
        check(False, "inspect --json prints JSON", "%s\n%s" % (e, out))
        return
    mod = j.get("module", {})
    check(j.get("format") == "onnx" and "graph" in j and "Relu" in j["graph"], "JSON has the graph text", out)
    check(mod.get("inputs", [{}])[0].get("max") == "16x8" and mod.get("arena_bytes", 0) > 0, "JSON profile and arena", out)
    check(mod.get("arena_bytes", 0) >= mod.get("peak_live_bytes", 1), "arena >= peak live bytes", out)
    check(len(mod.get("steps", [])) >= 1 and all("kernel" in s for s in mod["steps"]), "JSON steps with kernels", out)
    ok, out, err = expect(["inspect", m, "--graph", "--shapes", "x:2x8", "--device", "cpu"], 0)
    check(out.startswith("graph of ") and "Relu" in out and "memory plan" in out, "--graph text", out)


def case_build_save():
    m = model("add_relu")
    ok, out, err = expect(["build", m, "--min", "x:1x8", "--opt", "x:4x8", "--max", "x:16x8", "--device", "cpu",
                           "--min-block-size", "1", "--workspace-mib", "48", "-o", "add_relu.kiln"], 0)
    check("partition:" in out and "saved add_relu.kiln" in out, "build prints a summary and saves", out + err)
    kf = os.path.join(ARGS.work, "add_relu.kiln")
    if not check(os.path.exists(kf), "build writes the .kiln file"):
        return
    ok, out, err = expect(["inspect", "add_relu.kiln"], 0)
    check("min 1x8 opt 4x8 max 16x8" in out, "inspect of the .kiln keeps the profile", out)
    ok, out, err = expect(["inspect", "add_relu.kiln", "--json"], 0)
    check('"workspace_limit_bytes": %d' % (48 << 20) in out, "the .kiln keeps --workspace-mib", out)
    x = np.random.default_rng(2).uniform(-1, 1, size=(7, 8)).astype(np.float32)
    np.save(os.path.join(ARGS.work, "x7.npy"), x)
    ok, out, err = expect(["run", "add_relu.kiln", "--input", "x=x7.npy", "--output-dir", "ok"], 0)
    p = os.path.join(ARGS.work, "ok", "y.npy")
    if check(os.path.exists(p), "run of the .kiln writes y.npy", out + err):
        check(np.allclose(np.load(p), np.maximum(x + onnx_initializer(m, "b"), 0), atol=1e-6), "the .kiln computes relu(x+b)")
    expect(["run", "add_relu.kiln", "--shapes", "x:32x8"], 1, "the profile allows [1, 16]")
    expect(["bench", "add_relu.kiln", "--shapes", "x:16x8", "--warmup-ms", "0", "--duration-s", "0", "--iterations", "3"], 0)
    # one flipped byte in the middle of the engine file: refused, naming the checksum
    data = bytearray(open(kf, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(os.path.join(ARGS.work, "flipped.kiln"), "wb").write(bytes(data))
    ok, out, err = expect(["run", "flipped.kiln", "--shapes", "x:4x8"], 1, "checksum")
    check(not os.path.exists(os.path.join(ARGS.work, "flipped")), "a refused engine writes nothing")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    ARGS = ap.parse_args()
    ARGS.kiln = os.path.abspath(ARGS.kiln)
    ARGS.models = os.path.abspath(ARGS.models)
    ARGS.work = os.path.abspath(ARGS.work)
    shutil.rmtree(ARGS.work, ignore_errors=True)
    os.makedirs(ARGS.work)
    CASES[ARGS.case]()
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
