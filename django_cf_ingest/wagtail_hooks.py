"""Wagtail admin registrations. Wagtail imports this module when it is
installed; nothing else does, so the app works without Wagtail."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from wagtail import hooks

from .wagtail.bulk_actions import BULK_ACTIONS
from .wagtail.panels import IngestSummaryPanel
from .wagtail.permissions import VIEW, user_can
from .wagtail.viewsets import IngestViewSetGroup


@hooks.register("register_admin_viewset")
def register_viewsets() -> IngestViewSetGroup:
    return IngestViewSetGroup()


for bulk_action in BULK_ACTIONS:
    hooks.register("register_bulk_action", bulk_action)


@hooks.register("construct_homepage_panels")
def add_summary_panel(request: HttpRequest, panels: list[Any]) -> None:
    if user_can(request.user, VIEW):
        panels.append(IngestSummaryPanel())
