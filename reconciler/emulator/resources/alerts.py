"""Billing alerts: ``/v1/billing/alerts`` create, retrieve, list, activate, deactivate, archive.

Only ``usage_threshold`` alerts: ``{gte, meter, recurrence: one_time,
filters: [{type: customer, customer}]}``. There is no update: a change is
archive + create. Archiving is final; lists leave archived alerts out.
"""

from __future__ import annotations

from reconciler.emulator.errors import invalid, missing_param
from reconciler.emulator.render import paginate
from reconciler.emulator.resources._common import require_text
from reconciler.emulator.resources.meters import METER
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = ["ALERT", "register"]

ALERT = "billing.alert"
LABEL = "billing alert"
MAX_TITLE = 256
MAX_FILTERS = 1


def create(req: Request) -> JSON:
    params = req.params
    title = require_text(params, "title", max_length=MAX_TITLE)
    threshold = params.get("usage_threshold")
    if threshold is None:
        raise missing_param(
            "usage_threshold", "Alerts of type usage_threshold need `usage_threshold`."
        )
    gte = int(threshold["gte"])
    if gte < 1:
        raise invalid("usage_threshold[gte] must be at least 1.", param="usage_threshold[gte]")
    meter = req.store.get(
        METER,
        str(threshold["meter"]),
        label="billing meter",
        param="usage_threshold[meter]",
        status=400,
    )
    if meter["status"] != "active":
        raise invalid(f"The meter {meter['id']} is inactive.", param="usage_threshold[meter]")
    filters = threshold.get("filters")
    if filters is not None:
        if len(filters) > MAX_FILTERS:
            raise invalid(
                "You can only specify up to one filter at this time.",
                param="usage_threshold[filters]",
            )
        for index, item in enumerate(filters):
            customer_id = item.get("customer")
            if customer_id is None:
                raise missing_param(f"usage_threshold[filters][{index}][customer]")
            req.store.get(
                "customer",
                str(customer_id),
                param=f"usage_threshold[filters][{index}][customer]",
                status=400,
            )
        filters = [{"customer": f["customer"], "type": f["type"]} for f in filters]
    alert: JSON = {
        "id": new_id("alrt"),
        "object": "billing.alert",
        "alert_type": params["alert_type"],
        "livemode": False,
        "status": "active",
        "title": title,
        "usage_threshold": {
            "filters": filters,
            "gte": gte,
            "meter": meter["id"],
            "recurrence": threshold["recurrence"],
        },
    }
    return req.store.put(ALERT, alert)


def retrieve(req: Request) -> JSON:
    return req.store.get(ALERT, req.path_params["id"], label=LABEL)


def list_(req: Request) -> JSON:
    params = req.params
    items = [
        alert
        for alert in req.store.newest_first(ALERT)
        if alert["status"] != "archived"
        and (not params.get("alert_type") or alert["alert_type"] == params["alert_type"])
        and (not params.get("meter") or alert["usage_threshold"]["meter"] == params["meter"])
    ]
    return paginate(req, items, "/v1/billing/alerts", label=LABEL)


def _transition(req: Request, status: str) -> JSON:
    alert = req.store.get(ALERT, req.path_params["id"], label=LABEL)
    if alert["status"] == "archived":
        raise invalid(f"The alert {alert['id']} is archived; archiving is final.")
    alert["status"] = status
    return req.store.put(ALERT, alert)


def activate(req: Request) -> JSON:
    return _transition(req, "active")


def deactivate(req: Request) -> JSON:
    return _transition(req, "inactive")


def archive(req: Request) -> JSON:
    return _transition(req, "archived")


def register(registry: Registry) -> None:
    base = "/v1/billing/alerts"
    registry.route("POST", base, create, params="billing.AlertCreateParams")
    registry.route("GET", base, list_, params="billing.AlertListParams")
    registry.route("GET", base + "/{id}", retrieve, params="billing.AlertRetrieveParams")
    registry.route("POST", base + "/{id}/activate", activate, params="billing.AlertActivateParams")
    registry.route(
        "POST", base + "/{id}/deactivate", deactivate, params="billing.AlertDeactivateParams"
    )
    registry.route("POST", base + "/{id}/archive", archive, params="billing.AlertArchiveParams")
