"""The test settings without Wagtail: the app and its Django admin alone."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [
    app
    for app in INSTALLED_APPS
    if not app.startswith(("wagtail", "modelcluster", "taggit"))
]
ROOT_URLCONF = "tests.urls_without_wagtail"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
LOGIN_URL = "admin:login"
