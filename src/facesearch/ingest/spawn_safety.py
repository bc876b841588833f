"""Whether ingest may start worker processes from this program.

Worker processes are started with "spawn" (a forked child would inherit model sessions, locks and database
connections), and "spawn" runs the launching script again in every worker, as a module named ``__mp_main__``.
A script that calls facesearch at its top level, without an ``if __name__ == "__main__":`` guard, would then
start an ingest inside each worker, which Python refuses with a RuntimeError about the "bootstrapping phase".
Rather than make every user of the Python API learn that rule, ingest asks here first and, for such a script,
does the work in its own process (the models then use every core through their own threads).

Notebooks, the REPL, ``python -c``, a script read from standard input and ``python -m package`` (whose
``__main__`` multiprocessing never runs again) are safe for workers.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import sys
from types import FrameType


def _guard_lines(source: str) -> list[tuple[int, int]]:
    """Line ranges (first, last) of the bodies of ``if __name__ == "__main__":`` blocks at a module's top."""
    ranges = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
            continue
        sides = [node.test.left, *node.test.comparators]
        names = {side.id for side in sides if isinstance(side, ast.Name)}
        texts = {side.value for side in sides if isinstance(side, ast.Constant)}
        if "__name__" in names and "__main__" in texts and node.body:
            ranges.append((node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno))
    return ranges


def _main_module_frame() -> FrameType | None:
    """The frame running the main script's top level, when this call comes from it."""
    main = sys.modules.get("__main__")
    frame = sys._getframe(1)
    found = None
    while frame is not None:
        if main is not None and frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            found = frame
        frame = frame.f_back  # type: ignore[assignment]
    return found


def workers_may_spawn() -> tuple[bool, str]:
    """(whether worker processes may be started now, why not when they may not)."""
    if multiprocessing.parent_process() is not None:
        return False, "this is already a worker process"
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:
        return True, ""  # notebook, REPL, python -c, standard input: no script is run again
    spec = getattr(main, "__spec__", None)
    if spec is not None and (spec.name == "__main__" or spec.name.endswith(".__main__")):
        return True, ""  # python -m package: multiprocessing never runs a package's __main__ again
    try:
        with open(path, encoding="utf-8") as handle:
            guards = _guard_lines(handle.read())
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return False, f"the main script {path} cannot be read to check its guard"
    frame = _main_module_frame()
    if frame is None:
        # Not called from the script's top level (a thread, an atexit hook...): what matters is whether the
        # script guards anything at all; a script without a guard runs its whole body again in each worker.
        return (True, "") if guards else (False, f'{path} has no `if __name__ == "__main__":` guard')
    line = frame.f_lineno
    if any(first <= line <= last for first, last in guards):
        return True, ""
    return False, f'{path} calls facesearch outside an `if __name__ == "__main__":` guard (line {line})'


def outside_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn` that points at the first caller outside facesearch (the
    user's line), counted from the function that calls this one."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        level += 1
        frame = frame.f_back  # type: ignore[assignment]
    return level
