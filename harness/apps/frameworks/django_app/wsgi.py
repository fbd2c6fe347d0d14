"""Django sync views through ``get_wsgi_application()``: ``...django_app.wsgi:application``."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "harness.apps.frameworks.django_app.settings"

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
