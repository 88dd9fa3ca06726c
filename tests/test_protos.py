"""The API definition: buf lint is clean and the committed stubs match protos/."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "client" / "_generated"
BUF = ROOT / "node_modules" / ".bin" / "buf"


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            "protos",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ],
        cwd=ROOT,
        check=True,
    )


def test_committed_stubs_match_protos(tmp_path):
    generate(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    committed = sorted(p.relative_to(GENERATED) for p in GENERATED.rglob("*.py*") if p.name != "__init__.py")
    assert fresh == committed, "run `make proto`"
    for name in fresh:
        assert filecmp.cmp(tmp_path / name, GENERATED / name, shallow=False), f"{name} is stale: run `make proto`"


@pytest.mark.skipif(not BUF.exists() and shutil.which("buf") is None, reason="buf is installed by `make test` (npm)")
def test_buf_lint_is_clean():
    buf = str(BUF) if BUF.exists() else "buf"
    result = subprocess.run([buf, "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
