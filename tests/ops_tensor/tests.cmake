# The tensor ops against the ONNX backend node tests (Reshape, Slice, Gather, Resize, Pad, ...),
# through libkiln on the CPU. Registered only where the data and Debian's python3-onnx are there.
if(EXISTS "${KILN_ONNX_NODE_TESTS}" AND EXISTS /usr/bin/python3)
  execute_process(COMMAND /usr/bin/python3 -c "import onnx, numpy" RESULT_VARIABLE KILN_PY_ONNX_RC
                  OUTPUT_QUIET ERROR_QUIET)
  if(KILN_PY_ONNX_RC EQUAL 0)
    add_test(NAME conformance.ops_tensor
             COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/check_onnx_node.py $<TARGET_FILE:kiln>
                     ${KILN_ONNX_NODE_TESTS})
    set_tests_properties(conformance.ops_tensor PROPERTIES LABELS "conformance;cpu" TIMEOUT 600 SKIP_RETURN_CODE 77)
    if(KILN_SANITIZE)
      # python is not built with ASan: its runtime must come first; python's own leaks are not ours
      execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so OUTPUT_VARIABLE KILN_LIBASAN
                      OUTPUT_STRIP_TRAILING_WHITESPACE)
      set_tests_properties(conformance.ops_tensor PROPERTIES
                           ENVIRONMENT "LD_PRELOAD=${KILN_LIBASAN};ASAN_OPTIONS=detect_leaks=0")
    endif()
  endif()
endif()
