"""The deployment files: rendered, validated offline, and checked against the server's own code and config."""

from __future__ import annotations

import copy
import shutil
import signal
import subprocess
import sys
from functools import cache
from pathlib import Path

import grpc
import jsonschema
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from service_fixtures import ServerThread

from syrinx.server.config import DEFAULT_PORT, ServerConfig
from syrinx.server.telemetry import TelemetryConfig
from syrinx.server.transport.servicer import SERVICE_NAME
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
# Made by k8s/schemas/refresh.py (`make istio-schemas`, `make cert-manager-schemas`).
ISTIO_CRDS = K8S / "schemas" / "istio-crds.yaml"
CERT_MANAGER_CRDS = K8S / "schemas" / "cert-manager-crds.yaml"
KUBERNETES_VERSION = "1.32.0"
OVERLAYS = ["cpu", "gpu", "canary", "secure"]
# Kinds whose schema comes with an operator, not with Kubernetes or Istio: checked by hand below.
OPERATOR_KINDS = {("monitoring.coreos.com", "ServiceMonitor")}


@cache
def render(path: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render k8s/"
    out = subprocess.run([kubectl, "kustomize", str(K8S / path)], capture_output=True, text=True, check=True).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def objects(path: str, kind: str) -> list[dict]:
    return [o for o in render(path) if o["kind"] == kind]


def group_of(obj: dict) -> str:
    return obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""


def has_crd(group: str) -> bool:
    return group.endswith("istio.io") or group == "cert-manager.io"


@cache
def crd_schemas() -> dict[tuple[str, str, str], dict]:
    schemas = {}
    for crd in [*yaml.safe_load_all(ISTIO_CRDS.read_text()), *yaml.safe_load_all(CERT_MANAGER_CRDS.read_text())]:
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        for version in crd["spec"]["versions"]:
            key = (crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.parametrize("path", [f"overlays/{name}" for name in OVERLAYS] + ["monitoring"])
def test_every_rendered_object_validates_against_its_schema(path):
    checked = 0
    for obj in render(path):
        group, kind = group_of(obj), obj["kind"]
        if has_crd(group):
            key = (group, obj["apiVersion"].split("/")[1], kind)
            assert key in crd_schemas(), f"no CRD for {key} in k8s/schemas: run `make istio-schemas` or the like"
            schema = crd_schemas()[key]
            jsonschema.validate(obj, schema)  # raises with the path of the first error
            # Strictness the CRD schemas leave out: no field the API does not know, at the top of spec.
            assert set(obj["spec"]) <= set(schema["properties"]["spec"]["properties"]), kind
        elif (group, kind) in OPERATOR_KINDS:
            assert obj["spec"]["endpoints"][0]["port"] == "http-metrics"
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 3


def refresh_script():
    sys.path.insert(0, str(K8S / "schemas"))
    try:
        import refresh
    finally:
        sys.path.pop(0)
    return refresh


def test_the_cert_manager_schema_is_what_the_refresh_script_makes_for_these_manifests():
    refresh = refresh_script()
    committed = CERT_MANAGER_CRDS.read_text()
    kinds = refresh.rendered_kinds("cert-manager.io")
    assert kinds == {("cert-manager.io", "Certificate")}
    documents = refresh.extract(committed, kinds)
    assert committed.endswith("---\n" + "\n---\n".join(documents) + "\n")
    assert "commit " + refresh.SOURCES["cert-manager"].commit in committed and "Apache License 2.0" in committed


def test_the_istio_schemas_are_what_the_refresh_script_makes_for_these_manifests():
    refresh = refresh_script()
    committed = ISTIO_CRDS.read_text()
    kinds = refresh.rendered_istio_kinds()
    assert {kind for _, kind in kinds} >= {
        "VirtualService",
        "DestinationRule",
        "PeerAuthentication",
        "AuthorizationPolicy",
    }
    # Re-extracting from the committed file keeps every document and adds none: the copy holds exactly
    # the CRDs of the kinds k8s/ renders (a new kind fails here until the schemas are refreshed).
    documents = refresh.extract(committed, kinds)
    assert committed.endswith("---\n" + "\n---\n".join(documents) + "\n")
    assert "commit " + refresh.SOURCES["istio"].commit in committed and "Apache License 2.0" in committed


def test_overlays_have_what_each_is_for():
    gpu = objects("overlays/gpu", "Deployment")[0]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu" and gpu["nodeSelector"]
    canary = render("overlays/canary")
    deployments = {d["metadata"]["name"]: d for d in canary if d["kind"] == "Deployment"}
    assert set(deployments) == {"syrinx", "syrinx-canary"}
    (virtual_service,) = [o for o in canary if o["kind"] == "VirtualService"]
    split = next(route for route in virtual_service["spec"]["http"] if route["name"] == "split")
    assert [(d["destination"]["subset"], d["weight"]) for d in split["route"]] == [("stable", 90), ("canary", 10)]
    (hpa,) = [o for o in canary if o["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "syrinx"  # the stable Deployment, not the canary


def test_the_canary_runs_the_stable_pod_spec_with_its_own_image():
    deployments = {d["metadata"]["name"]: d for d in objects("overlays/canary", "Deployment")}
    stable, canary = (copy.deepcopy(deployments[n]["spec"]["template"]) for n in ("syrinx", "syrinx-canary"))
    assert stable["metadata"]["labels"]["version"] == "stable" and canary["metadata"]["labels"]["version"] == "canary"
    assert canary["spec"]["containers"][0]["image"] != stable["spec"]["containers"][0]["image"]
    for template in (stable, canary):
        template["metadata"]["labels"].pop("version")
        template["spec"]["containers"][0].pop("image")
    assert canary == stable
    (destination_rule,) = objects("overlays/canary", "DestinationRule")
    subsets = {s["name"]: s["labels"] for s in destination_rule["spec"]["subsets"]}
    assert subsets == {"stable": {"version": "stable"}, "canary": {"version": "canary"}}


def test_the_release_overlay_pins_each_deployment_to_its_own_image(tmp_path):
    """.github/release-overlay.sh, as the CI/CD workflows use it: the canary gets the release,
    stable keeps what it runs; promotion sets stable alone and sends it every call."""
    script = ROOT / ".github" / "release-overlay.sh"
    stable, canary = "ghcr.io/example/syrinx@sha256:" + "a" * 64, "ghcr.io/example/syrinx@sha256:" + "b" * 64
    subprocess.run(["bash", str(script), str(tmp_path / "canary"), stable, canary], check=True)
    subprocess.run(["bash", str(script), str(tmp_path / "stable"), canary], check=True)

    def rendered(path):
        out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def images(docs):
        return {
            d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
            for d in docs
            if d["kind"] == "Deployment"
        }

    assert images(rendered(tmp_path / "canary")) == {"syrinx": stable, "syrinx-canary": canary}
    promoted = rendered(tmp_path / "stable")
    assert images(promoted) == {"syrinx": canary}
    (virtual_service,) = [d for d in promoted if d["kind"] == "VirtualService"]
    split = next(route for route in virtual_service["spec"]["http"] if route["name"] == "split")
    assert [(d["destination"]["subset"], d["weight"]) for d in split["route"]] == [("stable", 100), ("canary", 0)]


# -- the manifests against the server ---------------------------------------------------------


def pod(path: str = "overlays/cpu") -> dict:
    return objects(path, "Deployment")[0]["spec"]["template"]["spec"]


def config_map(path: str = "overlays/cpu") -> dict:
    return objects(path, "ConfigMap")[0]["data"]


def test_ports_and_probes_match_the_server():
    container = pod()["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": DEFAULT_PORT, "http-metrics": TelemetryConfig().metrics_port}
    assert config_map()["SYRINX_PORT"] == str(DEFAULT_PORT)
    assert config_map()["SYRINX_METRICS_PORT"] == str(TelemetryConfig().metrics_port)
    probes = {name: container[name]["grpc"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert all(p["port"] == DEFAULT_PORT for p in probes.values())
    assert probes["readinessProbe"]["service"] == SERVICE_NAME  # not ready while loading or draining
    assert probes["livenessProbe"]["service"] == probes["startupProbe"]["service"] == ""
    assert "initialDelaySeconds" not in container["startupProbe"]  # the startup probe covers loading
    (service,) = objects("overlays/cpu", "Service")
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert (grpc_port["port"], grpc_port["appProtocol"]) == (DEFAULT_PORT, "grpc")


def test_drain_fits_in_the_termination_grace():
    spec, container = pod(), pod()["containers"][0]
    drain = float(config_map()["SYRINX_DRAIN_SECONDS"])
    assert drain == ServerConfig().drain_seconds
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > drain  # draining is not dying
    (deployment,) = objects("overlays/cpu", "Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_autoscaler_reads_the_metric_the_server_exports():
    from test_telemetry import DOCUMENTED

    (hpa,) = objects("overlays/cpu", "HorizontalPodAutoscaler")
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    name = metrics["Pods"]["pods"]["metric"]["name"]
    assert name == "syrinx_streams_active" and name in DOCUMENTED
    assert float(metrics["Pods"]["pods"]["target"]["averageValue"]) < ServerConfig().scheduler.max_streams
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    rules = yaml.safe_load(objects("monitoring", "ConfigMap")[0]["data"]["config.yaml"])["rules"]
    assert any(name in rule["seriesQuery"] for rule in rules)


def test_pods_are_locked_down():
    spec = pod()
    assert spec["securityContext"]["runAsNonRoot"] and spec["automountServiceAccountToken"] is False
    security = spec["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    voices = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "voices")
    assert voices["readOnly"] and voices["mountPath"] == config_map()["SYRINX_VOICES_DIR"]
    assert objects("overlays/cpu", "NetworkPolicy") and objects("overlays/cpu", "PodDisruptionBudget")
    (peer,) = objects("overlays/cpu", "PeerAuthentication")
    assert peer["spec"]["mtls"]["mode"] == "STRICT"


@pytest.mark.parametrize("overlay", ["overlays/cpu", "overlays/gpu", "overlays/secure"])
def test_lexicons_come_from_an_optional_config_map_where_the_server_reads_them(overlay):
    (deployment,) = [d for d in objects(overlay, "Deployment") if d["metadata"]["name"] == "syrinx"]
    spec = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "lexicons"]
    assert volume["configMap"] == {
        "name": "syrinx-lexicons",
        "optional": True,
    }  # no ConfigMap: no lexicons, still starts
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "lexicons"]
    (settings,) = [
        c
        for c in objects(overlay, "ConfigMap")
        if c["metadata"]["name"].startswith("syrinx") and "SYRINX_LEXICONS_DIR" in c.get("data", {})
    ]
    assert mount["readOnly"] and mount["mountPath"] == settings["data"]["SYRINX_LEXICONS_DIR"]


def test_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the kubelet's part -------------------------------------------------------------------------


def probe_status(channel: grpc.Channel, service: str) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def probe_services() -> dict[str, str]:
    container = pod()["containers"][0]
    return {name: container[name]["grpc"]["service"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}


def test_the_probes_fail_while_the_voices_load_and_pass_once_warm():
    services = probe_services()
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0))  # bound, voices not loaded yet
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    try:
        # Loading: every probe fails, so the startup probe holds the pod back and no traffic comes.
        assert {n: probe_status(server.channel, s) for n, s in services.items()} == dict.fromkeys(services, not_serving)
        server.make_ready()
        assert {n: probe_status(server.channel, s) for n, s in services.items()} == dict.fromkeys(services, serving)
    finally:
        server.stop()


def test_after_sigterm_readiness_fails_at_once_while_the_stream_in_flight_completes():
    from test_server_process import ServerProcess

    services = probe_services()
    server = ServerProcess()  # the real `syrinx-server` process, as the kubelet sees it
    channel = grpc.insecure_channel(server.address)
    try:
        stub = pb_grpc.SynthesizerStub(channel)
        text = " ".join(f"Sentence {i} keeps this call busy while the pod drains." for i in range(6))
        call = stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text, seed=1))
        first = next(call)
        # The kubelet's next readiness check, as a Watch opened before SIGTERM (a new call after
        # it is refused, which the kubelet counts as not ready too).
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=services["readinessProbe"]), timeout=60
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        server.process.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        rest = list(call)
        assert first.sequence_number == 0 and rest[-1].final
        assert server.process.wait(timeout=60) == 0
    finally:
        channel.close()
        server.kill()


# -- the secure overlay: TLS from cert-manager, tokens, probes on the plaintext health port ----------


def test_the_secure_overlay_mounts_the_certificates_secret_and_probes_the_health_port():
    secure, settings = pod("overlays/secure"), config_map("overlays/secure")
    container = secure["containers"][0]
    health_port = int(settings["SYRINX_HEALTH_PORT"])
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["health"] == health_port
    assert {container[n]["grpc"]["port"] for n in ("startupProbe", "readinessProbe", "livenessProbe")} == {health_port}
    assert probe_services() == {
        n: container[n]["grpc"]["service"] for n in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    (certificate,) = objects("overlays/secure", "Certificate")
    volumes = {v["name"]: v for v in secure["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    for name, files in (
        ("tls", ("SYRINX_TLS_CERT_FILE", "SYRINX_TLS_KEY_FILE")),
        ("tokens", ("SYRINX_AUTH_TOKENS_FILE",)),
    ):
        # A whole directory, never subPath: only then does the kubelet update the files in place.
        assert "subPath" not in mounts[name] and mounts[name]["readOnly"]
        assert {str(Path(settings[f]).parent) for f in files} == {mounts[name]["mountPath"]}
    assert {"syrinx", "syrinx.syrinx.svc"} <= set(certificate["spec"]["dnsNames"])
    assert not [o for o in render("overlays/secure") if group_of(o).endswith("istio.io")]


def test_a_server_configured_as_the_secure_overlay_answers_probes_in_plaintext(tmp_path):
    """The overlay's settings, with the Secret's files made here: the kubelet's plaintext probe
    reaches the health port, and the gRPC port wants TLS."""
    import trustme

    from syrinx.server.config import load_config

    ca = trustme.CA()
    cert = ca.issue_cert("syrinx")
    environ = dict(config_map("overlays/secure"))
    files = {
        "SYRINX_TLS_CERT_FILE": cert.cert_chain_pems[0].bytes(),
        "SYRINX_TLS_KEY_FILE": cert.private_key_pem.bytes(),
        "SYRINX_AUTH_TOKENS_FILE": b"a-token-of-sixteen-or-more\n",
    }
    for variable, content in files.items():
        path = tmp_path / Path(environ[variable]).name
        path.write_bytes(content)
        environ[variable] = str(path)
    environ.pop("SYRINX_VOICES_DIR")  # the mounted voices: none here
    environ.update(SYRINX_PORT="0", SYRINX_HEALTH_PORT="0", SYRINX_HOST="127.0.0.1")
    server = ServerThread(load_config([], environ))
    try:
        server.make_ready()
        probe = grpc.insecure_channel(f"127.0.0.1:{server.running.health_port}")
        for service in probe_services().values():
            assert probe_status(probe, service) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as plaintext:
            probe_status(server.channel, "")  # the test server's plaintext channel to the TLS port
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()
