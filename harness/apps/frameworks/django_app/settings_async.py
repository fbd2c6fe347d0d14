"""Settings of the Django async-views flavour: as :mod:`.settings`, async URLconf."""

from harness.apps.frameworks.django_app.settings import *

ROOT_URLCONF = "harness.apps.frameworks.django_app.urls_async"
