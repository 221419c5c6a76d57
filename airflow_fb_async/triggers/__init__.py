"""Airflow triggers of airflow_fb_async."""
