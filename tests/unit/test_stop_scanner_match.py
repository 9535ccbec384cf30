"""Which stop string ended a reply: what Anthropic's stop_sequence reports."""

from __future__ import annotations

from webui.engine import StopScanner


def test_the_scanner_names_the_stop_string_that_ended_the_text_split_across_pieces() -> None:
    scanner = StopScanner(["<|im_end|>", "END", "EN"])
    assert scanner.matched is None
    assert scanner.feed("Done. E") == ("Done. ", False) and scanner.matched is None
    assert scanner.feed("ND<|im_end|>") == ("", True)
    assert scanner.matched == "END", "of two stops starting at the same place, the longer"


def test_the_earliest_stop_string_wins() -> None:
    scanner = StopScanner(["<|im_end|>", "2"])
    assert scanner.feed("1, 2<|im_end|>") == ("1, ", True) and scanner.matched == "2"
