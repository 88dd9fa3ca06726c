# Syrinx developer commands. `make test` installs everything from this repo's own files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU installs pin torch to a CPU build; an unpinned torch pulls ~3 GB of CUDA libraries.
CONSTRAINTS ?= constraints/cpu.txt
STAMP := $(VENV)/.installed

BUF := node_modules/.bin/buf

.PHONY: install test run say proto lint typecheck istio-schemas cert-manager-schemas policy bench-engine gpu-kit bench-grpc bench-live bench-eager bench-loudness bench-riva compat bench-load bench-telemetry fuzz faults soak base-image image image-test clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

# buf (protobuf linter) comes from npm, pinned in package.json.
$(BUF): package.json
	npm install --no-audit --no-fund --silent
	touch $(BUF)

# nvidia-riva-client pins its own protobuf: it gets a venv of its own for the Riva tests.
RIVA_VENV := .venv-riva
RIVA_STAMP := $(RIVA_VENV)/.installed
$(RIVA_STAMP): constraints/riva-client.txt
	$(PYTHON) -m venv $(RIVA_VENV)
	$(RIVA_VENV)/bin/python -m pip install --quiet -r constraints/riva-client.txt
	touch $(RIVA_STAMP)

RIVA_OLDEST_VENV := .venv-riva-oldest
RIVA_OLDEST_STAMP := $(RIVA_OLDEST_VENV)/.installed
$(RIVA_OLDEST_STAMP): constraints/riva-client-oldest.txt
	$(PYTHON) -m venv $(RIVA_OLDEST_VENV)
	$(RIVA_OLDEST_VENV)/bin/python -m pip install --quiet -r constraints/riva-client-oldest.txt
	touch $(RIVA_OLDEST_STAMP)

install: $(STAMP) $(BUF) $(RIVA_STAMP) $(RIVA_OLDEST_STAMP)

test: install
	$(PY) -m pytest

# Serves the bundled voice on port 50051 (SYRINX_* variables or ARGS="--port ..." change it).
run: $(STAMP)
	$(VENV)/bin/syrinx-server $(ARGS)

# Speaks through the engine alone, no server: writes out.wav and prints first-audio time.
TEXT ?= Hello from Syrinx. This audio was streamed from our own torch implementation of a Piper voice.
say: $(STAMP)
	$(PY) -m syrinx.server.engine "$(TEXT)" -o out.wav

# Regenerate the committed stubs after editing protos/ (a test checks they match).
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I protos --python_out=client/_generated --pyi_out=client/_generated \
		--grpc_python_out=client/_generated $$(cd protos && find . -name '*.proto' | sed 's|^\./||')

# buf (protos), ruff (lint and format), mypy (server/ and client/), hadolint (Dockerfile),
# actionlint (.github/workflows). CI runs it beside `make test` (.ci/run); pre-commit runs the same.
lint: $(STAMP) $(BUF)
	$(BUF) lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory typecheck
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/actionlint

# mypy checks the modules under their installed names (syrinx.server, syrinx.client, syrinx.v1),
# which the source tree spells server/, client/ and client/_generated/: a tree of links maps them.
TYPECHECK_TREE := build/typecheck/syrinx
typecheck: $(STAMP)
	mkdir -p $(TYPECHECK_TREE)
	ln -sfn ../../../server $(TYPECHECK_TREE)/server
	ln -sfn ../../../client $(TYPECHECK_TREE)/client
	ln -sfn ../../../client/_generated/syrinx/v1 $(TYPECHECK_TREE)/v1
	ln -sfn ../../../client/_generated/syrinx/riva $(TYPECHECK_TREE)/riva
	$(VENV)/bin/mypy

# The Istio CRD schemas the deployment tests validate against (k8s/schemas/, from istio/api).
ISTIO_API_COMMIT ?= b8f8791d9653b2edc77a071d48887e582cfe84bf
CERT_MANAGER_COMMIT ?= 2d0d7f7f74241a9cbf79f0e2a7bb247238ee09fd
istio-schemas: $(STAMP)
	$(PY) k8s/schemas/refresh.py istio --commit $(ISTIO_API_COMMIT) $(if $(ISTIO_CRDS_SOURCE),--source $(ISTIO_CRDS_SOURCE))

# The same for cert-manager's Certificate CRD (overlays/secure); CERT_MANAGER_CRDS_SOURCE= reads a local copy.
cert-manager-schemas: $(STAMP)
	$(PY) k8s/schemas/refresh.py cert-manager --commit $(CERT_MANAGER_COMMIT) \
		$(if $(CERT_MANAGER_CRDS_SOURCE),--source $(CERT_MANAGER_CRDS_SOURCE))

# Policy scan of the rendered manifests and the Dockerfile (checkov, in its own venv: it is large).
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet "checkov>=3.2"

policy: $(CHECKOV_VENV)/bin/checkov
	mkdir -p build/k8s
	for overlay in cpu gpu canary secure; do kubectl kustomize k8s/overlays/$$overlay > build/k8s/$$overlay.yaml; done
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework kubernetes \
		-f build/k8s/cpu.yaml -f build/k8s/gpu.yaml -f build/k8s/canary.yaml -f build/k8s/secure.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework dockerfile -f Dockerfile

