"""Airflow's "Add Connection" form for ``coze`` and ``truewatch``, in a real browser.

What a user sees and does, step by step, on Airflow 3.3's UI (``/connections``):

1. *Add Connection*, pick the type: the relabelled secret field and the host's placeholder, no
   login / port / schema; under *Extra Fields* our labelled settings with their descriptions, and for
   TrueWatch a Site picker whose every choice reads as a label (no bare ``null``).
2. Host = the emulator on loopback, the secret, *Save*.
3. The row's *Test Connection* button (the only Test in Airflow 3.3's UI: neither the add nor the
   edit dialog has one): a green "Test Connection Successful" toast with the hook's message.
   Airflow 3.3.2 sends ``"port": 0`` for a connection without a port and its API answers 400 (fixed
   by apache/airflow#73298); the user sees a red "Test Connection Failed / Bad Request" toast. The
   test records that and works around it as a user can: our forms hide the port, so the port is
   stored through the REST API (``PATCH /api/v2/connections/{id}?update_mask=port``), then Test again.
4. *Edit*, a wrong secret, *Save*, Test: a red "Test Connection Failed" toast with the API's error
   in words, not a traceback. No secret ever appears in the page.

Screenshots of every step: ``tests/browser/screenshots/`` (printed at the end of the run).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import certifi
import pytest

from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY
from airflow_provider_taskstatus.models.truewatch import SITES

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or, under CI, fail) with a reason
    expect = None

from tests.browser.conftest import AirflowUI, Screenshots
from tests.proxies import (
    ProxyFactory,
    forward_proxies_fixture,  # noqa: F401  the forward_proxies fixture
)
from tests.test_connection_cli import OAuthKeys, make_oauth_keys
from tests.test_connection_cli import assert_no_key as assert_not_in_output

pytestmark = pytest.mark.browser

#: What the API answers on Airflow 3.3.2 when the UI's Test sends ``port: 0`` (apache/airflow#73298).
PORT_ZERO_DETAIL = "The host or port to test differs from the stored connection"
TRACEBACK_SIGNS = ("Traceback", 'File "', "Error(", "Exception(")


@dataclass(frozen=True)
class FormSpec:
    conn_type: str
    type_name: str  # the hook name, as the Connection Type picker lists it
    conn_id: str
    host_label: str
    secret_label: str
    #: What the hook's messages call the secret (Coze's label also names the OAuth private key).
    message_secret: str
    host_placeholder_words: tuple[str, ...]
    extra_labels: tuple[str, ...]
    api_name: str  # named in the Test messages
    secret: str
    wrong_secret: str
    requests_per_minute: str


COZE = FormSpec(
    conn_type="coze",
    type_name="Coze",
    conn_id="browser_coze",
    host_label="Host",
    secret_label="API token or OAuth private key",
    message_secret="API token",
    host_placeholder_words=("api.coze.cn", "api.coze.com"),
    extra_labels=("Requests per minute",),
    api_name="Coze",
    secret=DEFAULT_COZE_TOKEN,
    wrong_secret="pat_browser_wrong_token_Q7xK2",
    requests_per_minute="30",
)
TRUEWATCH = FormSpec(
    conn_type="truewatch",
    type_name="TrueWatch (Guance)",
    conn_id="browser_truewatch",
    host_label="Host (private deployment only)",
    secret_label="API key (DF-API-KEY)",
    message_secret="API key (DF-API-KEY)",
    host_placeholder_words=(),
    extra_labels=("Site", "Requests per minute"),
    api_name="TrueWatch",
    secret=DEFAULT_TRUEWATCH_KEY,
    wrong_secret="tw_browser_wrong_key_M3pZ9",
    requests_per_minute="20",
)
#: Standard fields our forms hide (the password is relabelled, so "Password" must not show either).
HIDDEN_LABELS = ("Login", "Port", "Schema", "Password")


# --- steps -----------------------------------------------------------------------------------------


def assert_no_secret(page: Any, spec: FormSpec) -> None:
    """Neither the real nor the wrong secret is in the page's text or its HTML."""
    text, html = page.inner_text("body"), page.content()
    for secret in (spec.secret, spec.wrong_secret):
        assert secret not in text, f"the secret {secret[:4]}… is shown on the page"
        assert secret not in html, f"the secret {secret[:4]}… is in the page's HTML"


def toast(page: Any, *texts: str) -> Any:
    """The toast (role ``status``) that shows every one of ``texts``."""
    found = page.get_by_role("status")
    for text in texts:
        found = found.filter(has_text=text)
    return found.first


