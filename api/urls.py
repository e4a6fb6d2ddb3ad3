from django.urls import path

from api import views

urlpatterns = [
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<uuid:pk>/", views.ProjectDetailView.as_view(), name="api-project"),
    path("generations/", views.GenerationListView.as_view(), name="api-generations"),
    path("generations/<uuid:pk>/", views.GenerationDetailView.as_view(), name="api-generation"),
    path("generations/<uuid:pk>/events/", views.GenerationEventsView.as_view(), name="api-generation-events"),
    path("generations/<uuid:pk>/cancel/", views.GenerationCancelView.as_view(), name="api-generation-cancel"),
    path("generations/<uuid:pk>/retry/", views.GenerationRetryView.as_view(), name="api-generation-retry"),
    path("generations/<uuid:pk>/report/", views.GenerationReportView.as_view(), name="api-generation-report"),
    path("keys/", views.ApiKeyListView.as_view(), name="api-keys"),
    path("keys/<int:pk>/", views.ApiKeyDetailView.as_view(), name="api-key"),
    path("usage/", views.UsageView.as_view(), name="api-usage"),
    path("models/", views.ModelListView.as_view(), name="api-models"),
    path("price/", views.PriceView.as_view(), name="api-price"),
]