# Pipecat's and LiveKit's NVIDIA TTS services against a real Syrinx, each in a venv of its own
# (about 50 s each to install, once). Not part of `make test`: heavy, and its own check.
.venv-pipecat/.installed: constraints/compat-pipecat.txt
	$(PYTHON) -m venv .venv-pipecat
	.venv-pipecat/bin/python -m pip install --quiet -r constraints/compat-pipecat.txt
	touch $@

.venv-livekit/.installed: constraints/compat-livekit.txt
	$(PYTHON) -m venv .venv-livekit
	.venv-livekit/bin/python -m pip install --quiet -r constraints/compat-livekit.txt
	touch $@

compat: $(STAMP) .venv-pipecat/.installed .venv-livekit/.installed
	PYTHONPATH=. $(PY) tests/compat/run.py

ROUNDS ?= 5
bench-engine: $(STAMP)
	$(PY) -m bench.engine_bench --rounds $(ROUNDS) $(BENCH_ARGS)

# What the GPU figures need on a machine without espeak or the voice package (bench/gpu_kit.py):
# float16 weights, the texts phonemized here, onnxruntime's reference audio. docs/engine.md says how to run it.
gpu-kit: $(STAMP)
	$(PY) -m bench.gpu_kit export --kit gpukit --wheels

bench-telemetry: $(STAMP)
	$(PY) -m bench.telemetry_bench

bench-grpc: $(STAMP)
	$(PY) -m bench.grpc_bench

# The Riva endpoint against syrinx.v1 on one server: first audio and throughput, pairs in one run.
bench-riva: $(STAMP)
	$(PY) -m bench.riva_bench $(BENCH_ARGS)

# LiveSynthesize against client-side sentence aggregation + StreamSynthesize, under a simulated LLM
# (tokens/s x concurrent sessions; minutes). BENCH_ARGS="--rates 50 --concurrency 1" shortens it.
bench-live: $(STAMP)
	$(PY) -m bench.live_bench --json bench-live.json $(BENCH_ARGS)

# Simulated callers against piper-tts served over gRPC and against Syrinx, level by level (minutes:
# 6 levels x 2 servers x 33 s). BENCH_ARGS="--concurrency 1,8 --duration 10" shortens it; flags given
# there win over the defaults below.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[bench]'
	touch $(BENCH_STAMP)

# Output level: calibration, piper-tts's level, and the limiter's share of samples and PESQ (docs/audio.md).
bench-loudness: $(BENCH_STAMP)
	$(PY) -m bench.loudness_bench $(BENCH_ARGS)

# The eager first segment of LiveSynthesize: word error rate (pocketsphinx) and first audio, whole vs split.
bench-eager: $(BENCH_STAMP)
	$(PY) -m bench.eager_asr $(BENCH_ARGS)

# Container images with buildah: no daemon, no registry (docs/deployment.md). The base is a
# stand-in for python:3.11-slim-bookworm made from Debian's packages (make base-image); torch's
# CPU wheel comes from a wheel directory where its index is out of reach (pip's own find-links).
IMAGE ?= localhost/syrinx:cpu
IMAGE_BASE ?= localhost/syrinx-python:3.11-bookworm
IMAGE_WHEELS ?= $(shell python3 -m pip config get global.find-links 2>/dev/null)
base-image:
	tests/image/base_image.sh $(IMAGE_BASE)

image:
	@buildah inspect --type image $(IMAGE_BASE) > /dev/null 2>&1 || tests/image/base_image.sh $(IMAGE_BASE)
	buildah build --isolation chroot --layers --format docker --target cpu --build-arg PYTHON_IMAGE=$(IMAGE_BASE) \
		--build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
		$(if $(IMAGE_WHEELS),--volume $(IMAGE_WHEELS):/wheels:ro --build-arg PIP_FIND_LINKS=/wheels --build-arg TORCH_CPU_INDEX=) \
		-t $(IMAGE) .

# The image run as Kubernetes runs it (uid 10001, health, audio, drain, read-only root); prints sizes.
image-test: $(STAMP)
	PYTHONPATH=. $(PY) tests/image/image_test.py --image $(IMAGE) $(IMAGE_TEST_ARGS)

# The reliability suite's long parts (docs/reliability.md). fuzz: many random examples per RPC
# (FUZZ_EXAMPLES=); faults: the fault scenarios' figures; soak: 30 min at about 80% of capacity.
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	SYRINX_FUZZ_RANDOM=1 SYRINX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -s -p no:cacheprovider tests/test_fuzz.py

faults: $(STAMP)
	$(PY) -m bench.reliability faults $(BENCH_ARGS)

soak: $(STAMP)
	$(PY) -m bench.reliability soak $(BENCH_ARGS)

bench-load: $(BENCH_STAMP)
	$(PY) -m bench.load_bench --json bench-load.json --plot bench-load.png $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(RIVA_VENV) $(RIVA_OLDEST_VENV) .venv-pipecat .venv-livekit build *.egg-info
