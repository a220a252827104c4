"""Forms of the client area: they parse what the browser sent, nothing more.

Every rule (what a valid name, password, quota or destination is) lives in the services; the
forms only turn the posted strings into the types the services take, and carry the errors
the services raise back beside their fields.
"""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _


class ListField(forms.Field):
    """Repeated inputs of one name (the tags of aliases or destinations); blanks dropped."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        return [v.strip() for v in (value or []) if v and v.strip()]


class MailboxSettingsForm(forms.Form):
    """What the create and edit pages share (the password is set through its own dialog)."""

    aliases = ListField(label=_("Aliases for this address"), required=False)
    destinations = ListField(label=_("Destination addresses"), required=False)
    delete_after_forwarding = forms.BooleanField(label=_("Delete after forwarding"), required=False)
    keep_original_sender = forms.BooleanField(
        label=_("Keep original sender and recipients"), required=False
    )
    quota_mb = forms.CharField(label=_("Disk space limit (MB)"), initial=0, required=False)
    eas_enabled = forms.BooleanField(label=_("ActiveSync (EAS)"), required=False)
    mapi_enabled = forms.BooleanField(label=_("MAPI/Exchange"), required=False)

    def clean_quota_mb(self):
        # A whole number goes to the service as an int; anything else as typed, so the
        # service's one quota rule says what is wrong (beside the other fields' errors).
        value = self.cleaned_data["quota_mb"].strip()
        return int(value) if re.fullmatch(r"-?[0-9]{1,12}", value) else value

    def settings(self) -> dict:
        """The cleaned settings, named as mail.services' mailbox_create/mailbox_update take
        them (the fields are named after those arguments)."""
        return {name: self.cleaned_data[name] for name in MailboxSettingsForm.base_fields}


class MailboxCreateForm(MailboxSettingsForm):
    username = forms.CharField(label=_("Username"), required=False, strip=False)
    password = forms.CharField(label=_("Password"), required=False, strip=False)
    password_confirmation = forms.CharField(
        label=_("Confirm the password"), required=False, strip=False
    )

    field_order = ["username", "password", "password_confirmation"]


class PasswordForm(forms.Form):
    password = forms.CharField(label=_("New password"), required=False, strip=False)
    password_confirmation = forms.CharField(
        label=_("Confirm the password"), required=False, strip=False
    )


class ForwardForm(forms.Form):
    name = forms.CharField(label=_("Address name"), required=False, strip=False)
    destinations = ListField(label=_("Destination addresses"), required=False)


class CodeForm(forms.Form):
    """A TOTP code, as the app shows it."""

    token = forms.CharField(label=_("6-digit code"), required=False, max_length=20)


class AccountPasswordForm(forms.Form):
    old_password = forms.CharField(label=_("Current password"), required=False, strip=False)
    new_password = forms.CharField(label=_("New password"), required=False, strip=False)
    new_password_confirmation = forms.CharField(
        label=_("Confirm the new password"), required=False, strip=False
    )
