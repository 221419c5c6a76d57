"""Airflow sensors of airflow_fb_async."""
