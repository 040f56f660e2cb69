"""Learning paths and progress in the chat UI: the checklist, its buttons, and the learner's saved paths.

Pure, like render.py: `app.py` turns ActionSpec into cl.Action buttons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.apps.ui.render import suggestion_line
from assistant.apps.ui.safe_markdown import escape_md, neutralise
from assistant.core.types import Playlist

if TYPE_CHECKING:  # heavy imports (index, models) stay out of this module
    from assistant.apps.chat import ProgressView

STEP_DONE_ACTION = "cp_step_done"
SAVE_PATH_ACTION = "cp_save_path"


@dataclass(frozen=True)
class ActionSpec:
    """A button under a message."""

    name: str
    label: str
    payload: dict[str, Any] = field(default_factory=dict)
    tooltip: str = ""
    icon: str | None = None


# -- learning paths ---------------------------------------------------------------------------------------
def playlist_counts(playlist: Playlist) -> tuple[int, int]:
    done = sum(1 for item in playlist.items if item.status == "done")
    return done, len(playlist.items)


def progress_line(playlist: Playlist) -> str:
    done, total = playlist_counts(playlist)
    return f"{done} of {total} done"


def render_playlist(playlist: Playlist, saved: bool = False) -> str:
    """An ordered checklist with minutes, reason and source per step, and an 'x of y done' line."""
    if not playlist.covered or not playlist.items:
        text = neutralise(playlist.message or "I couldn't build a learning path for this from the library.")
        if playlist.suggestions:
            text += "\n\n**Closest material in the library:**\n" + "\n".join(
                suggestion_line(s) for s in playlist.suggestions[:3]
            )
        return text
    goal = escape_md(playlist.goal.strip().rstrip("?.!"))
    done, total = playlist_counts(playlist)
    budget = f" (budget {playlist.budget_minutes} min)" if playlist.budget_minutes else ""
    lines = [f"**Learning path:** {goal}", ""]
    lines.append(f"**{done} of {total} done** · {total} steps · {playlist.total_minutes} min{budget}")
    if playlist.intro:
        lines += ["", neutralise(playlist.intro.strip())]
    lines.append("")
    for number, item in enumerate(playlist.items, start=1):
        box = "[x]" if item.status == "done" else "[ ]"
        title = f"~~{escape_md(item.title)}~~" if item.status == "done" else f"**{escape_md(item.title)}**"
        rows = [f"{number}. {box} {title} · {item.minutes} min"]
        why = item.why.strip()
        if item.is_prerequisite and "prerequisite" not in why.lower():
            why = f"Prerequisite. {why}".strip()
        if why:
            rows.append(f"   {escape_md(why)}")
        if item.evidence is not None:
            rows.append(f"   Source: {escape_md(item.evidence.label)}")
        lines.append("  \n".join(rows))  # two spaces: a line break inside the list item
    if playlist.left_out:
        minutes = sum(i.minutes for i in playlist.left_out)
        names = ", ".join(escape_md(i.title) for i in playlist.left_out)
        lines += ["", f"_Left out to fit your time ({minutes} min):_ {names}"]
    if playlist.skipped_done:
        lines += ["", f"_Skipped {len(playlist.skipped_done)} item(s) you have already completed._"]
    lines += [
        "",
        "Saved to your paths ✓ — ask “show my progress” any time."
        if saved
        else "Mark steps done as you go, and save the path to find it again later.",
    ]
    return "\n".join(lines)


def playlist_actions(playlist: Playlist, saved: bool = False) -> list[ActionSpec]:
    """'Mark step N done' for each step still to do, and 'Save this path' until it is saved."""
    if not playlist.covered or not playlist.items:
        return []
    actions = [
        ActionSpec(
            name=STEP_DONE_ACTION,
            label=f"Mark step {number} done",
            payload={"step": number, "item_id": item.item_id},
            tooltip=f"{item.title} ({item.minutes} min)",
            icon="circle-check",
        )
        for number, item in enumerate(playlist.items, start=1)
        if item.status != "done"
    ]
    if not saved:
        actions.append(
            ActionSpec(
                name=SAVE_PATH_ACTION,
                label="Save this path",
                payload={},
                tooltip="Keep this path with your progress",
                icon="bookmark",
            )
        )
    return actions


def mark_done(playlist: Playlist, item_id: str) -> bool:
    """Mark every step with this id done; False if the path has no such step."""
    found = False
    for item in playlist.items:
        if item.item_id == item_id:
            item.status = "done"
            found = True
    return found


def apply_progress(playlist: Playlist, completed: set[str]) -> Playlist:
    """Statuses from the learner's current progress."""
    for item in playlist.items:
        item.status = "done" if item.item_id in completed else "todo"
    return playlist


# -- progress ---------------------------------------------------------------------------------------------
def render_progress(view: ProgressView) -> str:
    """ProgressView: completed count and each saved path with 'x of y done'."""
    lines = ["**Your progress**", ""]
    count = len(view.completed)
    lines.append(
        f"You have completed {count} item{'s' if count != 1 else ''}."
        if count
        else "You haven't completed any items yet."
    )
    if not view.playlists:
        lines += [
            "",
            "You haven't saved a learning path yet. Ask for one, e.g. “Build me a 3-hour path to become a "
            "better coach”, then press **Save this path**.",
        ]
        return "\n".join(lines)
    lines += ["", "**Saved learning paths**", ""]
    for number, saved in enumerate(view.playlists, start=1):
        path = saved.playlist
        goal = escape_md(saved.goal.strip().rstrip("?.!"))
        next_item = next((i for i in path.items if i.status != "done"), None)
        nxt = f" · next: {escape_md(next_item.title)}" if next_item else " · complete"
        lines.append(f"{number}. **{goal}** — {progress_line(path)}{nxt} · saved {saved.created_at:%d %b %Y}")
    return "\n".join(lines)
