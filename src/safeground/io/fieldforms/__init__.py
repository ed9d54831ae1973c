"""Field data collection with KoboToolbox and ODK Collect.

``definitions``: the field forms, derived from the record models. ``xlsform``: the XLSForm
workbooks to load into KoboToolbox or ODK Central. ``submissions``: their submission exports
turned into draft reports, validated like any other report.
"""

from safeground.io.fieldforms.definitions import FORMS, FieldForm, form_for, get_form

__all__ = ["FORMS", "FieldForm", "form_for", "get_form"]
