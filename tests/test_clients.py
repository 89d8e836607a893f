from __future__ import annotations

import httpx
import pytest

from tests.helpers import error_fields, make_client

pytestmark = pytest.mark.usefixtures("db_url")


async def test_create_defaults_and_read_back(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/clients", json={"phone": "79001234567"})
    assert response.status_code == 201
    body = response.json()
    assert body["phone"] == "79001234567"
    assert body["operator_code"] == "900"  # digits 2-4 of the phone
    assert body["tag"] is None
    assert body["timezone"] == "UTC"
    assert body["created_at"].endswith("Z")
    fetched = await api.get(f"/api/v1/clients/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


@pytest.mark.parametrize(
    ("phone", "stored"),
    [
        ("79001234567", "79001234567"),
        (79001234567, "79001234567"),
        ("+79001234567", "79001234567"),
        # As people write them: spaces, dashes, parentheses, and the Russian trunk prefix 8.
        ("+7 900 123-45-67", "79001234567"),
        ("+7 (900) 123-45-67", "79001234567"),
        ("8 900 123 45 67", "79001234567"),
        ("8(900)123-45-67", "79001234567"),
        ("89001234567", "79001234567"),
        (89001234567, "79001234567"),
        (" 7-900-123-45-67 ", "79001234567"),
        ("7\u00a0900\u00a01234567", "79001234567"),
    ],
)
async def test_phone_forms_accepted(api: httpx.AsyncClient, phone: object, stored: str) -> None:
    response = await api.post("/api/v1/clients", json={"phone": phone})
    assert response.status_code == 201, response.text
    assert response.json()["phone"] == stored


@pytest.mark.parametrize(
    "phone",
    [
        "7900123456",
        "790012345678",
        "7900123456a",
        "(900) 123-45-67",  # no country code
        "+89001234567",  # 8 is a trunk prefix, not a country code
        "99001234567",
        "890012345678",
        "+7 900 123 45 6",
        "7.900.123.45.67",
        "+7 900 + 123 45 67",
        "",
        "  ",
        None,
        True,
        7.9e10,
        [],
        "++79001234567",
        "7900123456\x00",
    ],
)
async def test_bad_phone_is_422(api: httpx.AsyncClient, phone: object) -> None:
    response = await api.post("/api/v1/clients", json={"phone": phone})
    assert response.status_code == 422, response.text
    assert error_fields(response) == ["phone"]
    assert "phone" in response.json()["detail"]


async def test_missing_phone_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/clients", json={"tag": "x"})
    assert response.status_code == 422
    assert error_fields(response) == ["phone"]
    assert response.json()["detail"] == "phone: required"


async def test_ten_digits_are_told_to_add_the_country_code(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/clients", json={"phone": "(900) 123-45-67"})
    assert response.status_code == 422
    assert "country code" in response.json()["detail"]


async def test_phone_forms_find_the_same_client(api: httpx.AsyncClient) -> None:
    await make_client(api, "79001234567")
    duplicate = await api.post("/api/v1/clients", json={"phone": "8 (900) 123-45-67"})
    assert duplicate.status_code == 409
    found = await api.get("/api/v1/clients", params={"phone": "+7 900 123-45-67"})
    assert found.json()["total"] == 1


@pytest.mark.parametrize(
    ("timezone", "stored"),
    [
        ("Europe/Moscow", "Europe/Moscow"),
        ("europe/moscow", "Europe/Moscow"),
        ("UTC", "UTC"),
        ("+03:00", "+03:00"),
        ("-0530", "-05:30"),
        ("UTC+5", "+05:00"),
        ("+00:00", "UTC"),
        ("America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
    ],
)
async def test_timezones_normalized(api: httpx.AsyncClient, timezone: str, stored: str) -> None:
    response = await api.post(
        "/api/v1/clients", json={"phone": "79001234567", "timezone": timezone}
    )
    assert response.status_code == 201, response.text
    assert response.json()["timezone"] == stored


@pytest.mark.parametrize(
    "timezone", ["Mars/Olympus", "+15:00", "+03:60", "timezone", "", "Europe/"]
)
async def test_bad_timezone_is_422(api: httpx.AsyncClient, timezone: str) -> None:
    response = await api.post(
        "/api/v1/clients", json={"phone": "79001234567", "timezone": timezone}
    )
    assert response.status_code == 422, response.text
    assert error_fields(response) == ["timezone"]


@pytest.mark.parametrize("code", ["90", "9000", "abc", "", " 900"])
async def test_bad_operator_code_is_422(api: httpx.AsyncClient, code: str) -> None:
    response = await api.post(
        "/api/v1/clients", json={"phone": "79001234567", "operator_code": code}
    )
    assert response.status_code == 422, response.text
    assert error_fields(response) == ["operator_code"]


async def test_explicit_operator_code_kept(api: httpx.AsyncClient) -> None:
    client = await make_client(api, "79001234567", operator_code="123")
    assert client["operator_code"] == "123"


async def test_tag_limit(api: httpx.AsyncClient) -> None:
    ok = await api.post("/api/v1/clients", json={"phone": "79001234567", "tag": "t" * 255})
    assert ok.status_code == 201
    too_long = await api.post("/api/v1/clients", json={"phone": "79001234568", "tag": "t" * 256})
    assert too_long.status_code == 422
    assert error_fields(too_long) == ["tag"]


async def test_unknown_field_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/clients", json={"phone": "79001234567", "utc": "+3"})
    assert response.status_code == 422
    assert error_fields(response) == ["utc"]


async def test_duplicate_phone_is_409(api: httpx.AsyncClient) -> None:
    first = await make_client(api, "79001234567")
    response = await api.post("/api/v1/clients", json={"phone": "+79001234567"})
    assert response.status_code == 409
    assert error_fields(response) == ["phone"]
    assert str(first["id"]) in response.json()["detail"]


async def test_put_replaces_whole_client(api: httpx.AsyncClient) -> None:
    client = await make_client(api, "79001234567", tag="vip", timezone="Europe/Moscow")
    response = await api.put(f"/api/v1/clients/{client['id']}", json={"phone": "79161112233"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["phone"] == "79161112233"
    assert body["operator_code"] == "916"
    assert body["tag"] is None
    assert body["timezone"] == "UTC"
    assert body["created_at"] == client["created_at"]


async def test_put_requires_phone_and_checks_conflicts(api: httpx.AsyncClient) -> None:
    a = await make_client(api, "79001234567")
    await make_client(api, "79001234568")
    missing = await api.put(f"/api/v1/clients/{a['id']}", json={"tag": "x"})
    assert missing.status_code == 422
    taken = await api.put(f"/api/v1/clients/{a['id']}", json={"phone": "79001234568"})
    assert taken.status_code == 409
    same = await api.put(f"/api/v1/clients/{a['id']}", json={"phone": "79001234567", "tag": "y"})
    assert same.status_code == 200
    assert same.json()["tag"] == "y"


async def test_patch_changes_only_sent_fields(api: httpx.AsyncClient) -> None:
    client = await make_client(api, "79001234567", tag="vip", timezone="Europe/Moscow")
    response = await api.patch(f"/api/v1/clients/{client['id']}", json={"tag": "gold"})
    assert response.status_code == 200
    body = response.json()
    assert (body["tag"], body["timezone"], body["phone"]) == (
        "gold",
        "Europe/Moscow",
        "79001234567",
    )
    cleared = await api.patch(f"/api/v1/clients/{client['id']}", json={"tag": None})
    assert cleared.json()["tag"] is None
    null_phone = await api.patch(f"/api/v1/clients/{client['id']}", json={"phone": None})
    assert null_phone.status_code == 422
    assert error_fields(null_phone) == ["phone"]


async def test_patch_phone_conflict(api: httpx.AsyncClient) -> None:
    a = await make_client(api, "79001234567")
    await make_client(api, "79001234568")
    response = await api.patch(f"/api/v1/clients/{a['id']}", json={"phone": "79001234568"})
    assert response.status_code == 409


async def test_unknown_id_is_404_everywhere(api: httpx.AsyncClient) -> None:
    for method, body in (
        ("GET", None),
        ("PUT", {"phone": "79001234567"}),
        ("PATCH", {}),
        ("DELETE", None),
    ):
        response = await api.request(method, "/api/v1/clients/999", json=body)
        assert response.status_code == 404, (method, response.text)
        assert "999" in response.json()["detail"]


@pytest.mark.parametrize("client_id", ["0", "-1", "abc", str(2**63)])
async def test_bad_id_is_422(api: httpx.AsyncClient, client_id: str) -> None:
    response = await api.get(f"/api/v1/clients/{client_id}")
    assert response.status_code == 422


async def test_delete(api: httpx.AsyncClient) -> None:
    client = await make_client(api, "79001234567")
    response = await api.delete(f"/api/v1/clients/{client['id']}")
    assert response.status_code == 204
    assert (await api.get(f"/api/v1/clients/{client['id']}")).status_code == 404


async def test_list_filters_and_pagination(api: httpx.AsyncClient) -> None:
    for i in range(5):
        await make_client(api, f"7900000000{i}", tag="vip" if i % 2 else "new")
    await make_client(api, "79160000000", tag="vip")
    page = (await api.get("/api/v1/clients", params={"limit": 2, "offset": 1})).json()
    assert page["total"] == 6
    assert (page["limit"], page["offset"]) == (2, 1)
    assert [c["phone"] for c in page["items"]] == ["79000000001", "79000000002"]
    vip = (await api.get("/api/v1/clients", params={"tag": "vip"})).json()
    assert vip["total"] == 3
    both = (await api.get("/api/v1/clients", params={"tag": "vip", "operator_code": "916"})).json()
    assert [c["phone"] for c in both["items"]] == ["79160000000"]
    by_phone = (await api.get("/api/v1/clients", params={"phone": "+79000000003"})).json()
    assert by_phone["total"] == 1
    blank = await api.get("/api/v1/clients", params={"tag": "", "operator_code": "", "phone": ""})
    assert blank.status_code == 200
    assert blank.json()["total"] == 6  # empty filters filter nothing


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"operator_code": "1"}]
)
async def test_list_bad_params(api: httpx.AsyncClient, params: dict[str, int | str]) -> None:
    response = await api.get("/api/v1/clients", params=params)
    assert response.status_code == 422
    assert error_fields(response) == [f"query.{next(iter(params))}"]


async def test_wrong_content_type(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/clients", content=b"phone=79001234567", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["detail"]


async def test_malformed_json(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/clients", content=b'{"phone": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


async def test_missing_content_type_says_what_to_send(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/clients", content=b'{"phone": "79001234567"}')
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "send Content-Type: application/json" in detail
    assert "none" not in detail


async def test_empty_tag_is_no_tag(api: httpx.AsyncClient) -> None:
    client = await make_client(api, "79001234567", tag="")
    assert client["tag"] is None
    url = f"/api/v1/clients/{client['id']}"
    assert (await api.patch(url, json={"tag": "vip"})).json()["tag"] == "vip"
    assert (await api.patch(url, json={"tag": ""})).json()["tag"] is None
    assert (await api.put(url, json={"phone": "79001234567", "tag": ""})).json()["tag"] is None
    assert (await api.patch(url, json={"tag": "vip"})).json()["tag"] == "vip"
    assert (await api.patch(url, json={"tag": None})).json()["tag"] is None
