"""The chat page's own script (mounted in the page's <head>): a [n] chip opens the passage it cites,
a version switch's arrows send the pick to the server through a hidden button, each row of the chat
list gets a "⋯" that opens its menu (Rename, Delete) the same way, and on a phone the header's
"Chats" opens the sidebar as a drawer, which picking a chat or New chat closes.

Chatbot messages and the list's rows are HTML that Gradio redraws at will, so one listener on the
document handles clicks on whatever is shown now, and an observer adds the "⋯" to rows as they come.
"""

from __future__ import annotations

VERSION_PICK_ID = "version-pick"  # the hidden button that carries a version pick to the server
VERSION_PICK_JS = "(current, pick) => [current, window.webuiVersionPick || '']"
ROW_PICK_ID = "chat-row-pick"  # the hidden button that carries the chat of the row whose "⋯" was pressed
ROW_PICK_JS = "(picked) => [window.webuiChatRow || '']"
ROW_MENU_ID = "chat-row-menu"  # that row's menu, placed beside the row (theme.py reads the place)
DRAWER_TOGGLE_ID = "chat-drawer-toggle"  # the header's "Chats", shown on a phone only

CHAT_PAGE_SCRIPT = r"""<script>(() => {
  const sidebar = () => document.querySelector("#chat-sidebar");
  const drawerOpen = () => sidebar() && sidebar().dataset.drawer === "open";
  const setDrawer = (open) => {
    const panel = sidebar();
    if (panel) { panel.dataset.drawer = open ? "open" : "closed"; }
    const toggle = document.querySelector("#DRAWER_TOGGLE_ID");
    if (toggle) { toggle.setAttribute("aria-expanded", open ? "true" : "false"); }
  };
  const decorate = () => {
    const toggle = document.querySelector("#DRAWER_TOGGLE_ID");
    if (toggle && toggle.getAttribute("aria-label") !== "Chats") {
      toggle.setAttribute("aria-label", "Chats");
      toggle.setAttribute("aria-controls", "chat-sidebar");
      toggle.setAttribute("aria-expanded", drawerOpen() ? "true" : "false");
    }
    for (const row of document.querySelectorAll("#conversations label")) {
      if (row.querySelector("button.chat-row-actions")) { continue; }
      const more = document.createElement("button");
      more.type = "button";
      more.className = "chat-row-actions";
      more.title = "Chat actions";
      more.setAttribute("aria-label", "Chat actions");
      more.setAttribute("aria-haspopup", "menu");
      row.appendChild(more);
    }
  };
  new MutationObserver(decorate).observe(document.documentElement, {childList: true, subtree: true});
  const closeRowMenu = () => {
    const menu = document.querySelector("#ROW_MENU_ID");
    const close = document.querySelector("#chat-row-close");
    if (menu && menu.getClientRects().length && close) { close.click(); return true; }
    return false;
  };
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !closeRowMenu() && drawerOpen()) { setDrawer(false); }
  });
  document.addEventListener("click", (event) => {
    const target = event.target.closest ? event.target : event.target.parentElement;
    if (!target) { return; }
    const more = target.closest("button.chat-row-actions");
    if (more) {
      event.preventDefault();
      event.stopPropagation();
      const choice = more.closest("label") && more.closest("label").querySelector("input");
      if (!choice) { return; }
      // The menu opens under the row's "⋯", inside the window.
      const box = more.getBoundingClientRect();
      const place = document.documentElement.style;
      place.setProperty("--chat-row-menu-top", Math.round(Math.min(box.bottom + 4, window.innerHeight - 240)) + "px");
      place.setProperty("--chat-row-menu-left",
                        Math.round(Math.max(8, Math.min(box.left, window.innerWidth - 296))) + "px");
      window.webuiChatRow = choice.value;
      const pick = document.querySelector("#ROW_PICK_ID");
      if (pick) { pick.click(); }
      return;
    }
    if (!target.closest("#ROW_MENU_ID") && !target.closest("#ROW_PICK_ID")) {
      closeRowMenu();  // a click elsewhere closes a row's menu
    }
    if (target.closest("#DRAWER_TOGGLE_ID")) {
      setDrawer(!drawerOpen());
      return;
    }
    if (drawerOpen() && !target.closest("#ROW_MENU_ID")) {
      // Picking a chat or New chat shows the conversation; so does a tap beside the drawer.
      if (target.closest("#conversations label") || target.closest("#chat-new") || !target.closest("#chat-sidebar")) {
        setDrawer(false);
      }
    }
    const chip = target.closest("a.cite-chip");
    if (chip) {
      event.preventDefault();
      event.stopPropagation();
      const bubble = chip.closest(".message-row") || chip.closest(".message") || document;
      const number = (chip.className.match(/\bcite-(\d+)\b/) || [])[1];
      const passage = number && bubble.querySelector("details.passage.passage-" + number);
      if (!passage) { return; }
      const sources = passage.closest("details.sources");
      if (sources) { sources.open = true; }
      passage.open = true;
      passage.classList.add("cited-now");
      setTimeout(() => passage.classList.remove("cited-now"), 1600);
      passage.scrollIntoView({block: "nearest", behavior: "smooth"});
      return;
    }
    const step = target.closest("button.version-step");
    const pick = step && step.className.match(/\bversion-to-(\d+)-(\d+)\b/);
    if (step) {
      event.preventDefault();
      event.stopPropagation();
    }
    if (pick) {
      window.webuiVersionPick = pick[1] + ":" + pick[2];
      const go = document.querySelector("#VERSION_PICK_ID");
      if (go) { go.click(); }
    }
  }, true);
})();</script>""".replace("VERSION_PICK_ID", VERSION_PICK_ID).replace("ROW_PICK_ID", ROW_PICK_ID).replace(
    "ROW_MENU_ID", ROW_MENU_ID).replace("DRAWER_TOGGLE_ID", DRAWER_TOGGLE_ID)
