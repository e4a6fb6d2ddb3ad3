"""Account pages: sign-in (with a clear suspended-account message and a lockout page), sign-up, API keys.

Password change and reset are Django's own views with the studio's templates (accounts/urls.py).
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.keys import TooManyApiKeys, api_key_create, api_key_revoke
from accounts.models import ApiKey
from core.requests import AuthenticatedHttpRequest
from web.account_forms import ApiKeyForm, SignupForm, StudioAuthenticationForm

NEW_KEY_SESSION = "accounts.new_api_key"


def signup_allowed() -> bool:
    return settings.STUDIO_ALLOW_SIGNUP


class StudioLoginView(LoginView):
    authentication_form = StudioAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "signup_allowed": signup_allowed()}


def sign_in_locked_out(request: HttpRequest, original_response: HttpResponse | None = None,
                       credentials: dict | None = None) -> HttpResponse:
    """django-axes' answer to a sign-in while its username and address are locked out (studio form
    and admin alike): 429 with Retry-After and a page that says how long to wait."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    response = render(request, "registration/locked_out.html",
                      {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": minutes}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if not signup_allowed():
        raise Http404("Sign-up is closed")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.get_username()}.")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, raw = api_key_create(user=request.user, name=form.cleaned_data["name"])
        except TooManyApiKeys as exc:
            form.add_error(None, str(exc))
        else:
            # Shown once, on the page after the redirect; the session copy is removed as it is shown.
            request.session[NEW_KEY_SESSION] = raw
            return redirect("accounts:api-keys")
    return render(request, "accounts/api_keys.html", {
        "form": form, "keys": ApiKey.objects.filter(user=request.user),
        "new_key": request.session.pop(NEW_KEY_SESSION, None),
    })


@login_required
@require_POST
def api_key_revoke_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk, user=request.user)
    api_key_revoke(key)
    messages.success(request, f"Key “{key.name}” revoked.")
    return redirect("accounts:api-keys")
