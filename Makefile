# The two commands for a fresh machine:
#   make demo   installs what is missing, builds, runs `kiln demo` (ResNet-18, latency, check)
#   make test   installs what is missing, builds, runs every test (ctest)
# Other targets: build, test-sanitize (ASan+UBSan build of the CPU tests, ThreadSanitizer build of
# the tests that prepare on threads), fuzz, gpu-test, clean.

BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DKILN_WERROR=ON

.PHONY: all deps build demo test test-sanitize fuzz gpu-test clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/kiln demo

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The CPU tests under AddressSanitizer + UndefinedBehaviorSanitizer (CPU-only build).
test-sanitize: deps
	cmake -S . -B $(ASAN_BUILD) -DKILN_WERROR=ON -DKILN_SANITIZE=ON -DKILN_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -L 'unit|conformance|cli'
	# the CLI running the demo under LeakSanitizer: exits non-zero on any leak
	ASAN_OPTIONS=detect_leaks=1 $(ASAN_BUILD)/kiln demo --device cpu --seconds 0.05
	# a new shape's preparation on helper threads (src/runtime/prepare.c) under ThreadSanitizer
	cmake -S . -B $(TSAN_BUILD) -DKILN_WERROR=ON -DKILN_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS="-fsanitize=thread" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread"
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target test_prepare test_tactics_setup
	TSAN_OPTIONS=halt_on_error=1 $(TSAN_BUILD)/tests/test_prepare
	TSAN_OPTIONS=halt_on_error=1 $(TSAN_BUILD)/tests/test_tactics_setup

# libFuzzer over the ONNX importer and the engine loader, FUZZ_SECONDS each (default 60).
fuzz: deps
	scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)

# On the GPU machine: build with CUDA, run every test and the benchmarks.
gpu-test:
	tests/gpu/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
