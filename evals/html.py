"""What the HTML reports share: one Jinja2 environment over the packages' template folders (one base layout,
one stylesheet, autoescaping on), matplotlib set up for inline SVG charts, and chart-label escaping.

The eval report (evals/report.py) and the L&D insights report (assistant/apps/insights) both use it; apps may
import evals, so it lives here.
"""

from __future__ import annotations

import io
import re
from functools import cache
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader

__all__ = ["BLUE", "GREY", "INK", "MUTED", "RED", "environment", "pyplot", "svg", "text_label"]

BLUE, GREY, RED, INK, MUTED = "#2563eb", "#b8c0cc", "#dc2626", "#1f2937", "#6b7280"


@cache
def environment(*packages: str) -> Environment:
    """Templates from `<package>/templates` for each of `packages`, then evals/templates (base.html, style.css).

    Autoescaping is on: every value is HTML-escaped unless a template marks it `|safe` (only our own SVG charts).
    """
    loaders = [PackageLoader(package, "templates") for package in (*packages, "evals")]
    return Environment(loader=ChoiceLoader(loaders), autoescape=True)


def svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG markup (no XML prolog, doctype or metadata)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns:(?:dc|cc|rdf)="[^"]*"', "", text)
    return text.strip()


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, styled for the reports (text stays text in the SVG)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text: small, selectable, styled by the page's font
            "font.family": "sans-serif",
            "font.size": 10,
            "axes.edgecolor": "#d1d5db",
            "axes.labelcolor": INK,
            "xtick.color": INK,
            "ytick.color": INK,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def text_label(text: str) -> str:
    """`text` as matplotlib shows it literally: a `$` would start mathtext (and an unbalanced one fails the whole
    chart), so it is escaped. Use it for every label that comes from data (goals, questions, course titles)."""
    return text.replace("$", r"\$")
