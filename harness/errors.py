"""The one project exception: bad input, turned into a one-line message and exit 2 by the CLI."""

from __future__ import annotations


class UserError(Exception):
    """Input the harness cannot act on; its message is shown to the user as is."""
