"""URLconf of the sync views."""

from django.urls import path

from harness.apps.frameworks.django_app import views

urlpatterns = [
    path("health", views.health),
    path("io", views.io),
    path("cpu", views.cpu),
    path("sse", views.sse),
]
