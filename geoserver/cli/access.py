"""`geoserver groups` and `geoserver tokens`: City staff manage community groups, members and API tokens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from psycopg import AsyncConnection

from geoserver.cli.common import app, console, fail, run_on_database
from layers.access import groups, tokens
from layers.catalogue.journal import audit

groups_app = typer.Typer(help="Community groups and their members.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (bearer tokens; stored as digests only).", no_args_is_help=True)
app.add_typer(groups_app, name="groups")
app.add_typer(tokens_app, name="tokens")
ACTOR = "cli"
_DURATION = re.compile(r"(\d{1,5})([dh])")


@groups_app.command("create")
def groups_create(
    group_id: Annotated[str, typer.Argument(metavar="ID", help="Lower-case letters, digits and hyphens.")],
    name: Annotated[str, typer.Option(help="The group's name (English).")],
    name_fr: Annotated[str | None, typer.Option(help="The group's name in French.")] = None,
    contact: Annotated[str | None, typer.Option(help="Who to reach at the group (shown to City staff only).")] = None,
) -> None:
    """Create a community group."""

    async def work(conn: AsyncConnection[Any]) -> groups.Group:
        group = await groups.create_group(conn, group_id, name, name_fr=name_fr, contact=contact)
        await conn.execute(*audit(ACTOR, "group.create", None, {"name": name}, group_id=group.id))
        return group

    group = run_on_database(work)
    console.print(f"Created group {group.id!r} ({group.name}).")


@groups_app.command("list")
def groups_list() -> None:
    """List every group with its members."""

    async def work(conn: AsyncConnection[Any]) -> list[tuple[groups.Group, list[groups.Member]]]:
        return [(g, await groups.list_members(conn, g.id)) for g in await groups.list_groups(conn)]

    for group, members in run_on_database(work):
        who = ", ".join(f"{m.subject} ({m.role})" for m in members) or "no members"
        print(f"{group.id}\t{group.name}\t{who}")


@groups_app.command("add-member")
def groups_add_member(
    group_id: Annotated[str, typer.Argument(metavar="ID")],
    subject: Annotated[str, typer.Argument(help="Who: an e-mail address or any stable name.")],
    role: Annotated[str, typer.Option(help="viewer, editor or publisher.")] = "viewer",
) -> None:
    """Add a member to a group, or change a member's role."""

    async def work(conn: AsyncConnection[Any]) -> groups.Member:
        await groups.get_group(conn, group_id)
        member = await groups.set_member(conn, group_id, subject, role)
        await conn.execute(*audit(ACTOR, "member.set", None, {"subject": subject, "role": role}, group_id=group_id))
        return member

    member = run_on_database(work)
    console.print(f"{member.subject} is {member.role} of {group_id!r}.")


def parse_expiry(text: str | None) -> datetime | None:
    """`90d` or `12h` from now; None for a token that does not expire."""
    if text is None or text == "never":
        return None
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        fail("--expires takes a duration such as 90d or 12h, or 'never'")
    amount = int(match[1])
    return datetime.now(UTC) + (timedelta(days=amount) if match[2] == "d" else timedelta(hours=amount))


@tokens_app.command("create")
def tokens_create(
    subject: Annotated[str, typer.Argument(help="Who the token stands for.")],
    group: Annotated[list[str] | None, typer.Option(help="ID:ROLE, a role to give the subject (repeatable).")] = None,
    staff: Annotated[bool, typer.Option("--staff", help="City staff: may do everything.")] = False,
    open311: Annotated[bool, typer.Option("--open311", help="May submit Open311 service requests.")] = False,
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 90d or 12h (default: never).")] = None,
    label: Annotated[str | None, typer.Option(help="A note to recognise the token by in lists.")] = None,
) -> None:
    """Issue a token; it is printed once, on the last line of standard output."""
    grants: dict[str, str] = {}
    for item in group or []:
        gid, _, role = item.partition(":")
        grants[gid] = groups.check_role(role or "viewer")
    expires_at = parse_expiry(expires)

    async def work(conn: AsyncConnection[Any]) -> tuple[str, str]:
        for gid, role in grants.items():
            await groups.get_group(conn, gid)
            await groups.set_member(conn, gid, subject, role)
        token, prefix = await tokens.issue_token(
            conn, subject, is_staff=staff, open311=open311, label=label, expires_at=expires_at, created_by=ACTOR
        )
        detail = {"prefix": prefix, "subject": subject, "staff": staff, "groups": grants}
        await conn.execute(*audit(ACTOR, "token.issue", None, detail))
        return token, prefix

    token, prefix = run_on_database(work)
    console.print(f"Token {prefix}… for {subject}: keep it secret, it is not shown again.")
    print(token)


@tokens_app.command("list")
def tokens_list() -> None:
    """List every token by prefix (never the tokens themselves)."""
    for t in run_on_database(tokens.list_tokens):
        state = (
            "revoked"
            if t.revoked_at
            else ("expired" if t.expires_at and t.expires_at < datetime.now(UTC) else "active")
        )
        scope = f"group:{t.group_id}" if t.group_id else ("staff" if t.is_staff else ("open311" if t.open311 else "-"))
        print(f"{t.prefix or '?'}\t{t.subject}\t{scope}\t{state}\t{t.label or ''}")


@tokens_app.command("revoke")
def tokens_revoke(
    prefix: Annotated[str, typer.Argument(help="The token's prefix, as `tokens list` shows it.")],
) -> None:
    """Revoke a token: it stops working at once, on every server."""

    async def work(conn: AsyncConnection[Any]) -> tokens.TokenInfo | None:
        revoked = await tokens.revoke_token(conn, prefix)
        if revoked is not None:
            await conn.execute(*audit(ACTOR, "token.revoke", None, {"prefix": prefix, "subject": revoked.subject}))
        return revoked

    if run_on_database(work) is None:
        fail(f"no token starts with {prefix!r}")
    console.print(f"Revoked {prefix}.")
