"""Settings of the Django flavours: the least Django needs to route and answer.

``ROOT_URLCONF`` is the sync views; :mod:`.settings_async` swaps in the async ones.
"""

SECRET_KEY = "bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "harness.apps.frameworks.django_app.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
USE_I18N = False
