"""Sign-in to the admin UI through OpenID Connect, against a real provider (oidc-provider-mock on
127.0.0.1, tests/oidc_support.py): the whole redirect flow with real HTTP, followed by hand —
who gets in, who is refused and how, a broken or replayed flow, logout, the audit — and the
settings' checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from notiflow.app import create_app
from notiflow.config import Settings
from tests.browser_support import free_port
from tests.conftest import TOKEN
from tests.helpers import make_mailing
from tests.oidc_support import OidcProvider, authorize, query_of
from tests.test_admin_ui import BASE, Html, status_of, ui_audit

CLIENT_ID = "notiflow-test"
ALICE = "alice@example.com"  # allowed by her address
BOB = "bob@team.example"  # allowed by his domain
EVE = "eve@elsewhere.example"  # allowed by neither
SUBDOMAIN = "carol@eu.team.example"  # a subdomain of an allowed domain is another domain
UNVERIFIED = "mallory@team.example"  # allowed, but the provider has not verified the address
CALLBACK = f"{BASE}/ui/auth/oidc/callback"


def oidc_settings(db_url: str, issuer: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "api_tokens": [TOKEN],
        "oidc_issuer": issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": "test-client-secret",
        "oidc_allowed_emails": ALICE,
        "oidc_allowed_domains": "team.example",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="module")
def people(oidc_provider: OidcProvider) -> OidcProvider:
    oidc_provider.add_user(ALICE, email=ALICE, email_verified=True, name="Alice Example")
    oidc_provider.add_user(BOB, email=BOB.upper(), email_verified=True)  # case does not matter
    oidc_provider.add_user(EVE, email=EVE, email_verified=True)
    oidc_provider.add_user(SUBDOMAIN, email=SUBDOMAIN, email_verified=True)
    oidc_provider.add_user(UNVERIFIED, email=UNVERIFIED, email_verified=False)
    return oidc_provider


@pytest.fixture
def settings(db_url: str, people: OidcProvider) -> Settings:
    """The app of conftest's ``app`` and ``api`` fixtures, with OIDC on."""
    return oidc_settings(db_url, people.url)


@pytest.fixture
async def ui(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


@pytest.fixture
async def other_browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def start(ui: httpx.AsyncClient, next: str | None = None) -> str:
    """Click "Sign in with …": the provider's authorization URL Notiflow redirects to."""
    params = {"next": next} if next else {}
    response = await ui.get("/ui/auth/oidc/login", params=params)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def back(ui: httpx.AsyncClient, redirect: str) -> httpx.Response:
    """Follow the provider's redirect to Notiflow's callback."""
    assert redirect.startswith(CALLBACK + "?"), redirect
    return await ui.get(redirect.removeprefix(BASE))


async def sign_in_as(ui: httpx.AsyncClient, sub: str, next: str | None = None) -> httpx.Response:
    return await back(ui, await authorize(await start(ui, next), sub))


def problem(response: httpx.Response) -> str:
    return Html(response.text).text("problem")


async def assert_signed_out(ui: httpx.AsyncClient) -> None:
    response = await ui.get("/ui/")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/sign-in")


async def test_the_sign_in_page_offers_the_provider_above_the_token_form(
    ui: httpx.AsyncClient, people: OidcProvider
) -> None:
    page = Html((await ui.get("/ui/sign-in", params={"next": "/ui/mailings"})).text)
    host = urlsplit(people.url).netloc
    assert page.text("oidc-sign-in") == f"Sign in with {host}"
    link = next(e for e in page.elements if e.get("id") == "oidc-sign-in")
    assert link["href"] == "/ui/auth/oidc/login?next=%2Fui%2Fmailings"
    assert any(e.get("name") == "token" for e in page.elements)  # token sign-in is still there


async def test_an_allowed_email_gets_in_with_pkce_nonce_and_state(
    ui: httpx.AsyncClient, people: OidcProvider
) -> None:
    authorization_url = await start(ui, next="/ui/mailings?status=running")
    endpoint = str(people.discovery()["authorization_endpoint"])
    assert authorization_url.startswith(endpoint + "?")
    asked = query_of(authorization_url)
    assert asked["response_type"] == "code"
    assert asked["client_id"] == CLIENT_ID
    assert asked["redirect_uri"] == CALLBACK
    assert asked["scope"] == "openid email profile"
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) >= 43
    assert asked["state"]
    assert asked["nonce"]

    response = await back(ui, await authorize(authorization_url, ALICE))
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/mailings?status=running"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/ui" in cookie

    dashboard = await ui.get("/ui/")
    assert dashboard.status_code == 200
    assert ALICE in dashboard.text
    assert '<span class="role">send</span>' in dashboard.text  # NOTIFLOW_OIDC_ROLE's default


