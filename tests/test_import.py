from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import make_client

pytestmark = pytest.mark.usefixtures("db_url")

CSV = {"Content-Type": "text/csv"}


async def _import(
    api: httpx.AsyncClient, body: str | bytes, content_type: str = "text/csv"
) -> httpx.Response:
    return await api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": content_type}
    )


async def test_csv_good_and_bad_rows(api: httpx.AsyncClient) -> None:
    body = (
        "phone,operator_code,tag,timezone\n"
        "79001234567,900,vip,Europe/Moscow\n"
        "99001234567,,,\n"  # bad phone
        "+79161234567,,,+03:00\n"
        "79261234567,12,,\n"  # bad operator code
        "\n"  # blank lines are not records
        "79031234567,,new,Mars/Base\n"  # bad timezone
        "79051234567,,x,UTC,extra\n"  # too many cells
        "79001234567,,again,\n"  # duplicate of row 1
        "79991234567,,,\n"
    )
    response = await _import(api, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["updated"]) == (3, 0)
    rejected = {item["row"]: item["error"] for item in result["rejected"]}
    assert sorted(rejected) == [2, 4, 5, 6, 7]
    assert rejected[2].startswith("phone:")
    assert rejected[4].startswith("operator_code:")
    assert rejected[5].startswith("timezone:")
    assert "columns" in rejected[6]
    assert "duplicate of row 1" in rejected[7]
    clients = (await api.get("/api/v1/clients")).json()
    by_phone = {c["phone"]: c for c in clients["items"]}
    assert set(by_phone) == {"79001234567", "79161234567", "79991234567"}
    assert by_phone["79001234567"]["tag"] == "vip"
    assert by_phone["79161234567"]["timezone"] == "+03:00"
    assert by_phone["79161234567"]["operator_code"] == "916"
    assert by_phone["79991234567"]["timezone"] == "UTC"


async def test_csv_upserts_by_phone(api: httpx.AsyncClient) -> None:
    existing = await make_client(api, "79001234567", tag="old", timezone="Europe/Moscow")
    response = await _import(api, "phone,tag\n79001234567,new\n79001234568,\n")
    assert response.json() == {"created": 1, "updated": 1, "rejected": []}
    updated = (await api.get(f"/api/v1/clients/{existing['id']}")).json()
    assert updated["tag"] == "new"
    assert updated["timezone"] == "UTC"  # each record is the whole client, as in PUT


async def test_csv_header_any_order_and_case(api: httpx.AsyncClient) -> None:
    response = await _import(api, "TimeZone,Phone\nAsia/Tokyo,79001234567\n")
    assert response.json()["created"] == 1
    client = (await api.get("/api/v1/clients")).json()["items"][0]
    assert client["timezone"] == "Asia/Tokyo"


async def test_csv_with_bom_and_crlf(api: httpx.AsyncClient) -> None:
    body = '\ufeffphone,tag\r\n79001234567,a\r\n79001234568,"b, c"\r\n'.encode()
    response = await _import(api, body)
    assert response.json() == {"created": 2, "updated": 0, "rejected": []}
    tags = {c["tag"] for c in (await api.get("/api/v1/clients")).json()["items"]}
    assert tags == {"a", "b, c"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("tag,timezone\nvip,UTC\n", "header"),
        ("phone,phone\n1,2\n", "header"),
        ("phone,colour\n79001234567,red\n", "header"),
        (b"phone\n\xff\xfe79001234567\n", "UTF-8"),
        ("   ", "header"),
    ],
)
async def test_csv_broken_body_is_422(
    api: httpx.AsyncClient, body: str | bytes, fragment: str
) -> None:
    response = await _import(api, body)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]
    assert (await api.get("/api/v1/clients")).json()["total"] == 0


async def test_json_array(api: httpx.AsyncClient) -> None:
    records = [
        {"phone": 79001234567, "tag": "vip"},
        {"phone": "bad"},
        "not an object",
        {"phone": "79001234568", "timezone": "Europe/Berlin", "operator_code": "901"},
        {"phone": "79001234569", "colour": "red"},
        {"phone": "79001234560", "tag": 5},
    ]
    response = await _import(api, json.dumps(records), "application/json")
    assert response.status_code == 200
    result = response.json()
    assert result["created"] == 2
    assert [r["row"] for r in result["rejected"]] == [2, 3, 5, 6]
    assert "unknown field" in result["rejected"][2]["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ('{"phone": "79001234567"}', "application/json", 422),
        ("[1,", "application/json", 422),
        ("", "text/csv", 422),
        ("phone\n79001234567\n", "text/plain", 415),
        ("phone\n79001234567\n", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_import_rejects_whole_body(
    api: httpx.AsyncClient, body: str, content_type: str, status: int
) -> None:
    response = await _import(api, body, content_type)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


async def test_import_many_rows(api: httpx.AsyncClient) -> None:
    body = "phone,operator_code,tag,timezone\n" + "".join(
        f"7900{i:07d},900,t{i % 10},Europe/Moscow\n" for i in range(12000)
    )
    first = (await _import(api, body)).json()
    assert (first["created"], first["updated"], first["rejected"]) == (12000, 0, [])
    second = (await _import(api, body)).json()
    assert (second["created"], second["updated"]) == (0, 12000)
    assert (await api.get("/api/v1/clients", params={"tag": "t3"})).json()["total"] == 1200


async def test_missing_content_type_says_what_to_send(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/clients/import", content=b"phone\n79001234567\n")
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "send Content-Type: text/csv or application/json" in detail
    assert "none" not in detail
    wrong = await _import(api, "phone\n79001234567\n", "text/plain")
    assert "'text/plain'" in wrong.json()["detail"]


async def test_phones_as_people_write_them(api: httpx.AsyncClient) -> None:
    body = 'phone,tag\n"+7 (900) 123-45-67",a\n8 900 123 45 68,b\n8-900-123-45-69,c\n'
    response = await _import(api, body)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 3
    phones = {c["phone"] for c in (await api.get("/api/v1/clients")).json()["items"]}
    assert phones == {"79001234567", "79001234568", "79001234569"}
