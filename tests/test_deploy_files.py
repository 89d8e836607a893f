"""The deployment files, validated offline: the container image (hadolint and the image's rules),
docker-compose.yml (the compose-spec schema), the Kubernetes manifests (kubernetes-validate
--strict on the rendered kustomization), .gitlab-ci.yml (GitLab's schema), and the settings
they pass, which must be real settings documented in the README.

The validators are dev dependencies (pyproject.toml) that carry their schemas, so nothing here
needs a network, Docker or a cluster. tests/test_deploy_topology.py runs the compose topology.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from notiflow.config import Settings
from notiflow.delivery.heartbeat import STOP_TIMEOUT_SECONDS
from notiflow.delivery.sender import DRAIN_WRITE_SECONDS
from tests.deploy_support import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    K8S_DIR,
    ROOT,
    InterpolationError,
    compose_variables,
    dockerfile_instructions,
    find,
    interpolate,
    load_compose,
    read_env_file,
    render_kustomization,
)

BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"
GITLAB_CI = ROOT / ".gitlab-ci.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
README = (ROOT / "README.md").read_text()
SETTINGS = {f"NOTIFLOW_{name.upper()}" for name in Settings.model_fields}
NOTIFLOW_SERVICES = ("migrate", "api", "worker", "sandbox")


def run_tool(name: str, *args: str) -> str:
    """Run a validator installed beside this Python; fail with its output when it fails."""
    tool = BIN / name
    assert tool.exists(), f"{name} is not installed: make install (it is a dev dependency)"
    result = subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{name} {shlex.join(args)} failed:\n{output}"
    return output


def worker_drain_seconds(provider_timeout: float) -> float:
    """The longest a `notiflow worker` takes to stop after SIGTERM (notiflow.delivery): requests
    in flight finish within provider_timeout + 1 s, the last outcomes are stored within twice
    DRAIN_WRITE_SECONDS, the heartbeat marks the worker stopped within twice
    STOP_TIMEOUT_SECONDS."""
    return provider_timeout + 1 + 2 * DRAIN_WRITE_SECONDS + 2 * STOP_TIMEOUT_SECONDS


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return render_kustomization()


# --- the image ------------------------------------------------------------------------------


def test_hadolint_passes_the_dockerfile() -> None:
    run_tool("hadolint", "--failure-threshold", "info", str(DOCKERFILE))


def test_the_image_follows_the_deployment_rules() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) == 2, stages
    assert stages[0].endswith(" AS builder")
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    arguments = dict(final)  # the final stage's instructions (the last of each kind)
    assert any("-slim" in args for k, args in instructions if k == "ARG"), "a slim Python base"

    runs = " ".join(args for keyword, args in final if keyword == "RUN")
    assert "--no-index --find-links=/wheels /wheels/notiflow-" in runs, "from the built wheel"
    for tool in ("[dev]", "apt-get", "gcc", "build-essential"):
        assert tool not in runs, "no dev tools in the final image"

    user = arguments["USER"].split(":")[0]
    assert user.isdigit(), "a numeric user, that runAsNonRoot can check"
    assert int(user) != 0, "not root"
    assert arguments["HEALTHCHECK"].count("CMD") == 1
    healthcheck = json.loads(arguments["HEALTHCHECK"].split("CMD", 1)[1])
    assert healthcheck[0] == "python", "no curl in the image"
    assert "/health/live" in healthcheck[-1]
    command = json.loads(arguments["CMD"])
    assert command[:2] == ["notiflow", "api"], "the API by default"
    assert command[2:] == ["--host", "0.0.0.0", "--port", "8000"]


def test_dockerignore_keeps_the_context_to_what_the_build_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!src/"]
    copied = [
        args.split()[0]
        for keyword, args in dockerfile_instructions(DOCKERFILE)
        if keyword == "COPY" and not args.startswith("--from")
    ]
    assert copied == ["pyproject.toml", "src"]


# --- docker-compose.yml -----------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec() -> None:
    output = run_tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)
    )
    assert "ok" in output


def test_compose_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["volumes"][0].endswith(":/var/lib/postgresql/data")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["notiflow", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends == {"migrate": {"condition": "service_completed_successfully"}}
        assert services[name]["command"][:2] == ["notiflow", name]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["sandbox"]["profiles"] == ["sandbox"]
    assert services["mailpit"]["profiles"] == ["mail"]
    for name, service in services.items():
        if name in NOTIFLOW_SERVICES:
            assert "build" in service, name
            assert service["environment"]["NOTIFLOW_LOG_FORMAT"] == "json", name


def test_compose_stops_workers_after_their_drain(compose: dict[str, Any]) -> None:
    grace = compose["services"]["worker"]["stop_grace_period"]
    seconds = int(grace.removesuffix("s"))
    timeout = float(compose["services"]["worker"]["environment"]["NOTIFLOW_PROVIDER_TIMEOUT"])
    assert seconds > worker_drain_seconds(timeout)


def test_compose_refuses_to_start_without_its_secrets() -> None:
    values = read_env_file(ENV_EXAMPLE)
    for secret in ("POSTGRES_PASSWORD", "NOTIFLOW_API_TOKENS", "NOTIFLOW_SESSION_SECRET"):
        with pytest.raises(InterpolationError, match=secret):
            load_compose({k: v for k, v in values.items() if k != secret})


def test_env_example_lists_every_variable_compose_reads() -> None:
    text = ENV_EXAMPLE.read_text()
    names = set(read_env_file(ENV_EXAMPLE))
    commented = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    missing = compose_variables(COMPOSE_FILE.read_text()) - names - commented
    assert not missing, f"docker-compose.yml reads {sorted(missing)}: add them to .env.example"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_interpolation_follows_compose() -> None:
    env = {"SET": "a", "EMPTY": ""}
    assert interpolate("${SET:-b} ${EMPTY:-b} ${EMPTY-b} ${UNSET-b} $$x", env) == "a b  b $x"
    assert interpolate("${SET:?no} ${EMPTY?no}", env) == "a "
    with pytest.raises(InterpolationError, match="EMPTY: needed"):
        interpolate("${EMPTY:?needed}", env)


def test_prometheus_scrapes_the_api_and_every_worker(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["notiflow-api"]["static_configs"] == [{"targets": ["api:8000"]}]
    workers = jobs["notiflow-worker"]["dns_sd_configs"][0]
    assert workers["names"] == ["worker"]
    port = compose["services"]["worker"]["environment"]["NOTIFLOW_WORKER_PORT"]
    assert workers["port"] == int(port)
    assert any(
        volume.startswith("./deploy/prometheus.yml:")
        for volume in compose["services"]["prometheus"]["volumes"]
    )


# --- Kubernetes -------------------------------------------------------------------------------


def test_manifests_are_valid_kubernetes(manifests: list[dict[str, Any]], tmp_path: Path) -> None:
    rendered = tmp_path / "notiflow.yaml"
    rendered.write_text(yaml.safe_dump_all(manifests))
    output = run_tool("kubernetes-validate", "--strict", str(rendered))
    assert output.count("passed") == len(manifests), output


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_loader_renders_what_kustomize_renders(manifests: list[dict[str, Any]]) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, check=True
    )

    def key(document: dict[str, Any]) -> tuple[str, str]:
        return document["kind"], document["metadata"]["name"]

    kustomized = sorted(yaml.safe_load_all(result.stdout), key=key)
    assert kustomized == sorted(manifests, key=key)


def test_the_api_deployment(manifests: list[dict[str, Any]]) -> None:
    api = find(manifests, "Deployment", "notiflow-api")
    assert api["spec"]["replicas"] == 2
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert set(container["resources"]) == {"requests", "limits"}
    service = find(manifests, "Service", "notiflow-api")
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )
    ingress = find(manifests, "Ingress", "notiflow")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "notiflow-api"
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_the_workers_scale_and_drain(manifests: list[dict[str, Any]]) -> None:
    worker = find(manifests, "Deployment", "notiflow-worker")
    assert "replicas" not in worker["spec"], "the autoscaler owns the count"
    hpa = find(manifests, "HorizontalPodAutoscaler", "notiflow-worker")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "notiflow-worker"
    assert hpa["spec"]["minReplicas"] >= 2
    pod = worker["spec"]["template"]
    for name in ("notiflow-worker", "notiflow-api"):  # each Deployment has its budget
        budget = find(manifests, "PodDisruptionBudget", name)["spec"]
        labels = find(manifests, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["selector"]["matchLabels"].items() <= labels.items()
        assert budget["minAvailable"] == 1
    config = find(manifests, "ConfigMap", "notiflow-config")["data"]
    drain = worker_drain_seconds(float(config["NOTIFLOW_PROVIDER_TIMEOUT"]))
    assert pod["spec"]["terminationGracePeriodSeconds"] > drain
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["notiflow", "worker"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"


def test_scrape_annotations_name_the_metrics_port(manifests: list[dict[str, Any]]) -> None:
    config = find(manifests, "ConfigMap", "notiflow-config")["data"]
    expected = {"notiflow-api": 8000, "notiflow-worker": int(config["NOTIFLOW_WORKER_PORT"])}
    for name, port in expected.items():
        pod = find(manifests, "Deployment", name)["spec"]["template"]
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == port
        (container_port,) = pod["spec"]["containers"][0]["ports"]
        assert container_port["containerPort"] == port
        # A ServiceMonitor selects the Service by its labels and scrapes its named port.
        service = find(manifests, "Service", name)
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "notiflow"
        (service_port,) = service["spec"]["ports"]
        assert service_port["targetPort"] == container_port["name"]


def test_every_pod_runs_notiflow_as_the_image_user(manifests: list[dict[str, Any]]) -> None:
    user = dict(dockerfile_instructions(DOCKERFILE))["USER"].split(":")[0]
    (image,) = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())["images"]
    pods = [d["spec"]["template"]["spec"] for d in manifests if d["kind"] in ("Deployment", "Job")]
    assert len(pods) == 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == int(user)
        for container in pod["containers"]:
            assert container["image"] == f"{image['newName']}:{image['newTag']}"
            sources = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
            assert sources == ["notiflow-config", "notiflow-secrets"]


# --- GitLab CI --------------------------------------------------------------------------------


def test_gitlab_ci_matches_gitlabs_schema() -> None:
    run_tool("check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", str(GITLAB_CI))


def test_gitlab_ci_runs_the_make_targets_of_ci_run() -> None:
    pipeline = yaml.safe_load(GITLAB_CI.read_text())
    ci_run = (ROOT / ".ci" / "run").read_text()
    targets = re.findall(r"^make (\w+)$", ci_run, flags=re.MULTILINE)
    assert targets == ["install", "lint", "test"]

    def commands(job: dict[str, Any]) -> list[str]:
        base = pipeline.get(job.get("extends", ""), {})
        return [*job.get("before_script", base.get("before_script", [])), *job["script"]]

    assert commands(pipeline["lint"]) == ["make install", "make lint"]
    assert commands(pipeline["test"])[-2:] == ["make install", "make test"]
    services = [service["name"] for service in pipeline["test"]["services"]]
    assert any(name.startswith("postgres") for name in services)
    assert pipeline["stages"] == ["lint", "test", "build", "deploy"]
    assert any(line.startswith("docker build") for line in pipeline["build-image"]["script"])
    deploy = pipeline["deploy"]
    assert all(rule["when"] == "manual" for rule in deploy["rules"])
    assert "kubectl apply -k deploy/k8s" in deploy["script"]


def test_gitlab_deploy_applies_the_image_it_built(tmp_path: Path) -> None:
    """The deploy job's edit of the kustomization, run on a copy: every pod gets the image."""
    pipeline = yaml.safe_load(GITLAB_CI.read_text())
    (edit,) = [line for line in pipeline["deploy"]["script"] if line.startswith("sed ")]
    shutil.copytree(K8S_DIR, tmp_path / "deploy" / "k8s")
    image, tag = "registry.gitlab.example/group/notiflow", "0a1b2c3d"
    env = {"PATH": "/usr/bin:/bin", "CI_REGISTRY_IMAGE": image, "CI_COMMIT_SHORT_SHA": tag}
    subprocess.run(["sh", "-ec", edit], cwd=tmp_path, env=env, check=True)
    rendered = render_kustomization(tmp_path / "deploy" / "k8s")
    images = {
        container["image"]
        for document in rendered
        for container in document.get("spec", {})
        .get("template", {})
        .get("spec", {})
        .get("containers", [])
    }
    assert images == {f"{image}:{tag}"}


