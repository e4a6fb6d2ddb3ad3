from django.urls import path

from generations.api import views

urlpatterns = [
    path("usage/", views.UsageView.as_view(), name="api-usage"),
]
