"""The Wagtail admin of django-cf-ingest: listings, the review screen, dead
letters, the usage report and the dashboard panel.

Only ``wagtail_hooks`` imports this package, and Wagtail only loads that
module when it is installed, so the app itself runs without Wagtail.
"""
