"""Checks bench/bench.py without a GPU: usage errors; --dry-run exports the seed's graph-break
model and writes the table and JSON with empty cells; --kiln-device cpu runs the seed's
graph-break row through `kiln bench` on the CPU (Mul forced out: 3 segments, 2 engine blocks, two
graphs per block mode, one for the whole module) and writes its row.
usage: check_bench.py KILN_TOOL WORK_DIR"""
import json
import os
import subprocess
import sys

kiln, work = sys.argv[1], sys.argv[2]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
bench = os.path.join(root, "bench", "bench.py")
os.makedirs(work, exist_ok=True)
failed = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failed.append(what)


def run(args):
    p = subprocess.run([sys.executable, bench, *args], capture_output=True, text=True)
    if p.returncode:
        print(p.stdout[-2000:], p.stderr[-2000:])
    return p


# usage errors
p = run(["--dry-run", "--models", "no_such_model"])
check(p.returncode == 2 and "unknown model" in p.stderr, "an unknown --models name is a usage error")
p = run([])
check(p.returncode == 2 and "--kiln is required" in p.stderr, "--kiln is required without --dry-run")

# dry run: the quick matrix's seed row and the transformer (export only)
out = os.path.join(work, "dry", "RESULTS.md")
p = run(["--dry-run", "--quick", "--models", "seed_graph_break", "--out", out])
check(p.returncode == 0, "--dry-run --quick --models seed_graph_break exits 0")
if p.returncode == 0:
    md = open(out).read()
    check("| seed_graph_break | fp32 | 1 |" in md, "the dry-run table has the seed_graph_break row")
    rows = json.load(open(os.path.splitext(out)[0] + ".json"))["rows"]
    cmd = rows[0]["kiln"]["cmd"] if rows else ""
    check("--fallback-ops torch.ops.aten.mul.Tensor" in cmd and "--min-block-size 1" in cmd,
          "the seed row's kiln command forces Mul out with min block size 1")

# kiln on the CPU: the row with numbers
out = os.path.join(work, "cpu", "RESULTS.md")
p = run(["--kiln", kiln, "--kiln-device", "cpu", "--models", "seed_graph_break", "--duration", "0.05",
         "--out", out])
check(p.returncode == 0, "--kiln-device cpu --models seed_graph_break exits 0")
if p.returncode == 0:
    md = open(out).read()
    check("| seed_graph_break (3 seg / 2 blk) | fp32 | 1 |" in md, "the table names 3 segments and 2 engine blocks")
    k = json.load(open(os.path.splitext(out)[0] + ".json"))["rows"][0]["kiln"]
    check(all(isinstance(k.get(m), float) for m in ("off", "block", "whole")), "kiln off/block/whole all timed")
    check(k.get("captures") == {"off": 0, "block": 2, "whole": 1},
          "two graphs recorded per block, one for the whole module: %s" % k.get("captures"))

print("%d failed" % len(failed))
sys.exit(1 if failed else 0)
