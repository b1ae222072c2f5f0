"""What the deployment tests (``tests/deploy``) read: the Kubernetes manifests, compose.yaml,
the platform's services, and which configuration keys are secrets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, SecretStr

from m3o.platform.services import SERVICES
from m3o.runtime.config import Config
from m3o.runtime.config.values import SecretUrl

__all__ = [
    "COMPOSE",
    "DOCKERFILE",
    "KUBERNETES",
    "ROOT",
    "Manifest",
    "compose",
    "manifests",
    "pod_templates",
    "secret_environment_names",
    "service_names",
]

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Manifest:
    """One resource of a manifest file."""

    path: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body["metadata"].get("labels", {}))

    def __repr__(self) -> str:
        return f"{self.kind}/{self.name} ({self.path.relative_to(ROOT)})"


def manifests() -> list[Manifest]:
    """Every resource in ``deploy/kubernetes`` (the kustomization itself excluded)."""
    found = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        with path.open() as stream:
            found.extend(Manifest(path, body) for body in yaml.safe_load_all(stream) if body)
    return found


def pod_templates() -> Iterator[tuple[Manifest, dict[str, Any]]]:
    """Every workload and the pod spec it runs."""
    for manifest in manifests():
        if manifest.kind in ("Deployment", "Job"):
            yield manifest, manifest.body["spec"]["template"]["spec"]


def compose() -> dict[str, Any]:
    """compose.yaml, its anchors and merge keys resolved."""
    with COMPOSE.open() as stream:
        loaded: dict[str, Any] = yaml.safe_load(stream)
    return loaded


def service_names() -> set[str]:
    """The platform's services (``m3o.platform.services.SERVICES``)."""
    return {definition.name for definition in SERVICES}


def _is_secret(info: Any) -> bool:
    markers = get_args(SecretUrl)[1:]
    return info.annotation is SecretStr or any(m in markers for m in info.metadata)


def _secret_paths(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        annotation = info.annotation
        if _is_secret(info):
            yield path
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _secret_paths(annotation, path)


def secret_environment_names() -> set[str]:
    """The environment variables that carry a secret setting (``M3O_STRIPE__API_KEY``):
    every ``SecretStr`` and secret URL of the configuration."""
    return {"M3O_" + "__".join(path).upper() for path in _secret_paths(Config, ())}
