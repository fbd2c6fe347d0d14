"""Django flavours: one minimal project (settings, URLconfs, views) for three stacks.

* ``wsgi.py``: sync views (``views.py``) through ``get_wsgi_application()``;
* ``asgi.py``: async views (``views_async.py``) through ``get_asgi_application()``;
* ``asgi_sync.py``: the same sync views through ``get_asgi_application()``: Django runs
  each in a thread (asgiref's ``sync_to_async``, thread-sensitive within the request's
  own context), which is what most Django projects on an ASGI server do. A sync
  streaming response is consumed whole before it is sent (Django warns so): SSE events
  arrive together at the end of the stream.

No database, no installed apps, no middleware: what is measured is Django's URL
resolver, its request and response objects and its WSGI/ASGI handler. Django has no
WebSocket without Channels: ``websocket-echo`` is unsupported for every Django stack.
"""
