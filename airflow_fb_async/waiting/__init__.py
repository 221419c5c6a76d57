"""Waiting on Graph's asynchronous work: the one home for it.

Every waiter (the trigger, the sensor, the submit operator's ``wait_for_completion``) uses these
modules, so they read, decide, report and fail the same way:

- :mod:`~airflow_fb_async.waiting.poller`: the shared poller (one per event loop, connection and
  kind; every trigger on a triggerer's loop polls in shared multi-id rounds).
"""
