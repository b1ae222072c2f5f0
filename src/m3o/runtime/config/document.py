"""The whole configuration document: the root :class:`Config`, its dump, paths into it.

Paths name a part of the document: ``micro`` is the whole document, ``micro.usage.quotas``
one part of it. The helpers here walk the schema of :class:`Config` to turn a path (or the
levels of an environment variable) into canonical JSON keys and the type found there, and
edit plain JSON documents at those keys; validation and the store live in
:mod:`m3o.runtime.config`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, get_args, get_origin

import orjson
from pydantic import BaseModel, Field, SecretStr
from pydantic.fields import FieldInfo

from m3o.runtime.config._reference import is_reference_path
from m3o.runtime.config.sections import (
    AlertConfig,
    ApiConfig,
    AuthConfig,
    BalanceConfig,
    BillingConfig,
    DatabaseConfig,
    EmailsConfig,
    EndToEndConfig,
    MailchimpConfig,
    MixpanelConfig,
    OAuthConfig,
    RedisConfig,
    ServerConfig,
    SignupConfig,
    StatusConfig,
    StripeConfig,
    TracingConfig,
    UsageConfig,
    V1Config,
    _Section,
)
from m3o.runtime.config.values import ConfigError, _SecretUrlMarker, format_duration

__all__ = ["REDACTED", "ROOT", "Config", "parse_value"]

ROOT = "micro"
"""The root name of the configuration document in the config store."""

REDACTED = "[redacted]"


class Config(_Section):
    """The whole configuration: one attribute per section, every one optional."""

    alert: AlertConfig = Field(default_factory=AlertConfig)
    """Alerts to Slack and Discord."""
    api: ApiConfig = Field(default_factory=ApiConfig)
    """The platform API."""
    auth: AuthConfig = Field(default_factory=AuthConfig)
    """Tokens, service accounts and login throttling (ours)."""
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    """Customer balances."""
    billing: BillingConfig = Field(default_factory=BillingConfig)
    """Subscription tiers and billing accounts."""
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    """The database (ours)."""
    emails: EmailsConfig = Field(default_factory=EmailsConfig)
    """Outgoing email."""
    endtoend: EndToEndConfig = Field(default_factory=EndToEndConfig)
    """The live end-to-end check."""
    mailchimp: MailchimpConfig = Field(default_factory=MailchimpConfig)
    """Mailchimp list sync."""
    mixpanel: MixpanelConfig = Field(default_factory=MixpanelConfig)
    """Mixpanel analytics forwarding."""
    oauth: OAuthConfig = Field(default_factory=OAuthConfig)
    """Google and GitHub login."""
    redis: RedisConfig = Field(default_factory=RedisConfig)
    """Redis (``platform`` profile: events, counters, caches)."""
    server: ServerConfig = Field(default_factory=ServerConfig)
    """Listening addresses, service addresses and logging (ours)."""
    signup: SignupConfig = Field(default_factory=SignupConfig)
    """Signup, onboarding and password recovery."""
    status: StatusConfig = Field(default_factory=StatusConfig)
    """The status endpoint."""
    stripe: StripeConfig = Field(default_factory=StripeConfig)
    """Stripe payments."""
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    """OpenTelemetry traces (off unless an OTLP endpoint is set)."""
    usage: UsageConfig = Field(default_factory=UsageConfig)
    """Usage quotas and caps."""
    v1: V1Config = Field(default_factory=V1Config)
    """The public API gateway."""

    def dump(self, *, reveal: bool = False) -> dict[str, Any]:
        """The configuration as a JSON document, every key with its value.

        Secrets read ``"[redacted]"`` (an empty secret reads ``""``) and passwords in URLs
        are masked, unless ``reveal``. Durations read ``"24h"``.
        """
        return _dump_model(self, reveal)

    def value_at(self, path: str, *, reveal: bool = False) -> Any:
        """The value at ``path`` (``micro.usage.quotas``), as :meth:`dump` shows it.

        A missing key of a free-form map (an unknown tier) reads as None; a key no section
        has raises :class:`ConfigError`.
        """
        keys, _ = _resolve(_split_path(path), loose=False)
        return _dig(self.dump(reveal=reveal), keys)


# --- dumping -------------------------------------------------------------------------------

_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)([^@]*)(@)")


def _dump_model(model: BaseModel, reveal: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if not reveal and isinstance(value, str) and _is_secret_url(info):
            value = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), value)
        out[info.alias or name] = _dump_value(value, reveal)
    return out


def _dump_value(value: Any, reveal: bool) -> Any:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return secret if reveal or not secret else REDACTED
    if isinstance(value, BaseModel):
        return _dump_model(value, reveal)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping):
        return {str(k): _dump_value(v, reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump_value(v, reveal) for v in value]
    return value


def _is_secret_url(info: FieldInfo) -> bool:
    return any(isinstance(item, _SecretUrlMarker) for item in info.metadata)


# --- paths and the schema ------------------------------------------------------------------


def _split_path(path: str) -> list[str]:
    """``micro.usage.quotas`` -> ``["usage", "quotas"]`` (the keys below the root)."""
    segments = path.strip().split(".")
    if segments[0] != ROOT:
        raise ConfigError(f"{path}: config paths start with {ROOT!r} ({ROOT}.usage.quotas)", path)
    if any(not segment for segment in segments):
        raise ConfigError(f"{path}: empty key in path", path)
    return segments[1:]


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    bare = _strip(annotation)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return bare
    return None


def _map_values_of(annotation: Any) -> Any | None:
    """The value type of a ``dict[str, X]`` field, None for anything else."""
    bare = _strip(annotation)
    if get_origin(bare) is dict:
        return get_args(bare)[1]
    return None


def _loose(key: str) -> str:
    return key.lower().replace("-", "_")


def _field(model: type[BaseModel], key: str, *, loose: bool) -> tuple[str, Any] | None:
    """The JSON key and type of ``model``'s field named (or aliased) ``key``."""
    for name, info in model.model_fields.items():
        json_key = info.alias or name
        names = (name, json_key)
        if key in names or (loose and _loose(key) in {_loose(n) for n in names}):
            return json_key, info.annotation
    return None


