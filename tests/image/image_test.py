"""`make image-test`: the built image run the way Kubernetes runs it, as far as this machine allows.

``podman run`` cannot set rlimits here, so the entrypoint runs under ``buildah run --isolation
chroot --user 10001:10001`` on the host's network. Each check is an assertion that can fail
(``--user 0:0`` shows one failing): the entrypoint starts as uid 10001 with the default voice;
health reports SERVING; a voice mounted at /voices is listed; a seeded stream returns the
same bytes as the checkout's own server; ``syrinx health`` (the image's HEALTHCHECK) exits 0;
SIGTERM drains and the process exits 0; and nothing was written outside /tmp (the manifests
run it with a read-only root filesystem). Then it prints the image's size, each layer's size
and the ten largest installed packages.

    PYTHONPATH=. python tests/image/image_test.py [--image localhost/syrinx:cpu] [--user 10001:10001]

(``make image-test`` runs it so, from the checkout's root: it uses the bench's helpers.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.load_bench import free_port
from syrinx.server.engine import default_voice_files
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

TEXT = "The image speaks exactly as the checkout does."
SEED = 7
MOUNTED_VOICE = "en_US-mounted-medium"
SITE_PACKAGES = "opt/syrinx/lib/python3.11/site-packages"
# Written by buildah run itself (bind mounts it sets up), not by the server.
RUNTIME_PATHS = ("tmp", "proc", "sys", "dev", "run", "voices", "etc/hosts", "etc/hostname", "etc/resolv.conf")


def buildah(*args: str) -> str:
    return subprocess.run(["buildah", *args], check=True, capture_output=True, text=True).stdout.strip()


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``root`` but the runtime paths: (mtime_ns, size)."""
    out = {}
    for directory, dirs, names in os.walk(root):
        relative = os.path.relpath(directory, root)
        if relative != "." and relative.startswith(RUNTIME_PATHS):
            dirs[:] = []
            continue
        for name in names + dirs:
            path = os.path.join(directory, name)
            key = os.path.relpath(path, root)
            if key.startswith(RUNTIME_PATHS):
                continue
            st = os.lstat(path)
            out[key] = (st.st_mtime_ns, st.st_size)
    return out


def wait_serving(address: str, deadline_s: float, process: subprocess.Popen) -> float:
    started = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - started < deadline_s:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode} before it was SERVING")
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            except grpc.RpcError:
                pass
            time.sleep(0.5)
    raise AssertionError(f"{address} was not SERVING within {deadline_s:g} s")


