"""Output folders that never destroy a user's files: what ``--out`` accepts, and the atomic replace.

Rules (also in docs/data-format.md, "Output folders: what --out accepts"). The path given is resolved
(symlinks, ``..``) and then

* refused when it *is* an input (the registry folder, the DuckDB file, the protocol file) or *contains*
  one (an ancestor of an input);
* refused when it is an existing file, or lies inside a file;
* refused when it is a non-empty folder without the marker file ``.ildstudy-output`` that ildstudy
  writes into each output folder, or when a marked folder holds entries that ildstudy did not write
  (the marker lists them), so a user's ``notes.txt`` is never deleted;
* accepted when it does not exist, is an empty folder, or is an earlier ildstudy output.

Writing happens in a sibling folder ``.NAME.partial-HOST-PID-RANDOM`` made with a plain ``mkdir`` (so
folders and files get the modes the umask gives, not ``mkdtemp``'s 0700). Only a complete output
replaces the target, by renames; a failure removes the partial folder and leaves an earlier output as
it was. Partial and old folders left behind by killed processes on this host are removed before a
new output is started. Operating-system failures (disk full, read-only, permission denied) are raised
as :class:`~ildstudy.errors.EnvironmentFailure` with the OS reason.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ildstudy.errors import EnvironmentFailure, OutputError

MARKER = ".ildstudy-output"
MARKER_FORMAT = 1
_SHOWN = 5
_created_here: set[str] = set()  # partial/old folders of this process (a reused pid is not "alive")


def _host() -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname()) or "host"


def os_reason(exc: OSError) -> str:
    """``"No space left on device"`` plus the file concerned, for messages."""
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    name = exc.filename
    return f"{reason} ({name})" if name else reason


def resolve(path: str | Path) -> Path:
    """Absolute path with symlinks and ``..`` resolved (the path need not exist)."""
    text = str(path)
    if "\x00" in text:
        raise OutputError(f"--out {text!r}: not a valid path (holds a NUL character)")
    try:
        return Path(text).expanduser().resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        raise OutputError(f"--out {text}: cannot be resolved ({exc})") from exc


def read_marker(folder: Path) -> dict | None:
    """The marker of an ildstudy output folder, or ``None`` when there is none or it is not ildstudy's."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "ildstudy" or not isinstance(data.get("entries"), list):
        return None
    return data


def marker_text(kind: str, entries: Iterable[str]) -> str:
    """The marker's JSON: who wrote the folder, what kind of output, and its top-level entries (no time,
    so that reruns stay byte-identical)."""
    return json.dumps({"written_by": "ildstudy", "marker_format": MARKER_FORMAT, "kind": kind,
                       "entries": sorted(entries)}, indent=2) + "\n"


