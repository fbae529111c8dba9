"""PromQL query templates: the ``{{placeholder}}`` names a metric query may use, checked and filled.

The plan model checks templates at load time (so a typo names its metric path) and
``gates.render_query`` fills them for each cluster; both go through this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS = ("service", "namespace", "cluster", "region", "version", "interval", "feature", "featureOn")
"""Every name a query template may use, as ``{{name}}`` (spaces inside the braces are allowed).

``{{feature}}`` is the ring's feature flag and ``{{featureOn}}`` ``true`` on the side judged and
``false`` on the baseline side: a query with ``{{featureOn}}`` is a flag metric (:func:`is_flag_metric`).
"""
FEATURE_ON = "featureOn"

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot be filled (unknown or unclosed placeholder), or None if it can."""
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in PLACEHOLDERS})
    if unknown:
        listed = ", ".join("{{" + name + "}}" for name in unknown)
        allowed = ", ".join("{{" + name + "}}" for name in PLACEHOLDERS)
        return f"unknown placeholder {listed}; allowed: {allowed}"
    if "{{" in _PLACEHOLDER.sub("", template):
        return "a '{{' is never closed with '}}'"
    return None


def _names(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def is_flag_metric(template: str) -> bool:
    """Whether the query tells flag-on from flag-off traffic (it uses ``{{featureOn}}``)."""
    return FEATURE_ON in _names(template)


def flag_problem(template: str) -> str | None:
    """Why a query naming the feature cannot judge it (``{{feature}}`` without ``{{featureOn}}``), or None."""
    names = _names(template)
    if "feature" in names and FEATURE_ON not in names:
        return (
            'a query with {{feature}} must also select {{featureOn}} (feature_on="{{featureOn}}"), '
            "or its flag-on and flag-off values are the same"
        )
    return None


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder; raise ValueError for unknown names or values unsafe inside PromQL.

    Values land inside PromQL label matchers and range selectors, so quotes, backslashes, braces and
    whitespace are refused rather than escaped: no plan or fleet name legitimately contains them.
    """
    problem = template_problem(template)
    if problem is not None:
        raise ValueError(problem)
    for name, value in values.items():
        if not _SAFE_VALUE.fullmatch(value):
            raise ValueError(f"{{{{{name}}}}} value {value!r} may only hold letters, digits and . _ : + -")
    missing = sorted({n for n in _PLACEHOLDER.findall(template) if n not in values})
    if missing:
        raise ValueError(f"no value for placeholder {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