# Dan is unknown to the provider: it signs him in with only an email, no email_verified.
@pytest.mark.parametrize("person", [BOB, "dan@team.example"])
async def test_an_allowed_domain_gets_in(ui: httpx.AsyncClient, person: str) -> None:
    response = await sign_in_as(ui, person)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/"
    dashboard = await ui.get("/ui/")
    assert dashboard.status_code == 200
    assert person in dashboard.text  # the email, lowercased


@pytest.mark.parametrize("person", [EVE, SUBDOMAIN])
async def test_anyone_else_gets_a_403_page_and_no_session(
    ui: httpx.AsyncClient, person: str
) -> None:
    response = await sign_in_as(ui, person)
    assert response.status_code == 403
    assert problem(response) == (
        f"{person} may not use this Notiflow; ask an administrator to add you to "
        "NOTIFLOW_OIDC_ALLOWED_EMAILS/DOMAINS."
    )
    await assert_signed_out(ui)


async def test_an_email_the_provider_has_not_verified_is_refused(ui: httpx.AsyncClient) -> None:
    response = await sign_in_as(ui, UNVERIFIED)
    assert response.status_code == 403
    assert problem(response).startswith(f"{UNVERIFIED} is not verified at ")
    await assert_signed_out(ui)


async def test_a_tampered_state_is_refused(ui: httpx.AsyncClient) -> None:
    redirect = await authorize(await start(ui), ALICE)
    params = query_of(redirect)
    tampered = f"{CALLBACK}?" + urlencode({**params, "state": params["state"][:-1] + "x"})
    response = await back(ui, tampered)
    assert response.status_code == 400
    assert "state does not match" in problem(response)
    missing = await back(ui, f"{CALLBACK}?" + urlencode({"code": params["code"]}))
    assert missing.status_code == 400
    await assert_signed_out(ui)


async def test_a_callback_from_another_browser_or_replayed_is_refused(
    ui: httpx.AsyncClient, other_browser: httpx.AsyncClient
) -> None:
    redirect = await authorize(await start(ui), ALICE)
    # Another browser (an attacker handing their callback to a victim): no such state there.
    stolen = await back(other_browser, redirect)
    assert stolen.status_code == 400
    await assert_signed_out(other_browser)
    assert (await back(ui, redirect)).status_code == 303
    await ui.post("/ui/sign-out", data={"csrf_token": await _csrf(ui)})
    replayed = await back(ui, redirect)  # the state was used up
    assert replayed.status_code == 400
    assert "state does not match" in problem(replayed)
    await assert_signed_out(ui)


async def test_an_id_token_minted_for_another_nonce_is_refused(
    ui: httpx.AsyncClient, other_browser: httpx.AsyncClient
) -> None:
    """A code injection: the code from another sign-in (so an ID token carrying that sign-in's
    nonce) delivered with this browser's own, valid state."""
    mine = await start(ui)
    theirs = await start(other_browser)
    assert query_of(mine)["nonce"] != query_of(theirs)["nonce"]
    their_code = query_of(await authorize(theirs, ALICE))["code"]
    my_state = query_of(mine)["state"]
    injected = f"{CALLBACK}?" + urlencode({"code": their_code, "state": my_state})
    response = await back(ui, injected)
    assert response.status_code == 400
    assert "nonce" in problem(response)
    await assert_signed_out(ui)


