"""Reading the deployment files as Docker Compose and kustomize would, without either.

- :func:`interpolate` expands ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
  ``${VAR:?error}``, ``${VAR?error}`` and ``$$`` like Compose does with its ``.env``.
- :func:`read_env_file` reads an ``.env`` file (``NAME=value`` lines, ``#`` comments).
- :func:`render_kustomization` renders ``deploy/k8s`` with the few kustomize fields it uses
  (``namespace``, ``labels``, ``resources``, ``images``); any other field is an error, so a
  feature added to the kustomization fails here instead of being silently left out.
  ``kubectl kustomize`` renders the same objects (tests/test_deploy_files.py checks that where
  kubectl is installed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S_DIR = ROOT / "deploy" / "k8s"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)
_CLUSTER_WIDE = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})
_KUSTOMIZE_FIELDS = frozenset({"apiVersion", "kind", "namespace", "labels", "resources", "images"})


class InterpolationError(ValueError):
    """A required variable (``${VAR:?message}``) is missing."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand the variables of one Compose string from ``env``."""

    def expand(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if missing else str(value)
        if op in (":?", "?"):
            if missing:
                raise InterpolationError(f"{name}: {arg}")
            return str(value)
        return value or ""

    return _VARIABLE.sub(expand, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """:func:`interpolate` every string of a parsed Compose file (keys stay as they are)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def compose_variables(text: str) -> set[str]:
    """The names of the variables a Compose file reads."""
    return {m.group("name") for m in _VARIABLE.finditer(text) if m.group("name")}


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        if not separator:
            raise ValueError(f"{path.name}: not NAME=value: {line!r}")
        values[name.strip()] = value.strip()
    return values


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml, parsed (YAML merge keys resolved), interpolated from ``env`` (default:
    .env.example) as ``docker compose config`` would."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    values = read_env_file(ENV_EXAMPLE) if env is None else env
    return interpolate_tree(document, values)  # type: ignore[no-any-return]


def render_kustomization(directory: Path = K8S_DIR) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` would print, for the fields used here."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _KUSTOMIZE_FIELDS
    if unknown:
        raise ValueError(f"kustomization fields this loader does not render: {sorted(unknown)}")
    namespace = kustomization.get("namespace")
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        if set(entry) - {"pairs"}:
            raise ValueError(f"labels options this loader does not render: {entry}")
        labels.update(entry["pairs"])
    images = {image["name"]: image for image in kustomization.get("images", [])}
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((directory / resource).read_text()):
            if document is None:
                continue
            metadata = document.setdefault("metadata", {})
            if namespace and document["kind"] not in _CLUSTER_WIDE:
                metadata["namespace"] = namespace
            if labels:
                metadata["labels"] = {**metadata.get("labels", {}), **labels}
            for container in _containers(document):
                container["image"] = _new_image(container["image"], images)
            objects.append(document)
    return objects


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    template = document.get("spec", {}).get("template", {}).get("spec", {})
    return [*template.get("initContainers", []), *template.get("containers", [])]


def _new_image(image: str, images: Mapping[str, Mapping[str, str]]) -> str:
    name, _, tag = image.partition(":")
    change = images.get(name)
    if change is None:
        return image
    new_tag = change.get("newTag", tag)
    return change.get("newName", name) + (f":{new_tag}" if new_tag else "")


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The rendered object of that kind and name."""
    for document in objects:
        if document["kind"] == kind and document["metadata"]["name"] == name:
            return document
    raise LookupError(f"no {kind} {name} in deploy/k8s")


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """The instructions of a Dockerfile as (INSTRUCTION, arguments), continuation lines joined
    and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions
