"""Framework flavours of the apps: the same work as the raw callables, through each
framework's own idioms (its router, request object, response classes, streaming and
WebSocket APIs).

One module (Django: one package) per framework. Every handler gets its plan from
:func:`harness.apps.work.route` with the path its framework routed to and the query
string its framework's request object holds, waits the way its interface waits
(``time.sleep`` in WSGI and sync views, ``await asyncio.sleep`` in async ones), and
answers with the framework's response class carrying the plan's status, content type
and bytes, so each flavour returns exactly the raw reference's bytes
(:mod:`harness.verify` checks that before any load). What a flavour adds over the raw
app is what the framework itself does per request: routing, request and response
objects, its interface adapter, its streaming and WebSocket machinery. No flavour adds
middleware of its own (Django: ``MIDDLEWARE = []``).

CPU work runs where the raw app runs it: on the event loop in ``async def`` handlers,
in the worker (or Django's sync thread) in sync ones.

The registry of flavours (names, interfaces, import strings, the workloads each can
serve) is :mod:`harness.stacks`; the harness never imports these modules itself, only
the server processes do.
"""
