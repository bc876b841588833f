"""Cases: cases list|show|member|close."""

from __future__ import annotations

from typing import Annotated

import typer

from facesearch.cli import render
from facesearch.cli._app import CSV, FAILED, JSON, fail, out, print_json, state
from facesearch.errors import AuditError, CaseError

cases_app = typer.Typer(help="Cases that searches are made for.", no_args_is_help=True)


@cases_app.command("list")
def cases_list_command(json_output: JSON = False, csv_output: CSV = False) -> None:
    """List cases, newest first."""
    with state.engine() as engine:
        rows = engine.cases.list(engine.operator)
    columns = ("case_id", "open", "opened_by", "created_at", "closed_at", "title")
    typer.echo(render.listing(rows, columns, as_json=json_output, as_csv_=csv_output, empty="no case yet"))


@cases_app.command("close")
def cases_close_command(case_id: Annotated[str, typer.Argument(help="The case reference.")]) -> None:
    """Close a case: no more searches can be made for it."""
    with state.engine() as engine:
        try:
            engine.cases.close(engine.operator, case_id)
        except (CaseError, LookupError, AuditError) as error:
            raise fail(str(error), code=FAILED) from error
    out.print(f"case {case_id} closed")


@cases_app.command("show")
def cases_show_command(
    case_id: Annotated[str, typer.Argument(help="The case reference.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a case: owner, members, the faces its searches returned, and reviewers' decisions."""
    with state.engine() as engine:
        try:
            case = engine.cases.get(engine.operator, case_id)
        except LookupError as error:
            raise fail(str(error), code=1) from error
    if json_output:
        print_json(case)
        return
    state_text = "open" if case["open"] else f"closed {case['closed_at']}"
    out.print(f"case {case['case_id']} ({state_text}), opened by {case['opened_by']}", markup=False)
    members = ", ".join(f"{m['user']} ({m['role']})" for m in case["members"]) or "none"
    out.print(f"members: {members}", markup=False)
    out.print(f"{len(case['candidates'])} candidate faces, {len(case['decisions'])} decisions")


@cases_app.command("member")
def cases_member_command(
    case_id: Annotated[str, typer.Argument(help="The case reference.")],
    user: Annotated[str, typer.Argument(help="An investigator or reviewer.")],
    remove: Annotated[bool, typer.Option("--remove", help="Take the user off the case instead.")] = False,
) -> None:
    """Add a user to a case (investigators then search under it, reviewers decide on its candidates)."""
    with state.engine() as engine:
        try:
            if remove:
                engine.cases.remove_member(engine.operator, case_id, user)
            else:
                engine.cases.add_member(engine.operator, case_id, user)
        except (CaseError, LookupError, AuditError) as error:
            raise fail(str(error), code=FAILED) from error
    out.print(f"{user} {'taken off' if remove else 'added to'} case {case_id}")
