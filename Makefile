# The two commands: `make demo` and `make test`. Both create .venv on a fresh machine.
.PHONY: demo test test-all test-fast board-test env bench clean

env:
	./scripts/bootstrap

demo: env
	.venv/bin/edgerec demo --out out/demo

# CI runs this: everything but the heavy acceptance runs (make test-all) and the emulated board (make board-test)
test: env
	.venv/bin/python -m pytest -q -m "not heavy"

test-all: env
	.venv/bin/python -m pytest -q

test-fast: env
	.venv/bin/python -m pytest -q -m "not slow"

# emulated Raspberry Pi 4 (root, qemu-user; the first run builds a ~330 MB arm64 root, ~5 min)
board-test: env
	nice -n 19 .venv/bin/python -m pytest -q -m board tests/devices/test_emulated_board.py

bench: env
	.venv/bin/python benchmarks/train_throughput.py
	.venv/bin/python benchmarks/export_latency.py
	.venv/bin/python benchmarks/runtime_overhead.py

clean:
	rm -rf out .pytest_cache
