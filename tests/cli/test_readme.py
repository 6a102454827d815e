"""The README's tour runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_tour_runs():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["answers"].shape == (8,)
    assert scope["layout"].depth() == 3
