"""The request types of views behind sign-in, where `request.user` is a real user, not AnonymousUser.

Only annotations: at run time they are Django's and DRF's own request classes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.request import Request

if TYPE_CHECKING:
    class AuthenticatedHttpRequest(HttpRequest):
        """A Django request behind `login_required` (or a staff check)."""

        user: User

    class AuthenticatedRequest(Request):
        """A DRF request on a view whose permissions require an authenticated user."""

        @property
        def user(self) -> User: ...

        @user.setter
        def user(self, value: User) -> None: ...
else:
    AuthenticatedHttpRequest = HttpRequest
    AuthenticatedRequest = Request


def signed_in_user(request: HttpRequest) -> User:
    """`request.user` where only a signed-in user gets this far (the admin, behind staff sign-in)."""
    return cast(User, request.user)
