"""The integration API without a workflow in the way: tokens and their scopes, who sees what,
idempotent creation, cursor pages, problem details, the rate limit and the use log."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import ApiToken, ApiTokenUse, ApprovalRequest, RequestType
from approvals.services import tokens
from tests.api.conftest import ALL, BASE, Api, api_for, problem
from tests.conftest import as_user, make_request


def test_the_schema_is_openapi_3_1_with_every_operation_and_problem_details_for_errors(
    transactional_db: None,
) -> None:
    schema = Api(None).get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert operations == {
        ("POST", f"{BASE}/requests"),
        ("GET", f"{BASE}/requests"),
        ("GET", f"{BASE}/requests/{{public_id}}"),
        ("GET", f"{BASE}/requests/{{public_id}}/timeline"),
        ("GET", f"{BASE}/requests/{{public_id}}/snapshots"),
        ("POST", f"{BASE}/requests/{{public_id}}/actions"),
        ("GET", f"{BASE}/requests/{{public_id}}/wait"),
        ("POST", f"{BASE}/agent-actions"),
        ("POST", f"{BASE}/agent-actions/verify"),
        ("GET", f"{BASE}/inbox"),
        ("GET", f"{BASE}/routing-preview"),
        ("GET", f"{BASE}/request-types"),
    }
    for ops in schema["paths"].values():
        for operation in ops.values():
            assert operation["security"] == [{"TokenAuth": []}]
            for status, answer in operation["responses"].items():
                media = set(answer.get("content", {}))
                assert media == ({"application/problem+json"} if int(status) >= 400 else {"application/json"})
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"


def test_the_docs_page_serves_swagger_from_our_own_static_files(transactional_db: None) -> None:
    page = Api(None).get("/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "/static/ninja/" in html
    assert "https://" not in html and "<script>" not in html  # no CDN, no inline script


def test_a_token_is_shown_once_and_kept_only_as_its_sha256(people: dict[str, User]) -> None:
    browser = as_user(people["requester"])
    made = browser.post(
        "/settings/tokens/", {"name": "CI bot", "scopes": ["read", "create"], "expires": "30"}
    )
    assert made.status_code == 200
    plain = made.context["plain"]
    assert plain.startswith("apv_") and len(plain) == 47 and plain in made.content.decode()
    token = ApiToken.objects.get()
    assert token.digest == hashlib.sha256(plain.encode()).hexdigest()
    assert token.scopes == ["create", "read"] and token.prefix == plain[:12]
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert not any(plain in str(getattr(token, f.attname)) for f in ApiToken._meta.concrete_fields)

    again = browser.get("/settings/tokens/").content.decode()
    assert plain not in again and token.prefix in again and "CI bot" in again
    assert Api(plain).get("/request-types").status_code == 200

    # What cannot be made is said, and nothing is made.
    refused = browser.post("/settings/tokens/", {"name": "", "scopes": [], "expires": "30"})
    assert refused.status_code == 400
    assert "Choose at least one thing the token may do." in refused.content.decode()
    assert ApiToken.objects.count() == 1


def test_a_revoked_or_expired_token_no_longer_works_and_only_its_owner_or_staff_revoke_it(
    people: dict[str, User],
) -> None:
    token, plain = tokens.token_create(user=people["requester"], name="bot", scopes=["read"])
    assert as_user(people["outsider"]).post(f"/settings/tokens/{token.pk}/revoke/").status_code == 404
    assert Api(plain).get("/request-types").status_code == 200
    revoked = as_user(people["requester"]).post(f"/settings/tokens/{token.pk}/revoke/", follow=True)
    assert "is revoked: it no longer works" in revoked.content.decode()
    refused = Api(plain).get("/request-types")
    problem(refused, 401, "unauthenticated")
    assert refused["WWW-Authenticate"].startswith("Bearer")

    other, other_plain = tokens.token_create(user=people["requester"], name="bot 2", scopes=["read"])
    tokens.token_revoke(token_id=other.pk, by=people["admin"])
    problem(Api(other_plain).get("/request-types"), 401, "unauthenticated")

    expiring, expiring_plain = tokens.token_create(
        user=people["requester"],
        name="short",
        scopes=["read"],
        expires_at=timezone.now() + timedelta(hours=1),
    )
    ApiToken.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    problem(Api(expiring_plain).get("/request-types"), 401, "unauthenticated")

    for bad in (None, "apv_not-a-token", "Basic " + "x" * 10, "apv_" + "x" * 300):
        problem(Api(bad).get("/request-types"), 401, "unauthenticated")
    people["requester"].is_active = False
    people["requester"].save()
    _, inactive = tokens.token_create(user=people["requester"], name="bot 3", scopes=["read"])
    problem(Api(inactive).get("/request-types"), 401, "unauthenticated")


def test_staff_make_and_revoke_tokens_in_the_admin(people: dict[str, User]) -> None:
    people["admin"].is_superuser = True  # the admin's own permissions
    people["admin"].save()
    admin = as_user(people["admin"])
    answer = admin.post(
        "/admin/approvals/apitoken/add/",
        {
            "user": people["reviewer1"].pk,
            "name": "ERP",
            "scopes": ["decide"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )
    assert answer.status_code == 200
    token = ApiToken.objects.get(user=people["reviewer1"])
    shown = [str(m) for m in answer.context["messages"]]
    plain = next(word for m in shown for word in m.split() if word.startswith("apv_"))
    assert tokens.token_authenticate(plain=plain) == token and token.scopes == ["decide"]

    admin.post(
        "/admin/approvals/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    token.refresh_from_db()
    assert token.revoked_at is not None and tokens.token_authenticate(plain=plain) is None
    assert as_user(people["reviewer1"]).get("/admin/approvals/apitoken/").status_code == 302


@pytest.fixture
def travel(people: dict[str, User]) -> RequestType:
    from approvals.models import Stage

    travel = RequestType.objects.create(name="Travel", slug="travel", undo_seconds=0)
    stage = Stage.objects.create(request_type=travel, name="Team", deadline=timedelta(days=2))
    stage.approver_users.set([people["reviewer1"]])
    return travel


def test_each_scope_opens_only_its_operations_and_each_person_sees_only_their_own(
    people: dict[str, User], travel: RequestType, temporal_unreachable: str
) -> None:
    request = make_request(people, travel, started=True)  # waiting for reviewer1
    rid = request.public_id
    ops: dict[str, tuple[str, str, Any]] = {
        "list": ("get", "/requests", None),
        "get": ("get", f"/requests/{rid}", None),
        "timeline": ("get", f"/requests/{rid}/timeline", None),
        "snapshots": ("get", f"/requests/{rid}/snapshots", None),
        "inbox": ("get", "/inbox", None),
        "preview": ("get", "/routing-preview?type=travel", None),
        "types": ("get", "/request-types", None),
        "create": ("post", "/requests", {"type": "nope", "title": "x"}),  # refused as invalid, not made
        "comment": ("post", f"/requests/{rid}/actions", {"kind": "comment", "comment": ""}),
    }
    need = {name: "read" for name in ops} | {"create": "create", "comment": "decide"}
    ok = {"create": 422, "comment": 422}  # past the token: refused for what they sent

    for scope in ALL:
        api = api_for(people["requester"], [scope])
        for name, (method, path, body) in ops.items():
            response = api.get(path) if method == "get" else api.post(path, body)
            if need[name] == scope:
                assert response.status_code == ok.get(name, 200), (scope, name, response.content)
            else:
                body_ = problem(response, 403, "scope")
                assert f"This token may not {need[name]}" in body_["detail"]

    # Visibility is the browser's: a request someone may not see is not found, exactly as one that
    # does not exist; the reviewer it waits for sees it and has it in their inbox.
    outsider = api_for(people["outsider"])
    for name in ("get", "timeline", "snapshots"):
        not_theirs = problem(outsider.get(ops[name][1]), 404, "not_found")
        missing = problem(outsider.get(ops[name][1].replace(str(rid), str(uuid.uuid4()))), 404, "not_found")
        assert not_theirs["detail"] == missing["detail"]
    problem(outsider.post(ops["comment"][1], {"kind": "comment", "comment": "hi"}), 404, "not_found")
    assert outsider.get("/inbox").json() == {"results": [], "next": None}
    assert outsider.get("/requests").json() == {"results": [], "next": None}

    reviewer = api_for(people["reviewer1"])
    seen = reviewer.get(f"/requests/{rid}").json()
    assert seen["you_may"] == {"decide": True, "comment": True, "withdraw": False, "resubmit": False}
    assert [w["username"] for w in seen["waiting_for"]] == ["reviewer1"]
    inbox = reviewer.get("/inbox").json()["results"]
    assert [i["request"]["id"] for i in inbox] == [str(rid)] and inbox[0]["waiting"]
    mine = api_for(people["requester"]).get(f"/requests/{rid}").json()
    assert mine["you_may"]["decide"] is False and mine["you_may"]["withdraw"] is True
    assert mine["status"] == "in_review" and mine["stage"] == {"name": "Team", "number": 1, "count": 1}


def test_every_call_with_a_token_is_logged_with_its_id_refusals_included(
    people: dict[str, User], travel: RequestType
) -> None:
    token, plain = tokens.token_create(user=people["requester"], name="bot", scopes=["read"])
    api = Api(plain)
    api.get("/request-types")
    api.post("/requests", {"type": "travel", "title": "Trip"})
    uses = list(ApiTokenUse.objects.filter(token=token).order_by("at", "pk"))
    assert [(u.method, u.path, u.status) for u in uses] == [
        ("GET", f"{BASE}/request-types", 200),
        ("POST", f"{BASE}/requests", 403),
    ]
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert ApprovalRequest.objects.count() == 0


def test_a_token_past_its_rate_limit_is_told_when_to_come_back(
    people: dict[str, User], travel: RequestType, settings: Any
) -> None:
    settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_SECONDS = 3, 60
    api, other = api_for(people["requester"]), api_for(people["requester"])
    assert [api.get("/request-types").status_code for _ in range(3)] == [200, 200, 200]
    refused = api.get("/request-types")
    problem(refused, 429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert other.get("/request-types").status_code == 200  # per token


def test_create_with_an_idempotency_key_makes_one_request_however_often_it_is_sent(
    people: dict[str, User], travel: RequestType, temporal_unreachable: str
) -> None:
    api = api_for(people["requester"])
    body = {"type": "travel", "title": "Conference in Lyon", "details": "Two nights", "amount": "840.00"}
    key = {"Idempotency-Key": "erp-4711"}
    first = api.post("/requests", body, headers=key)
    assert first.status_code == 201, first.content
    made = first.json()
    assert first["Location"] == f"{BASE}/requests/{made['id']}"
    assert made["title"] == "Conference in Lyon" and made["amount"] == "840.00"
    assert made["workflow_started"] is False  # Temporal is away: it waits in the outbox, and says so

    again = api.post("/requests", body, headers=key)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == made["id"]
    assert ApprovalRequest.objects.count() == 1

    reused = api.post("/requests", {**body, "title": "Another trip"}, headers=key)
    problem(reused, 422, "idempotency_key_reused")
    # Keys are per person: another's same key is another request.
    theirs = api_for(people["reviewer2"]).post("/requests", body, headers=key)
    assert theirs.status_code == 201 and theirs.json()["id"] != made["id"]
    # No key: each call is a request of its own.
    assert api.post("/requests", body).json()["id"] != made["id"]
    assert ApprovalRequest.objects.count() == 3
    problem(api.post("/requests", body, headers={"Idempotency-Key": "é" * 3}), 422, "invalid")


def test_what_is_wrong_with_a_request_is_said_field_by_field_with_the_browsers_words(
    people: dict[str, User], travel: RequestType
) -> None:
    api = api_for(people["requester"])
    unknown = problem(api.post("/requests", {"type": "yacht", "title": "Boat"}), 422, "invalid")
    assert unknown["errors"] == [
        {"field": "type", "message": "There is no request type “yacht” open to requests."}
    ]
    long_title = problem(api.post("/requests", {"type": "travel", "title": "x" * 201}), 422, "invalid")
    assert long_title["errors"][0]["field"] == "title" and "200" in long_title["errors"][0]["message"]
    missing = problem(api.post("/requests", {"title": "No type"}), 422, "invalid")
    assert missing["errors"] == [{"field": "type", "message": "Field required"}]
    problem(api.post("/requests", "not an object"), 422, "invalid")
    bad_json = api.client.post(
        f"{BASE}/requests",
        "{",
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.token}"},
    )
    problem(bad_json, 400, "bad_request")
    assert ApprovalRequest.objects.count() == 0


def test_lists_go_page_by_page_with_a_cursor_and_a_bad_cursor_is_refused(
    people: dict[str, User], travel: RequestType
) -> None:
    made = [make_request(people, travel, title=f"Trip {i}") for i in range(7)]
    api = api_for(people["requester"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = api.get("/requests", limit=3, **({"cursor": cursor} if cursor else {})).json()
        seen += [r["title"] for r in page["results"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
        make_request(people, travel, title="Arrived meanwhile")  # newer: does not shift the pages
    assert pages == 3 and seen == [r.title for r in reversed(made)]
    problem(api.get("/requests", cursor="garbage"), 400, "bad_cursor")
    problem(api.get("/requests", cursor="WyJ4IiwgMV0"), 400, "bad_cursor")  # ["x", 1]: not a date
    problem(api.get("/requests", limit=0), 422, "invalid")
    problem(api.get("/requests", limit=101), 422, "invalid")
    problem(api.get("/requests", state="sideways"), 422, "invalid")


def test_request_types_come_with_their_policy_and_the_routing_preview_names_who_is_asked(
    people: dict[str, User], travel: RequestType
) -> None:
    api = api_for(people["requester"])
    types = api.get("/request-types").json()
    assert [t["slug"] for t in types] == ["travel"]
    stage = types[0]["policy"]["stages"][0]
    assert stage["name"] == "Team" and stage["rule"] == "any" and stage["deadline_seconds"] == 2 * 86400
    preview = api.get("/routing-preview", type="travel", amount="100").json()
    assert [a["name"] for a in preview["stages"][0]["approvers"]] == ["reviewer1"]
    problem(api.get("/routing-preview", type="yacht"), 422, "invalid")
    problem(api.get("/routing-preview", type="travel", amount="lots"), 422, "invalid")


def test_a_misspelt_parameter_is_refused_not_ignored(people: dict[str, User]) -> None:
    api = api_for(people["requester"])
    refused = problem(api.get("/requests", limt=5), 422, "unknown_parameter")
    assert refused["detail"] == "This operation has no parameter “limt”."
    assert refused["errors"] == [{"field": "limt", "message": "No such parameter."}]
    problem(api.get("/request-types", page=2), 422, "unknown_parameter")
    assert api.get("/requests", limit=5, state="open").status_code == 200
