"""xAPI 1.0.3 statements for what learners do in CoursePilot, sent to a Learning Record Store in the background.

* ``StatementFactory`` builds statements: asked, answered, completed (a path step), saved (a learning path).
* ``validate_statement`` checks a statement against pydantic models of the spec (models.py).
* ``XAPIClient`` (sender.py) persists every statement in a SQLite outbox (outbox.py) *before* sending, posts batches to
  ``{endpoint}/statements`` from a daemon thread (basic auth, ``X-Experience-API-Version: 1.0.3``), retries with
  capped exponential backoff while the LRS is down, and deletes a statement only after the LRS answered 200/204.
  A statement the LRS rejects as invalid (400/409/413 when sent alone) is kept in the queue file, marked
  ``rejected`` and not retried. A new client on the same file sends whatever an earlier process left queued.
  Statement ids are set before queueing, so a retry after a lost response cannot create a second statement in a
  conformant LRS. No-op when ``settings.xapi.endpoint`` is unset. The password never reaches logs or exceptions:
  messages carry only the endpoint without credentials, HTTP status codes and exception type names.
* ``XAPIRecorder`` is the facade the app calls; its methods never raise.
"""

from assistant.integrations.xapi.models import Statement, validate_statement
from assistant.integrations.xapi.recorder import XAPIRecorder, emit_for_answer
from assistant.integrations.xapi.sender import XAPIClient
from assistant.integrations.xapi.statements import (
    DEFAULT_ACTIVITY_BASE,
    VERB_ANSWERED,
    VERB_ASKED,
    VERB_COMPLETED,
    VERB_SAVED,
    XAPI_VERSION,
    StatementFactory,
)

__all__ = [
    "DEFAULT_ACTIVITY_BASE",
    "VERB_ANSWERED",
    "VERB_ASKED",
    "VERB_COMPLETED",
    "VERB_SAVED",
    "XAPI_VERSION",
    "Statement",
    "StatementFactory",
    "XAPIClient",
    "XAPIRecorder",
    "emit_for_answer",
    "validate_statement",
]
