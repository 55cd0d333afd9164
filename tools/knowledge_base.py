"""`kb_lookup`: one fact from the knowledge base that the task instance carries.

The knowledge base is ``instance["kb"]``, a mapping ``entity -> relation -> value``
of plain strings, so each episode can bring its own (fictional) facts and a model
has to look them up rather than remember them. Entity and relation names match
case-insensitively, and a relation may be written with spaces (``born in``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentic import tool


class UnknownFact(LookupError):
    """The entity or the relation is not in the knowledge base; the message lists what is."""


def normalize(name: str) -> str:
    """The form under which entity and relation names are compared."""
    return "_".join(name.casefold().split()) if name else ""


def lookup(kb: Mapping[str, Mapping[str, str]], entity: str, relation: str) -> str:
    """The value of ``relation`` for ``entity``; `UnknownFact` names the valid choices otherwise."""
    entities = {normalize(name): relations for name, relations in kb.items()}
    relations = entities.get(normalize(entity))
    if relations is None:
        known = sorted({r for rs in kb.values() for r in rs})
        raise UnknownFact(f"no entity named {entity!r}; relations: {', '.join(known)}")
    values = {normalize(name): value for name, value in relations.items()}
    if normalize(relation) not in values:
        raise UnknownFact(f"{entity} has no relation {relation!r}; its relations: {', '.join(sorted(relations))}")
    return values[normalize(relation)]


@tool
def kb_lookup(entity: str, relation: str, instance: Mapping[str, Any]) -> str:
    """Look up one fact: the value of a relation of an entity.

    Args:
        entity: The name of a person, city, company or country.
        relation: The relation to read, e.g. born_in.
    """
    return lookup(instance["kb"], entity, relation)
