"""MkDocs hooks: the docstrings use Sphinx cross-reference roles (``:func:`name```), which the
Markdown renderer shows literally before the code span; drop the role, keep the name."""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const):(?=<code)")


def on_page_content(html: str, **kwargs: object) -> str:
    return ROLE.sub("", html)
