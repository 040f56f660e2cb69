"""Routes and middleware CoursePilot puts on Chainlit's FastAPI app, ahead of Chainlit's own.

- Feedback: `PUT /feedback` and `DELETE /feedback` only for the learner who owns the rated message (Chainlit
  checks only that someone is signed in, so bob could thumbs-down alice's answer and skew the L&D report).
- Sharing: `PUT /project/thread/share` and `GET /project/share/<thread>` answer 403 / 404 while
  `allow_thread_sharing` is off in .chainlit/config.toml (Chainlit serves both regardless, the second without
  sign-in).
- Files: cited module PDFs (`/coursepilot/source/<course>/<module>`) for signed-in users, and an L&D user's own
  insights report (`/coursepilot/report/<file>`), served from the library and the reports folder, never from
  Chainlit's `<app root>/.files` (which any worker started from the same folder deletes when it stops).
- Middleware (security.py): body cap, security headers, sign-in backoff; CORS and socket origins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainlit.auth import get_current_user
from chainlit.config import config as cl_config
from chainlit.server import delete_feedback, get_shared_thread, share_thread, sio, update_feedback
from chainlit.types import DeleteFeedbackRequest, ShareThreadRequest, UpdateFeedbackRequest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse

from assistant.apps.ui import render
from assistant.apps.ui.guards import LoginThrottle
from assistant.apps.ui.security import LoginGuard, RequestLimits, SecurityHeaders, configure_origins, parse_origins

SOURCE_ROUTE = "/coursepilot/source"
REPORT_ROUTE = "/coursepilot/report"


def report_file(learner: str) -> str:
    """The insights report file of an L&D user (ids are letters, digits and . _ @ + -)."""
    return f"insights-{learner}.html"


def add_first(app: FastAPI, path: str, endpoint: Callable[..., Any], methods: list[str]) -> None:
    """Add a route ahead of Chainlit's (its catch-all would otherwise serve the page), once."""
    routes = app.router.routes
    if any(getattr(r, "path", None) == path and set(methods) <= set(getattr(r, "methods", ())) for r in routes):
        return
    app.add_api_route(path, endpoint, methods=methods, include_in_schema=False)
    route = routes.pop()
    first_chainlit = next(
        (
            i
            for i, r in enumerate(routes)
            if getattr(r, "path", "").endswith("{full_path:path}")
            or type(r).__name__ == "_IncludedRouter"
            or getattr(r, "endpoint", None) in _CHAINLIT_ENDPOINTS
        ),
        len(routes),
    )
    routes.insert(first_chainlit, route)


_CHAINLIT_ENDPOINTS = {update_feedback, delete_feedback, share_thread, get_shared_thread}


def install_files(
    app: FastAPI,
    root: str,
    pilot: Callable[[], Any],
    settings: Callable[[], Any],
    users: Callable[[], dict[str, Any]],
    reports: Callable[[], Path],
) -> None:
    """The PDF and report routes (the services are the app's lazily built ones)."""
    from assistant.core.types import Location

    async def serve_source(course_id: str, module: str, user: Any = Depends(get_current_user)) -> FileResponse:
        """A module PDF (or a cited video beside its captions) of the library, for signed-in learners."""
        if user is None:
            raise HTTPException(status_code=401, detail="Sign in to open course material.")
        catalogue = await asyncio.to_thread(pilot().catalogue)
        course = catalogue.get(course_id)
        if course is not None and module not in {m.path for m in course.modules}:
            media = render.cited_media(course, module, settings().library.dir)
            if media is not None:
                return FileResponse(media, headers={"Cache-Control": "private, max-age=3600"})
        if course is None or module not in {m.path for m in course.modules}:
            raise HTTPException(status_code=404, detail="No such module.")
        location = Location(course_id=course_id, course_title=course.title, module=module, module_title="")
        path = render.pdf_path(location, settings().library.dir, {course_id: course.folder or course_id})
        if path is None:
            raise HTTPException(status_code=404, detail="No such PDF.")
        return FileResponse(path, media_type="application/pdf", headers={"Cache-Control": "private, max-age=3600"})

    async def serve_report(name: str, user: Any = Depends(get_current_user)) -> FileResponse:
        """An L&D user's own insights report, as `/report` last wrote it."""
        if user is None:
            raise HTTPException(status_code=401, detail="Sign in to open the report.")
        entry = users().get(str(user.identifier))
        if entry is None or entry.role != "lnd" or name != report_file(entry.id):
            raise HTTPException(status_code=404, detail="No such report.")
        path = reports() / name
        if not path.is_file():
            raise HTTPException(status_code=404, detail="No such report: ask for /report again.")
        return FileResponse(path, media_type="text/html", filename="insights-report.html")

    add_first(app, f"{root}{SOURCE_ROUTE}/{{course_id}}/{{module:path}}", serve_source, ["GET"])
    add_first(app, f"{root}{REPORT_ROUTE}/{{name}}", serve_report, ["GET"])


