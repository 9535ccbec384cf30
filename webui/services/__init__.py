"""The Services object: the one thing the UI talks to, built once at start-up in cli.py."""

from __future__ import annotations

from typing import Any

from webui import __version__
from webui.auth import User, UserStore
from webui.config import Settings
from webui.engine import Engine
from webui.hardware import HardwareInfo
from webui.history import HistoryStore
from webui.prompts.presets import PresetStore
from webui.rag import DocumentLibrary
from webui.services.access import LOCAL_USER, NotAuthorized
from webui.services.api_access import ApiAccessService
from webui.services.chat import ChatService, DocumentQuery, ReplyUpdate
from webui.services.completions import CompletionService
from webui.services.documents import DocumentService
from webui.services.models import ModelService, flash_attn_choice
from webui.services.notebook import CompletionUpdate, NotebookService
from webui.services.presets import AppliedPreset, PresetService
from webui.services.streaming import UpdatePacer
from webui.services.summaries import SummaryService
from webui.storage import set_aside_notice

__all__ = [
    "LOCAL_USER", "AppliedPreset", "ChatService", "CompletionUpdate", "DocumentQuery", "DocumentService",
    "NotAuthorized", "NotebookService", "PresetService", "ReplyUpdate", "Services",
]


class Services:
    """Everything the UI may call, wired from one Settings object."""

    def __init__(self, settings: Settings, hardware: HardwareInfo, engine: Engine) -> None:
        self.settings = settings
        self.hardware = hardware
        self.engine = engine
        self.history = HistoryStore(settings.history_db)
        self.users = UserStore(settings.users_file)
        self.models = ModelService(settings, hardware, engine)  # the Models tab, the picker and the API
        self.presets = PresetStore(settings.presets_dir)
        self.document_actions = DocumentService(settings)  # the Documents tab's actions
        pacer = UpdatePacer()  # chat and notebook replies streaming at once share the page's redraws
        self.chat = ChatService(engine, self.history, documents=self.document_actions, presets=self.presets,
                                pacer=pacer)
        # The Presets tab's actions; in team mode presets have owners and only admins write shared ones.
        self.preset_actions = PresetService(self.presets, engine, team=self.auth_required)
        self.notebook = NotebookService(engine, pacer)
        self.summaries = SummaryService(engine, self.document_actions, self.preset_actions, self.history)
        # The HTTP API's two doors: who a call acts as, and generation/embeddings with its checks.
        self.api_access = ApiAccessService(settings, self.users, team_mode=self.auth_required)
        self.completions = CompletionService(settings, engine, self.models, self.chat, self.document_actions)

    @property
    def auth_required(self) -> bool:
        """Login is required whenever the app is reachable from the network (unless explicitly waived)."""
        return self.settings.listens_on_network and not self.settings.insecure_no_auth

    def user(self, username: str | None) -> User:
        """The signed-in user; in single-user mode, the one implicit local user (an admin)."""
        if not self.auth_required:
            return LOCAL_USER
        user = self.users.get(username) if username else None
        if user is None:
            raise NotAuthorized("Please log in again.")
        return user

    @property
    def documents(self) -> DocumentLibrary:
        """The document library; Chroma and the embedding model open on first use, not at start-up."""
        return self.document_actions.library

    def require_admin(self, username: str | None) -> User:
        user = self.user(username)
        if not user.is_admin:
            raise NotAuthorized("Only an admin can do this.")
        return user

    def set_aside_notice(self) -> str | None:
        """The damaged data files kept aside (this run or before), as one sentence for an admin; None if none."""
        return set_aside_notice(self.settings.data_dir)

    def status(self) -> dict[str, Any]:
        """The JSON served at GET /status."""
        info = self.engine.info
        lookup = self.engine.prompt_lookup
        return {
            "version": __version__,
            # Without the path: /status is open to every signed-in user, not only admins.
            "model": {**{k: v for k, v in info.as_dict().items() if k != "path"},
                      "flash_attn": flash_attn_choice(info.flash_attn),  # auto | on | off
                      # drafted and accepted tokens since load, and their ratio (None before any draft)
                      "prompt_lookup": lookup.as_dict() if lookup else None} if info else None,
            "hardware": self.hardware.as_dict(),
            "queue": {"waiting": self.engine.queue_length, "parallel": self.engine.parallel},
        }


