from django.urls import path

from generations import views

app_name = "generations"
urlpatterns = [
    path("", views.generation_list, name="list"),
    path("generations/<uuid:pk>/video", views.generation_video, name="video"),
    path("generations/<uuid:pk>/poster", views.generation_poster, name="poster"),
    path("media/<str:token>", views.media_link_view, name="media-link"),
]
