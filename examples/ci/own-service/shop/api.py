"""The service's HTTP API: one Starlette app, served in production by any ASGI server.

``GET /items/{item_id}`` answers an item as JSON after a short wait that stands in for
the database query a real handler makes (10 ms by default, ``SHOP_DB_LATENCY_MS``).
"""

import asyncio
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

DB_LATENCY_S = float(os.environ.get("SHOP_DB_LATENCY_MS", "10")) / 1000
ITEMS = {i: {"id": i, "name": f"item {i}", "price_cents": 100 + i} for i in range(1, 1001)}


async def item(request):
    await asyncio.sleep(DB_LATENCY_S)  # the database round trip
    found = ITEMS.get(request.path_params["item_id"])
    if found is None:
        return JSONResponse({"error": "no such item"}, status_code=404)
    return JSONResponse(found)


app = Starlette(routes=[Route("/items/{item_id:int}", item)])
