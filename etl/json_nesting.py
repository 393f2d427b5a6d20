"""How deep a JSON text nests, and where a value ends, found without recursion.

Python's json module parses nested arrays and objects recursively, so a record nested a few hundred
levels deep exhausts the stack (RecursionError) wherever it is parsed. The ingestion and the Silver job
measure a record with these scans first and only parse it when it nests at most MAX_NESTING levels.
The scans jump from one bracket or string to the next with regular expressions (C speed), and keep
the open brackets in a list, never on the call stack.
"""

from __future__ import annotations

import re

# Arrays and objects a record may nest: far more than any order needs, far less than the stack allows.
MAX_NESTING = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Everything up to the next bracket outside a string: strings and other text are skipped in one step.
_TO_BRACKET = re.compile(r'(?:[^"\[\]{}]+|"[^"\\]*(?:\\.[^"\\]*)*")*', re.DOTALL)
# A number, true, false or null: everything up to the next delimiter (validated by the json module).
_SCALAR = re.compile(r"[^\s,\]}\[{\"]+")
_CLOSES = {"]": "[", "}": "{"}


def value_extent(text: str, start: int) -> tuple[int, int]:
    """(end, nesting) of the JSON value that starts at `start`: where it ends (exclusive) and how many
    arrays and objects deep it goes (0 for a scalar). ValueError when the value does not end in `text`
    or its brackets do not match. Only the structure is checked: the json module checks the rest."""
    if start >= len(text):
        raise ValueError(f"expected a value at {start}")
    first = text[start]
    if first == '"':
        string = _STRING.match(text, start)
        if string is None:
            raise ValueError(f"unterminated string starting at {start}")
        return string.end(), 0
    if first not in "[{":
        scalar = _SCALAR.match(text, start)
        if scalar is None:
            raise ValueError(f"expected a value at {start}")
        return scalar.end(), 0
    open_brackets: list[str] = []
    deepest = 0
    index = start
    while True:
        index = _next_bracket(text, index)
        if index == len(text):
            raise ValueError(f"the value starting at {start} does not end")
        char = text[index]
        index += 1
        if char in "[{":
            open_brackets.append(char)
            deepest = max(deepest, len(open_brackets))
        elif not open_brackets or open_brackets.pop() != _CLOSES[char]:
            raise ValueError(f"unexpected {char!r} at {index - 1}")
        if not open_brackets:
            return index, deepest


def too_deep(text: str) -> bool:
    """Whether `text` nests deeper than MAX_NESTING. A text with no more brackets than that cannot:
    counting them (C speed) spares the scan for nearly every record."""
    return text.count("[") + text.count("{") > MAX_NESTING and nesting_depth(text) > MAX_NESTING


def nesting_depth(text: str) -> int:
    """How many arrays and objects deep `text` goes at its deepest (brackets inside strings do not
    count). Any text has a depth, JSON or not; an unterminated string ends the count."""
    depth = deepest = 0
    index = 0
    while True:
        index = _next_bracket(text, index)
        if index == len(text):
            return deepest
        if text[index] in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
        index += 1


def _next_bracket(text: str, index: int) -> int:
    """Where the next bracket outside a string is; len(text) when there is none (or a string does not
    end, which the callers treat alike)."""
    skipped = _TO_BRACKET.match(text, index)
    assert skipped is not None  # the pattern matches the empty string
    end = skipped.end()
    if end < len(text) and text[end] == '"':  # a string that does not end
        return len(text)
    return end
