"""The audience preview of the mailing form: a fragment htmx asks for as the operator edits the
operator codes, tags or send window, answered by the service of POST /api/v1/mailings/preview.

Included before the mailing pages (its path would otherwise be read as a mailing's id).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from notiflow.admin import access
from notiflow.admin.access import UiPrincipal
from notiflow.admin.forms import MailingForm
from notiflow.admin.rendering import render
from notiflow.deps import ClockDep, SessionDep
from notiflow.mailings import service as mailings

router = APIRouter(dependencies=[Depends(access.require_principal), Depends(access.check_csrf)])

FormValue = Annotated[str, Query(max_length=10_000)]


@router.get("/mailings/preview")
async def audience_preview(
    request: Request,
    principal: UiPrincipal,
    session: SessionDep,
    clock: ClockDep,
    operator_codes: FormValue = "",
    tags: FormValue = "",
    window_start: FormValue = "",
    window_end: FormValue = "",
) -> HTMLResponse:
    """How many clients the form's filter and send window select now. Always a 200 fragment
    (htmx swaps only those): with the API's messages when the fields are not valid."""
    access.access_for(request, principal, access.PREVIEW)
    form = MailingForm.parse(
        {
            "operator_codes": operator_codes,
            "tags": tags,
            "window_start": window_start,
            "window_end": window_end,
        }
    )
    audience = form.audience()
    preview = None
    if audience is not None:
        preview = await mailings.preview(
            session, flt=audience.filter, window=audience.send_window, now=clock()
        )
    return render(request, "_audience_preview.html", {"preview": preview, "form": form})
