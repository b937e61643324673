"""What a LoRA file matched in a pipeline, in words for people and as data for the panel."""

from __future__ import annotations

from dataclasses import dataclass

from ..files.metadata import LoraMetadata


@dataclass(frozen=True)
class LoadReport:
    """What a file matched: per component (name, matched, total in file), and where it fell short.

    Every module of the file counts: ``total`` is the modules understood plus ``unknown`` (modules whose keys
    no converter understood), so "matched N/M" means M = all modules in the file. ``unmatched`` are modules
    understood but not found in this pipeline; ``skipped`` the components the file has a part for that this
    pipeline was loaded without (e.g. SD3 without T5). ``base_model`` is what the file's metadata says (or
    "unknown"); ``made_for`` what its keys and shapes suggest; ``notes`` are remarks from conversion (skipped
    algorithms); ``metadata`` is the parsed header (title, trigger words, training settings).
    """

    file: str
    format: str
    components: tuple[tuple[str, int, int], ...]
    unmatched: tuple[str, ...]
    unknown: int
    base_model: str
    made_for: str = ""
    notes: tuple[str, ...] = ()
    metadata: LoraMetadata = LoraMetadata()
    skipped: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()  # the file's keys no converter used

    @property
    def matched(self) -> int:
        return sum(m for _, m, _ in self.components)

    @property
    def total(self) -> int:
        return sum(t for _, _, t in self.components) + self.unknown

    @property
    def partial(self) -> bool:
        return bool(self.problems() or self.skipped)

    def problems(self) -> tuple[str, ...]:
        """Why this file would apply only in part (empty when every module applies or was skipped knowingly)."""
        found = []
        missing = [u for u in self.unmatched if u.split(":", 1)[0] not in self.skipped]
        if missing:
            names = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            found.append(f"{len(missing)} of its modules are not in this pipeline (e.g. {names})")
        if self.ignored:
            keys = "key" if len(self.ignored) == 1 else "keys"
            found.append(f"{len(self.ignored)} {keys} LoRA Deck does not understand (e.g. {self.ignored[0][:80]!r})")
        return (*found, *self.notes)

    def warnings(self) -> tuple[str, ...]:
        """Plain-words remarks on what did not apply (problems, and components this pipeline lacks)."""
        skipped = tuple(f"its {c} part was skipped: this pipeline was loaded without {c}" for c in self.skipped)
        return (*self.problems(), *skipped)

    def text(self) -> str:
        parts = ", ".join(f"{c} {m}/{t}" for c, m, t in self.components)
        parts += f", {self.unknown} not understood" if self.unknown else ""
        line = f"{self.format}: {self.matched}/{self.total} modules matched ({parts})"
        warnings = self.warnings()
        return line + (f". WARNING: {'; '.join(warnings)}" if warnings else "")

    def base_text(self) -> str:
        if self.metadata.base_model:
            return f"{self.metadata.base_model} ({self.metadata.base_model_source})"
        return f"{self.made_for} (guessed from its keys)" if self.made_for else "unknown"

    def info_text(self, words: int = 12) -> str:
        """The report for people: match line, base model, trigger words, title."""
        lines = [self.text(), f"base model: {self.base_text()}"]
        if self.metadata.trigger_words:
            lines.append(f"trigger words: {', '.join(self.metadata.trigger_words[:words])}")
        if self.metadata.title:
            lines.append(f"title: {self.metadata.title}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        metadata = self.metadata.to_dict()
        if not metadata["base_model"] and self.made_for:
            metadata.update(base_model=self.made_for, base_model_source="guessed from keys and shapes")
        return {"format": self.format, "matched": self.matched, "total": self.total,
                "components": [{"component": c, "matched": m, "total": t} for c, m, t in self.components],
                "unmatched": list(self.unmatched[:20]), "unknown": self.unknown, "skipped": list(self.skipped),
                "ignored_keys": list(self.ignored[:20]),
                "base_model": self.base_model, "made_for": self.made_for, "partial": self.partial,
                "warnings": list(self.warnings()), "metadata": metadata}
