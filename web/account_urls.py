"""/accounts/…: Django's auth views (same URL names as django.contrib.auth.urls) plus sign-up and API keys."""
from django.contrib.auth import views as auth_views
from django.urls import include, path

from web import account_views as views

studio_patterns = ([
    path("signup/", views.signup, name="signup"),
    path("keys/", views.api_keys, name="api-keys"),
    path("keys/<int:pk>/revoke", views.api_key_revoke_view, name="api-key-revoke"),
], "accounts")

urlpatterns = [
    path("login/", views.StudioLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password_reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("", include(studio_patterns)),
]
