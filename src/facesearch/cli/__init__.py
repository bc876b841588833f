"""The ``facesearch`` command line: a complete product on its own. One module per command group; a command
parses, calls one service and prints.

The command names, flags and JSON fields documented in the README are relied on by scripts: extend them,
never change them.
"""

from __future__ import annotations

import sys

from pydantic import ValidationError

from facesearch.cli import (  # noqa: F401 - each module registers its commands on ``app``
    accounts,
    audit,
    cases,
    clusters,
    evaluation,
    governance,
    indexing,
    models,
    provenance,
    searching,
    serve,
)
from facesearch.cli._app import FAILED, USAGE, app, console, hoist_global_options
from facesearch.errors import ContextError, FacesearchError, PackError

app.add_typer(models.models_app, name="models")
app.add_typer(evaluation.eval_app, name="eval")
app.add_typer(accounts.users_app, name="users")
app.add_typer(accounts.keys_app, name="keys")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(governance.optout_app, name="optout")
app.add_typer(governance.retention_app, name="retention")
app.add_typer(cases.cases_app, name="cases")
app.add_typer(clusters.clusters_app, name="clusters")
app.add_typer(clusters.review_app, name="review")

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``facesearch`` command.

    A domain error that a command did not handle itself still ends in one line on stderr and the documented
    exit status (2 for a pack or context the options name wrongly, 1 for anything refused or failed), never in
    a traceback.
    """
    try:
        app(args=hoist_global_options(sys.argv[1:]), prog_name="facesearch")
    except (PackError, ContextError) as error:
        raise SystemExit(_report(error, USAGE)) from None
    except ValidationError as error:  # a setting (environment or config.toml) with a value it cannot take
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SystemExit(_report(ValueError(f"invalid setting: {problems}"), USAGE)) from None
    except FacesearchError as error:
        raise SystemExit(_report(error, FAILED)) from None


def _report(error: Exception, code: int) -> int:
    console.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
    return code
