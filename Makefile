# Thin front end over CMake presets. See README.md.
.PHONY: all build run check check-dev check-asan bench fuzz install clean format

CMAKE ?= cmake
FUZZ_SECONDS ?= 300
PREFIX ?= /usr/local

all: build

build:
	@tools/deps.sh build
	$(CMAKE) --preset dev >/dev/null
	$(CMAKE) --build --preset dev

# csipd on its embedded defaults: 127.0.0.1:5060 over UDP and TCP, domain
# localhost, state in var/csipd.db. Ctrl-C stops it.
run: build
	build/dev/apps/csipd/csipd

check-dev:
	@tools/deps.sh build check
	$(CMAKE) --preset dev >/dev/null
	$(CMAKE) --build --preset dev
	ctest --preset dev

check-asan:
	@tools/deps.sh build check
	$(CMAKE) --preset asan >/dev/null
	$(CMAKE) --build --preset asan
	ctest --preset asan

# The whole suite, then the whole suite again under ASan+UBSan.
check: check-dev check-asan

bench:
	@tools/deps.sh build bench
	$(CMAKE) --preset bench >/dev/null
	$(CMAKE) --build --preset bench --target parse txn csipd
	build/bench/bench/parse $(BENCH_ARGS) bench/corpus
	build/bench/bench/txn $(TXN_BENCH_ARGS)
	python3 bench/load/load.py $(LOAD_ARGS)
	python3 bench/load/calls.py $(CALLS_ARGS)

fuzz:
	@tools/deps.sh build fuzz
	$(CMAKE) --preset fuzz >/dev/null
	$(CMAKE) --build --preset fuzz
	tools/fuzz.sh build/fuzz/fuzz $(FUZZ_SECONDS)

install:
	@tools/deps.sh build
	$(CMAKE) --preset release -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	$(CMAKE) --build --preset release
	$(CMAKE) --install build/release

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
