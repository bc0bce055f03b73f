"""The viewsets of the "Ingest" menu: uploads, dead letters and usage."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, path
from django.utils.functional import cached_property
from wagtail.admin.admin_url_finder import ModelAdminURLFinder
from wagtail.admin.menu import MenuItem
from wagtail.admin.viewsets.base import ViewSet, ViewSetGroup
from wagtail.admin.viewsets.model import ModelViewSet

from ..models import Upload
from .links import DEAD_LETTERS, UPLOADS, USAGE
from .permissions import REPLAY, VIEW, user_can
from .views import dead_letters, documents, review, uploads, usage


def menu_item_for(*actions: str) -> type[MenuItem]:
    """A menu item shown only to users with every one of these permissions."""

    def is_shown(self: MenuItem, request: HttpRequest) -> bool:
        return user_can(request.user, *actions)

    return type("IngestMenuItem", (MenuItem,), {"is_shown": is_shown})


class UploadViewSet(ModelViewSet):
    model = Upload
    name = UPLOADS
    url_prefix = "ingest/uploads"
    icon = "doc-full-inverse"
    menu_label = "Uploads"
    menu_name = "cf-ingest-uploads"
    index_view_class = uploads.UploadIndexView
    add_view_class = uploads.UploadCreateView
    copy_view_enabled = False
    add_to_reference_index = False

    @cached_property
    def menu_item_class(self) -> type[MenuItem]:
        return menu_item_for(VIEW)

    def get_common_view_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        view_kwargs: dict[str, Any] = super().get_common_view_kwargs(**kwargs)
        # Uploads are reviewed, not edited, deleted or copied here.
        for name in ("edit_url_name", "delete_url_name", "history_url_name"):
            view_kwargs[name] = None
        view_kwargs["usage_url_name"] = None
        return view_kwargs

    def get_add_view_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    @property
    def url_finder_class(self) -> type[ModelAdminURLFinder]:
        return type(
            "UploadAdminURLFinder",
            (ModelAdminURLFinder,),
            {"edit_url_name": self.get_url_name("review")},
        )

    def get_permissions_to_register(self) -> QuerySet[Permission]:
        # All four model permissions and the two of review: each is granted on
        # its own in the group editor.
        content_type = ContentType.objects.get_for_model(Upload)
        return Permission.objects.filter(content_type=content_type)

    def get_urlpatterns(self) -> list[URLPattern]:
        return [
            path("", self.index_view, name="index"),
            path("results/", self.index_results_view, name="index_results"),
            path("new/", self.add_view, name="add"),
            path("<int:pk>/", review.ReviewView.as_view(), name="review"),
            path("<int:pk>/reject/", review.RejectView.as_view(), name="reject"),
            path("<int:pk>/rerun/", review.RerunView.as_view(), name="rerun"),
            path("<int:pk>/file/", documents.original, name="file"),
            path("<int:pk>/pages/<int:number>.png", documents.page, name="page"),
            path("<int:pk>/thumbnail.png", documents.thumbnail, name="thumbnail"),
        ]


class DeadLetterViewSet(ViewSet):
    name = DEAD_LETTERS
    url_prefix = "ingest/dead-letters"
    icon = "warning"
    menu_label = "Dead letters"
    menu_name = "cf-ingest-dead-letters"

    @cached_property
    def menu_item_class(self) -> type[MenuItem]:
        return menu_item_for(VIEW, REPLAY)

    def get_urlpatterns(self) -> list[URLPattern]:
        index = dead_letters.DeadLetterIndexView
        common = {
            "index_url_name": f"{DEAD_LETTERS}:index",
            "index_results_url_name": f"{DEAD_LETTERS}:index_results",
        }
        return [
            path("", index.as_view(**common), name="index"),
            path(
                "results/",
                index.as_view(**common, results_only=True),
                name="index_results",
            ),
            path("replay/", dead_letters.ReplayView.as_view(), name="replay"),
            path("discard/", dead_letters.DiscardView.as_view(), name="discard"),
        ]


class UsageViewSet(ViewSet):
    name = USAGE
    url_prefix = "ingest/usage"
    icon = "table"
    menu_label = "Usage"
    menu_name = "cf-ingest-usage"

    @cached_property
    def menu_item_class(self) -> type[MenuItem]:
        return menu_item_for(VIEW)

    def get_urlpatterns(self) -> list[URLPattern]:
        report = usage.UsageReportView
        return [
            path("", report.as_view(), name="index"),
            path("results/", report.as_view(results_only=True), name="index_results"),
        ]


class IngestViewSetGroup(ViewSetGroup):
    """The "Ingest" section of the admin menu."""

    menu_label = "Ingest"
    menu_icon = "doc-full-inverse"
    menu_name = "cf-ingest"
    menu_order = 250
    items = (UploadViewSet, DeadLetterViewSet, UsageViewSet)
