# ONNX operator conformance: `kiln conformance` over the ONNX backend node tests, which live beside
# the repository (shared/onnx-node-tests/node). When the folder is missing the test reports itself
# skipped (exit code 77) with a message, rather than failing.
set(KILN_ONNX_NODE_TESTS "${CMAKE_SOURCE_DIR}/../shared/onnx-node-tests/node"
    CACHE PATH "Folder of the ONNX backend node tests (one folder per test)")
set(KILN_CONFORMANCE_EXCLUDED "${CMAKE_CURRENT_LIST_DIR}/excluded.txt")

function(kiln_add_conformance_test name device labels)
  add_test(NAME ${name}
           COMMAND sh -c "if [ -d \"$1\" ]; then exec \"$0\" conformance \"$1\" --device $2 --exclude \"$3\"; else echo \"SKIP: ONNX node tests not found at $1\"; exit 77; fi"
                   $<TARGET_FILE:kiln_tool> ${KILN_ONNX_NODE_TESTS} ${device} ${KILN_CONFORMANCE_EXCLUDED})
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT 3600 SKIP_RETURN_CODE 77)
endfunction()

kiln_add_conformance_test(conformance.onnx_node_cpu cpu "conformance;cpu")
if(KILN_WITH_CUDA)
  kiln_add_conformance_test(conformance.onnx_node_cuda cuda "conformance;gpu")
endif()
