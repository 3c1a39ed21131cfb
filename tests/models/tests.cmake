# Models against PyTorch: export_models.py writes torchvision CNNs and a small transformer encoder
# (random seeded weights, dynamic batch) with PyTorch's outputs for batch 1 and 3 into the build
# folder; kiln_model_check imports, compiles and runs each on the CPU and fails above a relative
# error of 1e-3. Skips visibly (exit 77) when /usr/bin/python3 lacks torch, torchvision or onnx.
add_executable(kiln_model_check ${CMAKE_CURRENT_LIST_DIR}/run_models.c)
target_link_libraries(kiln_model_check PRIVATE kiln_static)
target_compile_options(kiln_model_check PRIVATE ${KILN_C_WARNINGS})

set(KILN_MODELS_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch and torchvision for the model tests")
set(KILN_MODELS_DIR ${CMAKE_BINARY_DIR}/models)
add_test(NAME models.pytorch_cpu
         COMMAND sh -c "if ! \"$0\" -c 'import torch, torchvision, onnx' >/dev/null 2>&1; then echo \"SKIP: $0 lacks torch, torchvision or onnx\"; exit 77; fi; \"$0\" \"$1\" \"$2\" || exit 1; exec \"$3\" \"$2\""
                 ${KILN_MODELS_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/export_models.py ${KILN_MODELS_DIR}
                 $<TARGET_FILE:kiln_model_check>)
set_tests_properties(models.pytorch_cpu PROPERTIES LABELS "models;cpu" TIMEOUT 3600 SKIP_RETURN_CODE 77)
