# The nn ops' conformance test reads ONNX's node test data from /work/shared (or
# $KILN_ONNX_NODE_TESTS); on a machine without it the test says so and exits 77: a skip.
if(TEST unit.test_ops_nn_onnx)
  set_tests_properties(unit.test_ops_nn_onnx PROPERTIES SKIP_RETURN_CODE 77)
endif()
