"""The L&D insights report (split by job in the next commit)."""

from assistant.apps.insights.impact import *  # noqa: F403
from assistant.apps.insights.impact import build_report, write_csv, write_html

__all__ = ["build_report", "write_csv", "write_html"]
