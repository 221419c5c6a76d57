"""Airflow operators of airflow_fb_async."""
