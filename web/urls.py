from django.urls import path

from web import live, views

app_name = "generations"
urlpatterns = [
    path("", views.generation_list, name="list"),
    path("new/", views.generation_new, name="new"),
    path("new/image-preview", views.image_preview, name="image-preview"),
    path("usage/", views.usage_view, name="usage"),
    path("projects/", views.project_list, name="projects"),
    path("projects/<uuid:pk>/", views.project_detail, name="project"),
    path("projects/<uuid:pk>/delete", views.project_delete_view, name="project-delete"),
    path("generations/<uuid:pk>/", views.generation_detail, name="detail"),
    path("generations/<uuid:pk>/status", views.generation_status, name="status"),
    path("generations/<uuid:pk>/events", live.generation_events, name="events"),
    path("generations/events", live.card_events, name="card-events"),
    path("generations/<uuid:pk>/cancel", views.generation_cancel_view, name="cancel"),
    path("generations/<uuid:pk>/rerun", views.generation_rerun_view, name="rerun"),
    path("generations/<uuid:pk>/delete", views.generation_delete_view, name="delete"),
    path("generations/<uuid:pk>/report", views.generation_report_view, name="report"),
    path("generations/<uuid:pk>/video", views.generation_video, name="video"),
    path("generations/<uuid:pk>/poster", views.generation_poster, name="poster"),
    path("generations/<uuid:pk>/start-image", views.generation_input_image, {"stem": "start"}, name="start-image"),
    path("generations/<uuid:pk>/end-image", views.generation_input_image, {"stem": "end"}, name="end-image"),
    path("media/<str:token>", views.media_link_view, name="media-link"),
]
