"""Promotion codes: ``/v1/promotion_codes`` create, retrieve, update, list (no delete).

Follows docs.stripe.com/api/promotion_codes and the SDK's
``PromotionCode*Params`` (API version ``2026-10-28.endive``):

- create names its promotion as ``promotion: {type: coupon, coupon: ID}``
  (the top-level ``coupon`` parameter is gone at current versions: an unknown
  parameter); the coupon must exist and still be valid (the emulator's coupons,
  :mod:`.tax_and_discounts`). ``code``: "Regardless of case, this code must be
  unique across all active promotion codes for a specific customer. Valid
  characters are lower case letters (a-z), upper case letters (A-Z), digits
  (0-9), and dashes (-). If left blank, we will generate one automatically."
  Two active codes clash when they are equal ignoring case and either is open
  to every customer or both are restricted to the same one (the cautious
  reading: a customer who could redeem both would be ambiguous). A clash is
  ``resource_already_exists`` on ``code``;
- ``max_redemptions`` "cannot be greater than the coupon's
  ``max_redemptions``", ``expires_at`` "cannot be after the coupon's
  ``redeem_by``" (and must be in the future); ``customer`` must exist;
  ``restrictions``: ``first_time_transaction``, ``minimum_amount`` with
  ``minimum_amount_currency`` (both or neither), ``currency_options``
  (``{currency: {minimum_amount}}``, each currency other than
  ``minimum_amount_currency``). ``customer_account`` (accounts v2) is not
  emulated: refused;
- update takes ``active``, ``metadata`` and ``restrictions[currency_options]``
  only: "Most fields are, by design, not editable" (code, promotion,
  customer, expiry, limits and the other restrictions are ``parameter_unknown``).
  "A promotion code can only be reactivated when the coupon is still valid and
  the promotion code is otherwise redeemable" (not expired, not used up, and
  its code free among active codes);
- a promotion code "is only active if the coupon is also valid": one whose
  coupon was deleted, has passed its ``redeem_by`` or was redeemed its
  ``max_redemptions`` times shows ``active: false``. A promotion code belongs to
  the coupon object it was made for, not to the id: when a new coupon takes a
  deleted coupon's id, the old coupon's codes stay inactive and cannot be
  reactivated (Stripe keeps references to the deleted coupon object, as its
  discounts do); ``expand[]=promotion.coupon`` then leaves the id unexpanded;
- ``promotion.coupon`` is expandable, ``customer`` too;
  ``restrictions.currency_options`` is includable (shown only with
  ``expand[]=restrictions.currency_options``), see :mod:`._includable`;
- list, newest first: ``active``, ``code`` (case-insensitive), ``coupon``,
  ``customer``, ``created``; ``customer_account`` is refused (not emulated);
- events: ``promotion_code.created`` and ``promotion_code.updated`` (the SDK's
  event types).

Redeeming a promotion code (``discounts[][promotion_code]`` on subscriptions)
is not emulated: those endpoints still refuse it.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from reconciler.emulator.errors import already_exists, invalid, missing_param
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata, matches_created, paginate, render
from reconciler.emulator.resources import _includable
from reconciler.emulator.resources.billing import COUPON, CUSTOMER
from reconciler.emulator.resources.catalog import MAX_UNIT_AMOUNT, check_currency
from reconciler.emulator.resources.tax_and_discounts import GENERATION, coupon_valid
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = ["PROMOTION_CODE", "register"]

PROMOTION_CODE = "promotion_code"
#: The SDK documents ``code`` with "Max length: 500" (the OpenAPI ``maxLength``).
MAX_CODE = 500
_CODE = re.compile(r"^[A-Za-z0-9-]+$")
_GENERATED = string.ascii_uppercase + string.digits
CURRENCY_OPTIONS = "restrictions.currency_options"
COUPON_PATH = "promotion.coupon"
INCLUDABLE = frozenset({CURRENCY_OPTIONS, COUPON_PATH})


def _not_emulated(name: str) -> Exception:
    return invalid(
        f"The emulator does not support `{name}` on promotion codes (customer accounts are not "
        "emulated).",
        param=name,
    )


def _coupon_valid(req: Request, coupon: JSON) -> bool:
    return coupon_valid(coupon, req.now())


def _coupon_of(req: Request, code: JSON) -> JSON | None:
    """The coupon object the code was made for; None once it is deleted (a newer coupon
    under the same id is another object)."""
    coupon = req.store.find(COUPON, str(code["promotion"]["coupon"]))
    if coupon is None or coupon.get(GENERATION) != code.get(GENERATION):
        return None
    return coupon


def _effective_active(req: Request, code: JSON) -> bool:
    """Stored ``active``, and only while its coupon is valid (deleted coupons are not)."""
    coupon = _coupon_of(req, code)
    return bool(code["active"]) and coupon is not None and _coupon_valid(req, coupon)


def _clash(req: Request, code: str, customer: str | None, exclude: str | None) -> JSON | None:
    wanted = code.lower()
    for other in req.store.values(PROMOTION_CODE):
        if other["id"] == exclude or not _effective_active(req, other):
            continue
        if str(other["code"]).lower() != wanted:
            continue
        if customer is None or other["customer"] is None or other["customer"] == customer:
            return other
    return None


def _refuse_clash(req: Request, code: str, customer: str | None, exclude: str | None) -> None:
    other = _clash(req, code, customer, exclude)
    if other is not None:
        raise already_exists(
            f"An active promotion code with code '{other['code']}' already exists "
            f"({other['id']}); codes are unique, regardless of case, among the active "
            "promotion codes a customer can redeem.",
            param="code",
        )


def _code(params: JSON) -> str:
    given = params.get("code")
    if given is None:
        return "".join(secrets.choice(_GENERATED) for _ in range(8))
    code = str(given)
    if len(code) > MAX_CODE:
        raise invalid(f"code must be at most {MAX_CODE} characters long.", param="code")
    if not _CODE.match(code):
        raise invalid(
            f"Invalid code: {code}. Valid characters are lower case letters (a-z), upper case "
            "letters (A-Z), digits (0-9), and dashes (-).",
            param="code",
        )
    return code


def _minimum(value: Any, param: str) -> int:
    amount = int(value)
    if amount < 0 or amount > MAX_UNIT_AMOUNT:
        raise invalid(
            f"This value must be between 0 and {MAX_UNIT_AMOUNT} (it currently is '{amount}').",
            param=param,
        )
    return amount


def _currency_options(current: JSON, given: Any, main_currency: str | None) -> JSON:
    options = dict(current)
    for code, option in (given or {}).items():
        where = f"restrictions[currency_options][{code}]"
        key = check_currency(code, where)
        if key == main_currency:
            raise invalid(
                "Each currency in restrictions[currency_options] must be different from "
                "restrictions[minimum_amount_currency].",
                param=where,
            )
        if option is None:
            options.pop(key, None)
            continue
        if option.get("minimum_amount") is None:
            raise missing_param(f"{where}[minimum_amount]")
        options[key] = {"minimum_amount": _minimum(option["minimum_amount"], where)}
    return options


def _restrictions(given: Any) -> JSON:
    given = given or {}
    amount = given.get("minimum_amount")
    currency = given.get("minimum_amount_currency")
    if (amount is None) != (currency is None):
        missing = "minimum_amount_currency" if currency is None else "minimum_amount"
        raise missing_param(
            f"restrictions[{missing}]",
            "restrictions[minimum_amount] and restrictions[minimum_amount_currency] go "
            "together: pass both or neither.",
        )
    main = check_currency(currency, "restrictions[minimum_amount_currency]") if currency else None
    return {
        "currency_options": _currency_options({}, given.get("currency_options"), main),
        "first_time_transaction": bool(given.get("first_time_transaction") or False),
        "minimum_amount": (
            _minimum(amount, "restrictions[minimum_amount]") if amount is not None else None
        ),
        "minimum_amount_currency": main,
    }


def create(req: Request) -> JSON:
    params = req.params
    if params.get("customer_account") is not None:
        raise _not_emulated("customer_account")
    promotion = params["promotion"]
    coupon_id = promotion.get("coupon")
    if coupon_id is None:
        raise missing_param(
            "promotion[coupon]", "Promotions of type coupon need `promotion[coupon]`."
        )
    coupon = req.store.get(COUPON, str(coupon_id), param="promotion[coupon]", status=400)
    if not _coupon_valid(req, coupon):
        raise invalid(
            f"The coupon {coupon['id']} is no longer valid; promotion codes need a valid coupon.",
            param="promotion[coupon]",
        )
    customer_id = params.get("customer")
    if customer_id is not None:
        req.store.get(CUSTOMER, str(customer_id), param="customer", status=400)
    max_redemptions = params.get("max_redemptions")
    if max_redemptions is not None:
        if int(max_redemptions) < 1:
            raise invalid("max_redemptions must be a positive integer.", param="max_redemptions")
        if coupon.get("max_redemptions") is not None and int(max_redemptions) > int(
            coupon["max_redemptions"]
        ):
            raise invalid(
                "max_redemptions cannot be greater than the coupon's max_redemptions "
                f"({coupon['max_redemptions']}).",
                param="max_redemptions",
            )
    expires_at = params.get("expires_at")
    if expires_at is not None:
        if int(expires_at) <= req.now():
            raise invalid("expires_at must be in the future.", param="expires_at")
        if coupon.get("redeem_by") is not None and int(expires_at) > int(coupon["redeem_by"]):
            raise invalid(
                f"expires_at cannot be after the coupon's redeem_by ({coupon['redeem_by']}).",
                param="expires_at",
            )
    code = _code(params)
    active = params.get("active") is not False
    if active:
        _refuse_clash(req, code, str(customer_id) if customer_id else None, None)
    promotion_code: JSON = {
        "id": new_id("promo"),
        "object": "promotion_code",
        "active": active,
        "code": code,
        "created": req.now(),
        "customer": customer_id,
        "customer_account": None,
        "expires_at": expires_at,
        "livemode": False,
        "max_redemptions": max_redemptions,
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "promotion": {"coupon": coupon["id"], "type": "coupon"},
        "restrictions": _restrictions(params.get("restrictions")),
        "times_redeemed": 0,
        GENERATION: coupon.get(GENERATION),
    }
    req.store.put(PROMOTION_CODE, promotion_code)
    emit(req, "promotion_code.created", promotion_code)
    _includable.take(req, INCLUDABLE)
    return promotion_code


def retrieve(req: Request) -> JSON:
    found = req.store.get(PROMOTION_CODE, req.path_params["id"], label="promotion code")
    _includable.take(req, INCLUDABLE)
    return found


def _redeemable(req: Request, code: JSON) -> None:
    coupon = _coupon_of(req, code)
    if coupon is None or not _coupon_valid(req, coupon):
        raise invalid(
            f"The promotion code {code['id']} cannot be reactivated: its coupon "
            f"{code['promotion']['coupon']} is no longer valid.",
            param="active",
        )
    expires_at = code.get("expires_at")
    limit = code.get("max_redemptions")
    if (expires_at is not None and int(expires_at) <= req.now()) or (
        limit is not None and int(code["times_redeemed"]) >= int(limit)
    ):
        raise invalid(
            f"The promotion code {code['id']} cannot be reactivated: it has expired or has "
            "been redeemed its maximum number of times.",
            param="active",
        )
    _refuse_clash(req, str(code["code"]), code["customer"], code["id"])


def update(req: Request) -> JSON:
    code = req.store.get(PROMOTION_CODE, req.path_params["id"], label="promotion code")
    params = req.params
    active = params.get("active")
    if active is True and not _effective_active(req, code):
        _redeemable(req, code)
    restrictions = params.get("restrictions") or {}
    if restrictions.get("currency_options") is not None:
        code["restrictions"]["currency_options"] = _currency_options(
            code["restrictions"].get("currency_options") or {},
            restrictions["currency_options"],
            code["restrictions"]["minimum_amount_currency"],
        )
    if "metadata" in params:
        code["metadata"] = apply_metadata(code["metadata"], params["metadata"])
    if active is not None:
        code["active"] = bool(active)
    req.store.put(PROMOTION_CODE, code)
    emit(req, "promotion_code.updated", code)
    _includable.take(req, INCLUDABLE)
    return code


def list_(req: Request) -> JSON:
    params = req.params
    if params.get("customer_account") is not None:
        raise _not_emulated("customer_account")
    code = params.get("code")
    wanted_code = str(code).lower() if code is not None else None

    def wanted(item: JSON) -> bool:
        if params.get("active") is not None and _effective_active(req, item) != params["active"]:
            return False
        if wanted_code is not None and str(item["code"]).lower() != wanted_code:
            return False
        if params.get("coupon") is not None and item["promotion"]["coupon"] != params["coupon"]:
            return False
        if params.get("customer") is not None and item["customer"] != params["customer"]:
            return False
        return matches_created(item, params.get("created"))

    items = [item for item in req.store.newest_first(PROMOTION_CODE) if wanted(item)]
    page = paginate(req, items, "/v1/promotion_codes", label="promotion code")
    _includable.take(req, INCLUDABLE, in_list=True)
    return page


def _complete(req: Request, obj: JSON) -> None:
    """Derived ``active``, includable ``restrictions.currency_options``, ``promotion.coupon``."""
    obj["active"] = _effective_active(req, obj)
    coupon = _coupon_of(req, obj)
    obj.pop(GENERATION, None)
    restrictions = obj.get("restrictions")
    if isinstance(restrictions, dict) and not _includable.included(req, CURRENCY_OPTIONS):
        restrictions.pop("currency_options", None)
    promotion = obj.get("promotion")
    expanded = _includable.included(req, COUPON_PATH)
    if isinstance(promotion, dict) and expanded and coupon is not None:
        promotion["coupon"] = render(req, coupon, [])


def register(registry: Registry) -> None:
    registry.object_type(
        ObjectType(PROMOTION_CODE, expandable={"customer": CUSTOMER}, complete=_complete)
    )
    base = "/v1/promotion_codes"
    registry.route("POST", base, create, params="PromotionCodeCreateParams")
    registry.route("GET", base, list_, params="PromotionCodeListParams")
    registry.route("GET", base + "/{id}", retrieve, params="PromotionCodeRetrieveParams")
    registry.route("POST", base + "/{id}", update, params="PromotionCodeUpdateParams")
