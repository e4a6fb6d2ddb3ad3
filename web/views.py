"""Web pages for signed-in users: studio gallery, projects, new generation, live job view, usage.

Views are thin: parse a form, call one selector or service, render or redirect. Every lookup is
scoped to the signed-in user, so other users' ids answer 404.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.requests import AuthenticatedHttpRequest
from fal_protocol import catalog
from generations import ltx
from generations.images import ImageRejected, ImageTooLarge, image_preview_jpeg, stored_image_thumbnail
from generations.media_inputs import MEDIA_INPUTS
from generations.media_links import media_link_read
from generations.models import Generation, Project
from generations.payloads import web_status_payload
from generations.selectors import (
    generation_get_for,
    generation_linkable,
    generation_list_for,
    generation_playable_for,
    generation_viewable_for,
)
from generations.services.cancel import NotCancelable, generation_cancel
from generations.services.create import (
    IdempotencyConflict,
    NotRetryable,
    StorageUnavailable,
    generation_create,
    generation_rerun,
)
from generations.services.delete import StillActive, generation_delete
from generations.services.projects import (
    ProjectBusy,
    ProjectNameRefused,
    project_create,
    project_default_for,
    project_delete,
    project_rename,
)
from moderation.services import ReportRefused, report_create
from storage.models import StoredVideo
from storage.quotas import QuotaExceeded, usage_for
from storage.serving import serve_object
from web.forms import (
    ASPECT_LABELS,
    GenerationForm,
    ProjectForm,
    initial_from,
    new_idempotency_key,
    parse_uuid,
    price_table,
)

PAGE_SIZE = 24


def _page(request: AuthenticatedHttpRequest, queryset: QuerySet) -> Page:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _own_generation(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> Generation:
    generation = generation_get_for(request.user, pk)
    if generation is None:
        raise Http404("No such generation")
    return generation


def _own_project(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> Project:
    return get_object_or_404(Project, pk=pk, owner=request.user)


# --- studio and gallery -------------------------------------------------------------------------

@login_required
def generation_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "generations/list.html", {"page": _page(request, generation_list_for(request.user)),
                                                     "usage": usage_for(request.user)})


@login_required
def usage_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "generations/usage.html", {"usage": usage_for(request.user)})


# --- projects -----------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    project_default_for(request.user)
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(request.user, form.cleaned_data["name"])
        except ProjectNameRefused as exc:
            form.add_error("name", f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("generations:project", pk=project.pk)
    projects = Project.objects.filter(owner=request.user)
    return render(request, "generations/project_list.html", {"projects": projects, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def project_detail(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    project = _own_project(request, pk)
    form = ProjectForm(request.POST or None, initial={"name": project.name})
    if request.method == "POST" and form.is_valid():
        try:
            project_rename(project, form.cleaned_data["name"])
        except ProjectNameRefused as exc:
            form.add_error("name", f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        else:
            messages.success(request, "Project renamed.")
            return redirect("generations:project", pk=project.pk)
    generations = generation_list_for(request.user).filter(project=project)
    return render(request, "generations/project_detail.html",
                  {"project": project, "form": form, "page": _page(request, generations)})


@login_required
@require_http_methods(["GET", "POST"])
def project_delete_view(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    project = _own_project(request, pk)
    if request.method == "POST":
        try:
            project_delete(project)
        except ProjectBusy as exc:
            messages.error(request, f"Not deleted: {exc}.")
            return redirect("generations:project", pk=project.pk)
        messages.success(request, f"Project “{project.name}” and its videos were deleted.")
        return redirect("generations:projects")
    return render(request, "generations/project_confirm_delete.html",
                  {"project": project, "count": project.generations.count()})


# --- new generation -----------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def generation_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = GenerationForm(request.POST, request.FILES, user=request.user)
        if form.is_valid():
            try:
                generation, _ = generation_create(owner=request.user, **form.create_kwargs())
            except ltx.InputError as exc:
                form.add_input_errors(exc.errors)
            except (QuotaExceeded, StorageUnavailable) as exc:
                form.add_error(None, str(exc))
            except IdempotencyConflict:
                form.add_error(None, "This form was already submitted with other settings. "
                                     "Check them and submit again.")
                form.renew_idempotency_key()
            else:
                return redirect("generations:detail", pk=generation.pk)
    else:
        form = GenerationForm(user=request.user, initial=_new_form_initial(request))
    usage = usage_for(request.user)
    budget_left = max(usage.limits.monthly_spend_usd - usage.spend_usd, 0)
    return render(request, "generations/new.html", {
        "form": form, "usage": usage, "price": form.price_usd(), "budget_left": budget_left,
        "price_table": {**price_table(form.endpoints), "budget_left": str(budget_left)},
    })


def _new_form_initial(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    source = generation_get_for(request.user, request.GET["from"]) if request.GET.get("from") else None
    if source is not None:
        return initial_from(source)
    project_id = parse_uuid(request.GET.get("project"))
    project = Project.objects.filter(owner=request.user, pk=project_id).first() if project_id else None
    return {"project": project} if project and project.name != Project.DEFAULT_NAME else {}


# --- one generation -----------------------------------------------------------------------------

@login_required
@require_GET
def generation_detail(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    generation = _own_generation(request, pk)
    endpoint = catalog.endpoint_for(generation.model_id, version=ltx.version())
    aspect = generation.input.get("aspect_ratio")
    return render(request, "generations/detail.html", {
        "g": generation, "status": web_status_payload(generation), "rerun_key": new_idempotency_key(),
        "endpoint": endpoint, "aspect": ASPECT_LABELS.get(aspect, aspect),
    })


@login_required
@require_GET
def generation_status(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> JsonResponse:
    return JsonResponse(web_status_payload(_own_generation(request, pk)))


@login_required
@require_POST
def generation_cancel_view(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    generation = _own_generation(request, pk)
    try:
        generation_cancel(generation)
        messages.success(request, "Canceled.")
    except NotCancelable as exc:
        messages.info(request, f"Nothing to cancel: {exc}.")
    return redirect("generations:detail", pk=generation.pk)


@login_required
@require_POST
def generation_rerun_view(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """Run the same model, input and project again as a new job (idempotent per rendered button)."""
    generation = _own_generation(request, pk)
    try:
        new, _ = generation_rerun(generation, idempotency_key=request.POST.get("idempotency_key") or None)
    except NotRetryable as exc:
        messages.error(request, f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        return redirect("generations:detail", pk=generation.pk)
    except (ltx.InputError, QuotaExceeded, IdempotencyConflict, StorageUnavailable) as exc:
        messages.error(request, f"Not re-run: {exc}")
        return redirect("generations:detail", pk=generation.pk)
    return redirect("generations:detail", pk=new.pk)


@login_required
@require_http_methods(["GET", "POST"])
def generation_delete_view(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    generation = _own_generation(request, pk)
    if request.method == "POST":
        try:
            generation_delete(generation)
        except StillActive as exc:
            messages.error(request, f"Not deleted: {exc}.")
            return redirect("generations:detail", pk=generation.pk)
        messages.success(request, "Video deleted.")
        return redirect(reverse("generations:project", args=[generation.project_id]))
    return render(request, "generations/confirm_delete.html", {"g": generation})


@login_required
@require_POST
def generation_report_view(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """Report a generation the user can view to the studio's moderators (once per user)."""
    generation = generation_viewable_for(request.user, pk)
    if generation is None:
        raise Http404("No such generation")
    try:
        _, created = report_create(generation=generation, reporter=request.user, reason=request.POST.get("reason", ""))
    except ReportRefused as exc:
        messages.error(request, f"Not reported: {exc}.")
    else:
        messages.success(request, "Thank you: the moderators will review this video." if created
                         else "You already reported this video; the moderators have it.")
    return redirect("generations:detail", pk=generation.pk)


