# The two commands of the README: `make run` and `make test`. Both install what they need first.
BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 30

.PHONY: all setup configure build web run test test-unit test-integration fuzz bench-ingest format clean

all: build

setup:
	@scripts/setup

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

configure: setup $(BUILD)/build.ninja

build: configure web
	cmake --build $(BUILD) -j $(JOBS)

# The player page: hls.js pinned in web/package-lock.json, assembled into web/dist.
WEB_SOURCES := web/package-lock.json web/build.mjs $(wildcard web/src/*)
web/dist/index.html: $(WEB_SOURCES)
	cd web && npm ci --no-audit --no-fund && node build.mjs

# The dashboard (served by the api role at /): Vite + TypeScript, pinned in web/dashboard/package-lock.json.
DASHBOARD_SOURCES := web/dashboard/package-lock.json web/dashboard/index.html web/dashboard/vite.config.ts \
                     web/dashboard/tsconfig.json $(wildcard web/dashboard/src/*)
web/dashboard/dist/index.html: $(DASHBOARD_SOURCES)
	cd web/dashboard && npm ci --no-audit --no-fund && npm run build

web: setup web/dist/index.html web/dashboard/dist/index.html

run: build
	$(BUILD)/app/streamflex all

# Unit tests in parallel; integration tests one at a time, since each drives real encoders that
# need the CPU to keep real time; then each fuzz target for FUZZ_SECONDS.
test: build fuzz
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -L unit
	ctest --test-dir $(BUILD) --output-on-failure -L 'integration|e2e'
	ctest --test-dir $(FUZZ_BUILD) --output-on-failure -L fuzz

test-unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -L unit

test-integration: build
	ctest --test-dir $(BUILD) --output-on-failure -L 'integration|e2e'


# libFuzzer targets (clang, ASan + UBSan); `make test` runs each for FUZZ_SECONDS.
fuzz: setup
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 \
	  -DSF_FUZZ=ON -DSF_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers

bench-ingest: build
	bench/ingest_publishers.sh

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
