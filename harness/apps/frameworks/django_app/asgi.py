"""Django async views through ``get_asgi_application()``: ``...django_app.asgi:application``."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "harness.apps.frameworks.django_app.settings_async"

from django.core.asgi import get_asgi_application

application = get_asgi_application()
