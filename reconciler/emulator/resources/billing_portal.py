"""Customer portal configurations: ``/v1/billing_portal/configurations`` create,
retrieve, update, list (no delete: ``active=false``).

Follows docs.stripe.com/api/customer_portal/configurations and the SDK's
``billing_portal.Configuration*Params`` (API version ``2026-10-28.endive``):

- ``features`` is required on create; each feature hash the caller leaves out
  takes Stripe's defaults, as its example object shows them (everything
  disabled, ``subscription_cancel`` at period end without prorations and the
  five default cancellation reasons, ``subscription_update`` without
  prorations and ending trials). An update changes only the keys it names,
  hash by hash;
- ``features.subscription_update``: "If you've disabled subscription
  updates [...] you can now make [``products`` and
  ``default_allowed_updates``] optional" (changelog 2024-09-30.acacia,
  "billing-portal-updates-optional"): with ``enabled: true`` both must be
  given (``parameter_missing``). ``products`` is "The list of up to 10
  products that support subscription updates", each ``{product, prices[]}``:
  the product must exist, and every price must exist, be a price of that
  product ("The list of price IDs for the product that a subscription can be
  updated to") and be recurring (the portal switches subscriptions). The
  list is includable: responses show it only with
  ``expand[]=features.subscription_update.products`` (stripe-node types it
  ``products?:`` like a price's ``tiers?:``, and Stripe's example objects
  leave it out), see :mod:`._includable`;
- ``features.subscription_cancel.proration_behavior``: "Possible values are
  ``none`` and ``create_prorations``, which is only compatible with
  ``mode=immediately``. Passing ``always_invoice`` will result in an error"
  (the SDK's ``ConfigurationCreateParamsFeaturesSubscriptionCancel``): both
  are refused, on create and on update (where the mode may be the stored one);
- ``business_profile.headline``: "The maximum length is 60 characters";
  URLs (``default_return_url``, the business profile's) must be http(s);
- ``login_page.enabled`` gives the configuration a login ``url``;
- API-created configurations are never the default (``is_default: false``;
  the default one is the Dashboard's); list filters ``active`` and
  ``is_default``;
- not emulated, refused: ``features.payment_method_update.payment_method_configuration``
  (payment method configurations) and
  ``features.subscription_cancel.cancellation_reason.feedback_options``;
- events: ``billing_portal.configuration.created`` and ``.updated`` (the SDK's
  event types).

Portal sessions (``POST /v1/billing_portal/sessions``) are refused as not
emulated: there is no hosted portal behind the emulator.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any
from urllib.parse import urlsplit

from reconciler.emulator.errors import invalid, missing_param
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata, paginate
from reconciler.emulator.resources import _includable
from reconciler.emulator.resources.catalog import PRICE, PRODUCT
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = ["CONFIGURATION", "register"]

CONFIGURATION = "billing_portal.configuration"
PRODUCTS_PATH = "features.subscription_update.products"
MAX_PRODUCTS = 10
MAX_HEADLINE = 60
_FEATURES = "features"
_UPDATE = "features[subscription_update]"
#: Stripe's default cancellation reasons, in its example object's order.
DEFAULT_REASONS = ["too_expensive", "missing_features", "switched_service", "unused", "other"]


def _defaults() -> JSON:
    return {
        "customer_update": {"allowed_updates": [], "enabled": False},
        "invoice_history": {"enabled": False},
        "payment_method_update": {"enabled": False, "payment_method_configuration": None},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": False, "options": list(DEFAULT_REASONS)},
            "enabled": False,
            "mode": "at_period_end",
            "proration_behavior": "none",
        },
        "subscription_pause": {
            "duration": {"interval_options": [], "type": "indefinite"},
            "enabled": False,
        },
        "subscription_update": {
            "billing_cycle_anchor": None,
            "default_allowed_updates": [],
            "enabled": False,
            "products": [],
            "proration_behavior": "none",
            "schedule_at_period_end": {"conditions": []},
            "trial_update_behavior": "end_trial",
        },
    }


def _not_emulated(param: str, what: str) -> Exception:
    return invalid(
        f"The emulator does not support `{param}` ({what} are not emulated).", param=param
    )


def _url(value: Any, param: str) -> str | None:
    if value is None:
        return None
    text = str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(f"Not a valid URL: {text}", param=param)
    return text


def _products(req: Request, entries: Any) -> list[JSON]:
    entries = entries or []
    param = f"{_UPDATE}[products]"
    if len(entries) > MAX_PRODUCTS:
        raise invalid(f"You can specify up to {MAX_PRODUCTS} products in {param}.", param=param)
    result: list[JSON] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{param}[{index}]"
        product = req.store.get(
            PRODUCT, str(entry["product"]), param=f"{where}[product]", status=400
        )
        if product["id"] in seen:
            raise invalid(
                f"The product {product['id']} is listed more than once in {param}.",
                param=f"{where}[product]",
            )
        seen.add(product["id"])
        prices: list[str] = []
        for position, price_id in enumerate(entry.get("prices") or []):
            at = f"{where}[prices][{position}]"
            price = req.store.get(PRICE, str(price_id), param=at, status=400)
            if price["product"] != product["id"]:
                raise invalid(
                    f"The price {price['id']} does not belong to the product {product['id']}.",
                    param=at,
                )
            if price.get("recurring") is None:
                raise invalid(
                    f"The price {price['id']} is not recurring; the portal only switches "
                    "subscriptions between recurring prices.",
                    param=at,
                )
            prices.append(price["id"])
        adjustable = entry.get("adjustable_quantity") or {}
        minimum = adjustable.get("minimum")
        maximum = adjustable.get("maximum")
        if minimum is not None and maximum is not None and int(maximum) < int(minimum):
            raise invalid(
                "adjustable_quantity[maximum] must be at least adjustable_quantity[minimum].",
                param=f"{where}[adjustable_quantity][maximum]",
            )
        result.append(
            {
                "adjustable_quantity": {
                    "enabled": bool(adjustable.get("enabled") or False),
                    "maximum": int(maximum) if maximum is not None else None,
                    "minimum": int(minimum) if minimum is not None else 1,
                },
                "prices": prices,
                "product": product["id"],
            }
        )
    return result


def _set(target: JSON, given: JSON, names: tuple[str, ...], default: JSON) -> None:
    """Copy the named keys given (an unset value, None, goes back to the default)."""
    for name in names:
        if name in given:
            value = given[name]
            target[name] = copy.deepcopy(default[name]) if value is None else value


def _apply_features(req: Request, features: JSON, given: JSON, *, creating: bool) -> None:
    defaults = _defaults()
    if "customer_update" in given:
        _set(
            features["customer_update"],
            given["customer_update"],
            ("allowed_updates", "enabled"),
            defaults["customer_update"],
        )
    for name in ("invoice_history", "payment_method_update"):
        if name in given:
            _set(features[name], given[name], ("enabled",), defaults[name])
    pmc = (given.get("payment_method_update") or {}).get("payment_method_configuration")
    if pmc is not None:
        raise _not_emulated(
            f"{_FEATURES}[payment_method_update][payment_method_configuration]",
            "payment method configurations",
        )
    if "subscription_cancel" in given:
        cancel = given["subscription_cancel"]
        _set(
            features["subscription_cancel"],
            cancel,
            ("enabled", "mode", "proration_behavior"),
            defaults["subscription_cancel"],
        )
        reason = cancel.get("cancellation_reason")
        if reason is not None:
            if reason.get("feedback_options") is not None:
                raise _not_emulated(
                    f"{_FEATURES}[subscription_cancel][cancellation_reason][feedback_options]",
                    "cancellation feedback options",
                )
            target = features["subscription_cancel"]["cancellation_reason"]
            target["enabled"] = bool(reason["enabled"])
            if "options" in reason:
                target["options"] = list(reason["options"] or [])
        _check_cancel_prorations(features["subscription_cancel"])
    if "subscription_pause" in given:
        pause = given["subscription_pause"]
        _set(features["subscription_pause"], pause, ("enabled",), defaults["subscription_pause"])
        duration = pause.get("duration")
        if duration is not None:
            features["subscription_pause"]["duration"] = {
                "interval_options": [
                    {
                        "interval": option["interval"],
                        "interval_count": int(option.get("interval_count") or 1),
                    }
                    for option in duration.get("interval_options") or []
                ],
                "type": duration["type"],
            }
    if "subscription_update" in given:
        update = given["subscription_update"]
        target = features["subscription_update"]
        if update.get("enabled") and creating:
            for name in ("products", "default_allowed_updates"):
                if name not in update:
                    raise missing_param(
                        f"{_UPDATE}[{name}]",
                        f"Missing required param: {_UPDATE}[{name}] (required when "
                        f"{_UPDATE}[enabled] is true).",
                    )
        _set(
            target,
            update,
            (
                "billing_cycle_anchor",
                "default_allowed_updates",
                "enabled",
                "proration_behavior",
                "trial_update_behavior",
            ),
            defaults["subscription_update"],
        )
        if "products" in update:
            target["products"] = _products(req, update["products"])
        schedule = update.get("schedule_at_period_end")
        if schedule is not None:
            target["schedule_at_period_end"] = {
                "conditions": [
                    {"type": condition["type"]} for condition in schedule.get("conditions") or []
                ]
            }


def _check_cancel_prorations(cancel: JSON) -> None:
    """Cancelling prorates only when it cancels at once; ``always_invoice`` is refused."""
    param = f"{_FEATURES}[subscription_cancel][proration_behavior]"
    behavior = cancel["proration_behavior"]
    if behavior == "always_invoice":
        raise invalid(
            "features[subscription_cancel][proration_behavior] cannot be always_invoice: "
            "use none or create_prorations.",
            param=param,
        )
    if behavior == "create_prorations" and cancel["mode"] != "immediately":
        raise invalid(
            "features[subscription_cancel][proration_behavior] create_prorations is only "
            "compatible with features[subscription_cancel][mode] immediately.",
            param=param,
        )


def _business_profile(current: JSON, given: Any) -> JSON:
    profile = dict(current)
    for name in ("headline", "privacy_policy_url", "terms_of_service_url"):
        if name not in (given or {}):
            continue
        value = given[name]
        param = f"business_profile[{name}]"
        if name == "headline":
            if value is not None and len(str(value)) > MAX_HEADLINE:
                raise invalid(
                    f"business_profile[headline] must be at most {MAX_HEADLINE} characters long.",
                    param=param,
                )
            profile[name] = value
        else:
            profile[name] = _url(value, param)
    return profile


def _login_page(current: JSON, given: Any) -> JSON:
    if given is None:
        return current
    if not given["enabled"]:
        return {"enabled": False, "url": None}
    if current.get("enabled"):
        return current
    return {
        "enabled": True,
        "url": f"https://billing.stripe.com/p/login/test_{secrets.token_urlsafe(12)}",
    }


def create(req: Request) -> JSON:
    params = req.params
    features = _defaults()
    _apply_features(req, features, params["features"], creating=True)
    now = req.now()
    configuration: JSON = {
        "id": new_id("bpc"),
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": _business_profile(
            {"headline": None, "privacy_policy_url": None, "terms_of_service_url": None},
            params.get("business_profile"),
        ),
        "created": now,
        "default_return_url": _url(params.get("default_return_url"), "default_return_url"),
        "features": features,
        "is_default": False,
        "livemode": False,
        "login_page": _login_page({"enabled": False, "url": None}, params.get("login_page")),
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "name": params.get("name"),
        "updated": now,
    }
    req.store.put(CONFIGURATION, configuration)
    emit(req, "billing_portal.configuration.created", configuration)
    _includable.take(req, (PRODUCTS_PATH,))
    return configuration


def _get(req: Request) -> JSON:
    return req.store.get(CONFIGURATION, req.path_params["id"], label="configuration")


def retrieve(req: Request) -> JSON:
    configuration = _get(req)
    _includable.take(req, (PRODUCTS_PATH,))
    return configuration


def update(req: Request) -> JSON:
    configuration = _get(req)
    params = req.params
    features = copy.deepcopy(configuration["features"])
    if params.get("features") is not None:
        _apply_features(req, features, params["features"], creating=False)
    switching = features["subscription_update"]
    if switching["enabled"] and not switching["products"]:
        # Enabling subscription updates needs the products customers may switch between.
        given = (params.get("features") or {}).get("subscription_update") or {}
        if "enabled" in given or "products" in given:
            raise missing_param(
                f"{_UPDATE}[products]",
                f"Missing required param: {_UPDATE}[products] (required when "
                f"{_UPDATE}[enabled] is true).",
            )
    configuration["features"] = features
    if "active" in params and params["active"] is not None:
        configuration["active"] = bool(params["active"])
    if "business_profile" in params:
        configuration["business_profile"] = _business_profile(
            configuration["business_profile"], params["business_profile"]
        )
    if "default_return_url" in params:
        configuration["default_return_url"] = _url(
            params["default_return_url"], "default_return_url"
        )
    if "login_page" in params:
        configuration["login_page"] = _login_page(configuration["login_page"], params["login_page"])
    if "metadata" in params:
        configuration["metadata"] = apply_metadata(configuration["metadata"], params["metadata"])
    if "name" in params:
        configuration["name"] = params["name"]
    configuration["updated"] = req.now()
    req.store.put(CONFIGURATION, configuration)
    emit(req, "billing_portal.configuration.updated", configuration)
    _includable.take(req, (PRODUCTS_PATH,))
    return configuration


def list_(req: Request) -> JSON:
    params = req.params
    items = [
        configuration
        for configuration in req.store.newest_first(CONFIGURATION)
        if (params.get("active") is None or configuration["active"] == params["active"])
        and (
            params.get("is_default") is None or configuration["is_default"] == params["is_default"]
        )
    ]
    page = paginate(req, items, "/v1/billing_portal/configurations", label="configuration")
    _includable.take(req, (PRODUCTS_PATH,), in_list=True)
    return page


def _complete(req: Request, obj: JSON) -> None:
    """``features.subscription_update.products`` only when asked for (an includable field)."""
    update = (obj.get("features") or {}).get("subscription_update")
    if isinstance(update, dict) and not _includable.included(req, PRODUCTS_PATH):
        update.pop("products", None)


def _session_not_emulated(req: Request) -> JSON:
    raise invalid(
        "The emulator does not serve POST /v1/billing_portal/sessions (not emulated): there is "
        "no hosted customer portal behind it. Portal configurations are emulated."
    )


def register(registry: Registry) -> None:
    registry.object_type(ObjectType(CONFIGURATION, complete=_complete))
    base = "/v1/billing_portal/configurations"
    registry.route("POST", base, create, params="billing_portal.ConfigurationCreateParams")
    registry.route("GET", base, list_, params="billing_portal.ConfigurationListParams")
    registry.route(
        "GET", base + "/{id}", retrieve, params="billing_portal.ConfigurationRetrieveParams"
    )
    registry.route(
        "POST", base + "/{id}", update, params="billing_portal.ConfigurationUpdateParams"
    )
    registry.route(
        "POST",
        "/v1/billing_portal/sessions",
        _session_not_emulated,
        params="billing_portal.SessionCreateParams",
    )
