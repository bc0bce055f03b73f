"""Who may do what in the Wagtail admin.

Three permissions of the upload model guard everything: ``view_upload`` to see
uploads at all, ``review_upload`` to correct, approve and reject, and
``replay_upload`` to re-run and replay. Each is checked on its own: a user
with ``review_upload`` but without ``view_upload`` sees nothing.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from wagtail.permission_policies.base import BasePermissionPolicy
from wagtail.permissions import policy_registry

from ..models import Upload

VIEW = "view"
REVIEW = "review"
REPLAY = "replay"
ADD = "add"


def upload_policy() -> BasePermissionPolicy:
    policy: BasePermissionPolicy = policy_registry.get_by_type(Upload)
    return policy


def user_can(user: Any, *actions: str) -> bool:
    """Whether the user has every one of the upload permissions named."""
    policy = upload_policy()
    return all(policy.user_has_permission(user, action) for action in actions)


def forbidden(request: HttpRequest, message: str = "") -> HttpResponse:
    """A 403 page in the admin's look.

    Wagtail turns ``PermissionDenied`` into a redirect to the dashboard; a
    direct URL to one of these screens answers 403 instead, so scripts and
    people both see a refusal.
    """
    return TemplateResponse(
        request,
        "cf_ingest/wagtail/forbidden.html",
        {
            "message": message
            or "You do not have permission to see or change these uploads.",
            "header_title": "Permission denied",
        },
        status=403,
    )


class UploadPermissionMixin:
    """Answer 403 unless the user has every permission in ``required_actions``
    (and, for POST, every one in ``post_actions`` too)."""

    required_actions: tuple[str, ...] = (VIEW,)
    post_actions: tuple[str, ...] = ()

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        needed = self.required_actions
        if request.method == "POST":
            needed = needed + self.post_actions
        if not user_can(request.user, *needed):
            return forbidden(request)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
