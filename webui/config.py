"""Settings: the one typed object every part of the app reads its configuration from.

Values flow command line > environment (``WEBUI_*``) > defaults, and are resolved once in
:func:`webui.cli.parse_settings`; nothing else reads the environment for app settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The largest request body read into memory (API calls and page events; uploads stream to disk): a chat
# that long would not fit any local context window anyway.
MAX_REQUEST_BODY_BYTES = 4 * 2**20
# models/ and data/ belong to the checkout, not to the current directory: `python3 ~/webui/launcher.py`
# started from anywhere finds the same models and chats (relative flags stay relative to the cwd).
CHECKOUT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = CHECKOUT_DIR / "models"
DEFAULT_DATA_DIR = CHECKOUT_DIR / "data"


@dataclass(frozen=True)
class Settings:
    """Where things live and how the server and engine start."""

    host: str = "127.0.0.1"
    port: int = 7860
    models_dir: Path = DEFAULT_MODELS_DIR
    data_dir: Path = DEFAULT_DATA_DIR
    model: str | None = None  # a path, a file name in models_dir, or "repo_id:filename"
    offline: bool = False
    n_gpu_layers: int | None = None  # None means "auto"
    ctx_size: int = 4096
    threads: int | None = None  # None means the physical core count
    insecure_no_auth: bool = False
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    embedding_model: str | None = None  # None means the packaged all-MiniLM-L6-v2
    reranker_model: str | None = None  # a local cross-encoder folder; None: reranking off
    chroma_url: str | None = None  # a Chroma server for documents instead of data_dir/chroma
    chroma_token: str | None = field(default=None, repr=False)  # sent as "Authorization: Bearer ..."
    # Remote OpenAI-compatible servers whose models can be picked; a URL may hold user:password@ (never printed).
    backends: tuple[str, ...] = field(default=(), repr=False)
    backend_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (backend URL, key sent as Bearer)
    no_local_model: bool = False  # front end only: no llama.cpp model loaded in this process
    max_upload_mb: int = 100
    prompt_cache_mb: int = 1024  # RAM for per-conversation llama.cpp states; 0 turns it off
    parallel: int | None = None  # replies decoded at once in one context; None: chosen from free memory
    cors_origins: tuple[str, ...] = ()  # other web origins allowed to call the app with a user's cookie
    session_idle_hours: float = 12.0  # a login unused this long is signed out
    session_max_days: float = 7.0  # a login is signed out this long after it began, used or not
    login_max_failures: int = 10  # wrong passwords in a row before a name (or 5x for an address) is locked
    login_lockout_minutes: float = 15.0
    api_key: str | None = field(default=None, repr=False)  # the key API calls need on a single-user app
    api_model_switch: bool = False  # an admin's API call naming another local model loads it
    allowed_hosts: tuple[str, ...] = ()  # more Host names to answer as (a reverse proxy's), beyond our own
    forwarded_allow_ips: str | None = None  # proxies whose X-Forwarded-For is believed; None: nobody's
    # Replies one user (team mode) or the single user may generate at once through the API; 0: no limit;
    # None: 4 in team mode, no limit otherwise.
    max_streams_per_user: int | None = None
    mcp_config: Path | None = None  # the MCP servers file; None: data_dir/mcp.json (absent: no servers)
    tool_timeout_s: float = 30.0  # a tool call the model makes is abandoned after this long
    max_tool_calls: int = 8  # tool calls in one chat reply; then the model is told to answer

    @property
    def listens_on_network(self) -> bool:
        """True when the server is reachable from other machines, which requires login."""
        return self.host not in LOOPBACK_HOSTS

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def history_db(self) -> Path:
        return self.data_dir / "history.sqlite3"

    @property
    def presets_dir(self) -> Path:
        return self.data_dir / "presets"

    @property
    def users_file(self) -> Path:
        return self.data_dir / "users.json"

    @property
    def model_settings_file(self) -> Path:
        return self.data_dir / "model-settings.json"

    @property
    def api_keys_file(self) -> Path:
        return self.data_dir / "api-keys.json"

    @property
    def mcp_config_file(self) -> Path:
        return self.mcp_config if self.mcp_config is not None else self.data_dir / "mcp.json"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"
