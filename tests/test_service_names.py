"""The registry of services by name: every definition reachable by its name alone, the
service accounts named as the definitions name them, and an unknown name refused."""

from __future__ import annotations

import pytest

from m3o.platform.service_names import ACCOUNT_NAMES, NAMES, definition
from m3o.platform.services import SERVICES
from support.fresh_python import lines_printed


def test_every_service_is_loaded_by_its_name_in_start_up_order() -> None:
    assert [service.name for service in SERVICES] == list(NAMES)
    assert [definition(name) for name in NAMES] == list(SERVICES)
    assert NAMES[0] == "auth"


def test_the_service_accounts_are_the_definitions_own() -> None:
    assert (*(s.account_id for s in SERVICES), "gateway", "platform") == ACCOUNT_NAMES
    assert len(set(ACCOUNT_NAMES)) == len(ACCOUNT_NAMES)


def test_an_unknown_service_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown service 'nope'; known: auth, customers"):
        definition("nope")
    with pytest.raises(KeyError):
        definition("runtime")  # a package of m3o, not a service


def test_a_process_running_one_service_imports_no_other_service_and_no_http_client() -> None:
    code = (
        "import sys\n"
        "import m3o.cli\n"
        "from m3o.platform.remote import run_service\n"
        "from m3o.platform.service_names import definition\n"
        "definition('usage')\n"
        "print(sorted(m for m in sys.modules if m.startswith('m3o.services.')"
        " and m.endswith('.service')))\n"
        "print(sorted(m for m in ('httpx', 'websockets', 'm3o.platform.front')"
        " if m in sys.modules))\n"
    )
    assert lines_printed(code) == ["['m3o.services.usage.service']", "[]"]


def test_the_local_platform_loads_no_redis_client_and_no_slack_client() -> None:
    """`m3o serve` uses neither (SQLite counters and events; Slack only once configured
    and posted to): importing them would only lengthen its start."""
    code = (
        "import sys\n"
        "import m3o.cli\n"
        "import m3o.platform.serve\n"
        "print(sorted(m for m in ('redis', 'slack_sdk', 'aiohttp') if m in sys.modules))\n"
    )
    assert lines_printed(code) == ["[]"]
