"""`geoserver groups` and `geoserver tokens` on the command line, against the test database."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from layers.access.tokens import principal_for_token
from tests.support.cli import geoserver


def resolve(database_url: str, token: str) -> object:
    async def work() -> object:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await principal_for_token(conn, token)

    return asyncio.run(work())


def test_staff_manage_groups_members_and_tokens_from_the_command_line(database_url: str) -> None:
    geoserver(database_url, "groups", "create", "cli-club", "--name", "CLI Club", "--name-fr", "Club CLI")
    assert "exists already" in geoserver(database_url, "groups", "create", "cli-club", "--name", "x", ok=False).stderr
    geoserver(database_url, "groups", "add-member", "cli-club", "ann@cli", "--role", "editor")
    assert "ann@cli (editor)" in geoserver(database_url, "groups", "list").stdout
    out = geoserver(database_url, "tokens", "create", "bob@cli", "--group", "cli-club:publisher", "--expires", "30d",
                    "--label", "bob's laptop").stdout  # fmt: skip
    token = out.strip().splitlines()[-1]
    principal = resolve(database_url, token)
    assert principal is not None and principal.roles == {"cli-club": "publisher"}  # type: ignore[attr-defined]
    listed = geoserver(database_url, "tokens", "list").stdout
    line = next(row for row in listed.splitlines() if "bob's laptop" in row)
    assert token not in listed and "active" in line
    geoserver(database_url, "tokens", "revoke", line.split("\t")[0])
    assert resolve(database_url, token) is None
    assert "revoked" in next(r for r in geoserver(database_url, "tokens", "list").stdout.splitlines() if "bob's" in r)


@pytest.mark.parametrize(
    "args",
    [
        ("groups", "create", "Bad Id", "--name", "x"),
        ("groups", "add-member", "no-such-group", "x", "--role", "viewer"),
        ("groups", "add-member", "cli-club", "x", "--role", "admin"),
        ("tokens", "create", "x", "--group", "no-such-group:viewer"),
        ("tokens", "create", "x", "--expires", "soon"),
        ("tokens", "revoke", "gs_nothing"),
    ],
)
def test_bad_command_lines_fail_with_a_message_not_a_traceback(database_url: str, args: tuple[str, ...]) -> None:
    failed = geoserver(database_url, *args, ok=False)
    assert "Traceback" not in failed.stderr and "error" in failed.stderr.lower()
