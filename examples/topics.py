"""Topics of the 20 Newsgroups test documents (the ProdLDA paper's preprocessed text) with both
backends, NPMI against the same documents, and the run folder with its HTML report.

python examples/topics.py --corpus ../shared/data/20news_prodlda/test.txt.gz --topics 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bayesvae
from bayesvae.data.text import read_documents
from bayesvae.report import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path("../shared/data/20news_prodlda/test.txt.gz"),
        help="one document per line (.txt or .txt.gz), or a folder of .txt files",
    )
    parser.add_argument("--limit", type=int, help="use only the first N documents")
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("runs/example-topics"))
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        print(f"skipped: corpus {args.corpus} not found", file=sys.stderr)
        return 0
    documents = read_documents(args.corpus)[: args.limit]
    for backend in ("numpyro", "pyro"):
        run = bayesvae.fit_topics(
            documents, args.topics, backend=backend, epochs=args.epochs, seed=0
        )
        print(run.table(), end="\n\n")
        folder = run.save(args.out / backend)
        print(f"report: {build(folder).html}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
