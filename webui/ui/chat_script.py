"""The chat page's own script (mounted in the page's <head>): a [n] chip opens the passage it cites,
and a version switch's arrows send the pick to the server through a hidden button.

Chatbot messages are HTML that Gradio redraws at will, so one listener on the document handles
clicks on whatever chips and arrows are shown now, instead of wiring each one.
"""

from __future__ import annotations

VERSION_PICK_ID = "version-pick"  # the hidden button that carries a version pick to the server
VERSION_PICK_JS = "(current, pick) => [current, window.webuiVersionPick || '']"

CHAT_PAGE_SCRIPT = r"""<script>(() => {
  document.addEventListener("click", (event) => {
    const chip = event.target.closest && event.target.closest("a.cite-chip");
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
    const step = event.target.closest && event.target.closest("button.version-step");
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
})();</script>""".replace("VERSION_PICK_ID", VERSION_PICK_ID)
