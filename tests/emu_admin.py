"""Plain-HTTP client of the emulator's admin API (``/__admin/``), shared by every test.

It deliberately uses ``requests`` directly and nothing from ``airflow_fb_async``: tests observe the
emulator the way an outsider would.
"""

from __future__ import annotations

from typing import Any

import requests


class EmulatorAdmin:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session = requests.Session()

    def _get(self, path: str, **params: Any) -> Any:
        resp = self._session.get(f"{self.url}/__admin/{path}", params=params or None, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self._session.post(f"{self.url}/__admin/{path}", json=body or {}, timeout=30)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def counters(self) -> dict[str, Any]:
        return self._get("counters")

    def calls(self) -> list[dict[str, Any]]:
        return self._get("calls")["calls"]

    def objects(self, type: str | None = None) -> list[dict[str, Any]]:
        return self._get("objects", **({"type": type} if type else {}))["objects"]

    def notifications(self) -> list[dict[str, Any]]:
        return self._get("notifications")["notifications"]

    def config(self, **kwargs: Any) -> dict[str, Any]:
        return self._post("config", kwargs)

    def fault(self, type: str, count: int = 1, **kwargs: Any) -> Any:
        return self._post("faults", {"type": type, "count": count, **kwargs})

    def clear_faults(self) -> Any:
        return self._post("faults", {"clear": True})

    def reset(self) -> None:
        self._post("reset")

    def unthrottle(self, account: str | None = None) -> list[str]:
        """End throttle blocks (one account's, or all) now, instead of waiting for regain time."""
        return self._post("unthrottle", {"account": account} if account else {})["unblocked"]

    def async_step(self, requests: int = 1, set_id: str | None = None) -> dict[str, dict[str, Any]]:
        """Start exactly ``requests`` requests in every incomplete set (or ``set_id``): counts per set."""
        body: dict[str, Any] = {"requests": requests}
        if set_id is not None:
            body["set_id"] = set_id
        return self._post("async_step", body)["sets"]

    def http_calls(self) -> int:
        return int(self.counters()["http_calls"])
