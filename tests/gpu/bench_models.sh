# Sourced by tests/gpu/profile.sh and ab.sh: the benchmark's models (bench/bench.py's make_model
# and export) as ONNX files, and their input shapes at a batch.
#   bench_model_onnx MODEL FILE     exports MODEL to FILE unless it exists (status 1 on failure)
#   bench_model_shape MODEL BATCH   prints the input dims, e.g. 16x3x224x224
bench_model_onnx() {
  [ -f "$2" ] && return 0
  python3 -c "import sys; sys.path.insert(0, 'bench'); import bench
m, s = bench.make_model('$1'); bench.export('$1', m, s, '$2')"
}
bench_model_shape() {
  python3 -c "import sys; sys.path.insert(0, 'bench'); import bench
print('x'.join(map(str, ($2,) + tuple(bench.make_model('$1')[1]))))"
}
