"""Sign-in, sign-up and API key forms."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

SUSPENDED_MESSAGE = "This account is suspended. Contact the studio's administrators if you think this is a mistake."


class StudioAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, but a suspended user with the right password is told so.

    ModelBackend refuses inactive users, so Django would only say "wrong password". The
    suspension is revealed only to someone who knows the password, so usernames don't leak.
    """

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except forms.ValidationError:
            username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
            # A locked-out sign-in must not learn whether the password was right (django-axes).
            if username and password and not getattr(self.request, "axes_locked_out", False):
                model = get_user_model()
                candidate = model._default_manager.filter(**{model.USERNAME_FIELD: username}).first()
                if candidate is not None and not candidate.is_active and candidate.check_password(password):
                    raise forms.ValidationError(SUSPENDED_MESSAGE, code="inactive") from None
            raise


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional; needed to reset a forgotten password.")

    class Meta(UserCreationForm.Meta):  # type: ignore[name-defined]  # django-stubs omits this Meta
        fields = ("username", "email")


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses this key, e.g. “render script on my laptop”.")
