"""The Services object: the one thing the UI talks to, built once at start-up in cli.py."""

from __future__ import annotations

from typing import Any

from webui import __version__
from webui.api_keys import ApiKeyStore
from webui.auth import User, UserStore
from webui.config import Settings
from webui.engine import Engine
from webui.hardware import HardwareInfo
from webui.history import HistoryStore
from webui.private_files import TEMP_DIR_NAME
from webui.prompts.presets import PresetStore
from webui.quarantine import set_aside_notice
from webui.tools import McpServers
from webui.services.access import LOCAL_USER, NotAuthorized
from webui.services.api_access import ApiAccessService
from webui.services.chat import ChatService, DocumentQuery, ReplyUpdate
from webui.services.completions import CompletionService
from webui.services.conversations import ConversationService
from webui.services.documents import DocumentService
from webui.services.models import ModelService, flash_attn_choice
from webui.services.notebook import CompletionUpdate, NotebookService
from webui.services.presets import AppliedPreset, PresetService
from webui.services.rerankers import RerankerService
from webui.services.streaming import UpdatePacer
from webui.services.summaries import SummaryService
from webui.services.tools import ToolsService, TurnRequest
from webui.services.users import UserService

__all__ = [
    "LOCAL_USER", "AppliedPreset", "ChatService", "CompletionUpdate", "DocumentQuery", "DocumentService",
    "NotAuthorized", "NotebookService", "PresetService", "RerankerService", "ReplyUpdate", "Services", "ToolsService",
    "TurnRequest", "UserService",
]


class Services:
    """Everything the UI may call, wired from one Settings object."""

    def __init__(self, settings: Settings, hardware: HardwareInfo, engine: Engine) -> None:
        self.settings = settings
        self.hardware = hardware
        self._engine = engine
        self._history = HistoryStore(settings.history_db)
        self._users = UserStore(settings.users_file)
        self.models = ModelService(settings, hardware, engine)  # the Models tab, the picker and the API
        self._presets = PresetStore(settings.presets_dir)
        # The reranker for document answers (the Models tab picks it; every document search asks it).
        self.rerankers = RerankerService(settings)
        self.document_actions = DocumentService(settings, rerankers=self.rerankers)  # the Documents tab's actions
        pacer = UpdatePacer()  # chat and notebook replies streaming at once share the page's redraws
        self.chat = ChatService(engine, self._history, documents=self.document_actions, presets=self._presets,
                                pacer=pacer)
        # Search, export and import of chats; the downloads go to the private temporary folder.
        self.conversations = ConversationService(self._history, settings.data_dir / TEMP_DIR_NAME)
        # The Presets tab's actions; in team mode presets have owners and only admins write shared ones.
        self.preset_actions = PresetService(self._presets, engine, team=self.auth_required)
        self.notebook = NotebookService(engine, pacer)
        self.summaries = SummaryService(engine, self.document_actions, self.preset_actions, self._history)
        # The HTTP API's two doors: who a call acts as, and generation/embeddings with its checks.
        # One keys store for both it and the Users tab, which revokes a user's keys with the user.
        api_keys = ApiKeyStore(settings.api_keys_file)
        self.api_access = ApiAccessService(settings, self._users, team_mode=self.auth_required, keys=api_keys)
        self.user_actions = UserService(self._users, api_keys)  # the Users tab's actions
        self.completions = CompletionService(settings, engine, self.models, self.chat, self.document_actions,
                                             team_mode=self.auth_required)
        # Tools the model calls in a chat; MCP servers are started on first use, closed by close().
        self.tools = ToolsService(
            engine, self.chat, self.document_actions, McpServers(settings.mcp_config_file, log_dir=settings.data_dir),
            team_mode=self.auth_required, tool_timeout_s=settings.tool_timeout_s,
            max_tool_calls=settings.max_tool_calls, pacer=pacer)

    def close(self) -> None:
        """At shutdown: what holds processes or connections (the MCP servers) is closed."""
        self.tools.close()

    @property
    def auth_required(self) -> bool:
        """Login is required whenever the app is reachable from the network (unless explicitly waived)."""
        return self.settings.listens_on_network and not self.settings.insecure_no_auth

    def user(self, username: str | None) -> User:
        """The signed-in user; in single-user mode, the one implicit local user (an admin)."""
        if not self.auth_required:
            return LOCAL_USER
        user = self._users.get(username) if username else None
        if user is None:
            raise NotAuthorized("Please log in again.")
        return user

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
        info = self._engine.info
        lookup = self._engine.prompt_lookup
        return {
            "version": __version__,
            # Without the path: /status is open to every signed-in user, not only admins.
            "model": {**{k: v for k, v in info.as_dict().items() if k != "path"},
                      "flash_attn": flash_attn_choice(info.flash_attn),  # auto | on | off
                      # drafted and accepted tokens since load, and their ratio (None before any draft)
                      "prompt_lookup": lookup.as_dict() if lookup else None} if info else None,
            "hardware": self.hardware.as_dict(),
            "queue": {"waiting": self._engine.queue_length, "parallel": self._engine.parallel},
            # The cross-encoder document searches are reranked with (None: off, the default).
            "documents": {"reranker": self.rerankers.in_use_name()},
        }