def open_add_form(page: Any, ui: AirflowUI, spec: FormSpec) -> Any:
    page.goto(f"{ui.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()
    dialog.get_by_label("Connection ID").fill(spec.conn_id)
    dialog.get_by_role("combobox", name="Connection Type").fill(spec.type_name)
    page.get_by_role("option", name=spec.type_name, exact=True).click()
    return dialog


def check_standard_fields(dialog: Any, spec: FormSpec) -> tuple[Any, Any]:
    host = dialog.get_by_label(spec.host_label, exact=True)
    secret = dialog.get_by_label(spec.secret_label, exact=True)
    expect(host).to_be_visible()
    expect(secret).to_be_visible()
    expect(secret).to_have_attribute("type", "password")
    placeholder = host.get_attribute("placeholder") or ""
    assert placeholder.strip(), f"{spec.conn_type}: the host field has no placeholder"
    for word in spec.host_placeholder_words:
        assert word in placeholder, f"{spec.conn_type}: host placeholder {placeholder!r} lacks {word!r}"
    for label in HIDDEN_LABELS:
        expect(dialog.get_by_label(label, exact=True)).to_have_count(0)
    return host, secret


def open_extra_fields(dialog: Any) -> None:
    """The *Extra Fields* section (the accordion folds *Standard Fields* away meanwhile)."""
    section = dialog.get_by_role("button", name="Extra Fields", exact=True)
    expect(section).to_be_visible()
    if section.get_attribute("aria-expanded") != "true":
        section.click()
    expect(section).to_have_attribute("aria-expanded", "true")


def check_requests_per_minute(dialog: Any, spec: FormSpec) -> None:
    field = dialog.get_by_label("Requests per minute", exact=True)
    expect(field).to_be_visible()
    # The description is the field's accessible description (the help text under it).
    expect(field).to_have_accessible_description(re.compile(r"per minute", re.IGNORECASE))
    field.fill(spec.requests_per_minute)


def check_site_picker(page: Any, dialog: Any, shot: Screenshots) -> None:
    """Every choice, and the value shown, reads as a label: no bare ``null`` or site code."""
    site = dialog.get_by_role("combobox", name="Site")
    expect(site).to_be_visible()
    field = dialog.get_by_role("group").filter(has=page.get_by_role("combobox", name="Site"))
    expect(field).to_contain_text(re.compile(r"site", re.IGNORECASE))  # its description
    shown = field.inner_text()

    site.click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    shot("site-picker-open")  # before the assertions: a failure leaves the picture of what is wrong
    assert not re.search(r"\bnull\b", shown, re.IGNORECASE), f"the Site picker shows {shown!r}"
    expect(options).to_have_count(len(SITES) + 1)  # every site, and "not set"
    labels = [label.strip() for label in options.all_inner_texts()]
    bare = [label for label in labels if label in SITES or label.lower() in ("null", "none", "")]
    assert not bare, f"Site choices without a human label: {bare} (all choices: {labels})"
    assert not [label for label in labels if re.search(r"\bnull\b", label, re.IGNORECASE)], labels
    assert len(set(labels)) == len(labels), f"two Site choices read the same: {labels}"
    # The choice shown before opening is the "not set" one: keep it (an empty site, the host decides).
    current = next((label for label in labels if label in shown), None)
    assert current is not None, f"the value shown ({shown!r}) is none of the choices {labels}"
    page.get_by_role("option", name=current, exact=True).click()
    expect(options).to_have_count(0)


def save_new_connection(page: Any, dialog: Any, ui: AirflowUI, spec: FormSpec) -> None:
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(toast(page, "Connection has been successfully created")).to_be_visible()
    stored = ui.connection(spec.conn_id)
    assert stored["conn_type"] == spec.conn_type
    assert stored["host"] == ui.emulator_url
    assert stored["password"] == "***"  # masked by the API; the real check is the Test below
    extra = json.loads(stored["extra"] or "{}")
    assert float(extra.get("requests_per_minute")) == float(spec.requests_per_minute), extra
    if spec.conn_type == "truewatch":
        assert extra.get("site") is None, f"the default Site should store no site: {extra}"


def row_of(page: Any, spec: FormSpec) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=spec.conn_id, exact=True))


