"""The building blocks every model of flux_api is made of: bounded names and text, timestamps that parse
whatever a writer put there, and the base model that ignores fields from a newer version."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from flux_api.timefmt import STAMP_PATTERN, format_time, parse_time

# Every string in status is bounded, so nothing admitted can bloat the object or a decision.
Name = Annotated[str, Field(max_length=253)]


def _moment(value: Any) -> datetime | None:
    # Text as the API holds it (a runner may have written it) becomes an aware UTC datetime; text that does
    # not parse, or lies out of range, reads as None and never raises (flux_api.timefmt.parse_time).
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return parse_time(value)


def _text(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


# Every timestamp: an aware datetime in the models, written in the one format of flux_api.timefmt (by every
# dump, in any mode). In the schema: RFC 3339 within the years timefmt admits, so no arithmetic overflows.
Stamp = Annotated[datetime | None, BeforeValidator(_moment), PlainSerializer(_text),
                  WithJsonSchema({"type": "string", "maxLength": 64, "pattern": STAMP_PATTERN})]
# spec.startAt: the same, but the schema checks it with a CEL rule (crd_rules.START_AT_RULE) that says why.
StartStamp = Annotated[datetime | None, BeforeValidator(_moment), PlainSerializer(_text),
                       WithJsonSchema({"type": "string", "maxLength": 64})]
Text = Annotated[str, Field(max_length=8192)]


class _Model(BaseModel):
    # Objects from the API server may carry fields from a newer version: ignore, never fail.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
