"""The apps under test: one raw WSGI and one raw ASGI callable doing the same work.

Both import their routing and work from :mod:`harness.apps.work`, so the bytes they return
for a request cannot drift apart; only the way they *wait* differs, which is the
point of the comparison (``time.sleep`` in a WSGI worker, ``await asyncio.sleep`` on
an ASGI event loop).
"""
