"""The runtime's public surface is pinned: what services may import from ``m3o.runtime``.

Adding, renaming or removing a public module or name is a decision, made here in the same
change. Modules whose names start with ``_`` are the packages' private parts and are not
listed; neither are they importable outside their package (an import-linter contract).
"""

from __future__ import annotations

import importlib
import pkgutil

import m3o.runtime

PUBLIC_SURFACE: dict[str, list[str]] = {
    "m3o.runtime.auth": [
        "Account",
        "CallContext",
        "ISSUER",
        "is_admin",
        "is_customer",
        "is_service",
        "verify_admin",
        "verify_customer",
        "verify_self_or_admin",
        "verify_service",
    ],
    "m3o.runtime.auth.access": [
        "ANY_ACCOUNT",
        "CachedRules",
        "DENY",
        "GRANT",
        "PUBLIC",
        "RuleSpec",
        "SERVICE_RESOURCE",
        "check_access",
        "is_allowed",
    ],
    "m3o.runtime.auth.tokens": [
        "ALGORITHM",
        "JwtAuthenticator",
        "SESSION_METADATA",
        "ServiceTokenSource",
        "blocked_key",
        "revoked_session_key",
    ],
    "m3o.runtime.blocking": [
        "run_blocking",
    ],
    "m3o.runtime.clock": [
        "Clock",
        "utc_now",
    ],
    "m3o.runtime.config": [
        "Config",
        "ConfigError",
        "RedisConfig",
        "build_config",
        "format_duration",
        "parse_duration",
        "parse_value",
        "process_environment",
    ],
    "m3o.runtime.config.document": [
        "Config",
        "REDACTED",
        "ROOT",
        "parse_value",
    ],
    "m3o.runtime.config.sections": [
        "AlertConfig",
        "ApiConfig",
        "AuthConfig",
        "BalanceConfig",
        "BillingConfig",
        "DatabaseConfig",
        "DiscordConfig",
        "EmailsConfig",
        "EndToEndConfig",
        "GithubOAuthConfig",
        "GoogleOAuthConfig",
        "LoginFailuresConfig",
        "MailchimpConfig",
        "MixpanelConfig",
        "OAuthConfig",
        "OAuthProviderConfig",
        "PasswordHashConfig",
        "RedisConfig",
        "SendgridConfig",
        "ServerConfig",
        "SignupConfig",
        "SignupTemplatesConfig",
        "SlackConfig",
        "SmtpConfig",
        "StatusConfig",
        "StripeConfig",
        "Tier",
        "TracingConfig",
        "UsageConfig",
        "V1Config",
    ],
    "m3o.runtime.config.stored": [
        "ConfigStore",
    ],
    "m3o.runtime.config.tables": [
        "config_documents",
        "metadata",
    ],
    "m3o.runtime.config.values": [
        "CommaList",
        "ConfigError",
        "Duration",
        "SecretUrl",
        "format_duration",
        "parse_duration",
        "sqlite_url",
    ],
    "m3o.runtime.counters": [
        "CounterStore",
        "RateDecision",
    ],
    "m3o.runtime.counters.admission": [
        "AdmissionDecision",
        "AdmissionRequest",
        "FREE",
        "Held",
        "Hold",
        "NO_CAP",
        "Verdict",
        "held_from_record",
        "hold_record",
        "release_keys",
    ],
    "m3o.runtime.counters.admission_redis": [
        "ADMIT_MANY",
        "AdmissionPacker",
        "COMMIT_MANY",
        "RELEASE",
        "admit_arguments",
        "decision_from_reply",
        "release_arguments",
    ],
    "m3o.runtime.counters.admission_sqlite": [
        "PLACEHOLDER_EXPIRY",
        "Row",
        "Rows",
        "admission_keys",
        "decide",
        "lock_rows",
        "stored_utc",
        "undo",
        "write_rows",
        "write_rows_on_driver",
    ],
    "m3o.runtime.counters.owned": [
        "AfterCommit",
        "DEFAULT_MAX_OWNED",
        "OwnedCounterStore",
        "Rider",
        "RiderWrite",
    ],
    "m3o.runtime.counters.redis": [
        "RedisCounterStore",
        "redis_counter_store",
    ],
    "m3o.runtime.counters.sqlite": [
        "SqlCounterStore",
    ],
    "m3o.runtime.counters.tables": [
        "KEY_LENGTH",
        "counters",
        "metadata",
    ],
    "m3o.runtime.email_address": [
        "InvalidEmail",
        "MAX_EMAIL_LENGTH",
        "MAX_LOCAL_LENGTH",
        "SignupPolicy",
        "is_valid_email",
        "mask_email",
        "normalise_email",
        "parse_email",
    ],
    "m3o.runtime.errors": [
        "BadRequest",
        "Conflict",
        "DeadlineExceeded",
        "Forbidden",
        "Internal",
        "M3OError",
        "NotFound",
        "TooManyRequests",
        "Unauthorized",
        "Unavailable",
        "error_from_dict",
        "error_from_grpc",
        "error_from_json",
        "error_id",
    ],
    "m3o.runtime.events": [
        "BatchHandler",
        "DeadLetter",
        "DeadLetterHook",
        "DeadLettered",
        "Delivery",
        "Envelope",
        "EnvelopePublisher",
        "EventBus",
        "EventHandler",
        "Publisher",
        "event_type_name",
        "read_each",
    ],
    "m3o.runtime.events.redis": [
        "RedisChannel",
        "RedisEventSource",
        "StreamFirstPublisher",
        "redis_event_bus",
        "stream_first_publisher",
    ],
    "m3o.runtime.events.redis_served": ["RedisServedHolds"],
    "m3o.runtime.events.sqlite": [
        "HANDOVER_LIMIT",
        "SqlChannel",
        "SqlEventSource",
        "release_claims",
        "sql_event_bus",
        "sql_event_log",
    ],
    "m3o.runtime.events.tables": [
        "UTCDateTime",
        "dead_letters",
        "deliveries",
        "event_log",
        "groups",
        "metadata",
        "outbox",
    ],
    "m3o.runtime.store.ids": ["time_ordered_id"],
    "m3o.runtime.logging": [
        "REQUEST_ID_KEY",
        "configure_logging",
        "current_request_id",
        "get_logger",
        "is_sane_request_id",
        "redact",
        "request_context",
    ],
    "m3o.runtime.logging.tracing": [
        "TRACEPARENT",
        "client_span",
        "consumer_batch_span",
        "consumer_span",
        "current_traceparent",
        "describe_span",
        "inject",
        "server_span",
        "start_tracing",
        "stop_tracing",
        "stream_client_span",
        "stream_server_span",
        "trace_ids",
        "tracing_on",
    ],
    "m3o.runtime.money": [
        "MAX_AMOUNT",
        "MAX_BALANCE",
        "MAX_FREE_QUOTA",
        "MAX_PRICE",
        "UNITS_PER_DOLLAR",
        "check_amount",
        "check_balance",
        "check_limit",
        "dollars",
    ],
    "m3o.runtime.outbound": ["MAX_DETAIL", "OutboundError", "Retries", "send_with_retries"],
    "m3o.runtime.rpc": [
        "AccessRules",
        "Authenticator",
        "Client",
        "DEFAULT_TIMEOUT",
        "Dispatcher",
        "GrpcTransport",
        "INTERNAL_DETAIL",
        "InProcessTransport",
        "MethodSpec",
        "RECONNECT_OPTIONS",
        "RpcObserver",
        "ServiceRouter",
        "ServiceSpec",
        "StaticToken",
        "TokenSource",
        "Transport",
        "UNAVAILABLE_DETAIL",
        "bearer_token",
        "grpc_handlers",
        "service_channel",
    ],
    "m3o.runtime.rpc.calls": [
        "Calls",
    ],
    "m3o.runtime.rpc.endpoints": [
        "NamedEndpoint",
        "endpoint_name",
        "endpoint_path",
        "find_endpoint",
        "is_endpoint_name",
        "main_service",
        "short_name",
        "title",
    ],
    "m3o.runtime.rpc.fakes": [
        "FakeCall",
        "FakePublisher",
        "FakeStream",
        "FakeUnary",
        "PublishedEvent",
    ],
    "m3o.runtime.rpc.json_options_pb2": [],
    "m3o.runtime.rpc.json_options_pb2_comments": [
        "COMMENTS",
    ],
    "m3o.runtime.rpc.json_schema": [
        "Comment",
        "ERROR_REF",
        "ERROR_SCHEMA",
        "SchemaBuilder",
        "WELL_KNOWN",
        "is_required",
        "schema_ref",
    ],
    "m3o.runtime.rpc.jsonmap": [
        "dict_to_message",
        "json_to_message",
        "message_to_dict",
        "message_to_json",
    ],
    "m3o.runtime.rpc.proto_comments": [
        "GENERATED_SUFFIX",
        "Location",
        "LocationText",
        "comments_by_name",
        "generated_comments",
    ],
    "m3o.runtime.service": [
        "BatchConsumer",
        "Clients",
        "Consumer",
        "Cron",
        "Dependencies",
        "Handler",
        "HealthProbe",
        "RetiredGroup",
        "ServiceDefinition",
        "ServiceParts",
    ],
    "m3o.runtime.service.scheduler": [
        "Scheduler",
    ],
    "m3o.runtime.store": [
        "NAMING_CONVENTION",
        "SessionFactory",
        "UTCDateTime",
        "create_engine",
        "in_one_transaction",
        "inline_engine",
        "is_sqlite",
        "new_metadata",
        "session_factory",
        "sqlite_url",
        "transaction",
    ],
    "m3o.runtime.store.inline_sqlite": [
        "InlineConnection",
        "RESTART_AFTER_FRAMES",
        "SHRINK_AFTER_BYTES",
        "SHRINK_WHEN_IDLE_FOR",
        "WalCheckpoints",
        "connect",
        "driver_transaction",
        "in_driver_batches",
        "parameter_marks",
        "stored_by_sqlalchemy",
        "utc_text",
    ],
    "m3o.runtime.store.migrate": [
        "create_revision",
        "head_revision",
        "upgrade",
    ],
    "m3o.runtime.store.redis": [
        "COMMAND_RETRIES",
        "HEALTH_CHECK_INTERVAL",
        "redis_client",
        "reply_text",
    ],
    "m3o.runtime.store.redis_direct": [
        "DirectCommands",
    ],
    "m3o.runtime.store.unreachable": [
        "database_unreachable",
        "redis_unreachable",
    ],
}


def _public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(m3o.runtime.__path__, "m3o.runtime."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def test_the_public_modules_are_the_pinned_ones() -> None:
    assert _public_modules() == sorted(PUBLIC_SURFACE)


def test_each_public_module_exports_exactly_the_pinned_names() -> None:
    for name, expected in PUBLIC_SURFACE.items():
        module = importlib.import_module(name)
        assert sorted(getattr(module, "__all__", [])) == expected, name
        for exported in expected:
            assert hasattr(module, exported), f"{name}.{exported}"


def test_the_runtime_root_has_about_a_dozen_entries() -> None:
    entries = [info.name for info in pkgutil.iter_modules(m3o.runtime.__path__)]
    assert len(entries) <= 14, sorted(entries)
