"""Background AI extraction of uploaded documents for Django and Wagtail."""

__version__ = "0.1.0"
