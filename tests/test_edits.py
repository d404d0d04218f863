"""Every kind of edit, and every way an anchor can fail."""

from __future__ import annotations

import pytest

from kseries.errors import KseriesError
from kseries.render.edits import AnchorError, Edit, apply

C = """\
static int a(void)
{
	x = 1;
	return 0;
}

static int b(void)
{
	x = 1;
	return 0;
}
"""


def test_insert_after_and_before_whole_lines() -> None:
    out = apply("one\ntwo\nthree\n", Edit("f", "insert_after", "TWO\n", anchor="^two$"))
    assert out == "one\ntwo\nTWO\nthree\n"
    out = apply("one\ntwo\nthree\n", Edit("f", "insert_before", "ZERO", anchor="^one$"))
    assert out == "ZERO\none\ntwo\nthree\n"


def test_insert_after_multiline_anchor_goes_after_its_last_line() -> None:
    out = apply("a\nb\nc\n", Edit("f", "insert_after", "X\n", anchor=r"^a\nb$"))
    assert out == "a\nb\nX\nc\n"


def test_replace_only_the_match() -> None:
    out = apply("u8 r[720];\n", Edit("f", "replace", "u8 r[16];", anchor=r"u8 r\[720\];"))
    assert out == "u8 r[16];\n"


def test_scope_picks_one_function() -> None:
    e = Edit("f.c", "insert_after", "\ty = 2;\n", anchor=r"^\s*x = 1;$",
             within=r"^static int b\(")
    out = apply(C, e)
    assert out.count("y = 2;") == 1
    assert out.index("y = 2;") > out.index("static int b(")


def test_scope_until_regex() -> None:
    doc = "1 A\n---\ntext\n\n2 B\n---\ntext\n"
    e = Edit("d", "insert_after", "more\n", anchor="^text$", within="^1 A$", until=r"^\S.*\n---$")
    assert apply(doc, e) == "1 A\n---\ntext\nmore\n\n2 B\n---\ntext\n"


def test_create_new_file_and_refuse_existing() -> None:
    assert apply(None, Edit("n.c", "create", "int x;\n")) == "int x;\n"
    with pytest.raises(AnchorError, match="already exists"):
        apply("old", Edit("n.c", "create", "int x;\n"))


def test_missing_anchor_names_file_anchor_and_fact() -> None:
    e = Edit("arch/x86/kvm/svm/svm.c", "insert_after", "x\n", anchor="^nothere$",
             fact="the RSM intercept")
    with pytest.raises(AnchorError) as info:
        apply(C, e)
    msg = str(info.value)
    assert "arch/x86/kvm/svm/svm.c" in msg and "'^nothere$'" in msg
    assert "was not found" in msg and "the RSM intercept" in msg


def test_ambiguous_anchor_is_an_error() -> None:
    with pytest.raises(AnchorError, match="matches 2 times"):
        apply(C, Edit("f.c", "insert_after", "y\n", anchor=r"^\s*x = 1;$"))


def test_missing_scope_is_an_error() -> None:
    e = Edit("f.c", "insert_after", "y\n", anchor="x", within=r"^static int c\(")
    with pytest.raises(AnchorError, match="scope is not in this file"):
        apply(C, e)


def test_edit_on_missing_file_is_an_error() -> None:
    with pytest.raises(AnchorError, match="does not exist"):
        apply(None, Edit("gone.c", "insert_after", "y\n", anchor="x"))


def test_bad_op_and_bad_regex() -> None:
    with pytest.raises(KseriesError, match="unknown edit op"):
        Edit("f", "append", "x", anchor="y")
    with pytest.raises(AnchorError, match="not a valid regular expression"):
        apply("abc", Edit("f", "replace", "x", anchor="(unclosed"))