async def test_an_error_from_the_provider_is_shown(ui: httpx.AsyncClient) -> None:
    redirect = await authorize(await start(ui), ALICE, deny=True)
    assert query_of(redirect)["error"] == "access_denied"
    response = await back(ui, redirect)
    assert response.status_code == 400
    assert "refused the sign-in (access_denied" in problem(response)
    await assert_signed_out(ui)


async def _csrf(ui: httpx.AsyncClient) -> str:
    return Html((await ui.get("/ui/")).text).forms["/ui/sign-out"]["csrf_token"]


async def test_sign_out_ends_the_session_and_offers_the_providers_logout(
    ui: httpx.AsyncClient, people: OidcProvider
) -> None:
    assert (await sign_in_as(ui, ALICE)).status_code == 303
    signed_out = await ui.post("/ui/sign-out", data={"csrf_token": await _csrf(ui)})
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/ui/sign-in"

    page = Html((await ui.get("/ui/sign-in")).text)
    link = next(e for e in page.elements if e.get("href", "").startswith(people.url))
    logout = link["href"]
    assert logout.startswith(str(people.discovery()["end_session_endpoint"]) + "?")
    asked = query_of(logout)
    assert asked["post_logout_redirect_uri"] == f"{BASE}/ui/sign-in"
    assert asked["id_token_hint"].count(".") == 2  # the ID token the sign-in got
    assert asked["client_id"] == CLIENT_ID
    # Once only; and the session is over.
    assert people.url not in (await ui.get("/ui/sign-in")).text
    await assert_signed_out(ui)

    # The provider's logout page, confirmed, sends the browser back to the sign-in page.
    async with httpx.AsyncClient(timeout=10) as browser:
        confirm_page = await browser.get(logout)
        assert confirm_page.status_code == 200
        form = Html(confirm_page.text)
        action = next(e["action"] for e in form.elements if e["tag"] == "form")
        fields = next(iter(form.forms.values()))
        confirmed = await browser.post(people.url + action, data=fields)
    assert confirmed.status_code == 302
    assert confirmed.headers["location"] == f"{BASE}/ui/sign-in"