def press_test(page: Any, spec: FormSpec) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Click the row's *Test Connection*; return the API's status, its answer and what the UI sent."""
    button = row_of(page, spec).get_by_role("button", name="Test Connection")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/api/v2/connections/test")
    ) as answer:
        button.click()
    response = answer.value
    return response.status, response.json(), response.request.post_data_json


def press_test_until_it_answers(
    page: Any, ui: AirflowUI, spec: FormSpec, shot: Screenshots
) -> dict[str, Any]:
    """Test from the list; on Airflow's port-0 bug, store a port as a user can, and test again."""
    status, answer, sent = press_test(page, spec)
    if status == 400 and PORT_ZERO_DETAIL in str(answer.get("detail")):
        # apache/airflow#73298 (Airflow 3.3.2): Number(null) == 0 is sent as the port, the stored
        # port is NULL, so the API takes it for another destination and refuses the masked password.
        assert sent["port"] == 0 and ui.connection(spec.conn_id)["port"] is None, sent
        expect(toast(page, "Test Connection Failed", "Bad Request")).to_be_visible()
        shot("test-port0-bad-request")
        # Our forms hide the port: set it through the REST API. The host names the emulator's port
        # already, so this one changes nothing else (a public host would take 443).
        ui.set_port(spec.conn_id, spec.conn_type, ui.emulator_port)
        page.reload()
        expect(row_of(page, spec).get_by_role("cell", name=str(ui.emulator_port), exact=True)).to_be_visible()
        status, answer, sent = press_test(page, spec)
    assert status == 200, f"Test → HTTP {status}: {answer} (sent {sent})"
    return answer


def edit_secret(page: Any, spec: FormSpec, new_secret: str) -> None:
    row_of(page, spec).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Edit Connection")).to_be_visible()
    secret = dialog.get_by_label(spec.secret_label, exact=True)
    expect(secret).to_be_visible()
    assert secret.input_value() in ("", "***"), "the edit form shows the stored secret"
    secret.fill(new_secret)
    with page.expect_response(
        lambda r: r.request.method == "PATCH" and f"/api/v2/connections/{spec.conn_id}" in r.url
    ) as saved:
        dialog.get_by_role("button", name="Save").click()
    assert saved.value.status == 200, saved.value.text()
    expect(dialog).to_be_hidden()


# --- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [COZE, TRUEWATCH], ids=lambda spec: spec.conn_type)
def test_add_connection_form(page: Any, airflow_ui: AirflowUI, shot: Screenshots, spec: FormSpec) -> None:
    ui = airflow_ui

    # 1. The form a user gets for the type.
    dialog = open_add_form(page, ui, spec)
    host, secret = check_standard_fields(dialog, spec)
    shot("form-empty")  # the labels and placeholders
    host.fill(ui.emulator_url)
    secret.fill(spec.secret)
    shot("form-filled")

    open_extra_fields(dialog)
    if spec.conn_type == "truewatch":
        check_site_picker(page, dialog, shot)
    check_requests_per_minute(dialog, spec)
    for label in spec.extra_labels:
        expect(dialog.get_by_text(label, exact=True)).to_be_visible()
    shot("extra-fields")

    # 2. Saved: the secret is stored, and shown nowhere.
    save_new_connection(page, dialog, ui, spec)
    assert_no_secret(page, spec)
    shot("saved")

    # 3. Test, from the connection list.
    answer = press_test_until_it_answers(page, ui, spec, shot)
    assert answer["status"] is True, f"Test failed with the right secret: {answer}"
    message = answer["message"]
    success = toast(page, "Test Connection Successful", message)
    expect(success).to_be_visible()
    assert spec.api_name in message and spec.message_secret in message, message
    shot("test-success")
    assert_no_secret(page, spec)

    # 4. A wrong secret: a message in words, no traceback, no secret.
    edit_secret(page, spec, spec.wrong_secret)
    assert_no_secret(page, spec)
    status, answer, _ = press_test(page, spec)
    assert status == 200, answer
    assert answer["status"] is False, f"Test passed with a wrong secret: {answer}"
    message = answer["message"]
    failure = toast(page, "Test Connection Failed", message)
    expect(failure).to_be_visible()
    shot("test-wrong-secret")
    assert spec.api_name in message, message
    assert not [sign for sign in TRACEBACK_SIGNS if sign in message], message
    assert "\n" not in message.strip(), f"a multi-line failure message: {message!r}"
    assert_no_secret(page, spec)


# --- a Coze OAuth service app, with verify and proxy -------------------------------------------------

OAUTH_APP_ID = "1180000000099"
#: The form's labels of the settings this test fills in.
OAUTH_LABELS = {
    "oauth_app_id": "OAuth app id",
    "oauth_public_key_id": "OAuth public key id",
    "oauth_duration_seconds": "OAuth token lifetime (seconds)",
    "verify": "Verify TLS (true, false or CA bundle path)",
    "proxy": "Proxy URL",
}


