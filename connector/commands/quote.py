"""``care-connector quote``: the price of a ticket of one category under the configured policy.

::

    care-connector quote upgrade --from 4.3.1 --to 4.3.9 --json
    {"category": "upgrade", "credits": 50, "steps": 8, ...}

Bad input (an unknown category or version, equal versions, a downgrade, a malformed version,
``--credits`` where it does not apply, below the minimum or not a whole number) is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click
from flask.cli import with_appcontext

from connector.extension import state
from rules.credits import CreditError, Quote, quote
from rules.releases import ReleaseError, ReleaseIndex

# An explicit pattern rather than int(): int() also takes "2_0" and other digit scripts.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


class QuoteUsageError(click.ClickException):
    """Bad input, shown as one line (``Error: ...``) with exit code 2, the usage-error code.

    Not a :class:`click.UsageError`: click attaches the command's context to those and then
    prints the usage and a help hint too, three lines more than the contract's one.
    """

    exit_code = 2


def _parse_credits(text: str | None) -> int | None:
    if text is None:
        return None
    if _WHOLE_NUMBER.fullmatch(text.strip()) is None:
        raise QuoteUsageError(f"--credits must be a whole number of credits, not {text!r}")
    return int(text.strip())


def _as_json(result: Quote, from_version: str | None, to_version: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"category": result.category, "credits": result.credits}
    if result.steps is not None:
        data["steps"] = result.steps
        data["from"] = from_version
        data["to"] = to_version
    data["explanation"] = {"en": result.explanation_en, "ru": result.explanation_ru}
    return data


@click.command("quote")
@click.argument("category")
@click.option("--from", "from_version", metavar="VERSION", help="Installed version (upgrade).")
@click.option("--to", "to_version", metavar="VERSION", help="Target version (upgrade).")
@click.option(
    "--credits",
    "credits_text",
    metavar="N",
    help="The engineer's figure for an engineer-priced category (modification).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@with_appcontext
def quote_command(
    category: str,
    from_version: str | None,
    to_version: str | None,
    credits_text: str | None,
    as_json: bool,
) -> None:
    """Print the price in credits of a ticket of CATEGORY.

    An upgrade needs --from and --to; service packs are not counted as steps.
    """
    policy = state().settings.policy
    engineer_credits = _parse_credits(credits_text)
    try:
        result = quote(
            policy,
            category,
            from_version=from_version,
            to_version=to_version,
            credits=engineer_credits,
        )
    except (CreditError, ReleaseError) as err:
        raise QuoteUsageError(str(err)) from err
    if as_json:
        canonical_from = canonical_to = None
        if result.steps is not None and from_version is not None and to_version is not None:
            # The versions as the release list spells them ("4.9.2.sp4" -> "4.9.2.SP4").
            index = ReleaseIndex.for_releases(policy.releases)
            canonical_from = index.canonical(from_version)
            canonical_to = index.canonical(to_version)
        click.echo(json.dumps(_as_json(result, canonical_from, canonical_to)))
    else:
        click.echo(result.explanation_en)