# --- media --------------------------------------------------------------------------------------

def _visible_video(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> StoredVideo:
    """The stored video of generation `pk` if the caller may play it; 404 otherwise."""
    generation = generation_playable_for(request.user, pk)
    if generation is None:
        raise Http404("No such video")
    assert generation.video is not None  # playable: it has its video
    return generation.video


@login_required
def generation_video(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponseBase:
    video = _visible_video(request, pk)
    download = request.GET.get("download") == "1"
    return serve_object(request, video.file, file_name=video.file_name, as_attachment=download)


@login_required
def generation_poster(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponseBase:
    video = _visible_video(request, pk)
    if video.poster is None:
        raise Http404("No poster")
    return serve_object(request, video.poster, file_name="poster.jpg", as_attachment=False)


@login_required
def generation_input_image(request: AuthenticatedHttpRequest, pk: uuid.UUID, stem: str) -> HttpResponse:
    """A JPEG thumbnail of an image-to-video job's start or end image (`stem`: a media input's,
    "start" or "end"; server-made, so HEIF/AVIF show in any browser).

    Owner (unless a moderator hid the job) or staff only; others, and jobs without that image, get 404."""
    medium = next((medium for medium in MEDIA_INPUTS if medium.stem == stem), None)
    if medium is None:
        raise Http404("No such image")
    generations = Generation.objects.select_related(medium.attribute).filter(
        pk=pk, **{f"{medium.attribute}__isnull": False})
    if not request.user.is_staff:
        generations = generations.filter(owner=request.user, is_hidden=False)
    generation = generations.first()
    stored = getattr(generation, medium.attribute) if generation is not None else None
    if stored is None:
        raise Http404(f"No {stem} image")
    try:
        jpeg = stored_image_thumbnail(stored.key)
    except (OSError, ValueError):
        raise Http404(f"The {stem} image is not readable") from None
    response = HttpResponse(jpeg, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def media_link_view(request: HttpRequest, token: str) -> HttpResponseBase:
    """A signed media link (see generations/media_links.py): no session needed, access re-checked."""
    link = media_link_read(token)
    generation = generation_linkable(link[0]) if link else None
    if link is None or generation is None:
        raise Http404("This link is invalid, expired, or the video is no longer available")
    _, kind, download = link
    video = generation.video
    assert video is not None  # a linkable generation has its video
    if kind == "poster":
        if video.poster is None:
            raise Http404("No poster")
        return serve_object(request, video.poster, file_name="poster.jpg", as_attachment=False)
    return serve_object(request, video.file, file_name=video.file_name, as_attachment=download)


@login_required
@require_POST
def image_preview(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A server-made JPEG preview of a chosen start or end image (browsers cannot show HEIF)."""
    upload = request.FILES.get("image")
    if upload is None:
        return HttpResponse("Choose an image.", status=400, content_type="text/plain")
    try:
        jpeg = image_preview_jpeg(upload, max_bytes=settings.STUDIO_MAX_IMAGE_BYTES)
    except ImageTooLarge as exc:
        return HttpResponse(str(exc), status=413, content_type="text/plain")
    except ImageRejected as exc:
        return HttpResponse(str(exc), status=415, content_type="text/plain")
    return HttpResponse(jpeg, content_type="image/jpeg")
