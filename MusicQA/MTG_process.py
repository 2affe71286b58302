"""MTG-Jamendo (raw_30s_cleantags_50artists.tsv tags, folders 00-09)
-> MusicQA question-answer records, one JSON line per clip (see annotate.py).

    python MusicQA/MTG_process.py --dir DIR [--llm mosaicml/mpt-7b-chat] [--batch_size 8] [--device cuda]
"""

from llama.musicqa.annotate import main

if __name__ == "__main__":
    main("mtg")
