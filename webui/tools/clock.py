"""The date-and-time tool: now, in the server's zone or an IANA zone the model names (zoneinfo)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from webui.prompts.toolcalls import ToolSpec
from webui.tools.types import Tool, ToolFailed

SPEC = ToolSpec(
    "current_time",
    "The current date, time and weekday, in the server's time zone or in an IANA time zone like "
    "Europe/Paris or America/New_York.",
    {"type": "object", "properties": {"timezone": {"type": "string", "description": "IANA name, e.g. Asia/Tokyo"}}},
)


def describe_time(timezone: str | None, now: Callable[[ZoneInfo | None], datetime] = datetime.now) -> str:
    """E.g. "Monday 2026-12-07 12:30:05 (Europe/Paris, UTC+01:00)"; ToolFailed for an unknown zone."""
    zone: ZoneInfo | None = None
    if timezone and timezone.strip():
        name = timezone.strip()
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolFailed(f"{name!r} is not a time zone; use an IANA name like Europe/Paris or UTC.") from None
    moment = now(zone) if zone is not None else now(None).astimezone()
    offset = moment.strftime("%z")
    label = zone.key if zone is not None else (moment.tzname() or "local time")
    return f"{moment:%A %Y-%m-%d %H:%M:%S} ({label}, UTC{offset[:3]}:{offset[3:]})"


def run_clock(arguments: Mapping[str, Any], _abandoned: threading.Event) -> str:
    timezone = arguments.get("timezone")
    if timezone is not None and not isinstance(timezone, str):
        raise ToolFailed("timezone must be a text like Europe/Paris.")
    return describe_time(timezone)


CLOCK = Tool(SPEC, run_clock, trusted=True)
