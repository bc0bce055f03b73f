"""The document itself, for viewers with the permission to see uploads:
the original file, its pages as images, and a thumbnail."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from ...preview import (
    THUMBNAIL_WIDTH,
    PreviewUnavailable,
    original_response,
    png_response,
    render_page,
)
from ..permissions import VIEW, forbidden, user_can
from .review import get_upload


@require_GET
@xframe_options_sameorigin
def original(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The file as uploaded: a short-lived signed URL where the storage signs,
    else streamed from the storage by this view."""
    if not user_can(request.user, VIEW):
        return forbidden(request)
    return original_response(get_upload(pk))


@require_GET
def page(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    if not user_can(request.user, VIEW):
        return forbidden(request)
    upload = get_upload(pk)
    try:
        return png_response(render_page(upload, number))
    except PreviewUnavailable as exc:
        raise Http404(str(exc)) from exc


@require_GET
def thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    if not user_can(request.user, VIEW):
        return forbidden(request)
    upload = get_upload(pk)
    try:
        return png_response(render_page(upload, 1, width=THUMBNAIL_WIDTH))
    except PreviewUnavailable as exc:
        raise Http404(str(exc)) from exc