@dataclass(frozen=True)
class OAuthCase:
    conn_id: str
    kid: str
    revoked: bool


OAUTH_CASES = [
    OAuthCase("browser_coze_oauth", "kid-browser", revoked=False),
    OAuthCase("browser_coze_oauth_revoked", "kid-browser-revoked", revoked=True),
]


@pytest.fixture(scope="module")
def oauth_keys() -> OAuthKeys:
    return make_oauth_keys(*(case.kid for case in OAUTH_CASES))


def extra_group(page: Any, dialog: Any, label: str) -> Any:
    """The *Extra Fields* entry whose label reads ``label``: label, input and description."""
    return dialog.get_by_role("group").filter(has=page.get_by_text(label, exact=True))


def extra_input(page: Any, dialog: Any, label: str) -> Any:
    return extra_group(page, dialog, label).locator("input").first


def assert_no_key(page: Any, pem: str) -> None:
    for where in (page.inner_text("body"), page.content()):
        assert_not_in_output(where, pem)


@pytest.mark.parametrize("case", OAUTH_CASES, ids=lambda case: case.conn_id.removeprefix("browser_coze_"))
def test_add_coze_oauth_connection(
    page: Any,
    airflow_ui: AirflowUI,
    shot: Screenshots,
    oauth_keys: OAuthKeys,
    forward_proxies: ProxyFactory,
    case: OAuthCase,
) -> None:
    """A Coze OAuth service app typed into the form: the private key (PEM) pasted into the password
    box, which cannot keep its line breaks (Chromium makes each a space); app id, key id and
    lifetime; verify (a CA bundle path that exists) and a real forward proxy. Saved, then tested
    from the list: the toast shows the hook's message, and the exchange went through the proxy."""
    ui = airflow_ui
    emulator = ui.emulator
    oauth_keys.register(emulator, OAUTH_APP_ID, case.kid)
    if case.revoked:
        emulator.revoke_oauth_key(case.kid)
    proxy = forward_proxies()
    ca_bundle = certifi.where()  # a PEM bundle that exists on this machine (the api-server's too)
    pem = oauth_keys.pem(case.kid)
    spec = FormSpec(**{**COZE.__dict__, "conn_id": case.conn_id})

    # 1. The form: the key in the password box.
    dialog = open_add_form(page, ui, spec)
    host, secret = check_standard_fields(dialog, spec)
    host.fill(ui.emulator_url)
    secret.fill(pem)
    typed = secret.input_value()
    # A one-line box cannot hold the PEM's line breaks: Chromium puts a space for each (as for a
    # paste); the sanitizing of a value set by script drops them (the CLI and REST tests cover that).
    assert "\n" not in typed and "\r" not in typed, "the password box kept the key's line breaks"
    assert typed == pem.strip().replace("\n", " "), "the password box changed the key otherwise"
    open_extra_fields(dialog)
    values = {
        "oauth_app_id": OAUTH_APP_ID,
        "oauth_public_key_id": case.kid,
        "oauth_duration_seconds": "600",
        "verify": ca_bundle,
        "proxy": proxy.url(),
    }
    for name, value in values.items():
        field = extra_input(page, dialog, OAUTH_LABELS[name])
        expect(field).to_be_visible()
        field.fill(value)
    # Airflow 3.3 ties a number field's label to its input, not a text field's: the lifetime is
    # found by its label, the others only next to it (what a sighted user goes by).
    expect(dialog.get_by_label(OAUTH_LABELS["oauth_duration_seconds"], exact=True)).to_have_value("600")
    expect(dialog.get_by_label(OAUTH_LABELS["oauth_app_id"], exact=True)).to_have_count(0)
    expect(extra_group(page, dialog, OAUTH_LABELS["oauth_app_id"])).to_contain_text(
        "OAuth service application"
    )
    shot("oauth-extra-fields")  # the key is in the open form (its input's value): not checked here

    # 2. Saved: the extras as the hook reads them.
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(toast(page, "Connection has been successfully created")).to_be_visible()
    stored = ui.connection(case.conn_id)
    assert stored["conn_type"] == "coze" and stored["host"] == ui.emulator_url
    assert stored["password"] == "***"
    extra = json.loads(stored["extra"] or "{}")
    assert {k: extra.get(k) for k in ("oauth_app_id", "oauth_public_key_id", "verify", "proxy")} == {
        "oauth_app_id": OAUTH_APP_ID,
        "oauth_public_key_id": case.kid,
        "verify": ca_bundle,
        # Airflow's masker hides the extra "proxy" (a sensitive name) in what the API shows; the
        # Test below, through this very proxy, shows that the real URL is stored.
        "proxy": "***",
    }, extra
    assert str(extra.get("oauth_duration_seconds")) == "600", extra
    assert_no_key(page, pem)
    shot("oauth-saved")

    # 3. Test from the list.
    before = len(emulator.oauth_exchanges())
    answer = press_test_until_it_answers(page, ui, spec, shot)
    message = answer["message"]
    assert "\n" not in message.strip() and not [s for s in TRACEBACK_SIGNS if s in message], message
    assert_not_in_output(message, pem)
    exchanges = [(e["kid"], e["outcome"], e["duration_seconds"]) for e in emulator.oauth_exchanges()[before:]]
    if not case.revoked:
        assert answer["status"] is True, f"Test of the OAuth connection failed: {answer}"
        assert message.startswith("Connection works: Coze at "), message
        assert (
            f"issued an access token to OAuth app {OAUTH_APP_ID} (key {case.kid}) and accepted it." in message
        )
        expect(toast(page, "Test Connection Successful", message)).to_be_visible()
        shot("oauth-test-success")
        assert exchanges == [(case.kid, "issued", 600)], exchanges
    else:
        assert answer["status"] is False, f"Test passed with a revoked key: {answer}"
        assert message.startswith("Step 2 of 3 (token exchange) failed: "), message
        assert "invalid_client" in message and "oauth_public_key_id" in message, message
        expect(toast(page, "Test Connection Failed", message)).to_be_visible()
        shot("oauth-test-revoked-key")
        assert exchanges == [(case.kid, "invalid_client", 600)], exchanges
    assert_no_key(page, pem)
    # Every request of the Test went through the connection's proxy.
    through = [(r.method, r.path) for r in proxy.proxied()]
    assert ("POST", "/api/permission/oauth2/token") in through, through
    if not case.revoked:
        assert ("GET", "/v1/entities/copy_tasks/airflow-connection-test") in through, through
        edit_lifetime_and_test_again(page, ui, spec, shot, proxy, pem)


