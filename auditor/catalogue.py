"""The products the engine scores, scopes and shows. The engine holds none of its own: it knows a product only
through the catalogue the checks package declares (checks/catalog.py) and plugins add to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from auditor.model import CheckMeta, Product

# The checks package's report hooks: the new owner's brief, and the top recommendations (read-only views).
Brief = Callable[[Any, Sequence[Mapping[str, Any]], Mapping[str, Any]], dict[str, Any]]
Recommend = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any]], list[dict[str, Any]]]


@dataclass
class Catalogue:
    products: dict[str, Product] = field(default_factory=dict)  # in the order reports show them
    required: tuple[CheckMeta, ...] = ()  # checks readiness needs to pass (CheckMeta.required)
    brief: Brief | None = None  # the new owner's brief, from the checks package
    recommend: Recommend | None = None  # the top recommendations, ranked by the checks package
    brief_facts: tuple[str, ...] = ()  # the facts the brief reads

    def copy(self) -> Catalogue:
        return replace(self, products=dict(self.products))

    def add(self, product: Product) -> None:
        if product.id in self.products:
            raise ValueError(f"product {product.id!r} is already declared")
        self.products[product.id] = product

    def title(self, category: str) -> str:
        product = self.products.get(category)
        return product.title if product else category.replace("_", " ").capitalize()

    def order(self, categories: Iterable[str]) -> list[str]:
        """Categories in catalogue order; ones it does not know (e.g. failed plugins) last, by name."""
        wanted = set(categories)
        return [c for c in self.products if c in wanted] + sorted(wanted - set(self.products))

    def weight(self, category: str, overrides: dict[str, float] | None = None) -> float:
        if overrides and category in overrides:
            return float(overrides[category])
        product = self.products.get(category)
        return product.weight if product else 0.0

    @property
    def payable(self) -> list[str]:
        return [p.id for p in self.products.values() if p.payable]

    @property
    def always_in_scope(self) -> frozenset[str]:
        return frozenset(p.id for p in self.products.values() if p.always_in_scope)

    def is_precondition(self, category: str) -> bool:
        product = self.products.get(category)
        return bool(product and product.preconditions)

    def is_handover_only(self, category: str) -> bool:
        product = self.products.get(category)
        return bool(product and product.handover_only)

    @property
    def facts(self) -> set[str]:
        """What the engine gathers whatever checks run: billing (the scope), usage and the brief's facts."""
        return {"billing", *self.brief_facts, *(name for p in self.products.values() for name in p.used_facts)}

    def used(self, facts: Any) -> dict[str, bool]:
        """Which products show usage in 30 days (products whose usage cannot be told are left out). Worked out
        once per run: the scope, the brief and the handover checks all ask."""
        def work() -> dict[str, bool]:
            found = {p.id: p.used(facts) for p in self.products.values() if p.payable and p.used}
            return {k: v for k, v in found.items() if v is not None}

        return dict(facts.memo("products_used", work))

    def paid_from_billing(self, billing: Any) -> list[str] | None:
        """Products whose billing product (by `type`) is `subscribed`; None when the payload does not say."""
        if not isinstance(billing, dict) or not isinstance(billing.get("products"), list):
            return None
        by_type = {p.billing_type: p.id for p in self.products.values() if p.billing_type}
        return self.sort(by_type[item["type"]] for item in billing["products"]
                         if isinstance(item, dict) and item.get("type") in by_type and item.get("subscribed"))

    def paid_from_vitally(self, is_paying: Callable[[str], bool | None]) -> list[str] | None:
        """Products whose Vitally "Paying for <label>" trait is true; None when the account has none of them."""
        answers = {p.id: is_paying(p.vitally_label) for p in self.products.values() if p.vitally_label}
        if all(value is None for value in answers.values()):
            return None
        return [product for product, paying in answers.items() if paying]

    def sort(self, products: Iterable[str]) -> list[str]:
        return self.order(dict.fromkeys(products))

    @property
    def attestation_items(self) -> dict[str, str]:
        return {item: what for p in self.products.values() for item, what in p.attestations.items()}
