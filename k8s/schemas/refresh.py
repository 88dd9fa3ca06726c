"""Refresh the CRDs of the operator kinds that ``k8s/`` renders: Istio's and cert-manager's.

The deployment tests validate every rendered Istio or cert-manager object against its CRD's OpenAPI
schema, offline. This script keeps the project's copies of those CRDs: it reads the project's
generated CRD file (from its public repository at a pinned commit, or from a local copy), keeps
the whole CustomResourceDefinition documents of the kinds our manifests use, verbatim, and writes
them with a header naming their source. Run it with ``make istio-schemas`` (``ISTIO_API_COMMIT=...``
to move on) or ``make cert-manager-schemas`` (``CERT_MANAGER_COMMIT=...``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
K8S = HERE.parent


@dataclass(frozen=True)
class Source:
    output: Path
    repository: str  # on GitHub
    path: str
    commit: str
    group_suffix: str  # API groups whose kinds come from this source
    copyright: str
    title: str

    def url(self, commit: str) -> str:
        return f"https://raw.githubusercontent.com/{self.repository}/{commit}/{self.path}"


SOURCES = {
    "istio": Source(
        HERE / "istio-crds.yaml",
        "istio/api",
        "kubernetes/customresourcedefinitions.gen.yaml",
        "b8f8791d9653b2edc77a071d48887e582cfe84bf",
        "istio.io",
        "Copyright Istio Authors",
        "Istio",
    ),
    "cert-manager": Source(
        HERE / "cert-manager-crds.yaml",
        "cert-manager/cert-manager",
        "deploy/crds/cert-manager.io_certificates.yaml",
        "2d0d7f7f74241a9cbf79f0e2a7bb247238ee09fd",
        "cert-manager.io",
        "Copyright The cert-manager Authors",
        "cert-manager",
    ),
}
# What the deployment tests render (tests/test_k8s.py); an operator's kind in any of them needs its schema.
RENDERED = ["overlays/cpu", "overlays/gpu", "overlays/canary", "overlays/secure", "monitoring"]


def rendered_kinds(group_suffix: str) -> set[tuple[str, str]]:
    kinds = set()
    for path in RENDERED:
        out = subprocess.run(["kubectl", "kustomize", str(K8S / path)], capture_output=True, text=True, check=True)
        for obj in yaml.safe_load_all(out.stdout):
            if obj and obj["apiVersion"].split("/")[0].endswith(group_suffix):
                kinds.add((obj["apiVersion"].split("/")[0], obj["kind"]))
    return kinds


def rendered_istio_kinds() -> set[tuple[str, str]]:
    return rendered_kinds(SOURCES["istio"].group_suffix)


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
    parser.add_argument("project", choices=sorted(SOURCES), nargs="?", default="istio")
    parser.add_argument("--commit", help="the source repository's commit (default: the pinned one)")
    parser.add_argument("--source", type=Path, help="a local copy of the source file at that commit")
    args = parser.parse_args()
    source = SOURCES[args.project]
    commit = args.commit or source.commit
    if args.source:
        text = args.source.read_text()
    else:
        with urllib.request.urlopen(source.url(commit), timeout=60) as response:
            text = response.read().decode()
    kinds = rendered_kinds(source.group_suffix)
    documents = extract(text, kinds)
    header = (
        f"# The CustomResourceDefinitions of the {source.title} kinds that k8s/ renders, kept whole and verbatim.\n"
        f"# Source: the public {source.repository} repository, {source.path},\n"
        f"# commit {commit}; Apache License 2.0 ({source.copyright}).\n"
        f"# Kinds: {', '.join(kind for _, kind in sorted(kinds, key=lambda k: k[1]))}.\n"
        f"# Made by k8s/schemas/refresh.py (`make {args.project}-schemas`); do not edit by hand.\n"
    )
    source.output.write_text(header + "---\n" + "\n---\n".join(documents) + "\n")
    size = len(source.output.read_bytes()) // 1024
    print(f"wrote {source.output.relative_to(K8S.parent)}: {len(documents)} CRDs ({size} KiB)")


if __name__ == "__main__":
    main()
