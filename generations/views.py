"""Web pages for signed-in users. Views call selectors and services only."""
from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from generations.selectors import generation_list_for, generation_playable_for
from storage.quotas import usage_for
from storage.serving import serve_object


@login_required
def generation_list(request: HttpRequest) -> HttpResponse:
    generations = generation_list_for(request.user)[:100]
    return render(request, "generations/list.html", {"generations": generations, "usage": usage_for(request.user)})


def _visible_video(request: HttpRequest, pk: uuid.UUID):
    generation = generation_playable_for(request.user, pk)
    if generation is None:
        raise Http404("No such video")
    return generation


@login_required
def generation_video(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    generation = _visible_video(request, pk)
    download = request.GET.get("download") == "1"
    return serve_object(request, generation.video.file, file_name=generation.video.file_name, as_attachment=download)


@login_required
def generation_poster(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    generation = _visible_video(request, pk)
    if generation.video.poster is None:
        raise Http404("No poster")
    return serve_object(request, generation.video.poster, file_name="poster.jpg", as_attachment=False)
