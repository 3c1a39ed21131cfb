# bench/bench.py without a GPU (label "bench"): argument checks, --dry-run, and the seed's
# graph-break row with kiln on the CPU. Needs Debian's python3 with torch, torchvision and onnx;
# skips visibly (exit 77) without them.
set(KILN_BENCH_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch and torchvision for the bench script check")
add_test(NAME bench.script_cpu
         COMMAND sh -c "if ! \"$0\" -c 'import torch, torchvision, onnx' >/dev/null 2>&1; then echo \"SKIP: $0 lacks torch, torchvision or onnx\"; exit 77; fi; exec \"$0\" \"$1\" \"$2\" \"$3\""
                 ${KILN_BENCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_bench.py $<TARGET_FILE:kiln_tool>
                 ${CMAKE_CURRENT_BINARY_DIR}/bench-check)
set_tests_properties(bench.script_cpu PROPERTIES LABELS "bench;cpu" TIMEOUT 600 SKIP_RETURN_CODE 77)
