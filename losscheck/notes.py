"""A note of a report: its text and its topic, so that each command shows the notes that concern it
(breakdown never fits, so it leaves out the notes on the fit probe; the callback is the fit itself).

A `Note` is a `str` (its text) with a `topic`; a plain string counts as a GENERAL note."""

from __future__ import annotations

from collections.abc import Iterable

#: a note every command's report shows
GENERAL = "general"
#: a note on the fit probe (fit_epoch, fit_val: the optimizer, its state)
FIT = "fit"

TOPICS = (GENERAL, FIT)


class Note(str):
    """A note's text (the string itself) and its topic (one of TOPICS)."""

    topic: str

    def __new__(cls, text: str, topic: str = GENERAL) -> Note:
        if topic not in TOPICS:
            raise ValueError(f"unknown note topic {topic!r}")
        note = super().__new__(cls, text)
        note.topic = topic
        return note

    @property
    def text(self) -> str:
        """The note as a plain string."""
        return str.__str__(self)


def topic_of(note: str) -> str:
    """The topic of `note` (GENERAL for a plain string)."""
    return getattr(note, "topic", GENERAL)


def without(notes: Iterable[str], *topics: str) -> list[str]:
    """The texts (plain strings) of the notes whose topic is not one of `topics`, in order."""
    return [str(n) for n in notes if topic_of(n) not in topics]
