"""The audit log: audit verify|export|verify-export|public-key|witness|reanchor|list."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from facesearch.cli import render
from facesearch.cli._app import CSV, FAILED, console, fail, out, print_json, state
from facesearch.errors import AuditError

audit_app = typer.Typer(help="The hash-chained audit log: verify it, export it signed.", no_args_is_help=True)


def _public_key_option(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read the public key {path}: {error}") from error


@audit_app.command("verify")
def audit_verify_command(
    witness: Annotated[
        list[Path] | None,
        typer.Option(
            "--witness",
            help="A witness file (signed checkpoints written outside the data folder, or a copy of the remote "
            "log they were sent to): every record it names must still be in the chain. Repeatable; the "
            "configured audit_witness file is always read.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Recompute the audit chain; exit 1 naming the first record changed, removed or reordered."""
    from facesearch.governance.anchor import read_public_key
    from facesearch.governance.witness import read_witness

    with state.engine() as engine:
        files = list(witness or [])
        configured = engine.settings.audit_witness
        if configured is not None and configured.exists() and configured not in files:
            files.append(configured)
        checkpoints = []
        public = read_public_key(engine.audit.anchor.folder)
        for file in files:
            if public is None:
                raise fail(
                    "this data folder has no audit key yet, so no witness can be checked against it", code=FAILED
                )
            try:
                checkpoints.extend(read_witness(file.read_text(encoding="utf-8", errors="replace"), public))
            except OSError as error:
                raise fail(f"cannot read the witness {file}: {error}") from error
            except ValueError as error:
                raise fail(f"{file}: {error}", code=FAILED) from error
        result = engine.audit.verify(witness=checkpoints)
    report = {**result.to_dict(), "witness_checkpoints": len(checkpoints)}
    if json_output:
        print_json(report)
    elif result.ok:
        against = f", {len(checkpoints)} witness checkpoints matched" if checkpoints else ""
        out.print(f"audit chain intact: {result.records} records{against}")
    else:
        first = f" (first bad record: {result.first_bad_seq})" if result.first_bad_seq is not None else ""
        out.print(f"audit chain BROKEN{first}: {result.problem}")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export_command(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    after: Annotated[int, typer.Option("--after", help="Only records after this sequence number.")] = 0,
) -> None:
    """Write the audit log as JSON lines with a final Ed25519 signature line."""
    with state.engine() as engine:
        if output is None:
            engine.audit.export(sys.stdout, after_seq=after, actor=engine.searching.context().actor)
            return
        with output.open("w", encoding="utf-8") as handle:
            count = engine.audit.export(handle, after_seq=after, actor=engine.searching.context().actor)
    console.print(f"{count} records written to {output}, signed")


@audit_app.command("verify-export")
def audit_verify_export_command(
    path: Annotated[Path, typer.Argument(help="An export written by `audit export`.")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The signer's public key (PEM, from `facesearch audit public-key`); default: the data folder's.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Check a signed export (signature, hashes, chain) against a public key you trust.

    Creates nothing: neither a catalog nor a data folder. Without --public-key and without a data folder
    that holds a key, it says it cannot tell who signed the file and exits 1.
    """
    from facesearch.config import default_home
    from facesearch.governance.anchor import key_fingerprint, read_public_key
    from facesearch.governance.audit import ANCHOR_FOLDER, verify_export

    public = _public_key_option(public_key)
    source = str(public_key) if public is not None else None
    if public is None:
        folder = (state.home.expanduser() if state.home is not None else default_home()).absolute() / ANCHOR_FOLDER
        try:
            public = read_public_key(folder)
        except (OSError, ValueError) as error:
            raise fail(f"cannot read the data folder's key in {folder}: {error}") from error
        source = f"the data folder's key ({folder})" if public is not None else None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read {path}: {error}") from error
    result = verify_export(lines, public_key_pem=public)
    if json_output:
        signer = key_fingerprint(public) if public is not None else None
        print_json({**result.to_dict(), "public_key": source, "key_fingerprint": signer})
    elif result.ok:
        out.print(f"export intact: {result.records} records, signed by {source}")
    else:
        out.print(f"export NOT VERIFIED: {result.problem}")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("public-key")
def audit_public_key_command() -> None:
    """Print the data folder's audit public key (PEM), for whoever verifies its exports and witness lines."""
    from facesearch.governance.anchor import read_public_key

    with state.engine() as engine:
        public = read_public_key(engine.audit.anchor.folder) or engine.audit.anchor.public_key_pem()
    typer.echo(public.rstrip("\n"))


@audit_app.command("witness")
def audit_witness_command() -> None:
    """Write a signed checkpoint of the chain's head to the configured witness now (e.g. from cron)."""
    with state.engine() as engine:
        try:
            line = engine.audit.witness_now()
        except AuditError as error:
            raise fail(str(error), code=FAILED) from error
        target = engine.audit.witness.target if engine.audit.witness is not None else ""
    out.print(f"checkpoint of record {json.loads(line)['seq']} written to {target}")


@audit_app.command("reanchor")
def audit_reanchor_command(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: you have read what `audit verify` reports.")] = False,
) -> None:
    """Accept the chain as it stands after records were lost from its end (recorded, never silent).

    Appends are refused while the signed checkpoint names a record the chain no longer holds. After you have
    understood what happened (`facesearch audit verify`), this records an `audit_reanchored` record that names
    the checkpoint it replaces, and appends go on. It cannot repair a chain broken in the middle.
    """
    if not yes:
        raise fail("re-anchoring accepts the loss of the records past the chain's end; run it with --yes")
    with state.engine() as engine:
        try:
            report = engine.audit.reanchor(actor=engine.searching.context().actor)
        except AuditError as error:
            raise fail(str(error), code=FAILED) from error
    out.print(
        f"audit chain re-anchored at record {report['seq']} (previous checkpoint: {report['previous_checkpoint']})"
    )


@audit_app.command("list")
def audit_list_command(
    after: Annotated[int, typer.Option("--after", help="Records after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 100,
    action: Annotated[str | None, typer.Option("--action", help="Only this action (search, verify, erase...).")] = None,
    case_id: Annotated[str | None, typer.Option("--case", help="Only this case.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="JSON lines, one record each (the default).")] = False,
    csv_output: CSV = False,
) -> None:
    """Print audit records as JSON lines (or CSV, details as JSON in one column)."""
    with state.engine() as engine:
        records = engine.audit.records(after_seq=after, limit=limit, action=action, case_ref=case_id)
    if csv_output and not json_output:
        columns = list(dict.fromkeys(key for record in records for key in record))
        flat = [{k: json.dumps(v) if isinstance(v, dict) else v for k, v in record.items()} for record in records]
        typer.echo(render.as_csv(flat, columns))
        return
    for record in records:
        print_json(record)