def install_guards(app: FastAPI, root: str, data_layer_of: Callable[[], Any]) -> None:
    """Ownership checks on feedback, and sharing refused while it is disabled."""

    async def owner_of_step(step_id: str) -> tuple[str, str] | None:
        layer = data_layer_of()
        return await layer.step_owner(step_id) if layer is not None else None

    async def put_feedback(
        request: Request, update: UpdateFeedbackRequest, user: Any = Depends(get_current_user)
    ) -> Any:
        if user is None:
            raise HTTPException(status_code=401, detail="Unauthorized")
        owner = await owner_of_step(update.feedback.forId)
        thread = update.feedback.threadId
        if owner is None or owner[0] != user.identifier or (thread and str(thread) != owner[1]):
            raise HTTPException(status_code=404, detail="No such message in your conversations.")
        return await update_feedback(request, update, user)

    async def remove_feedback(
        request: Request, payload: DeleteFeedbackRequest, user: Any = Depends(get_current_user)
    ) -> Any:
        if user is None:
            raise HTTPException(status_code=401, detail="Unauthorized")
        layer = data_layer_of()
        owner = await layer.feedback_owner(payload.feedbackId) if layer is not None else None
        if owner != user.identifier:
            raise HTTPException(status_code=404, detail="No such feedback in your conversations.")
        return await delete_feedback(request, payload, user)

    async def put_share(request: Request, payload: ShareThreadRequest, user: Any = Depends(get_current_user)) -> Any:
        if not cl_config.features.allow_thread_sharing:
            raise HTTPException(status_code=403, detail="Sharing conversations is disabled.")
        return await share_thread(request, payload, user)

    async def get_share(request: Request, thread_id: str, user: Any = Depends(get_current_user)) -> Any:
        if not cl_config.features.allow_thread_sharing:
            raise HTTPException(status_code=404, detail="Thread not found")
        return await get_shared_thread(request, thread_id, user)

    add_first(app, f"{root}/feedback", put_feedback, ["PUT"])
    add_first(app, f"{root}/feedback", remove_feedback, ["DELETE"])
    add_first(app, f"{root}/project/thread/share", put_share, ["PUT"])
    add_first(app, f"{root}/project/share/{{thread_id}}", get_share, ["GET"])


def install_middleware(app: FastAPI, throttle: Callable[[], LoginThrottle], root: str, origins: str) -> None:
    """Outermost first: body cap, security headers, sign-in backoff; then Chainlit's CORS (restricted)."""
    have = {getattr(m.cls, "__name__", "") for m in app.user_middleware}
    if "LoginGuard" not in have:
        app.add_middleware(LoginGuard, throttle=throttle, root_path=root)
    if "SecurityHeaders" not in have:
        app.add_middleware(SecurityHeaders)
    if "RequestLimits" not in have:
        app.add_middleware(RequestLimits)
    configure_origins(app, sio, parse_origins(origins))


__all__ = [
    "REPORT_ROUTE",
    "SOURCE_ROUTE",
    "add_first",
    "install_files",
    "install_guards",
    "install_middleware",
    "report_file",
]
