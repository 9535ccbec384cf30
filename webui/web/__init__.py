"""The one HTTP root: ``build_app`` puts the page (webui.ui) and the API (webui.api) behind the same guards."""

from webui.web.app import build_app

__all__ = ["build_app"]
