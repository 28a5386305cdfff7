"""GET /products/{id}/related (docs/affinity.md): the question checked, the product found by its title or its
id, and the products its shoppers also bought."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm.affinity import RELATED_KEPT
from crm.models.affinity import ProductAffinity
from crm.ports import AffinityStore


class RelatedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=RELATED_KEPT, ge=1, le=RELATED_KEPT)


class ProductNotFound(LookupError):
    """No paid order of the workspace holds that product (404)."""


def parse_query(params: Mapping[str, str]) -> RelatedQuery:
    """The query parameters checked; a ValueError naming the parameter at fault."""
    try:
        return RelatedQuery.model_validate(dict(params))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "query"
        raise ValueError(f"{where}: {first['msg']}") from None


def find_product(store: AffinityStore, workspace_id: str, product: str) -> ProductAffinity:
    """The product named by its title (as orders and segment conditions name it) or, failing that, its id.
    A path parameter may reach the function still percent-encoded (whether it is decoded depends on the
    gateway in front): the decoded form is tried too."""
    found = None
    for name in dict.fromkeys((product, unquote(product))):
        found = found or store.product(workspace_id, name) or store.product_by_id(workspace_id, name)
    if found is None:
        raise ProductNotFound(f"no paid order holds a product {unquote(product)!r} (by title or id) as of the last "
                              f"daily run")
    return found


def related_view(affinity: ProductAffinity, query: RelatedQuery) -> dict[str, Any]:
    view = affinity.model_dump(mode="json", exclude={"workspace_id"})
    view["related"] = view["related"][:query.limit]
    return view


__all__ = ["ProductNotFound", "RelatedQuery", "find_product", "parse_query", "related_view"]
