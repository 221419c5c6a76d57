"""Hooks: the one place that knows how to talk to the Graph API."""
