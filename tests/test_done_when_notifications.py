"""The notifications issue's "Done when", as a new user would try it, against real processes.

`patone serve` and `patone worker` run in their own processes on the test database with the
`demo` tenant. A company admin (token from the real CLI) points the Twilio and SMTP plugins at
local fakes through GraphQL, a dispatcher creates a request, and the customer's SMS and email
reach the fakes and the delivery log. The plugins are turned off again afterwards (the demo
tenant stays for other tests).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.demo_product import demo_env, graphql, issue_token, serving, stop
from tests.fakes import SmtpFake, TwilioFake
from tests.test_embedded import _free_port

SID = "AC" + "7" * 32
TOKEN = "demo-twilio-auth-token"


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    port = _free_port()
    env = demo_env(port, ALLOW_PRIVATE_URLS="true")  # the fakes listen on 127.0.0.1
    logs = tmp_path_factory.mktemp("done-when")
    with (
        serving(env, logs / "serve.log") as serve_log,
        (logs / "worker.log").open("w+") as worker_log,
    ):
        worker = subprocess.Popen(
            [sys.executable, "-m", "patone", "worker", "--threads", "2"],
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield {"port": port, "env": env, "worker_log": worker_log, "serve_log": serve_log}
        finally:
            stop(worker)


def _token(product: dict[str, Any], user: str) -> str:
    return issue_token(product["env"], user)


def _gql(product: dict[str, Any], token: str, query: str, **variables: Any) -> dict[str, Any]:
    return graphql(product["port"], token, query, **variables)


CONFIGURE = """mutation($name: String!, $config: JSON) {
  configurePlugin(name: $name, enabled: true, config: $config) {
    plugin { name enabled } userErrors { field message } } }"""


def test_installed_plugins_start_with_the_product(product: dict[str, Any]) -> None:
    product["serve_log"].seek(0)
    assert "night-surcharge plugin started" in product["serve_log"].read()


def test_a_new_request_in_the_demo_company_texts_and_emails_its_customer(
    product: dict[str, Any],
) -> None:
    twilio, smtp = TwilioFake(SID, TOKEN).start(), SmtpFake().start()
    admin = _token(product, "admin@demo-towing.example")
    dispatcher = _token(product, "dispatcher@demo-towing.example")
    try:
        sms = _gql(
            product,
            admin,
            CONFIGURE,
            name="sms-twilio",
            config={
                "account_sid": SID,
                "auth_token": TOKEN,
                "from_number": "+15005550006",
                "api_base_url": twilio.url,
            },
        )
        assert sms["configurePlugin"]["userErrors"] == []
        mail = _gql(
            product,
            admin,
            CONFIGURE,
            name="email-smtp",
            config={
                "host": "127.0.0.1",
                "port": smtp.port,
                "from_address": "dispatch@demo-towing.example",
                "security": "none",
            },
        )
        assert mail["configurePlugin"]["userErrors"] == []

        customer = _gql(
            product,
            dispatcher,
            """mutation { createCustomer(input: {name: "Nina Newuser", phone: "+1 415 555 0142",
                 email: "nina@example.com"}) { customer { id } userErrors { message } } }""",
        )["createCustomer"]["customer"]
        request = _gql(
            product,
            dispatcher,
            """mutation($customer: ID!) { createServiceRequest(input: {customerId: $customer,
                 serviceType: "jump_start", pickup: {lat: 37.77, lng: -122.42,
                 address: "Mission St 100"}}) {
                 serviceRequest { id number } userErrors { message } } }""",
            customer=customer["id"],
        )["createServiceRequest"]["serviceRequest"]

        log: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = _gql(
                product,
                dispatcher,
                """query($id: ID) { notifications(requestId: $id) {
                     nodes { channel status address provider providerId body error } } }""",
                id=request["id"],
            )["notifications"]["nodes"]
            if {n["channel"] for n in log if n["status"] == "sent"} == {"sms", "email"}:
                break
            time.sleep(0.2)
        else:
            product["worker_log"].seek(0)
            product["serve_log"].seek(0)
            raise AssertionError(
                f"not sent: {log}\nworker: {product['worker_log'].read()[-3000:]}"
                f"\nserve: {product['serve_log'].read()[-3000:]}"
            )
        by_channel = {n["channel"]: n for n in log}
        assert by_channel["sms"]["address"] == "+14155550142"
        assert by_channel["sms"]["provider"] == "sms-twilio"
        assert by_channel["sms"]["providerId"].startswith("SM")
        assert f"#{request['number']}" in by_channel["sms"]["body"]
        assert [form["To"] for form in twilio.forms] == [["+14155550142"]]
        [message] = smtp.messages
        assert message["To"] == "nina@example.com"
        assert f"#{request['number']}" in message["Subject"]
    finally:
        for name in ("sms-twilio", "email-smtp"):
            _gql(
                product,
                admin,
                "mutation($name: String!) { configurePlugin(name: $name, enabled: false) "
                "{ plugin { enabled } } }",
                name=name,
            )
        twilio.stop()
        smtp.stop()
