"""Platform API URLs reach the RPC M3O's clients expect: both shapes, any case."""

from __future__ import annotations

import pytest

from gateway.support import HELLO, Named, Recorder, Served, build_app, client_for, named_spec
from m3o.gateway import directory, title
from m3o.gateway.routing import RouteTable
from m3o.runtime.errors import NotFound


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("call", "Call"),
        ("Call", "Call"),
        ("sendEmail", "SendEmail"),
        ("markVerified", "MarkVerified"),
        ("MARK", "MARK"),
        ("a-b", "A-B"),
        ("a_b", "A_b"),
        ("a.b c", "A.B C"),
        ("1abc", "1abc"),
        ("x1y", "X1y"),
        ("élan", "Élan"),
        ("", ""),
    ],
)
def test_title_upper_cases_each_words_first_letter_only(word: str, expected: str) -> None:
    assert title(word) == expected


def _shop() -> tuple[Served, ...]:
    # shop serves two handlers; the one named like the service is the default.
    return (
        Served(named_spec("shop", "Shop", "Create", "MarkShipped"), Named("Shop")),
        Served(named_spec("shop", "Orders", "Create", "MarkShipped"), Named("Orders")),
        Served(named_spec("tools", "Kit", "Ping"), Named("Kit")),
        Served(named_spec("store", "Items", "List"), Named("Items")),
        Served(named_spec("store", "Carts", "List"), Named("Carts")),
    )


@pytest.mark.parametrize(
    ("path", "reached"),
    [
        ("/shop/create", "shop/Shop.Create"),
        ("/shop/Create", "shop/Shop.Create"),
        ("/SHOP/create", "shop/Shop.Create"),
        ("/shop/markShipped", "shop/Shop.MarkShipped"),
        ("/shop/MarkShipped", "shop/Shop.MarkShipped"),
        ("/shop/markshipped", "shop/Shop.MarkShipped"),
        ("/shop/MARKSHIPPED", "shop/Shop.MarkShipped"),
        ("/shop/orders/create", "shop/Orders.Create"),
        ("/shop/Orders/markShipped", "shop/Orders.MarkShipped"),
        ("/shop/ORDERS/markshipped", "shop/Orders.MarkShipped"),
        ("/shop/shop/create", "shop/Shop.Create"),
        ("/tools/ping", "tools/Kit.Ping"),
        ("/tools/kit/ping", "tools/Kit.Ping"),
        ("/store/items/list", "store/Items.List"),
        ("/store/carts/list", "store/Carts.List"),
    ],
)
async def test_both_url_shapes_and_case_variants_reach_the_method(path: str, reached: str) -> None:
    app, _ = build_app(*_shop())
    async with client_for(app) as http:
        response = await http.post(path, json={}, headers={"Authorization": "Bearer good"})
    assert response.status_code == 200, response.text
    assert response.json() == {"message": reached}


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/nope/create", "Service nope not found"),
        ("/shop/refund", "Endpoint Refund of shop not found"),
        ("/shop/payments/create", "Handler Payments of shop not found"),
        ("/shop/orders/refund", "Endpoint Refund of shop not found"),
        # two handlers, neither named like the service: no default
        ("/store/list", "Endpoint List of store not found"),
    ],
)
async def test_unknown_service_handler_or_endpoint_is_not_found(path: str, detail: str) -> None:
    app, _ = build_app(*_shop())
    async with client_for(app) as http:
        response = await http.post(path, json={})
    assert response.status_code == 404
    assert response.json() == {"id": "api", "code": 404, "detail": detail, "status": "Not Found"}


@pytest.mark.parametrize("path", ["/", "/shop", "/shop/orders/create/extra", "/shop/create/"])
async def test_paths_of_other_shapes_are_not_found_errors(path: str) -> None:
    app, _ = build_app(*_shop())
    async with client_for(app) as http:
        response = await http.post(path, json={})
    assert response.status_code == 404
    assert response.json() == {
        "id": "api",
        "code": 404,
        "detail": "Not found",
        "status": "Not Found",
    }


async def test_long_unknown_names_are_cut_short_in_the_error() -> None:
    app, _ = build_app(Served(HELLO, Recorder()))
    async with client_for(app) as http:
        response = await http.post(f"/{'x' * 500}/call")
    assert response.status_code == 404
    assert len(response.json()["detail"]) < 100


def test_directory_groups_specs_by_platform_service() -> None:
    orders, shop = named_spec("shop", "Orders", "A"), named_spec("shop", "Shop", "A")
    assert directory(orders, HELLO, shop) == {"shop": (orders, shop), "helloworld": (HELLO,)}


def test_route_table_refuses_a_spec_filed_under_another_service() -> None:
    with pytest.raises(ValueError, match="not served by"):
        RouteTable({"shop": [HELLO]})


def test_route_table_refuses_upper_case_service_names() -> None:
    with pytest.raises(ValueError, match="lower-case"):
        RouteTable({"Helloworld": [HELLO]})


def test_route_table_lists_each_endpoint_with_its_canonical_path() -> None:
    table = RouteTable(directory(*(s.spec for s in _shop())))
    labels = sorted(e.label for e in table.endpoints())
    assert labels == [
        "/shop/Create",
        "/shop/MarkShipped",
        "/shop/Orders/Create",
        "/shop/Orders/MarkShipped",
        "/store/Carts/List",
        "/store/Items/List",
        "/tools/Ping",
    ]
    found = table.resolve("shop", "orders", "markshipped")
    assert (found.spec.full_name, found.method.name) == ("shop.Orders", "MarkShipped")
    assert found.error_id == "shop.markshipped"
    with pytest.raises(NotFound):
        table.resolve("shop", None, "nothing")


def _catalog() -> tuple[Served, ...]:
    return (
        Served(named_spec("publicapi", "Publicapi", "List"), Named("Publicapi")),
        Served(named_spec("explore", "Explore", "Search", "Index"), Named("Explore")),
    )


@pytest.mark.parametrize(
    ("path", "reached"),
    [
        ("/publicapi/explore/search", "explore/Explore.Search"),
        ("/publicapi/Explore/Index", "explore/Explore.Index"),
        ("/explore/search", "explore/Explore.Search"),
        ("/publicapi/list", "publicapi/Publicapi.List"),
    ],
)
async def test_the_references_publicapi_explore_paths_reach_the_explore_service(
    path: str, reached: str
) -> None:
    app, _ = build_app(*_catalog())
    async with client_for(app) as http:
        response = await http.post(path, json={}, headers={"Authorization": "Bearer good"})

    assert response.status_code == 200, response.text
    assert response.json() == {"message": reached}


def test_a_reference_path_is_explores_endpoint_and_is_listed_once() -> None:
    table = RouteTable(directory(*(served.spec for served in _catalog())))

    aliased = table.resolve("publicapi", "explore", "search")

    assert aliased is table.resolve("explore", None, "search")
    assert (aliased.error_id, aliased.label) == ("explore.search", "/explore/Search")
    assert sorted(e.label for e in table.endpoints()) == [
        "/explore/Index",
        "/explore/Search",
        "/publicapi/List",
    ]


def test_without_an_explore_service_the_reference_path_is_not_found() -> None:
    table = RouteTable(directory(named_spec("publicapi", "Publicapi", "List")))

    with pytest.raises(NotFound) as raised:
        table.resolve("publicapi", "explore", "search")

    assert raised.value.detail == "Handler Explore of publicapi not found"
