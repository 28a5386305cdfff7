"""Which products a workspace's shoppers buy together (crm.affinity; docs/affinity.md).

One ``ProductAffinity`` per product a workspace's shoppers bought: how many bought it, and the products most
often bought by the same shoppers, each with the pair's support, confidence and lift. Products are named by
their title, as the profile keeps what a shopper bought (``Profile.products``) and as segment conditions name
them; the product id, link and picture are given where the scheduled run saw the product browsed or carted.
Ratios are Decimals rounded half-even to 4 places.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class ProductShown(BaseModel):
    """What a message or a screen shows of a product: its title, and its id, link and picture when known."""

    model_config = ConfigDict(frozen=True)

    title: str
    product_id: str | None = None
    url: str | None = None
    image_url: str | None = None


class RelatedProduct(ProductShown):
    """A product bought by the same shoppers as another (the antecedent, A; this one is B)."""

    buyers_together: int = Field(ge=1)  # shoppers who bought both
    support: Decimal = Field(ge=0, le=1)  # share of buying shoppers who bought both
    confidence: Decimal = Field(ge=0, le=1)  # share of A's buyers who bought B too
    lift: Decimal = Field(ge=0)  # confidence over B's own support: > 1, bought together more than by chance


class ProductAffinity(ProductShown):
    """One product of a workspace and its related products, best first."""

    workspace_id: str
    buyers: int = Field(ge=1)
    support: Decimal = Field(ge=0, le=1)
    shoppers: int = Field(ge=1)  # buying shoppers of the workspace the ratios are over
    related: tuple[RelatedProduct, ...] = ()
    computed_at: datetime

    def same_figures(self, other: ProductAffinity) -> bool:
        """Whether ``other`` says the same, whenever it was computed (a run rewrites only what moved)."""
        return self.model_dump(exclude={"computed_at"}) == other.model_dump(exclude={"computed_at"})


__all__ = ["ProductAffinity", "ProductShown", "RelatedProduct"]
