"""Names from untrusted content: only plain file names, and only paths that stay inside their root."""

import os
import re

import pytest

from compactvideo.errors import CompactVideoError
from compactvideo.paths import MAX_NAME_BYTES, UnsafePathError, check_file_name, contained_path


@pytest.mark.parametrize(
    "name",
    ["train0000.tfrecord", "a", "..hidden", "x..y", "vidéo.mp4", "名前.pt", "a" * MAX_NAME_BYTES, "C"],
)
def test_plain_names_pass_unchanged(name):
    assert check_file_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty name or a folder reference"),
        (".", "empty name or a folder reference"),
        ("..", "empty name or a folder reference"),
        ("../evil", "holds a separator"),
        ("/etc/passwd", "got an absolute path"),
        ("\\\\server\\share", "got an absolute path"),
        ("sub/file", "holds a separator"),
        ("..\\evil", "holds a separator"),
        ("C:evil", "with a drive"),
        ("a\x00b", "control character U\\+0000 at position 1"),
        ("line\nbreak", "control character U\\+000A at position 4"),
        ("bell\x7f", "control character U\\+007F"),
        ("c1\x85", "control character U\\+0085"),
        ("\ud800", "valid Unicode"),
        ("a" * (MAX_NAME_BYTES + 1), "at most 255 bytes, got 256"),
        ("é" * 128, "at most 255 bytes, got 256"),  # 128 characters, 2 bytes each
        (None, "got NoneType"),
        (7, "got int"),
    ],
)
def test_unsafe_names_are_refused_with_the_rule_they_break(name, message):
    with pytest.raises(UnsafePathError, match=message) as caught:
        check_file_name(name)
    assert isinstance(caught.value, CompactVideoError)


def test_a_contained_path_is_joined_and_its_target_checked(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "root")  # the root itself may be a link: the user chose it
    assert contained_path(tmp_path / "root", "a.txt") == tmp_path / "root" / "a.txt"
    (tmp_path / "real" / "sub").mkdir()
    assert contained_path(tmp_path / "root", "sub", "b") == tmp_path / "root" / "sub" / "b"
    os.symlink("sub", tmp_path / "real" / "inner")  # a link that stays inside is fine
    assert contained_path(tmp_path / "root", "inner", "c") == tmp_path / "root" / "inner" / "c"


def test_a_link_inside_the_root_pointing_out_is_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside / "file", root / "file")  # dangling: the write would create outside/file
    os.symlink(outside, root / "folder")
    os.symlink(".", root / "self")
    expected = f"root/file: leads to {outside.resolve() / 'file'}, outside {root.resolve()}"
    with pytest.raises(UnsafePathError, match=re.escape(expected)):
        contained_path(root, "file")
    with pytest.raises(UnsafePathError, match="outside"):
        contained_path(root, "folder", "x")
    with pytest.raises(UnsafePathError, match="outside"):  # the root itself is no file to write
        contained_path(root, "self")
    assert sorted(p.name for p in outside.iterdir()) == []


def test_each_name_is_checked_before_anything_is_resolved(tmp_path):
    with pytest.raises(UnsafePathError, match="holds a separator"):
        contained_path(tmp_path, "ok", "../../x")
    with pytest.raises(UnsafePathError, match="at least one name"):
        contained_path(tmp_path)
