"""Print the chunks that files or folders produce: ``python -m kb_server.cli.chunks PATH...``.

A quick way to see what the loaders and the splitter make of a document before it is
ingested. Exits 1 when any file could not be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from kb_server.chunking import DocumentPipeline
from kb_server.errors import KbError
from kb_server.settings import load_settings


def iter_files(paths: Sequence[Path]) -> Iterator[tuple[Path, Path]]:
    """Yield (file, content_root) pairs; a folder is walked in sorted order."""
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                yield file, path
        else:
            yield path, path.parent


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders")
    parser.add_argument("--chunk-size", type=int, help="override splitter.chunk_size")
    parser.add_argument("--chunk-overlap", type=int, help="override splitter.chunk_overlap")
    parser.add_argument(
        "--zh-title-enhance",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override splitter.zh_title_enhance",
    )
    parser.add_argument(
        "--show", type=int, default=3, help="chunks to print per file (0: counts only)"
    )
    parser.add_argument("--width", type=int, default=120, help="characters shown per chunk")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings()
    updates = {
        key: value
        for key, value in {
            "chunk_size": args.chunk_size,
            "chunk_overlap": args.chunk_overlap,
            "zh_title_enhance": args.zh_title_enhance,
        }.items()
        if value is not None
    }
    splitter = type(settings.splitter).model_validate({**settings.splitter.model_dump(), **updates})
    pipeline = DocumentPipeline(settings)
    out = sys.stdout
    failures = 0
    total = 0
    for file, root in iter_files(args.paths):
        try:
            chunks = pipeline.load_and_split(file, content_root=root, splitter=splitter)
        except KbError as exc:
            failures += 1
            sys.stderr.write(f"error: {file}: {exc.message}\n")
            continue
        total += len(chunks)
        out.write(f"== {file} : {len(chunks)} chunks\n")
        for chunk in chunks[: args.show]:
            text = chunk.text.replace("\n", " ⏎ ")
            shown = text if len(text) <= args.width else text[: args.width] + "…"
            meta = {k: v for k, v in chunk.metadata.items() if k not in ("source", "loader")}
            out.write(f"   [{len(chunk.text):>4}] {shown}\n          {meta}\n")
    out.write(f"{total} chunks, {failures} files failed\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
