"""Web pages for signed-in users. Views call selectors and services only."""
from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from generations.media_links import media_link_read
from generations.selectors import generation_linkable, generation_list_for, generation_playable_for
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


def media_link_view(request: HttpRequest, token: str) -> HttpResponse:
    """A signed media link (see generations/media_links.py): no session needed, access re-checked."""
    link = media_link_read(token)
    generation = generation_linkable(link[0]) if link else None
    if generation is None:
        raise Http404("This link is invalid, expired, or the video is no longer available")
    _, kind, download = link
    video = generation.video
    if kind == "poster":
        if video.poster is None:
            raise Http404("No poster")
        return serve_object(request, video.poster, file_name="poster.jpg", as_attachment=False)
    return serve_object(request, video.file, file_name=video.file_name, as_attachment=download)
