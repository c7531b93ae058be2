"""A person's API tokens: made (and shown once), listed, revoked."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from approvals.exceptions import InvalidInput, NotFound
from approvals.forms import ApiTokenForm
from approvals.models import ApiToken
from approvals.services import tokens as token_services
from approvals.views.common import HtmxHttpRequest, log_refused


@require_http_methods(["GET", "POST"])
@login_required
def tokens(request: HtmxHttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    context: dict[str, object] = {}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                token, plain = token_services.token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.expires_at,
                )
            except InvalidInput as exc:
                form.add_error(None, str(exc))
                status = 400
            else:
                context.update(new_token=token, plain=plain)
                form = ApiTokenForm()
        else:
            status = 400
    context.update(form=form, tokens=ApiToken.objects.filter(user=request.user))
    return render(request, "approvals/tokens.html", context, status=status)


@require_POST
@login_required
def token_revoke(request: HtmxHttpRequest, token_id: int) -> HttpResponse:
    try:
        token = token_services.token_revoke(token_id=token_id, by=request.user)
    except NotFound as exc:
        log_refused(request, f"token {token_id}: not theirs")
        raise Http404(str(exc)) from exc
    messages.success(request, f"The token “{token.name}” is revoked: it no longer works.")
    return redirect("tokens")