def server_pids(port: int) -> list[int]:
    """The server process on ``port`` (seen from the host)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # The server is Python running the entrypoint script; buildah's own wrappers
        # (buildah run, buildah-chroot-exec) carry the same arguments and are left out.
        wrapper = b"buildah" in argv[0]
        if not wrapper and any(a.endswith(b"syrinx-server") for a in argv[:2]) and str(port).encode() in argv:
            pids.append(int(entry.name))
    return pids


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def idle_threads(pid: int) -> int:
    """How many of ``pid``'s threads run at SCHED_IDLE (the engine's, docs/engine.md)."""
    count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            count += os.sched_getscheduler(int(task.name)) == os.SCHED_IDLE
        except OSError:  # the thread ended meanwhile
            continue
    return count


def stream_bytes(address: str) -> bytes:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.SynthesizerStub(channel)
        return b"".join(r.audio for r in stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=TEXT, seed=SEED)))


def checkout_bytes() -> bytes:
    """The same request to a server run from this checkout."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "syrinx.server.app", "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "-1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_serving(f"127.0.0.1:{port}", 180, process)
        return stream_bytes(f"127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(60)


def layer_sizes(image: str) -> list[tuple[int, str]]:
    """(bytes, what made it) for each layer, from containers/storage's own records."""
    info = json.loads(buildah("inspect", "--type", "image", image))
    store = json.loads(buildah("info"))["store"]
    graph_root, driver = store["GraphRoot"], store["GraphDriverName"]
    records = json.loads(Path(graph_root, f"{driver}-layers", "layers.json").read_text())
    size_of = {r.get("diff-digest"): r.get("diff-size", 0) for r in records}
    made_by = [h.get("created_by", "") for h in info.get("History", []) if not h.get("empty_layer")]
    diff_ids = info["OCIv1"]["rootfs"]["diff_ids"]
    made_by = ([""] * (len(diff_ids) - len(made_by)) + made_by)[-len(diff_ids) :]
    return [(size_of.get(d, 0), by) for d, by in zip(diff_ids, made_by)]


def package_sizes(root: Path) -> list[tuple[int, str]]:
    """Installed distributions by the bytes their RECORD lists."""
    site = root / SITE_PACKAGES
    out = []
    for dist in site.glob("*.dist-info"):
        record = dist / "RECORD"
        if not record.exists():
            continue
        total = 0
        for line in record.read_text().splitlines():
            path = line.split(",")[0]
            try:
                total += (site / path).lstat().st_size
            except OSError:
                pass
        out.append((total, dist.name.split("-")[0]))
    return sorted(out, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="localhost/syrinx:cpu")
    parser.add_argument(
        "--user", default="10001:10001", help="whom to run the entrypoint as (0:0 shows a check failing)"
    )
    args = parser.parse_args()
    container = buildah("from", "--quiet", args.image)
    voices = Path(tempfile.mkdtemp(prefix="syrinx-voices-"))
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            failures.append(what)

    try:
        default = default_voice_files()
        shutil.copy(default.model_path, voices / f"{MOUNTED_VOICE}.onnx")
        shutil.copy(default.config_path, voices / f"{MOUNTED_VOICE}.onnx.json")
        os.chmod(voices, 0o755)
        root = Path(buildah("mount", container))
        before = files(root)
        port = free_port()
        address = f"127.0.0.1:{port}"
        run = ["buildah", "run", "--isolation", "chroot", "--user", args.user, "--volume", f"{voices}:/voices:ro"]
        server = subprocess.Popen(
            [
                *run,
                container,
                "--",
                "syrinx-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--metrics-port",
                "-1",
                "--voices-dir",
                "/voices",
                "--drain-seconds",
                "10",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        ready_s = wait_serving(address, 300, server)
        check(True, f"health reports SERVING ({ready_s:.1f} s after start)")
        pids = server_pids(port)
        uids = sorted({uid_of(pid) for pid in pids})
        check(len(pids) == 1 and uids == [10001], f"the entrypoint runs as uid 10001 (process {pids}: uid {uids})")
        idle = idle_threads(pids[0]) if pids else 0
        check(idle >= 1, f"the engine's threads run at idle priority in the container ({idle} threads)")
        with grpc.insecure_channel(address) as channel:
            listed = pb_grpc.SynthesizerStub(channel).ListVoices(pb.ListVoicesRequest())
        names = [v.name for v in listed.voices]
        check(
            listed.default_voice == "en_US-joe-medium", f"the default voice is the bundled one ({listed.default_voice})"
        )
        check(MOUNTED_VOICE in names, f"the voice mounted at /voices is listed ({names})")
        image_audio = stream_bytes(address)
        check(
            len(image_audio) > 0 and image_audio == checkout_bytes(),
            f"a seeded stream equals the checkout's ({len(image_audio)} bytes)",
        )
        health = subprocess.run(
            [*run, container, "--", "syrinx", "--address", address, "health"], capture_output=True, text=True
        )
        check(health.returncode == 0, f"`syrinx health` (the HEALTHCHECK) exits {health.returncode}")
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        try:
            code = server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            code = None
        log = server.stdout.read().decode(errors="replace") if server.stdout else ""
        check(code == 0, f"SIGTERM drains and the process exits 0 (exit {code})")
        if code != 0:
            print(log[-2000:])
        check("Traceback" not in log, "the server's log has no traceback")
        after = files(root)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        check(not changed, f"nothing written outside /tmp ({changed[:5]}{' ...' if len(changed) > 5 else ''})")

        print()
        print(f"image {args.image}: {json.loads(buildah('images', '--json', args.image))[0].get('size')}")
        print("layers (uncompressed):")
        for layer_bytes, made_by in layer_sizes(args.image):
            print(f"  {layer_bytes / 1e6:9.1f} MB  {made_by[:100]}")
        print("ten largest installed packages:")
        for package_bytes, name in package_sizes(root)[:10]:
            print(f"  {package_bytes / 1e6:9.1f} MB  {name}")
    finally:
        subprocess.run(["buildah", "umount", container], capture_output=True)
        subprocess.run(["buildah", "rm", container], capture_output=True)
        shutil.rmtree(voices, ignore_errors=True)
    if failures:
        print(f"\n{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
