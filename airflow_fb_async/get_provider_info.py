"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

A malformed dict here breaks every Airflow command on the machine: tests validate it against the
installed Airflow's ``provider_info.schema.json``.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-fb-async",
        "name": "Facebook Graph async batches",
        "description": "Facebook Graph / Marketing API standard batches and asynchronous batch request sets.",
        "versions": ["0.1.0"],
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
                "python-modules": ["airflow_fb_async.triggers.async_request_set"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_fb_async.hooks.graph.GraphHook",
                "hook-name": "Facebook Graph API",
                "connection-type": "facebook_graph",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "Graph API base URL", "password": "Access token"},
                    "placeholders": {
                        "host": "https://graph.facebook.com",
                        "password": "EAAB... (system user token)",
                    },
                },
                "conn-fields": {
                    "api_version": {
                        "label": "API version",
                        "description": "Graph API version used in every path, e.g. v25.0.",
                        "schema": {"type": ["string", "null"], "default": "v25.0"},
                    },
                    "app_secret": {
                        "label": "App secret",
                        "description": "When set, every call carries appsecret_proof.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Per-call connect/read timeout.",
                        "schema": {"type": ["number", "null"], "default": 60},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries of transient errors, 5xx and throttling.",
                        "schema": {"type": ["integer", "null"], "default": 5},
                    },
                    "throttle_threshold": {
                        "label": "Throttle threshold (%)",
                        "description": "Slow down when a usage header reaches this percentage.",
                        "schema": {"type": ["number", "null"], "default": 90},
                    },
                },
            }
        ],
    }
