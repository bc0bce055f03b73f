"""Views of the Wagtail admin, one module per screen."""