async def test_the_audit_entry_of_a_ui_action_names_the_email(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    mailing = await make_mailing(api, clock())
    await sign_in_as(ui, ALICE)
    response = await ui.post(
        f"/ui/mailings/{mailing['id']}/start", data={"csrf_token": await _csrf(ui)}
    )
    assert response.status_code == 303, response.text
    assert await status_of(api, mailing["id"]) == "running"
    assert await ui_audit(api) == [("mailing.start", ALICE, mailing["id"])]
    entries = (await api.get("/api/v1/audit")).json()["items"]
    assert entries[0]["detail"]["via"] == "ui"
    assert entries[0]["detail"]["method"] == "oidc"


@pytest.fixture
async def second_app(db_url: str, people: OidcProvider) -> AsyncIterator[Any]:
    """Build another app on the same database (its sessions share the stored key), as after a
    restart with other settings."""
    built: list[Any] = []

    def build(**overrides: Any) -> Any:
        built.append(create_app(oidc_settings(db_url, people.url, **overrides)))
        return built[-1]

    yield build
    for application in built:
        await application.state.db_engine.dispose()


async def _with_cookies(application: Any, ui: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url=BASE, cookies=ui.cookies
    )


async def test_a_person_taken_off_the_lists_is_signed_out_at_the_next_request(
    ui: httpx.AsyncClient, second_app: Any
) -> None:
    await sign_in_as(ui, ALICE)
    assert (await ui.get("/ui/")).status_code == 200
    restarted = second_app(oidc_allowed_emails="", oidc_allowed_domains="team.example")
    async with await _with_cookies(restarted, ui) as same_browser:
        await assert_signed_out(same_browser)


async def test_the_role_is_the_setting_in_force(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any, second_app: Any
) -> None:
    mailing = await make_mailing(api, clock())
    await sign_in_as(ui, BOB)
    restarted = second_app(oidc_role="read")
    async with await _with_cookies(restarted, ui) as same_browser:
        page = await same_browser.get(f"/ui/mailings/{mailing['id']}")
        assert '<span class="role">read</span>' in page.text
        csrf = Html(page.text).forms["/ui/sign-out"]["csrf_token"]
        refused = await same_browser.post(
            f"/ui/mailings/{mailing['id']}/start", data={"csrf_token": csrf}
        )
        assert refused.status_code == 403
        assert "Your role is read; this needs send." in refused.text
    assert await status_of(api, mailing["id"]) == "scheduled"


async def test_an_unreachable_provider_gives_a_503_page(db_url: str) -> None:
    application = create_app(oidc_settings(db_url, f"http://127.0.0.1:{free_port()}"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url=BASE
    ) as ui:
        response = await ui.get("/ui/auth/oidc/login")
        assert response.status_code == 503
        assert "cannot be reached right now" in problem(response)
        # The token sign-in still works meanwhile.
        assert (await ui.get("/ui/sign-in")).status_code == 200
    await application.state.db_engine.dispose()


async def test_without_oidc_there_is_no_button_and_no_route(db_url: str) -> None:
    application = create_app(Settings(database_url=db_url, api_tokens=[TOKEN], _env_file=None))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url=BASE
    ) as ui:
        assert "oidc-sign-in" not in (await ui.get("/ui/sign-in")).text
        assert (await ui.get("/ui/auth/oidc/login")).status_code == 404
        assert (await ui.get("/ui/auth/oidc/callback")).status_code == 404
    await application.state.db_engine.dispose()


GOOD = {
    "oidc_issuer": "https://login.example.com/realms/notiflow",
    "oidc_client_id": "notiflow",
    "oidc_client_secret": "secret",
    "oidc_allowed_domains": "example.com",
}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"oidc_issuer": "http://login.example.com"}, "must be an https:// URL"),
        ({"oidc_issuer": "login.example.com"}, "not an issuer URL"),
        ({"oidc_issuer": "https://login.example.com/?x=1"}, "not an issuer URL"),
        ({"oidc_client_id": ""}, "NOTIFLOW_OIDC_CLIENT_ID and NOTIFLOW_OIDC_CLIENT_SECRET"),
        ({"oidc_client_secret": ""}, "NOTIFLOW_OIDC_CLIENT_ID and NOTIFLOW_OIDC_CLIENT_SECRET"),
        (
            {"oidc_issuer": "", "oidc_allowed_domains": ""},
            "NOTIFLOW_OIDC_ISSUER must be set too",
        ),
        (
            {"oidc_allowed_domains": ""},
            "nobody may sign in: set NOTIFLOW_OIDC_ALLOWED_EMAILS and/or "
            "NOTIFLOW_OIDC_ALLOWED_DOMAINS",
        ),
        ({"oidc_allowed_emails": "alice"}, "'alice' is not an email address"),
        ({"oidc_allowed_domains": "example"}, "'example' is not a domain name"),
        ({"oidc_role": "owner"}, "'read', 'send' or 'admin'"),
        ({"oidc_scopes": "openid profile"}, "must include openid and email"),
    ],
)
def test_the_settings_are_checked(overrides: dict[str, str], message: str) -> None:
    values: dict[str, Any] = {**GOOD, **overrides}
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, **values)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "issuer"),
    [
        ({}, "https://login.example.com/realms/notiflow"),
        ({"oidc_issuer": "https://tenant.eu.auth0.com/"}, "https://tenant.eu.auth0.com"),
        ({"oidc_issuer": "http://127.0.0.1:9400"}, "http://127.0.0.1:9400"),
        ({"oidc_issuer": "http://localhost:8080/realms/x"}, "http://localhost:8080/realms/x"),
    ],
)
def test_good_settings(overrides: dict[str, str], issuer: str) -> None:
    values: dict[str, Any] = {**GOOD, **overrides, "oidc_allowed_emails": " Alice@Example.COM "}
    settings = Settings(_env_file=None, **values)
    assert settings.oidc_issuer == issuer
    assert settings.oidc_allowed_emails == ["alice@example.com"]
    assert settings.oidc_role == "send"
