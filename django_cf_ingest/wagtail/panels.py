"""The dashboard panel on the Wagtail home page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.forms import Media
from wagtail.admin.ui.components import Component

from ..reporting import summary
from .columns import status_tone
from .links import dead_letters_url, upload_url, usage_url
from .permissions import REPLAY, user_can


class IngestSummaryPanel(Component):
    """Uploads by status, recent failures, the queue backlog and this
    month's usage."""

    name = "cf_ingest_summary"
    template_name = "cf_ingest/wagtail/panels/summary.html"
    order = 90

    @property
    def media(self) -> Media:
        return Media(css={"all": ["cf_ingest/admin.css"]})

    def get_context_data(self, parent_context: Mapping[str, Any]) -> dict[str, Any]:
        request = parent_context["request"]
        figures = summary()
        index = upload_url("index")
        statuses = [
            {
                "label": item.label,
                "count": item.count,
                "tone": status_tone(item.status),
                "url": f"{index}?status={item.status}",
            }
            for item in figures.statuses
        ]
        return {
            "summary": figures,
            "statuses": statuses,
            "uploads_url": index,
            "usage_url": usage_url(),
            "dead_letters_url": dead_letters_url()
            if user_can(request.user, REPLAY)
            else "",
        }
