"""Refresh ``istio-crds.yaml``: the CRDs of the Istio kinds that ``k8s/`` renders, from ``istio/api``.

The deployment tests validate every rendered Istio object against its CRD's OpenAPI schema, offline.
This script keeps the project's copy of those CRDs: it reads Istio's generated CRD file (from the
public ``istio/api`` repository at a pinned commit, or from a local copy), keeps the whole
CustomResourceDefinition documents of the kinds our manifests use, verbatim, and writes them with a
header naming their source. Run it with ``make istio-schemas`` (``ISTIO_API_COMMIT=...`` to move on).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
K8S = HERE.parent
OUTPUT = HERE / "istio-crds.yaml"
SOURCE_PATH = "kubernetes/customresourcedefinitions.gen.yaml"
DEFAULT_COMMIT = "b8f8791d9653b2edc77a071d48887e582cfe84bf"
RAW_URL = "https://raw.githubusercontent.com/istio/api/{commit}/" + SOURCE_PATH
# What the deployment tests render (tests/test_k8s.py); an Istio kind in any of them needs its schema.
RENDERED = ["overlays/cpu", "overlays/gpu", "overlays/canary", "monitoring"]


def rendered_istio_kinds() -> set[tuple[str, str]]:
    kinds = set()
    for path in RENDERED:
        out = subprocess.run(["kubectl", "kustomize", str(K8S / path)], capture_output=True, text=True, check=True)
        for obj in yaml.safe_load_all(out.stdout):
            if obj and obj["apiVersion"].split("/")[0].endswith("istio.io"):
                kinds.add((obj["apiVersion"].split("/")[0], obj["kind"]))
    return kinds


def extract(source_text: str, kinds: set[tuple[str, str]]) -> list[str]:
    """The source's CRD documents for ``kinds``, as their original text, sorted by kind."""
    found = {}
    for document in re.split(r"^---\s*$", source_text, flags=re.MULTILINE):
        crd = yaml.safe_load(document)
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        key = (crd["spec"]["group"], crd["spec"]["names"]["kind"])
        if key in kinds:
            found[key] = document.strip("\n")
    missing = kinds - found.keys()
    if missing:
        raise SystemExit(f"the source has no CRD for {sorted(missing)}")
    return [found[key] for key in sorted(found, key=lambda k: (k[1], k[0]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default=DEFAULT_COMMIT, help="istio/api commit (default: %(default)s)")
    parser.add_argument("--source", type=Path, help=f"a local copy of istio/api's {SOURCE_PATH} at that commit")
    args = parser.parse_args()
    if args.source:
        text = args.source.read_text()
    else:
        with urllib.request.urlopen(RAW_URL.format(commit=args.commit), timeout=60) as response:
            text = response.read().decode()
    kinds = rendered_istio_kinds()
    documents = extract(text, kinds)
    header = (
        "# The CustomResourceDefinitions of the Istio kinds that k8s/ renders, kept whole and verbatim.\n"
        f"# Source: the public istio/api repository, {SOURCE_PATH},\n"
        f"# commit {args.commit}; Apache License 2.0 (Copyright Istio Authors).\n"
        f"# Kinds: {', '.join(kind for _, kind in sorted(kinds, key=lambda k: k[1]))}.\n"
        "# Made by k8s/schemas/refresh.py (`make istio-schemas`); do not edit by hand.\n"
    )
    OUTPUT.write_text(header + "---\n" + "\n---\n".join(documents) + "\n")
    print(f"wrote {OUTPUT.relative_to(K8S.parent)}: {len(documents)} CRDs ({len(OUTPUT.read_bytes()) // 1024} KiB)")


if __name__ == "__main__":
    main()
