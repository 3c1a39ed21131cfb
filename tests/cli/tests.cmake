# Scripted tests of the kiln command-line tool (label "cli"). The models are written at test
# time by make_models.py (Debian's python3 with onnx and numpy) into the build tree; each case of
# cli_test.py runs in a folder of its own.
set(KILN_CLI_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with onnx and numpy for the CLI tests")
set(KILN_CLI_WORK ${CMAKE_CURRENT_BINARY_DIR}/cli)

add_test(NAME cli.models
         COMMAND ${KILN_CLI_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_models.py ${KILN_CLI_WORK}/models)
set_tests_properties(cli.models PROPERTIES LABELS "cli;cpu" FIXTURES_SETUP kiln_cli_models TIMEOUT 120)

# help, bad_flags, bad_shapes and load_errors need no ONNX import; the others import and run models.
foreach(case help bad_flags bad_shapes load_errors dry_run dry_run_json run_cpu run_errors bench_cpu
             inspect_cpu build_save)
  add_test(NAME cli.${case}
           COMMAND ${KILN_CLI_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/cli_test.py --kiln $<TARGET_FILE:kiln_tool>
                   --models ${KILN_CLI_WORK}/models --work ${KILN_CLI_WORK}/${case} ${case})
  set_tests_properties(cli.${case} PROPERTIES LABELS "cli;cpu" FIXTURES_REQUIRED kiln_cli_models TIMEOUT 600)
endforeach()
