# The front door. `make demo` and `make test` are the README's quick start; both install what
# is missing first (scripts/install-deps.sh, needs root) and build incrementally.
BUILD ?= build
JOBS ?= $(shell nproc)
L45 := $(BUILD)/tools/l45/l45

.PHONY: all deps build test test-unit test-asan fuzz fuzz-smoke demo bench format clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake --preset default >/dev/null

build: deps $(BUILD)/build.ninja
	@cmake --build $(BUILD) -j $(JOBS)

# The whole suite: unit, oracle (../shared/pcaps), CLI and live (root, netns) tests.
test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# Only the fast unit tests.
test-unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -LE 'oracle|cli'

# The same suite built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS)

# libFuzzer targets (clang); fuzz-smoke runs each briefly over its committed corpus.
fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

fuzz-smoke: fuzz
	./scripts/fuzz-smoke.sh build-fuzz

demo: build
	@./scripts/demo.sh $(L45)

bench: build
	@./scripts/bench.sh $(BUILD)

format:
	@git ls-files '*.cpp' '*.hpp' '*.h' '*.c' | xargs clang-format -i

clean:
	rm -rf build build-asan build-fuzz
