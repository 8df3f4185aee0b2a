"""Passwords are never printed, whatever characters they hold (issue 20): a
server URL is taken apart by `couch.parse_url`, a malformed one is reported
in one line without its user name and password, and a password with
`#`, `/`, `?`, `@`, `:` or `%` works percent-encoded (and typed as it is)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest

from queshot.cli import main
from queshot.couch import Couch, Unauthorized, parse_url, safe_url

LEAK = "LEAKEDPREFIX"
PASSWORDS = [f"{LEAK}#rest", f"{LEAK}/rest", f"{LEAK}?rest", f"{LEAK}@rest", f"{LEAK}:rest"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_password_typed_as_it_is_is_taken_whole(password: str) -> None:
    address = parse_url(f"http://admin:{password}@db.example:5984/")
    assert (address.url, address.user, address.password) == (
        "http://db.example:5984/",
        "admin",
        password,
    )
    assert LEAK not in safe_url(f"http://admin:{password}@db.example:5984/")


@pytest.mark.parametrize("password", [*PASSWORDS, "100%", "a b"])
def test_a_percent_encoded_password_is_decoded(password: str) -> None:
    address = parse_url(f"https://ad%40min:{quote(password, safe='')}@[::1]:6984/couch/")
    assert (address.url, address.user, address.password) == (
        "https://[::1]:6984/couch/",
        "ad@min",
        password,
    )


@pytest.mark.parametrize(
    "url",
    [
        f"http://admin:{LEAK}@db.example:notaport/",
        f"http://admin:{LEAK}@/",
        f"ftp://admin:{LEAK}@db.example/",
        f"admin:{LEAK}@db.example:5984",
        f"{LEAK}",
        f"http://admin:{LEAK}@[::1/",
    ],
)
def test_a_malformed_url_is_reported_without_its_credentials(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_url(url)
    assert LEAK not in str(caught.value)
    assert "\n" not in str(caught.value)
    assert LEAK not in safe_url(url)


@pytest.mark.parametrize("url", [f"http://admin:{LEAK}#x@127.0.0.1:notaport/", f"{LEAK}@:x"])
def test_the_cli_says_so_in_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert main(["stats", "--url", url]) == 1
    captured = capsys.readouterr()
    assert LEAK not in captured.out + captured.err
    assert captured.err.startswith("queshot: error: not a CouchDB URL")
    assert len(captured.err.splitlines()) == 1


@pytest.fixture
def account(couch: Couch) -> Iterator[tuple[str, str]]:
    """A `_users` account whose password holds every character a URL treats
    specially; removed after."""
    users = couch.database("_users")
    if not users.exists():
        users.create()
    name = f"queshot_test_{uuid.uuid4().hex[:8]}"
    password = f"{LEAK}#/?@:% x"
    doc = {"_id": f"org.couchdb.user:{name}", "name": name, "type": "user", "roles": []}
    users.save({**doc, "password": password})
    yield name, password
    users.delete(doc["_id"], users.get(doc["_id"])["_rev"])


def session_name(url: str) -> str | None:
    with Couch(url) as client:
        return client.json("GET", "/_session")["userCtx"]["name"]


def test_such_a_password_logs_in_percent_encoded_or_as_typed(
    server_url: str, account: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COUCHDB_USER", raising=False)
    monkeypatch.delenv("COUCHDB_PASSWORD", raising=False)
    name, password = account
    host = urlsplit(safe_url(server_url)).netloc
    assert session_name(f"http://{name}:{quote(password, safe='')}@{host}/") == name
    assert session_name(f"http://{name}:{password}@{host}/") == name


def test_a_wrong_password_is_refused_without_printing_it(
    server_url: str,
    account: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("COUCHDB_USER", raising=False)
    monkeypatch.delenv("COUCHDB_PASSWORD", raising=False)
    name, _ = account
    host = urlsplit(safe_url(server_url)).netloc
    wrong = f"http://{name}:{LEAK}#wrong@{host}/"
    with pytest.raises(Unauthorized) as caught:
        session_name(wrong)
    assert LEAK not in str(caught.value)
    assert main(["stats", "--url", wrong, "--db", "queshot_test_none"]) == 1
    captured = capsys.readouterr()
    assert LEAK not in captured.out + captured.err
    assert len(captured.err.splitlines()) == 1
