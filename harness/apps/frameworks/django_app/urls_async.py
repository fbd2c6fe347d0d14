"""URLconf of the async views."""

from django.urls import path

from harness.apps.frameworks.django_app import views_async

urlpatterns = [
    path("health", views_async.health),
    path("io", views_async.io),
    path("cpu", views_async.cpu),
    path("sse", views_async.sse),
]