def edit_lifetime_and_test_again(
    page: Any, ui: AirflowUI, spec: FormSpec, shot: Screenshots, proxy: Any, pem: str
) -> None:
    """*Edit*, change only the lifetime, *Save*, Test: the key and the proxy, which the edit form
    shows masked (or not at all), survive the save."""
    row_of(page, spec).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Edit Connection")).to_be_visible()
    secret = dialog.get_by_label(spec.secret_label, exact=True)
    expect(secret).to_be_visible()
    assert secret.input_value() in ("", "***"), "the edit form shows the stored key"
    open_extra_fields(dialog)
    shown_proxy = extra_input(page, dialog, OAUTH_LABELS["proxy"]).input_value()
    assert shown_proxy in ("", "***"), f"the edit form shows the proxy as {shown_proxy!r}"
    lifetime = dialog.get_by_label(OAUTH_LABELS["oauth_duration_seconds"], exact=True)
    expect(lifetime).to_have_value("600")
    lifetime.fill("900")
    shot("oauth-edit-lifetime")
    with page.expect_response(
        lambda r: r.request.method == "PATCH" and f"/api/v2/connections/{spec.conn_id}" in r.url
    ) as saved:
        dialog.get_by_role("button", name="Save").click()
    assert saved.value.status == 200, saved.value.text()
    expect(dialog).to_be_hidden()
    assert_no_key(page, pem)

    before_exchanges, before_proxied = len(ui.emulator.oauth_exchanges()), len(proxy.proxied())
    status, answer, _ = press_test(page, spec)
    assert status == 200, answer
    assert answer["status"] is True, f"Test after editing the lifetime failed: {answer}"
    expect(toast(page, "Test Connection Successful", answer["message"])).to_be_visible()
    shot("oauth-test-after-edit")
    # A new lifetime is another token: a new exchange, with the stored key, through the stored proxy.
    exchanges = [
        (e["outcome"], e["duration_seconds"]) for e in ui.emulator.oauth_exchanges()[before_exchanges:]
    ]
    assert exchanges == [("issued", 900)], exchanges
    through = [(r.method, r.path) for r in proxy.proxied()[before_proxied:]]
    assert ("POST", "/api/permission/oauth2/token") in through, through
    assert_no_key(page, pem)
