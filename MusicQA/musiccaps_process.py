"""MusicCaps (musiccaps-public.csv captions)
-> MusicQA question-answer records, one JSON line per clip (see annotate.py).

    python MusicQA/musiccaps_process.py --dir DIR [--llm mosaicml/mpt-7b-chat] [--batch_size 8] [--device cuda]
"""

from llama.musicqa.annotate import main

if __name__ == "__main__":
    main("musiccaps")
