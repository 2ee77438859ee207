"""Imported by the forkserver as it starts (one of its preloads): imports the caller's main
module there, once, so that every worker the server forks starts with it, and with what it
imports (numpy, torch), instead of running it again for itself.

That is what ``set_forkserver_preload(["__main__"])`` promises, but before Python 3.13.8 the
server is never told the main module's path (CPython gh-126631, gh-137996), so each worker ran
the whole main module again as it started: 60 ms more per worker for a main module that
imports numpy. The caller therefore passes the path in :data:`VARIABLE` while the server
starts (``_process``). Where the server already imported it, this does nothing.
"""

from __future__ import annotations

import os
import sys

from ._pipes import flush_standard_streams

__all__ = ["VARIABLE"]

VARIABLE = "PIPELINE_EXECUTOR_FORKSERVER_MAIN"
"""The environment variable the caller puts its main module's path in, for the server."""


def _import_main() -> None:
    path = os.environ.pop(VARIABLE, None)  # not for the server's children
    if not path or getattr(sys.modules.get("__main__"), "__file__", None) == path:
        return
    from multiprocessing import process, spawn

    current = process.current_process()
    # As multiprocessing's own preload does: a main module that starts processes from its
    # top level is refused here, as in any child, rather than started from the server.
    setattr(current, "_inheriting", True)  # noqa: B010 - multiprocessing's private flag
    try:
        spawn.import_main_path(path)
    except BaseException:
        pass  # each worker then runs it itself, and fails where the caller hears of it
    finally:
        delattr(current, "_inheriting")
        # What the main module printed must not be printed again by every worker forked
        # from here (their buffers are copies of ours).
        flush_standard_streams()


_import_main()
