# The engine loader's unit test reads the engine images fuzz_engine found (tests/plan/data).
if(TARGET test_plan)
  target_compile_definitions(test_plan PRIVATE KILN_PLAN_TEST_DATA="${CMAKE_CURRENT_LIST_DIR}/data")
endif()
