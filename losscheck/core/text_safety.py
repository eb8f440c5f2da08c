"""Text that comes from files (layer, output, loss and optimizer names, keras_version, paths, messages
quoting them) made safe where it is shown.

for_terminal: control characters (C0 but newline, DEL, C1 — ESC and CSI included), bidirectional
    overrides/isolates and line/paragraph separators are written as visible escapes (\\x1b, \\u202e);
    newlines kept only when the caller asks (tabs become a space).
for_markdown: one line, HTML-escaped (< > &) and markdown syntax backslash-escaped (links, images,
    emphasis, code, strikethrough, table pipes, a leading heading mark); bare URLs defanged so they
    do not autolink. Renders as the original text in a GitHub comment.
prose_for_markdown: the same for losscheck's own sentences, keeping their `code` spans.
code_span: inline code whose fence is longer than any backtick run in the text (inside a code span
    neither HTML nor markdown is interpreted), pipes escaped for table cells; text holding HTML or
    link syntax falls back to for_markdown.
JSON needs none of this: json.dumps escapes every control and non-ASCII character.
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029]")
_MD_ESCAPE = set("\\`*_[]|~")
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_AUTOLINK = re.compile(r"(?i)(://|www\.)")
_LOOKS_ACTIVE = re.compile(r"(?i)[<>&\[\]]|://|www\.")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: object, keep_newlines: bool = False) -> str:
    """No byte a terminal would act on: control/bidi characters shown as escapes; one line unless
    `keep_newlines`."""
    s = str(text).replace("\t", " ")
    if not keep_newlines:
        s = s.replace("\r\n", " ").replace("\n", " ")
    return _UNSAFE.sub(_visible, s)


def for_markdown(text: object) -> str:
    """One line of plain text, safe anywhere in a GitHub-flavoured markdown document (table cells
    included) and rendered as the original characters."""
    s = for_terminal(text)
    out = []
    for i, ch in enumerate(s):
        if ch in _HTML:
            out.append(_HTML[ch])
        elif ch == "_" and 0 < i < len(s) - 1 and s[i - 1].isalnum() and s[i + 1].isalnum():
            out.append(ch)  # intraword underscores never emphasise (dense_1)
        elif ch in _MD_ESCAPE or (ch == "#" and i == 0) or (ch == "!" and s[i + 1:i + 2] == "[") \
                or (ch == "(" and s[i - 1:i] == "]"):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return _AUTOLINK.sub(lambda m: m.group().replace("/", "\\/").replace(".", "\\."), "".join(out))


def code_span(text: object, table: bool = False) -> str:
    """`text` as inline code, whatever backticks it holds; `table`: pipes escaped (GFM splits cells first).
    Text that looks like HTML or a link is written as escaped plain text instead, so not even the
    markdown source holds it verbatim."""
    s = for_terminal(text)
    if _LOOKS_ACTIVE.search(s):
        return for_markdown(s)
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    out = f"{fence}{pad}{s}{pad}{fence}"
    return out.replace("|", "\\|") if table else out


_CODE = re.compile(r"(`+)(.+?)\1")


def prose_for_markdown(text: object) -> str:
    """for_markdown for losscheck's own sentences, which mark code with backticks (`from_logits=True`):
    their code spans stay code (through code_span), everything around them is escaped."""
    s = for_terminal(text)
    out, at = [], 0
    for m in _CODE.finditer(s):
        out.append(for_markdown(s[at:m.start()]))
        out.append(code_span(m.group(2).strip() or m.group(2)))
        at = m.end()
    out.append(for_markdown(s[at:]))
    return "".join(out)