def _listing(names: list[str]) -> str:
    shown = ", ".join(sorted(names)[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _foreign_entries(folder: Path) -> list[str] | None:
    """Entries of ``folder`` that ildstudy did not write; ``None`` when the folder is not an ildstudy output."""
    names = [p.name for p in folder.iterdir()]
    if not names:
        return []
    marker = read_marker(folder)
    if marker is None:
        return None
    known = set(marker["entries"]) | {MARKER}
    return [n for n in names if n not in known]


def check_output_dir(out: str | Path, *, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Check that ``out`` may be written (see the module rules) and return it resolved; write nothing.

    Parameters
    ----------
    out : path
        The folder asked for (``--out``).
    inputs : paths
        Files and folders the command reads (``None`` entries are skipped).

    Returns
    -------
    Path
        The resolved output path.

    Raises
    ------
    OutputError
        When ``out`` must not be used; the message says why and how to proceed.

    Examples
    --------
    >>> import tempfile
    >>> reg = Path(tempfile.mkdtemp())
    >>> check_output_dir(reg / "out", inputs=[reg]) == (reg / "out").resolve()
    True
    >>> check_output_dir(reg, inputs=[reg])
    Traceback (most recent call last):
    ...
    ildstudy.errors.OutputError: --out ...: is an input of this command; choose another output folder
    """
    target = resolve(out)
    for item in inputs:
        if item is None:
            continue
        src = resolve(item)
        if target == src:
            raise OutputError(f"--out {out}: is an input of this command; choose another output folder")
        if target in src.parents:
            raise OutputError(f"--out {out}: contains an input of this command ({item}); writing there would "
                              f"replace it. Choose another output folder")
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise OutputError(f"--out {out}: is an existing file, not a folder; nothing was written. "
                              f"Choose a folder name that does not exist yet")
        try:
            foreign = _foreign_entries(target)
        except OSError as exc:
            raise EnvironmentFailure(f"--out {out}: cannot be read: {os_reason(exc)}") from exc
        if foreign is None:
            names = [p.name for p in target.iterdir()]
            raise OutputError(f"--out {out}: is a folder that is not empty and was not written by ildstudy "
                              f"(it holds {_listing(names)}); nothing was written. Choose a new folder, or "
                              f"delete this one yourself if you no longer need it")
        if foreign:
            raise OutputError(f"--out {out}: is an earlier ildstudy output, but it also holds files ildstudy did "
                              f"not write ({_listing(foreign)}); nothing was written. Move them out, or choose "
                              f"a new folder")
        return target
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"--out {out}: {ancestor} is a file, so no folder can be made inside it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise EnvironmentFailure(f"--out {out}: cannot write into {ancestor}: {_refusal(ancestor)}")
    return target


def _refusal(folder: Path) -> str:
    """Why ``folder`` cannot be written, as the OS would say it."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    return os.strerror(errno.EROFS if read_only else errno.EACCES)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_partials(final: Path) -> list[Path]:
    """Remove ``.NAME.partial-*`` / ``.NAME.old-*`` siblings of ``final`` left by dead processes on this host.

    Folders of other hosts (a shared network drive) and of live processes are left alone.
    Returns the folders removed.
    """
    parent, removed = final.parent, []
    if not parent.is_dir():
        return removed
    host = _host()
    for kind in ("partial", "old"):
        prefix = f".{final.name}.{kind}-"
        try:
            candidates = [p for p in parent.iterdir() if p.name.startswith(prefix)]
        except OSError:
            return removed
        for p in candidates:
            parts = p.name[len(prefix):].rsplit("-", 2)
            if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            mine = pid == os.getpid()
            if str(p) in _created_here or (not mine and _pid_alive(pid)):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def _sibling(final: Path, kind: str, *, make: bool) -> Path:
    for _ in range(100):
        p = final.parent / f".{final.name}.{kind}-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        if make:
            try:
                p.mkdir()  # a plain mkdir: the umask decides the mode, as for any folder the user makes
            except FileExistsError:
                continue
        elif p.exists():
            continue
        _created_here.add(str(p))
        return p
    raise EnvironmentFailure(f"cannot create a temporary folder next to {final}")


def _commit(tmp: Path, final: Path, out: str | Path, inputs) -> None:
    """Put the complete folder ``tmp`` in place of ``final`` by renames, re-checking just before."""
    for _ in range(3):  # another run may commit between our check and our rename
        check_output_dir(final, inputs=inputs)
        if not final.exists():
            try:
                os.rename(tmp, final)
                return
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise
        if not any(final.iterdir()):
            try:
                os.rename(tmp, final)  # onto an empty folder: allowed, atomic
                return
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise
        old = _sibling(final, "old", make=False)
        try:
            os.rename(final, old)
        except FileNotFoundError:
            continue
        foreign = _foreign_entries(old)
        if foreign:  # someone wrote into the folder after the check: put it back untouched
            os.rename(old, final)
            raise OutputError(f"--out {out}: files appeared in it during the run ({_listing(foreign)}); "
                              f"it was left as it was")
        try:
            os.rename(tmp, final)
        except OSError:
            os.rename(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
        _created_here.discard(str(old))
        return
    raise OutputError(f"--out {out}: other runs keep replacing this folder; try again")


@contextmanager
def atomic_output_dir(out: str | Path, *, inputs: Iterable[str | Path | None] = (),
                      kind: str = "study") -> Iterator[Path]:
    """Yield a fresh partial folder next to ``out``; when the block succeeds, it replaces ``out``.

    ``out`` is checked first (:func:`check_output_dir`, nothing written on refusal) and again
    right before the replace. The marker file is written last, listing the folder's top-level
    entries. An exception in the block removes the partial folder and leaves ``out`` as it was;
    an :class:`OSError` (disk full, read-only file system, ...) is raised as
    :class:`~ildstudy.errors.EnvironmentFailure` with the OS reason.

    Examples
    --------
    >>> import tempfile
    >>> with atomic_output_dir(Path(tempfile.mkdtemp()) / "out") as tmp:
    ...     _ = (tmp / "report.html").write_text("done")
    """
    inputs = [i for i in inputs if i is not None]
    final = check_output_dir(out, inputs=inputs)
    what = f"the output folder {out}"
    try:
        clean_stale_partials(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling(final, "partial", make=True)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot create {what}: {os_reason(exc)}") from exc
    try:
        yield tmp
        (tmp / MARKER).write_text(marker_text(kind, [p.name for p in tmp.iterdir() if p.name != MARKER]),
                                  encoding="utf-8")
        _commit(tmp, final, out, inputs)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = " (an earlier output there was left as it was)" if final.exists() else ""
        raise EnvironmentFailure(f"cannot write {what}: {os_reason(exc)}; nothing was written{kept}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _created_here.discard(str(tmp))


__all__ = ["MARKER", "atomic_output_dir", "check_output_dir", "clean_stale_partials", "os_reason", "read_marker"]
