"""xAPI 1.0.3 statements as pydantic models: what `validate_statement` checks before a statement is queued.

The models follow the spec's Data section (Statement, Actor = Agent | Group, Verb, Object = Activity | Agent |
Group | StatementRef | SubStatement, Result, Context, timestamps): required properties, value types (strict
booleans and strings: "yes" is not true), IRIs, UUIDs, ISO 8601 timestamps with a time zone and durations,
RFC 5646 language maps, an Agent identified by exactly one inverse functional identifier, and the cross-field
rules (an anonymous Group lists its members; a SubStatement holds no SubStatement and no id/stored/version/
authority; context.revision and context.platform only with an Activity object).

The few format rules pydantic has no type for (an IRI, a language tag, a mailto IRI) are one pattern each.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

__all__ = ["Activity", "Agent", "Context", "Group", "Result", "Statement", "Verb", "validate_statement"]

IFIS = ("mbox", "mbox_sha1sum", "openid", "account")
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_IRL = re.compile(r"^https?://[^\s<>\"{}|\\^`/]+[^\s<>\"{}|\\^`]*$", re.IGNORECASE)
_MAILTO = re.compile(r"^mailto:[^@\s]+@[^@\s]+$", re.IGNORECASE)
_LANG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_TIMEDELTA = TypeAdapter(timedelta)


def _check(test: Callable[[str], bool], message: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not test(value):
            raise ValueError(message)
        return value

    return AfterValidator(validate)


def _is_uuid(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.variant == uuid.RFC_4122 and 1 <= (parsed.version or 0) <= 8 and len(value) == 36


def _is_timestamp(value: str) -> bool:
    if "T" not in value.upper():
        raise ValueError("must be an ISO 8601 date-time, e.g. 2024-05-01T09:30:00.000Z")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time, e.g. 2024-05-01T09:30:00.000Z") from None
    if parsed.tzinfo is None:
        raise ValueError("must include a time zone (Z or ±hh:mm)")
    return True


def _is_duration(value: str) -> bool:
    if not value.startswith("P"):
        return False
    try:
        _TIMEDELTA.validate_python(value)
    except ValidationError:
        return False
    return True


IRI = Annotated[StrictStr, _check(lambda v: bool(_IRI.match(v)), "must be an IRI")]
IRL = Annotated[StrictStr, _check(lambda v: bool(_IRL.match(v)), "must be an IRL (an http or https URL)")]
UUID = Annotated[StrictStr, _check(_is_uuid, "must be a UUID (RFC 4122)")]
Timestamp = Annotated[StrictStr, _check(_is_timestamp, "must be an ISO 8601 date-time")]
Duration = Annotated[StrictStr, _check(_is_duration, "must be an ISO 8601 duration such as PT1.5S")]
LanguageTag = Annotated[StrictStr, _check(lambda v: bool(_LANG.match(v)), "is not an RFC 5646 language tag")]
LanguageMap = Annotated[
    dict[LanguageTag, StrictStr], _check(bool, "must be a language map such as {'en-US': '...'}")  # type: ignore[arg-type]
]
Extensions = dict[IRI, Any]
Mailto = Annotated[StrictStr, _check(lambda v: bool(_MAILTO.match(v)), "must be a 'mailto:' IRI with an email address")]
Sha1 = Annotated[StrictStr, Field(pattern=r"^[0-9a-fA-F]{40}$")]


class _Model(BaseModel):
    """Unknown properties are tolerated below the statement (the spec's extensions live in `extensions`)."""

    model_config = ConfigDict(extra="allow")


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    homePage: IRL
    name: Annotated[StrictStr, Field(min_length=1)]


class _Identified(_Model):
    mbox: Mailto | None = None
    mbox_sha1sum: Sha1 | None = None
    openid: IRI | None = None
    account: Account | None = None
    name: StrictStr | None = None

    def identifiers(self) -> list[str]:
        return [key for key in IFIS if key in self.model_fields_set and getattr(self, key) is not None]


class Agent(_Identified):
    objectType: Literal["Agent"] = "Agent"

    @model_validator(mode="after")
    def _one_identifier(self) -> Agent:
        found = self.identifiers()
        if len(found) != 1:
            raise ValueError(f"an Agent needs exactly one of {', '.join(IFIS)} (found {len(found)})")
        if "member" in (self.model_extra or {}):
            raise ValueError("an Agent cannot have 'member'")
        return self


class Group(_Identified):
    objectType: Literal["Group"]
    member: list[Agent] | None = None

    @model_validator(mode="after")
    def _identified_or_listed(self) -> Group:
        found = self.identifiers()
        if len(found) > 1:
            raise ValueError(f"a Group has at most one of {', '.join(IFIS)}")
        if not found and not self.member:
            raise ValueError("an anonymous Group needs a non-empty member list")
        return self


def _object_type(default: str) -> Callable[[Any], str | None]:
    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            kind = value.get("objectType", default)
            return kind if isinstance(kind, str) else None
        return getattr(value, "objectType", None)

    return tag


Actor = Annotated[
    Annotated[Agent, Tag("Agent")] | Annotated[Group, Tag("Group")],
    Discriminator(_object_type("Agent"), custom_error_type="object_type", custom_error_message="Agent, Group"),
]


class Verb(_Model):
    id: IRI
    display: LanguageMap | None = None


class ActivityDefinition(_Model):
    name: LanguageMap | None = None
    description: LanguageMap | None = None
    type: IRI | None = None
    moreInfo: IRL | None = None
    extensions: Extensions | None = None


class Activity(_Model):
    objectType: Literal["Activity"] = "Activity"
    id: IRI
    definition: ActivityDefinition | None = None


class StatementRef(_Model):
    objectType: Literal["StatementRef"]
    id: Annotated[StrictStr, _check(_is_uuid, "a StatementRef needs a UUID id")]


class Score(_Model):
    scaled: Annotated[float, Field(ge=-1, le=1, strict=True)] | None = None
    raw: Annotated[float, Field(strict=True)] | None = None
    min: Annotated[float, Field(strict=True)] | None = None
    max: Annotated[float, Field(strict=True)] | None = None

    @model_validator(mode="after")
    def _in_range(self) -> Score:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        if self.raw is not None and (
            (self.min is not None and self.raw < self.min) or (self.max is not None and self.raw > self.max)
        ):
            raise ValueError("raw must lie between min and max")
        return self


class Result(_Model):
    score: Score | None = None
    success: StrictBool | None = None
    completion: StrictBool | None = None
    response: StrictStr | None = None
    duration: Duration | None = None
    extensions: Extensions | None = None


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


ActivityList = Annotated[list[Activity], BeforeValidator(_as_list)]


class ContextActivities(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parent: ActivityList | None = None
    grouping: ActivityList | None = None
    category: ActivityList | None = None
    other: ActivityList | None = None


class Context(_Model):
    registration: UUID | None = None
    instructor: Actor | None = None
    team: Group | None = None
    contextActivities: ContextActivities | None = None
    revision: StrictStr | None = None
    platform: StrictStr | None = None
    language: LanguageTag | None = None
    statement: StatementRef | None = None
    extensions: Extensions | None = None


def _check_activity_context(obj: Any, context: Context | None) -> None:
    if context is None or isinstance(obj, Activity):
        return
    for key in ("revision", "platform"):
        if getattr(context, key) is not None:
            raise ValueError(f"context.{key}: only allowed when the object is an Activity")


SubObject = Annotated[
    Annotated[Activity, Tag("Activity")]
    | Annotated[Agent, Tag("Agent")]
    | Annotated[Group, Tag("Group")]
    | Annotated[StatementRef, Tag("StatementRef")],
    Discriminator(
        _object_type("Activity"),
        custom_error_type="object_type",
        custom_error_message="Activity, Agent, Group, StatementRef (a SubStatement cannot contain a SubStatement)",
    ),
]


class SubStatement(_Model):
    objectType: Literal["SubStatement"]
    actor: Actor
    verb: Verb
    object: SubObject
    result: Result | None = None
    context: Context | None = None
    timestamp: Timestamp | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_statement_properties(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = [key for key in ("id", "stored", "version", "authority") if key in data]
            if found:
                raise ValueError(f"{', '.join(found)} not allowed in a SubStatement")
        return data


StatementObject = Annotated[
    Annotated[Activity, Tag("Activity")]
    | Annotated[Agent, Tag("Agent")]
    | Annotated[Group, Tag("Group")]
    | Annotated[StatementRef, Tag("StatementRef")]
    | Annotated[SubStatement, Tag("SubStatement")],
    Discriminator(
        _object_type("Activity"),
        custom_error_type="object_type",
        custom_error_message="Activity, Agent, Group, StatementRef, SubStatement",
    ),
]


class Statement(BaseModel):
    """One xAPI 1.0.3 statement. Properties the spec does not define are refused."""

    model_config = ConfigDict(extra="forbid")

    id: UUID | None = None
    actor: Actor
    verb: Verb
    object: StatementObject
    result: Result | None = None
    context: Context | None = None
    timestamp: Timestamp | None = None
    stored: Timestamp | None = None
    authority: Actor | None = None
    version: Annotated[StrictStr, _check(lambda v: bool(re.match(r"^1\.0(\.\d+)?$", v)), "must be 1.0.x")] | None = None
    attachments: list[Any] | None = None

    @model_validator(mode="after")
    def _activity_context(self) -> Statement:
        _check_activity_context(self.object, self.context)
        return self


_TAGS = {"Activity", "Agent", "Group", "StatementRef", "SubStatement"}


def _where(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
        elif part in _TAGS or part in ("[key]", "function-after[validate(), str]"):
            continue
        else:
            parts.append(str(part))
    return ".".join(parts)


def _problem(error: Any) -> str:
    where = _where(tuple(error["loc"]))
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return f"{where}: required"
    if kind == "extra_forbidden":
        parent, _, name = where.rpartition(".")
        return f"{parent or 'statement'}: unknown properties ['{name}']"
    if kind == "object_type":
        found = error["input"].get("objectType") if isinstance(error["input"], dict) else None
        if found is None:
            return f"{where}: must be an object ({message})"
        return f"{where}.objectType: '{found}' is not one of {message}"
    if re.match(r"^[a-zA-Z.]+: ", message) and not where:  # a cross-field rule names its own field
        return message
    return f"{where or 'statement'}: {message}"


def validate_statement(stmt: Any) -> list[str]:
    """Problems with an xAPI 1.0.3 statement (empty when valid), one line per problem naming the property:
    required actor/verb/object, UUID ids, IRIs, timestamps with a time zone, one identifier per Agent, valid
    objectType values, result and context formats."""
    if not isinstance(stmt, dict):
        return ["statement: must be a JSON object"]
    try:
        Statement.model_validate(stmt)
    except ValidationError as exc:
        return [_problem(error) for error in exc.errors(include_url=False)]
    return []
