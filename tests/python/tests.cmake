# The Python package's tests (label "python"): the pytest suite, and the seed tutorial's example
# on the CPU. Both use the libkiln.so of this build through $KILN_LIBRARY and the package from
# the source tree. pytest fails the test on any failure, and when none is collected or none passes
# (tests/python/conftest.py).
set(KILN_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch, numpy and pytest, for the Python tests")

set(_kiln_py_env
  "KILN_LIBRARY=$<TARGET_FILE:kiln>"
  "PYTHONPATH=${CMAKE_SOURCE_DIR}/python"
  "PYTHONDONTWRITEBYTECODE=1"
  "OMP_NUM_THREADS=2")

add_test(NAME python.pytest
  COMMAND ${KILN_PYTHON} -m pytest -p no:cacheprovider -rs -q ${CMAKE_CURRENT_LIST_DIR}/test_kiln.py
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(python.pytest PROPERTIES LABELS "python" TIMEOUT 1200
  ENVIRONMENT "${_kiln_py_env}")

add_test(NAME python.example_torch_export_cudagraphs_cpu
  COMMAND ${KILN_PYTHON} ${CMAKE_SOURCE_DIR}/examples/torch_export_cudagraphs.py --device cpu
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(python.example_torch_export_cudagraphs_cpu PROPERTIES LABELS "python" TIMEOUT 1200
  ENVIRONMENT "${_kiln_py_env}")
