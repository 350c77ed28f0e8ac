"""Errors raised by the VTmarketing side of the app.

They share one base class so callers (the delivery engine, the web layer) can catch "anything VTmarketing
refused to let us do" in one place without knowing every concrete error.
"""

from __future__ import annotations


class VTMarketingError(Exception):
    """Base class for every error raised by `saleor_app.vtmarketing`."""
