"""The ``facebook_graph`` connection form: one list of fields, in the two shapes Airflow reads.

- Airflow 3.2+ builds the form from provider-info metadata (``conn-fields``,
  ``ui-field-behaviour``): :func:`provider_conn_fields` and :func:`provider_ui_field_behaviour`
  feed :mod:`airflow_fb_async.get_provider_info`.
- Airflow 2.x, 3.0 and 3.1 ignore that metadata and call the hook's
  ``get_connection_form_widgets`` / ``get_ui_field_behaviour`` (WTForms fields): GraphHook binds
  :func:`get_connection_form_widgets` and :func:`get_ui_field_behaviour`. Airflow 3.2+ skips those
  methods when the metadata is there, so they raise no deprecation warning.

Every extra that :func:`airflow_fb_async.hooks.config.parse_conn_config` reads is a field here
(tests hold the two together, defaults included). Values typed in the form are stored as
``extra__facebook_graph__<name>``; the hook reads that form and the plain ``<name>``.

Standard library only: provider discovery imports this before any Airflow module is ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FieldKind = Literal["string", "password", "boolean", "integer", "number"]


@dataclass(frozen=True)
class ExtraField:
    """One connection extra as the form shows it."""

    name: str
    label: str
    description: str
    kind: FieldKind
    default: str | bool | int | float | None = None


EXTRA_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "api_version", "API version", "Graph API version used in every path, e.g. v25.0.", "string", "v25.0"
    ),
    ExtraField("app_secret", "App secret", "When set, every call carries appsecret_proof.", "password"),
    ExtraField(
        "appsecret_time",
        "Timed appsecret_proof",
        "Sign token|time and send appsecret_time (the proof is valid 5 minutes).",
        "boolean",
        False,
    ),
    ExtraField("timeout", "Timeout (seconds)", "Per-call connect/read timeout.", "number", 60.0),
    ExtraField(
        "max_retries", "Max retries", "Retries of transient errors, 5xx and throttling.", "integer", 5
    ),
    ExtraField(
        "backoff_base",
        "Backoff base (seconds)",
        "Retry waits: full jitter up to base x 2^(retry-1).",
        "number",
        1.0,
    ),
    ExtraField("backoff_max", "Backoff max (seconds)", "Longest wait between two retries.", "number", 60.0),
    ExtraField(
        "throttle_threshold",
        "Throttle threshold (%)",
        "Slow down when a usage header reaches this percentage.",
        "number",
        90.0,
    ),
    ExtraField(
        "regain_unit_seconds",
        "Regain unit (seconds)",
        "Seconds per minute of Graph's estimated_time_to_regain_access: 60 against Graph, lower only "
        "for the emulator.",
        "number",
        60.0,
    ),
    ExtraField(
        "max_throttle_wait",
        "Max throttle wait (seconds)",
        "Cap of any single throttle wait, whatever estimated_time_to_regain_access says.",
        "number",
        3600.0,
    ),
    ExtraField("page_size", "Page size", "Items per page when reading list edges.", "integer", 500),
)

HIDDEN_FIELDS = ("schema", "port", "login")
RELABELING = {"host": "Graph API base URL", "password": "Access token"}
PLACEHOLDERS = {"host": "https://graph.facebook.com", "password": "EAAB... (system user token)"}

_JSON_TYPES: dict[FieldKind, str] = {
    "string": "string",
    "password": "string",
    "boolean": "boolean",
    "integer": "integer",
    "number": "number",
}


def provider_conn_fields() -> dict[str, dict[str, Any]]:
    """``conn-fields`` of the provider info (Airflow 3.2+)."""
    fields: dict[str, dict[str, Any]] = {}
    for field in EXTRA_FIELDS:
        schema: dict[str, Any] = {"type": [_JSON_TYPES[field.kind], "null"]}
        if field.default is not None:
            schema["default"] = field.default
        if field.kind == "password":
            schema["format"] = "password"
        fields[field.name] = {"label": field.label, "description": field.description, "schema": schema}
    return fields


def provider_ui_field_behaviour() -> dict[str, Any]:
    """``ui-field-behaviour`` of the provider info (Airflow 3.2+)."""
    return {
        "hidden-fields": list(HIDDEN_FIELDS),
        "relabeling": dict(RELABELING),
        "placeholders": dict(PLACEHOLDERS),
    }


def get_ui_field_behaviour() -> dict[str, Any]:
    """The hook method of Airflow 2.x, 3.0 and 3.1: the same behaviour in their key style."""
    return {
        "hidden_fields": list(HIDDEN_FIELDS),
        "relabeling": dict(RELABELING),
        "placeholders": dict(PLACEHOLDERS),
    }


def get_connection_form_widgets() -> dict[str, Any]:
    """The hook method of Airflow 2.x, 3.0 and 3.1: one WTForms field per extra.

    Only the field classes those versions accept (string, password, integer, boolean); decimals go
    in string fields and the hook checks them when it reads the connection.
    """
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import Optional

    widgets: dict[str, Any] = {}
    for field in EXTRA_FIELDS:
        label = lazy_gettext(field.label)
        if field.kind == "password":
            widgets[field.name] = PasswordField(
                label, description=field.description, widget=BS3PasswordFieldWidget()
            )
        elif field.kind == "boolean":
            widgets[field.name] = BooleanField(label, description=field.description, default=field.default)
        else:
            cls = IntegerField if field.kind == "integer" else StringField
            default = (
                None
                if field.default is None
                else (field.default if cls is IntegerField else str(field.default))
            )
            widgets[field.name] = cls(
                label,
                validators=[Optional()],
                description=field.description,
                default=default,
                widget=BS3TextFieldWidget(),
            )
    return widgets
