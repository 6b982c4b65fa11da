"""Sending a status request and applying the retry policy: the only I/O layer.

``sync`` (requests, for poke mode and ``test_connection``) and ``aio`` (aiohttp, for triggers)
share :mod:`~airflow_provider_taskstatus.transport.policy`; no retry rule lives anywhere else.
"""
