from __future__ import annotations

import pytest

from engine.mapping.text import fold_name, html_to_text


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        (
            "<div>Answers to paragraph questions support basic HTML!</div>",
            "Answers to paragraph questions support basic HTML!",
        ),
        ("first line<br>second line", "first line\nsecond line"),
        ("first<br/>second<br />third", "first\nsecond\nthird"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("<div>one</div><div><br></div><div>three</div>", "one\n\nthree"),
        ("<div>a<br></div><div>b</div>", "a\nb"),
        ("<div>Tom &amp; Jerry &lt;3 &gt; 2</div>", "Tom & Jerry <3 > 2"),
        ("caf&eacute; &#233; &#x41;", "café é A"),
        ("text then<div>block</div>after", "text then\nblock\nafter"),
        ("<div><div>nested</div><div>twice</div></div><div>out</div>", "nested\ntwice\nout"),
        ("a &nbsp;b&nbsp;", "a  b"),
        ("<DIV>Upper</DIV><BR>", "Upper"),
        ('<div class="x">attr</div>', "attr"),
        ("<b>bold</b> and <span>span</span>", "bold and span"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("<br><br><div>  padded  </div><br>", "padded"),
        ("", ""),
        ("<div></div>", ""),
    ],
)
def test_html_to_text(fragment: str, expected: str) -> None:
    assert html_to_text(fragment) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("  Dr  José ÁLVAREZ ", "dr jose alvarez"),
        ("Zoë\tBrontë\n", "zoe bronte"),
        ("STRAßE", "strasse"),
        ("ﬁona", "fiona"),  # NFKD splits the ligature
        ("Ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
        ("Nguyễn Thị Ánh", "nguyen thi anh"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_fold_name(name: str, expected: str) -> None:
    assert fold_name(name) == expected


def test_fold_name_equal_for_variants_of_one_name() -> None:
    assert fold_name("  Dr  José ÁLVAREZ ") == fold_name("dr jose alvarez") == "dr jose alvarez"
    assert fold_name("Jose\u0301") == fold_name("José")  # decomposed and composed forms


def test_fold_name_long_unicode() -> None:
    name = "Ŧëşţ " * 60
    folded = fold_name(name)
    assert folded == " ".join(["test"] * 60)
    assert len(name) > 200
