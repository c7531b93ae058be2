from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from approvals import views
from approvals.api import api
from approvals.views.auth import LoginView

urlpatterns = [
    path("", views.home, name="home"),
    path("requests/new/", views.request_create, name="request_create"),
    path("requests/preview/", views.request_preview, name="request_preview"),
    path("requests/<uuid:public_id>/", views.request_detail, name="request_detail"),
    path("requests/<uuid:public_id>/act/", views.request_act, name="request_act"),
    path("requests/<uuid:public_id>/resubmit/", views.request_resubmit, name="request_resubmit"),
    path(
        "requests/<uuid:public_id>/decisions/<str:action_id>/", views.decision_status, name="decision_status"
    ),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/bulk/", views.inbox_bulk, name="inbox_bulk"),
    path("inbox/requesters/", views.inbox_requesters, name="inbox_requesters"),
    path("inbox/reviews/", views.reviews, name="reviews"),
    path("inbox/reviews/decide/", views.reviews_decide, name="reviews_decide"),
    path("email/<str:token>/", views.email_action, name="email_action"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/requests.csv", views.dashboard_export, name="dashboard_export"),
    path("dashboard/workflows/", views.dashboard_workflows, name="dashboard_workflows"),
    path("dashboard/requests/<uuid:public_id>/cancel/", views.dashboard_cancel, name="dashboard_cancel"),
    path("dashboard/requests/<uuid:public_id>/retry/", views.dashboard_retry, name="dashboard_retry"),
    path("dashboard/requests/<uuid:public_id>/fulfil/", views.dashboard_fulfil, name="dashboard_fulfil"),
    path("dashboard/campaigns/", views.campaigns, name="campaigns"),
    path("dashboard/campaigns/<uuid:public_id>/", views.campaign_report, name="campaign_report"),
    path(
        "dashboard/campaigns/<uuid:public_id>/report.csv",
        views.campaign_report_csv,
        name="campaign_report_csv",
    ),
    path("dashboard/campaigns/<uuid:public_id>/cancel/", views.campaign_cancel, name="campaign_cancel"),
    path("dashboard/webhooks/", views.webhooks, name="webhooks"),
    path("dashboard/webhooks/<int:subscriber_id>/", views.webhook_detail, name="webhook_detail"),
    path(
        "dashboard/webhooks/deliveries/<int:delivery_id>/redeliver/",
        views.webhook_redeliver,
        name="webhook_redeliver",
    ),
    path("api/v1/", api.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.prometheus_metrics, name="metrics"),
    path("settings/tokens/", views.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
    path("mailbox/", views.mailbox, name="mailbox"),
    path("budgets/", views.budgets, name="budgets"),
    path("access/", views.access_mine, name="access_mine"),
    path("access/all/", views.access_all, name="access_all"),
    path("access/all.csv", views.access_export, name="access_export"),
    path("access/<uuid:public_id>/act/", views.access_act, name="access_act"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The admin's own login would bypass the failed-login limit: it uses ours.
    path("admin/login/", LoginView.as_view(), name="admin_login"),
    path("admin/", admin.site.urls),
]

handler500 = "approvals.views.errors.server_error"
