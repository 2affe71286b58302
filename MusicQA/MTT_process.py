"""MagnaTagATune (annotations_final.csv tags)
-> MusicQA question-answer records, one JSON line per clip (see annotate.py).

    python MusicQA/MTT_process.py --dir DIR [--llm mosaicml/mpt-7b-chat] [--batch_size 8] [--device cuda]
"""

from llama.musicqa.annotate import main

if __name__ == "__main__":
    main("mtt")
