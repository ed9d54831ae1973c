"""XLSForm workbooks (survey, choices, settings) for the field forms, written with openpyxl.

Labels are in English, in ``label::English (en)`` columns: a translation is one more column per
language beside it (``label::Azərbaycan (az)``, ``hint::Русский (ru)``, and the same in the
choices sheet), which KoboToolbox and ODK Collect offer as a language switch.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from safeground.io.fieldforms.definitions import FieldForm, Question

LANGUAGE = "English (en)"
SURVEY_COLUMNS = (
    "type",
    "name",
    f"label::{LANGUAGE}",
    f"hint::{LANGUAGE}",
    "required",
    "relevant",
    "constraint",
    f"constraint_message::{LANGUAGE}",
    "default",
    "calculation",
)
CHOICE_COLUMNS = ("list_name", "name", f"label::{LANGUAGE}")
SETTINGS_COLUMNS = ("form_title", "form_id", "version", "default_language")
BENEFICIARY_GROUP = ("beneficiaries", "Beneficiaries by sex and age (people)")


def workbook(form: FieldForm) -> Workbook:
    """The form's XLSForm as an openpyxl workbook."""
    book = Workbook()
    survey = book.active
    assert survey is not None
    survey.title = "survey"
    survey.append(SURVEY_COLUMNS)
    _questions(survey, list(form.questions))
    for repeat in form.repeats:
        survey.append(_row(type="begin_repeat", name=repeat.name, label=repeat.label))
        _questions(survey, list(repeat.questions))
        survey.append(_row(type="end_repeat", name=repeat.name))
        survey.append(
            _row(type="calculate", name=repeat.count_name, calculation=f"count(${{{repeat.name}}})")
        )
    choices = book.create_sheet("choices")
    choices.append(CHOICE_COLUMNS)
    seen: set[str] = set()
    for q in form.all_questions():
        if q.list_name and q.list_name not in seen:
            seen.add(q.list_name)
            for value, label in q.choices:
                choices.append((q.list_name, value, label))
    settings = book.create_sheet("settings")
    settings.append(SETTINGS_COLUMNS)
    settings.append((form.title, form.form_id, form.version, LANGUAGE))
    for sheet in (survey, choices, settings):
        _widen(sheet)
    return book


def _questions(survey: Worksheet, questions: list[Question]) -> None:
    in_group = False
    for q in questions:
        if q.kind == "beneficiary" and not in_group:
            survey.append(
                _row(type="begin_group", name=BENEFICIARY_GROUP[0], label=BENEFICIARY_GROUP[1])
            )
            in_group = True
        elif q.kind != "beneficiary" and in_group:
            survey.append(_row(type="end_group", name=BENEFICIARY_GROUP[0]))
            in_group = False
        survey.append(
            _row(
                type=q.xls_type,
                name=q.name,
                label=q.label,
                hint=q.hint,
                required="yes" if q.required else None,
                relevant=q.relevant,
                constraint=q.constraint,
                constraint_message=q.constraint_message,
                default=q.default,
            )
        )
    if in_group:
        survey.append(_row(type="end_group", name=BENEFICIARY_GROUP[0]))


def _row(**values: str | None) -> tuple[str | None, ...]:
    by_column = {name.split("::")[0]: values.get(name.split("::")[0]) for name in SURVEY_COLUMNS}
    return tuple(by_column.values())


def _widen(sheet: Worksheet) -> None:
    for column in sheet.columns:
        width = max(len(str(cell.value or "")) for cell in column)
        sheet.column_dimensions[column[0].column_letter].width = min(max(10, width + 2), 60)


def xlsform_bytes(form: FieldForm) -> bytes:
    buffer = BytesIO()
    workbook(form).save(buffer)
    return buffer.getvalue()


def write_xlsform(form: FieldForm, path: Path) -> Path:
    workbook(form).save(path)
    return path
