"""Django sync views through ``get_asgi_application()``: each view runs in a thread
(asgiref's ``sync_to_async``); ``...django_app.asgi_sync:application``."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "harness.apps.frameworks.django_app.settings"

from django.core.asgi import get_asgi_application

application = get_asgi_application()
