"""Paths built from untrusted content stay inside the folder the user chose.

A name read from a file or a server (a mirror's download plan, a cache key) is untrusted: taken as it
comes, ``out / "../../x"`` or ``out / "/etc/x"`` writes outside ``out``, and so does a plain name when
``out`` holds a symbolic link of that name pointing elsewhere. Every place that turns such content into a
path goes through :func:`contained_path`, which accepts only plain file names and then checks where the
path really leads, symbolic links followed, before anything is opened.
"""

from __future__ import annotations

import ntpath
import os
import unicodedata
from pathlib import Path

from compactvideo.errors import CompactVideoError

# The longest file name ext4, XFS, Btrfs, APFS and NTFS accept (bytes of UTF-8 on the first four).
MAX_NAME_BYTES = 255


class UnsafePathError(CompactVideoError, ValueError):
    """A name from untrusted content that is not one plain file name, or a path that leaves its root."""


def check_file_name(name: object) -> str:
    """``name`` when it is one plain file name, else :class:`UnsafePathError` saying which rule it breaks.

    A plain file name is a string that is not empty, ``.`` or ``..``; holds no path separator of any
    system (``/`` or ``\\``) and no drive (``C:``), so it can be neither absolute nor nested; holds no NUL
    or other control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F); and takes at most
    255 bytes in UTF-8.
    """
    if not isinstance(name, str):
        raise UnsafePathError(f"{name!r}: expected a file name (a string), got {type(name).__name__}")
    if name in ("", ".", ".."):
        raise UnsafePathError(f"{name!r}: expected a file name, got an empty name or a folder reference")
    if name.startswith(("/", "\\")):
        raise UnsafePathError(f"{name!r}: expected a plain file name, got an absolute path")
    if "/" in name or "\\" in name:
        raise UnsafePathError(f"{name!r}: expected a plain file name, got a path (it holds a separator)")
    if ntpath.splitdrive(name)[0]:
        raise UnsafePathError(f"{name!r}: expected a plain file name, got a name with a drive")
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise UnsafePathError(
            f"{name!r}: expected a plain file name, got control character U+{ord(control):04X} "
            f"at position {name.index(control)}"
        )
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise UnsafePathError(f"{name!r}: expected a file name in valid Unicode ({error.reason})") from error
    if size > MAX_NAME_BYTES:
        raise UnsafePathError(
            f"{name[:40]!r}...: expected a file name of at most {MAX_NAME_BYTES} bytes, got {size}"
        )
    return name


def contained_path(root: str | os.PathLike, *names: str) -> Path:
    """``root / names[0] / names[1] / ...``, resolved, after checking that it lies inside ``root``.

    Each name must pass :func:`check_file_name`. The joined path is then resolved with every symbolic
    link followed (the file itself need not exist yet) and must lie strictly below ``root`` resolved the
    same way, so a link inside ``root`` that points elsewhere is refused while ``root`` itself may be a
    link. Returns the joined path, spelled as the caller spelled ``root`` (so that a ``.part`` beside it
    is named after it, not after a link's target); raises :class:`UnsafePathError` naming the path,
    where it leads and the root.
    """
    if not names:
        raise UnsafePathError(f"{root}: expected at least one name to put inside it")
    for name in names:
        check_file_name(name)
    base = Path(root).resolve()
    joined = Path(root).joinpath(*names)
    target = joined.resolve()
    if not target.is_relative_to(base) or target == base:
        raise UnsafePathError(
            f"{joined}: leads to {target}, outside {base} (a symbolic link inside it points elsewhere)"
        )
    return joined
