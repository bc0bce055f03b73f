"""Forms of the admin actions: upload, reject, re-run and discard."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from ..conf import get_settings
from ..models import DocumentType
from ..reporting import provider_names


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of files from one input."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple):
            if not data and self.required:
                raise forms.ValidationError(self.error_messages["required"], "required")
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadDocumentsForm(forms.Form):
    document_type = forms.ModelChoiceField(
        queryset=DocumentType.objects.filter(is_active=True).order_by("name"),
        label="Document type",
        empty_label=None,
        help_text="The schema the fields are read into.",
    )
    documents = MultipleFileField(
        label="Documents",
        help_text="Images or PDFs; choose one or many.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["documents"].widget.attrs["accept"] = ",".join(
            get_settings().ALLOWED_CONTENT_TYPES
        )


class RejectForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="Why the result is rejected; kept with the upload.",
    )


def _chain_label() -> str:
    return "Default chain (" + " → ".join(get_settings().PROVIDER_CHAIN) + ")"


class RerunForm(forms.Form):
    provider = forms.ChoiceField(
        label="Provider",
        required=False,
        help_text="Corrections already made are kept.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", _chain_label())]
        choices += [(name, name) for name in provider_names()]
        field = self.fields["provider"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def chain(self) -> list[str] | None:
        provider = self.cleaned_data.get("provider")
        return [provider] if provider else None


class DiscardForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="Why these uploads are not replayed; kept with each upload.",
    )

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        if not reason:
            raise forms.ValidationError("A reason is required.", "required")
        return reason
