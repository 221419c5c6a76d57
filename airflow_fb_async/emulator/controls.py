"""Clock-free controls behind ``POST /__admin/unthrottle`` and ``POST /__admin/async_step``.

Tests must not wait for time to pass: with these they end throttle blocks, or move async request
sets forward by an exact number of requests (with ``async_pace`` 0 nothing else moves them), at
the moment they choose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import async_processing

if TYPE_CHECKING:
    from .context import Context


def _account_digits(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.removeprefix("act_").isdigit():
        raise ValueError(f"account must be an ad account id such as 'act_123' or '123', got {value!r}")
    return value.removeprefix("act_")


def unthrottle(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """End throttle blocks and forget recorded usage, as if the regain time and window had passed.

    ``{"account": "act_1"}`` limits it to one ad account; without it every account (and the app's
    usage) is cleared. Answers the accounts whose block was ended.
    """
    unknown = set(payload) - {"account"}
    if unknown:
        raise ValueError(f"unthrottle takes only 'account'; unknown key(s): {', '.join(sorted(unknown))}")
    usage = ctx.usage
    with ctx.store.lock:
        if "account" in payload:
            acc = _account_digits(payload["account"])
            ended = [acc] if usage.blocked_for(acc) > 0 else []
            usage.forget(acc)
        else:
            ended = usage.blocked_accounts()
            usage.reset()
    # A call that names no ad account is blocked under ``None`` (app-wide): ended, but no account.
    return {"unblocked": sorted(a for a in ended if a is not None)}


def async_step(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """Start up to ``requests`` requests (default 1) in every incomplete set, or in ``set_id`` only.

    Each chosen set gets exactly that many starts in one processing pass (fewer when fewer
    requests can start now), whatever ``async_pace`` is; started requests run in the same pass
    unless ``async_hold_in_progress`` holds them. No credit is left over for later ticks. Answers
    each stepped set's status counts.
    """
    unknown = set(payload) - {"requests", "set_id"}
    if unknown:
        raise ValueError(
            f"async_step takes 'requests' and 'set_id'; unknown key(s): {', '.join(sorted(unknown))}"
        )
    count = payload.get("requests", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"requests must be an integer >= 0, got {count!r}")
    set_id = payload.get("set_id")
    with ctx.store.lock:
        active = ctx.store.active_sets()
        if set_id is not None:
            if str(set_id) not in active:
                raise ValueError(f"set_id {set_id!r} is not an incomplete async request set")
            chosen = [str(set_id)]
        else:
            chosen = active
        return {"sets": {sid: async_processing.step(ctx, sid, count) for sid in chosen}}
