"""In-process guards of the chat server: sign-in backoff, and which chat messages are refused (and not stored).

Both keep their state in memory, per server process: with several workers each counts on its own, which still
bounds an attacker to (workers x limit). Neither imports Chainlit, so both are unit-testable with a fake clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_BACKOFF_S = 15 * 60.0
FORGET_AFTER_S = 30 * 60.0  # a key with no failure for this long starts from zero again
MAX_KEYS = 20_000  # user names and addresses remembered; the oldest are forgotten first


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    """Backoff after repeated failed sign-ins, per user name and per client address.

    After `max_user` failures for one name (or `max_address` from one address), the next attempt must wait
    1 s, then 2 s, 4 s ... (doubling per further failure, at most 15 min) counted from the last failure. A
    successful sign-in clears the name's count (not the address's: one valid account must not reset an
    address that is guessing others' passwords). Attempts made while paused count against the address.
    """

    def __init__(self, max_user: int, max_address: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_user = max_user
        self.max_address = max_address
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def _get(self, kind: str, key: str) -> _Failures | None:
        entry = self._seen.get((kind, key))
        if entry is not None and self.clock() - entry.last > FORGET_AFTER_S:
            del self._seen[(kind, key)]
            return None
        return entry

    def _wait(self, entry: _Failures | None, limit: int) -> float:
        if entry is None or entry.count < limit:
            return 0.0
        pause = min(MAX_BACKOFF_S, 2.0 ** (entry.count - limit))
        return max(0.0, entry.last + pause - self.clock())

    def retry_after(self, user: str, address: str) -> float:
        """Seconds to wait before this user name may try again from this address (0: go ahead)."""
        return max(
            self._wait(self._get("user", user), self.max_user),
            self._wait(self._get("address", address), self.max_address),
        )

    def failed(self, user: str, address: str) -> int:
        """Record a failure; returns the user name's failure count."""
        now = self.clock()
        counts = []
        for kind, key in (("user", user), ("address", address)):
            entry = self._get(kind, key) or _Failures()
            entry.count += 1
            entry.last = now
            self._seen[(kind, key)] = entry
            self._seen.move_to_end((kind, key))
            counts.append(entry.count)
        while len(self._seen) > MAX_KEYS:
            self._seen.popitem(last=False)
        return counts[0]

    def refused(self, address: str) -> None:
        """An attempt while paused: counts against the address (which keeps hammering), not the user name
        (a learner retrying too early must not lock their own name out for longer)."""
        entry = self._get("address", address) or _Failures()
        entry.count += 1
        entry.last = self.clock()
        self._seen[("address", address)] = entry

    def succeeded(self, user: str) -> None:
        self._seen.pop(("user", user), None)


@dataclass(frozen=True)
class Verdict:
    """Why a chat message is refused: 'too_long' or 'rate', with the numbers for the reply."""

    reason: str
    length: int = 0
    limit: int = 0


class MessageGate:
    """Decides once per message id whether a learner's message is refused; the decision is remembered.

    Chainlit stores the learner's message (data layer `create_step`) and calls `on_message` separately, in
    either order; both ask the gate, so a refused message is neither answered nor stored.
    """

    def __init__(
        self, max_chars: int, per_minute: int, clock: Callable[[], float] = time.monotonic, remember: int = 10_000
    ) -> None:
        self.max_chars = max_chars
        self.per_minute = per_minute
        self.clock = clock
        self.remember = remember
        self._verdicts: OrderedDict[str, Verdict | None] = OrderedDict()
        self._sent: dict[str, deque[float]] = {}

    def check(self, learner: str, message_id: str, text: str) -> Verdict | None:
        if message_id in self._verdicts:
            return self._verdicts[message_id]
        verdict: Verdict | None = None
        length = len(text.strip())
        if length > self.max_chars:
            verdict = Verdict("too_long", length, self.max_chars)
        else:
            now = self.clock()
            sent = self._sent.setdefault(learner, deque())
            while sent and now - sent[0] >= 60.0:
                sent.popleft()
            if len(sent) >= self.per_minute:
                verdict = Verdict("rate", limit=self.per_minute)
            else:
                sent.append(now)
        self._verdicts[message_id] = verdict
        while len(self._verdicts) > self.remember:
            self._verdicts.popitem(last=False)
        return verdict


__all__ = ["LoginThrottle", "MessageGate", "Verdict"]
