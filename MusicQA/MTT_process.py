"""MagnaTagATune (annotations_final.csv tags)
-> MusicQA question-answer records, one JSON line per clip (see annotate.py).

    python MusicQA/MTT_process.py --dir DIR [--llm mosaicml/mpt-7b-chat] [--batch_size 8] [--device cuda]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from annotate import main  # noqa: E402

if __name__ == "__main__":
    main("mtt")
