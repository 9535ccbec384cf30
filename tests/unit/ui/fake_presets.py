"""Services for the Presets tab's handlers: the real PresetService over presets in a temp folder, no model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from webui.prompts.presets import PresetStore
from webui.services import LOCAL_USER, PresetService
from webui.services.types import User

from tests.unit.ui.fakes import FakeServices

# The chat's sampling sliders' (minimum, maximum), as webui/ui/chat.py makes them.
CHAT_SLIDER_RANGES = {"temperature": (0, 2), "top_p": (0, 1), "top_k": (0, 200), "min_p": (0, 1),
                      "repeat_penalty": (1, 2), "max_tokens": (16, 4096)}


@dataclass
class PresetServices(FakeServices):
    """FakeServices with the preset service the tab calls, and whether the app runs in team mode."""

    preset_actions: PresetService | None = None
    auth_required: bool = False

    def user(self, username: str | None) -> User:
        """As the real one: without team mode everyone is the one local admin."""
        return super().user(username) if self.auth_required else LOCAL_USER


def preset_services(presets_dir: Path, *, team: bool) -> PresetServices:
    """Alice (admin) and Bob in team mode, no model loaded."""
    service = PresetService(PresetStore(presets_dir), SimpleNamespace(info=None), team=team)
    users = {"alice": User("alice", is_admin=True, id="u-alice"), "bob": User("bob", is_admin=False, id="u-bob")}
    return PresetServices(users=users, preset_actions=service, auth_required=team)
