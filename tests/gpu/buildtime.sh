#!/usr/bin/env bash
# build time: ResNet-50 fp16 (batch 1..8, opt 1) cold with a new timing cache, then warm
# (issue 10: within 15 s cold, 2 s warm). Run from the repository root on the GPU machine after
# tests/gpu/device_all.sh unpack; prints one line per build.
export LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib:$(pwd)/build-cuda/gpu-libs:/usr/local/cuda/lib64
python3 - <<'PY' 2>/dev/null
import torch, torchvision, inspect
m = torchvision.models.resnet50().eval()
extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
torch.onnx.export(m, (torch.randn(1,3,224,224),), "/tmp/r50.onnx", input_names=["x"], output_names=["y"], dynamic_axes={"x":{0:"b"},"y":{0:"b"}}, opset_version=17, **extra)
PY
rm -f /tmp/tcb.bin
for f in "" --avoid-runtime-compilation; do
for run in cold warm; do
  [ $run = cold ] && rm -f /tmp/tcb.bin
  t0=$(date +%s.%N)
  build-cuda/kiln build /tmp/r50.onnx --min x:1x3x224x224 --opt x:1x3x224x224 --max x:8x3x224x224 --fp16 --device cuda --timing-cache /tmp/tcb.bin $f -o /tmp/r50.kiln > /tmp/b_$run.log 2>&1
  rc=$?; echo "build ${f:-default} $run rc=$rc $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s"
done; done