def _resolve(
    segments: list[str], *, loose: bool, existing: tuple[Mapping[str, Any], ...] = ()
) -> tuple[list[str], Any]:
    """Canonical JSON keys of a path and the type found there.

    ``loose`` (environment variables) matches field names case-insensitively and map keys
    against the keys of the ``existing`` documents, else lower-cased.
    """
    annotation: Any = Config
    keys: list[str] = []
    for segment in segments:
        where = ".".join([*keys, segment])
        model = _model_of(annotation)
        values = _map_values_of(annotation)
        if model is not None:
            found = _field(model, segment, loose=loose)
            if found is None:
                raise ConfigError(f"{where}: unknown key", where)
            key, annotation = found
        elif values is not None:
            key = _map_key(segment, keys, existing) if loose else segment
            annotation = values
        else:
            raise ConfigError(f"{where}: {'.'.join(keys)} has no keys below it", where)
        keys.append(key)
    return keys, annotation


def _map_key(segment: str, parent: list[str], existing: tuple[Mapping[str, Any], ...]) -> str:
    for document in existing:
        node = _dig(document, parent)
        if isinstance(node, Mapping):
            for key in node:
                if str(key).lower() == segment.lower():
                    return str(key)
    return segment.lower()


def _dig(document: Any, keys: list[str]) -> Any:
    node = document
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _canonical(annotation: Any, value: Any) -> Any:
    """``value`` with every field name replaced by its JSON key (``rate_limits`` ->
    ``rate-limits``), so a stored document spells each key one way. Unknown keys are left
    for validation to report."""
    if not isinstance(value, Mapping):
        return value
    model = _model_of(annotation)
    if model is not None:
        out: dict[str, Any] = {}
        for key, item in value.items():
            found = _field(model, str(key), loose=False)
            if found is None:
                out[str(key)] = item
            else:
                out[found[0]] = _canonical(found[1], item)
        return out
    values = _map_values_of(annotation)
    if values is not None:
        return {str(key): _canonical(values, item) for key, item in value.items()}
    return dict(value)


def _with_value(document: Mapping[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    """A copy of ``document`` with ``value`` at ``keys``, creating objects on the way."""
    if not keys:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{ROOT}: the config document must be a JSON object")
        return copy.deepcopy(dict(value))
    result = copy.deepcopy(dict(document))
    node = result
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = copy.deepcopy(value)
    return result


def _without(document: Mapping[str, Any], keys: list[str]) -> tuple[dict[str, Any], bool]:
    result = copy.deepcopy(dict(document))
    parent = _dig(result, keys[:-1])
    if not isinstance(parent, dict) or keys[-1] not in parent:
        return result, False
    del parent[keys[-1]]
    return result, True


def _is_text(annotation: Any) -> bool:
    bare = _strip(annotation)
    return bare is str or bare is SecretStr


def parse_value(path: str, text: str) -> Any:
    """The value ``text`` stands for at ``path``: the text itself for a string-typed key,
    else its JSON value when it parses as JSON, else the text (for the CLI's ``config set``).
    """
    segments = _split_path(path)
    if is_reference_path(segments):
        return _parse_text(Any, text)
    _, annotation = _resolve(segments, loose=False)
    return _parse_text(annotation, text)


def _parse_text(annotation: Any, text: str) -> Any:
    if _is_text(annotation):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
