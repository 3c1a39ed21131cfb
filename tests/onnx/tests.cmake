# The importer's unit test reads the small models of tests/onnx/data (made by make_test_models.py).
if(TARGET test_onnx_import)
  target_compile_definitions(test_onnx_import PRIVATE KILN_ONNX_TEST_DATA="${CMAKE_CURRENT_LIST_DIR}/data")
endif()
