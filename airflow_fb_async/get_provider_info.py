"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

A malformed dict here breaks every Airflow command on the machine: tests validate it against the
installed Airflow's ``provider_info.schema.json``.
"""

from __future__ import annotations

from typing import Any

from airflow_fb_async import __version__
from airflow_fb_async.hooks.connection_form import provider_conn_fields, provider_ui_field_behaviour


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-fb-async",
        "name": "Facebook Graph async batches",
        "description": "Facebook Graph / Marketing API standard batches and asynchronous batch request sets.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Facebook Graph API",
                "external-doc-url": "https://developers.facebook.com/docs/graph-api/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Facebook Graph API",
                "python-modules": ["airflow_fb_async.hooks.graph"],
            }
        ],
        "operators": [
            {
                "integration-name": "Facebook Graph API",
                "python-modules": [
                    "airflow_fb_async.operators.batch",
                    "airflow_fb_async.operators.async_batch",
                    "airflow_fb_async.operators.results",
                    "airflow_fb_async.operators.insights",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Facebook Graph API",
                "python-modules": ["airflow_fb_async.sensors.async_request_set"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Facebook Graph API",
                "python-modules": [
                    "airflow_fb_async.triggers.async_request_set",
                    "airflow_fb_async.triggers.insights",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_fb_async.hooks.graph.GraphHook",
                "hook-name": "Facebook Graph API",
                "connection-type": "facebook_graph",
                "ui-field-behaviour": provider_ui_field_behaviour(),
                "conn-fields": provider_conn_fields(),
            }
        ],
    }