# --- the settings -----------------------------------------------------------------------------


def test_compose_and_kubernetes_pass_the_same_real_documented_settings(
    compose: dict[str, Any], manifests: list[dict[str, Any]]
) -> None:
    services = compose["services"]
    compose_names = set(services["api"]["environment"])
    for name in ("migrate", "worker"):
        assert set(services[name]["environment"]) == compose_names, name
    config = set(find(manifests, "ConfigMap", "notiflow-config")["data"])
    secret = set(find(manifests, "Secret", "notiflow-secrets")["stringData"])
    assert not config & secret
    assert compose_names == config | secret
    env_example = {name for name in read_env_file(ENV_EXAMPLE) if name.startswith("NOTIFLOW_")}
    for name in sorted(compose_names | env_example):
        assert name in SETTINGS, f"{name} is not a setting of notiflow.config"
        assert f"| `{name}` |" in README, f"{name} is not in the README's settings table"


@pytest.mark.parametrize("source", ["compose", "kubernetes"])
def test_the_settings_passed_are_valid(
    source: str,
    compose: dict[str, Any],
    manifests: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Notiflow accepts the environment compose (with .env.example) and the manifests give it."""
    if source == "compose":
        environment = compose["services"]["api"]["environment"]
    else:
        environment = {
            **find(manifests, "ConfigMap", "notiflow-config")["data"],
            **find(manifests, "Secret", "notiflow-secrets")["stringData"],
        }
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings(_env_file=None)
    assert not settings.is_sqlite
    assert settings.provider_url, "a provider URL, never an empty one"
    assert settings.api_tokens


# --- the README -------------------------------------------------------------------------------


def test_readme_deployment_section_matches_the_files(
    compose: dict[str, Any], manifests: list[dict[str, Any]]
) -> None:
    section = README.split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]
    files_table = section.split("| file | what |", 1)[1].split("\n\n", 1)[0]
    rows = [row.split(" | ")[0] for row in files_table.splitlines()[2:]]
    named = [name for row in rows for name in re.findall(r"`([^`]+)`", row)]
    assert len(named) == 7, rows
    for name in named:
        assert (ROOT / name).exists(), f"the README names {name}, which does not exist"
    for name in compose["services"]:
        assert f"| `{name}` |" in section, f"the README does not say what {name} is"
    worker = find(manifests, "Deployment", "notiflow-worker")["spec"]["template"]["spec"]
    grace = worker["terminationGracePeriodSeconds"]
    assert f"`terminationGracePeriodSeconds` is {grace}" in section
    stop_grace = compose["services"]["worker"]["stop_grace_period"].removesuffix("s")
    assert f"`stop_grace_period` {stop_grace} s" in section
    hpa = find(manifests, "HorizontalPodAutoscaler", "notiflow-worker")["spec"]
    assert f"`minReplicas: {hpa['minReplicas']}`" in section
    assert f"`maxReplicas: {hpa['maxReplicas']}`" in section
    assert f"`NOTIFLOW_PROVIDER_TIMEOUT` + {worker_drain_seconds(0):g} s" in " ".join(
        section.split()
    )
